"""The ``inpaint`` evaluator's images: held-out test images and the NN database, as centre crops.

By the layout of ``--data`` (``held_out_images``): a VOC year folder (Main ``test`` held out; Main
``trainval`` or the SynthVOC pool the database) or a Paris StreetView folder (``data/paris.py``: its test
folder held out, its train folder the database). Any overlap between the two is refused. The protocol and
its NOTEs are in ``inpainting.py``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.paris import PARIS_LAYOUT_HELP, find_paris_streetview
from ssl_bench.data.pretrain import PretrainDataset
from ssl_bench.data.synthvoc import synthvoc_pool
from ssl_bench.data.voc import read_image_set
from ssl_bench.errors import DataError
from ssl_bench.evaluators.base import EvalContext, check_disjoint

# PAPER.md §1.2 / Table 1: one central square covering 1/4 of the image (64×64 of 128×128 in the paper).
HOLE_AREA = 0.25
TEST_SPLIT = "test"  # PAPER.md Table 1: held-out images
DATABASE_SPLIT = "trainval"  # NOTE: the paper's NN database is not described (unverified)


def _evenly_spaced(n: int, cap: int | None) -> list[int]:
    if cap is None or cap >= n:
        return list(range(n))
    return np.unique(np.linspace(0, n - 1, cap).round().astype(int)).tolist()


def _centre_crops(index: ImageFolderIndex, positions: list[int], image_size: int) -> Dataset:
    """Items {"image" uint8 [3,S,S], "mask" centre hole [1,S,S], "index"} for the listed images."""
    dataset = PretrainDataset(index, image_size, "center", {"area": HOLE_AREA}, augment=False)
    return Subset(dataset, positions)


def _voc_images(voc_root: Path, ids: list[str], image_size: int) -> Dataset:
    index = ImageFolderIndex(voc_root / "JPEGImages", labels="none")
    position = {index.path(i).stem: i for i in range(len(index))}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DataError(
            f"{voc_root / 'JPEGImages'}: no image for {len(missing)} listed id(s), e.g. {missing[0]}"
        )
    return _centre_crops(index, [position[i] for i in ids], image_size)


@dataclass(frozen=True)
class HeldOutImages:
    """The held-out images and the NN database, as centre crops, with a description of each."""

    test: Dataset
    test_name: str
    database: Dataset
    database_name: str


def _voc_held_out(ctx: EvalContext, image_size: int) -> HeldOutImages:
    """Main test, and the NN database (Main trainval or the SynthVOC pool); refuses any overlap."""
    test_ids = read_image_set(ctx.voc_root, TEST_SPLIT, "Main")
    test_ids = [test_ids[i] for i in _evenly_spaced(len(test_ids), ctx.protocol.max_test_images)]
    test = _voc_images(ctx.voc_root, test_ids, image_size)
    test_name = f"Main {TEST_SPLIT} ({len(test_ids)} images)"
    cap = ctx.protocol.nn_database_max
    if ctx.protocol.nn_database == "trainval":
        ids = read_image_set(ctx.voc_root, DATABASE_SPLIT, "Main")
        ids = [ids[i] for i in _evenly_spaced(len(ids), cap)]
        check_disjoint(ids, test_ids, "inpainting NN database (Main trainval) vs Main test")
        database = _voc_images(ctx.voc_root, ids, image_size)
        return HeldOutImages(test, test_name, database, f"Main {DATABASE_SPLIT} ({len(ids)} images)")
    pool = synthvoc_pool(ctx.voc_root)
    if not pool.is_dir():
        raise DataError(f"nn_database: pool needs a SynthVOC root (no pretraining pool at {pool})")
    index = ImageFolderIndex(pool, labels="none")
    positions = _evenly_spaced(len(index), cap)
    names = [index.path(i).stem for i in positions]
    check_disjoint(names, test_ids, "inpainting NN database (pool) vs Main test")
    database = _centre_crops(index, positions, image_size)
    return HeldOutImages(test, test_name, database, f"SynthVOC pool ({len(positions)} images)")


def _paris_held_out(ctx: EvalContext, image_size: int) -> HeldOutImages:
    """Paris StreetView (``data/paris.py``): the test folder held out, the train folder the NN database."""
    paris = find_paris_streetview(ctx.voc_root)
    assert paris is not None  # held_out_images looked
    if ctx.protocol.nn_database != "trainval":
        raise DataError(f"nn_database: {ctx.protocol.nn_database} needs a SynthVOC root; a Paris StreetView "
                        "folder's NN database is its train folder (nn_database: trainval)")  # fmt: skip
    test_index, train_index = paris.test_index(), paris.train_index()
    tests = _evenly_spaced(len(test_index), ctx.protocol.max_test_images)
    database = _evenly_spaced(len(train_index), ctx.protocol.nn_database_max)
    return HeldOutImages(
        _centre_crops(test_index, tests, image_size),
        f"Paris StreetView {paris.test.name}/ ({len(tests)} images)",
        _centre_crops(train_index, database, image_size),
        f"Paris StreetView {paris.train.name}/ ({len(database)} images)",
    )


def held_out_images(ctx: EvalContext, image_size: int) -> HeldOutImages:
    """By the layout of ``--data``: a VOC year folder or a Paris StreetView folder (module docstring)."""
    if (ctx.voc_root / "ImageSets" / "Main").is_dir():
        return _voc_held_out(ctx, image_size)
    if find_paris_streetview(ctx.voc_root) is not None:
        return _paris_held_out(ctx, image_size)
    raise DataError(
        f"{ctx.voc_root}: neither a VOC year folder (ImageSets/Main/, JPEGImages/) nor a Paris StreetView "
        f"folder ({PARIS_LAYOUT_HELP})"
    )
