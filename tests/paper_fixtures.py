"""Small data trees in the real formats the ``paper`` profile reads, for its tests.

* an ImageNet-style train folder: ``train/n0xxxxxx/n0xxxxxx_<k>.JPEG`` (ILSVRC2012's layout, one folder a
  class);
* a ``VOCdevkit`` with ``VOC2007`` and ``VOC2012``: SynthVOC's devkit writer (``data/synthvoc.py``: JPEGs,
  XML annotations, palette PNG masks, ``ImageSets/Main`` and ``Segmentation`` lists) run once per year;
  SynthVOC's own marker file and pool are removed, so the tree reads as a downloaded devkit;
* SBD's ``benchmark_RELEASE/dataset`` through paper-seg's ``tests/data/sbd_fixture.py`` (``cls/*.mat``);
* selective-search ``.mat`` files as Fast R-CNN distributes them (``tests/data/proposals_fixture.py``),
  converted by ``bench data proposals``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ssl_bench.data.proposals import convert_selective_search
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import read_image_set
from tests.data.proposals_fixture import voc_selective_search_mats
from tests.data.sbd_fixture import write_sbd


@dataclass(frozen=True)
class PaperData:
    """The roots of a complete paper-profile data tree."""

    imagenet_train: Path
    voc2007: Path
    voc2012: Path
    sbd: Path
    proposals: Path


def write_imagenet_train(root: Path, classes: int = 2, per_class: int = 4, size: int = 96) -> Path:
    """``root/n0000000c/n0000000c_<k>.JPEG``: smooth colour images, a different hue a class."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c in range(classes):
        wnid = f"n{c:08d}"
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            phase = rng.uniform(0, 6.28, 3)
            rgb = [np.sin(6 * xx + 4 * yy * (i + 1) + phase[i] + c) for i in range(3)]
            pixels = ((np.stack(rgb, -1) + 1) * 127.5).astype(np.uint8)
            Image.fromarray(pixels).save(root / wnid / f"{wnid}_{k}.JPEG", quality=90)
    return root


def write_voc_year(devkit: Path, year: str, num_images: int, size: int, seed: int) -> Path:
    """``devkit/VOC<year>`` written by SynthVOC's devkit writer, without SynthVOC's marker and pool."""
    scratch = devkit.parent / f".synth-{year}"
    voc = generate_synthvoc(scratch, num_images=num_images, size=size, seed=seed, workers=1, progress=False)
    target = devkit / year
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(voc), str(target))
    shutil.rmtree(scratch)
    return target


def write_paper_data(root: Path, num_images: int = 24, size: int = 96) -> PaperData:
    """Every dataset of the paper profile under ``root``, in its real layout (module docstring)."""
    imagenet = write_imagenet_train(root / "imagenet" / "train")
    devkit = root / "VOCdevkit"
    voc2007 = write_voc_year(devkit, "VOC2007", num_images, size, seed=0)
    voc2012 = write_voc_year(devkit, "VOC2012", num_images, size, seed=1)
    # SBD: a few ids of its own, one of VOC2012's train images (served once) and one of its val images
    # (dropped: the test set stays unseen).
    own = [f"2008_{i:06d}" for i in range(6)]
    train, val = (
        read_image_set(voc2012, "train", "Segmentation"),
        read_image_set(voc2012, "val", "Segmentation"),
    )
    sbd = write_sbd(root / "benchmark_RELEASE" / "dataset",
                    {"train": own[:4] + train[:1], "val": own[4:] + val[:1]}, size=(size, size))  # fmt: skip
    mats = voc_selective_search_mats(voc2007, root / "selective_search_data")
    proposals = root / "proposals.npz"
    convert_selective_search(
        mats, proposals, read_image_set(voc2007, "trainval") + read_image_set(voc2007, "test")
    )
    return PaperData(imagenet, voc2007, voc2012, sbd, proposals)
