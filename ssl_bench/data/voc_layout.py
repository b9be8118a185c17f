"""``check_voc_layout``: what would make an evaluator fail, or silently measure the wrong thing, in VOC.

Used by ``bench data check``; the readers it checks against are those of ``voc.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from PIL import Image
from tqdm import tqdm

from ssl_bench.data.voc import (
    MAIN_SPLITS,
    SEGMENTATION_SPLITS,
    load_segmentation_mask,
    parse_annotation,
    read_classification_labels,
    read_image_set,
)
from ssl_bench.errors import DataError

__all__ = ["check_voc_layout"]


def _summarise(problem: str, items: list[str], shown: int = 3) -> str:
    examples = ", ".join(items[:shown]) + (", ..." if len(items) > shown else "")
    return f"{problem}: {len(items)} ({examples})"


MAX_NAMED = 50  # files named one per line for each kind of problem; the rest are counted


def _each(items: list[str], what: str) -> list[str]:
    """One problem line per file, the first MAX_NAMED of them, then a count of the others."""
    lines = items[:MAX_NAMED]
    if len(items) > MAX_NAMED:
        lines.append(f"... and {len(items) - MAX_NAMED} more {what}")
    return lines


_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _decode_image(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """(problem, (width, height)): the whole file decoded, so a truncated JPEG fails here."""
    try:
        with Image.open(path) as img:
            img.load()
            return None, img.size
    except _PIL_ERRORS as e:
        return f"{path}: unreadable or truncated image ({e})", None


def _decode_mask(path: Path, image_size: tuple[int, int] | None, image: Path) -> str | None:
    try:
        mask = load_segmentation_mask(path)
    except DataError as e:
        return str(e)
    if image_size is not None and mask.size != image_size:
        (w, h), (iw, ih) = mask.size, image_size
        return f"{path}: mask is {w}×{h} px but its image {image} is {iw}×{ih} px"
    return None


def _decode_all(
    root: Path, image_ids: Iterable[str], mask_paths: list[tuple[str, Path]], workers: int, progress: bool
) -> list[str]:
    """Decode every image and mask in ``workers`` threads (PIL releases the GIL while decoding)."""
    image_ids = sorted(image_ids)
    sizes: dict[str, tuple[int, int] | None] = {}
    problems: list[str] = []
    total = len(image_ids) + len(mask_paths)
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=total, desc="checking", unit="file", disable=not progress, file=sys.stderr) as bar,
    ):
        jpeg = {i: root / "JPEGImages" / f"{i}.jpg" for i in image_ids}
        for image_id, (problem, size) in zip(image_ids, pool.map(_decode_image, jpeg.values()), strict=True):
            sizes[image_id] = size
            if problem:
                problems.append(problem)
            bar.update(1)
        checks = pool.map(
            lambda item: _decode_mask(item[1], sizes.get(item[0]), jpeg.get(item[0])), mask_paths
        )
        for problem in checks:
            if problem:
                problems.append(problem)
            bar.update(1)
    return problems


class _Files(NamedTuple):
    """The ids that have a file in each VOC folder (``<id>.jpg``, ``<id>.xml``, ``<id>.png``)."""

    jpegs: set[str]
    xmls: set[str]
    masks: set[str]  # SegmentationClass
    object_masks: set[str]  # SegmentationObject

    @classmethod
    def scan(cls, root: Path) -> _Files:
        def listing(folder: str, suffix: str) -> set[str]:
            d = root / folder
            return {n[: -len(suffix)] for n in os.listdir(d) if n.endswith(suffix)} if d.is_dir() else set()

        return cls(
            listing("JPEGImages", ".jpg"),
            listing("Annotations", ".xml"),
            listing("SegmentationClass", ".png"),
            listing("SegmentationObject", ".png"),
        )


def check_voc_layout(
    root: str | os.PathLike,
    expected: dict[str, int] | None = None,
    decode: bool = True,
    workers: int = 2,
    progress: bool = False,
) -> list[str]:
    """Look for what would make an evaluator fail or silently measure the wrong thing.

    Checks that the folders and split files exist, that every listed image has its JPEG, annotation and
    (for ``Segmentation`` splits) mask, that every annotation parses, that the per-class label files agree
    with their split, that split sizes match ``expected`` and that splits VOC keeps disjoint are disjoint;
    and (``decode``) that every listed JPEG decodes to its end and every segmentation PNG is a readable
    palette image of its JPEG's size.

    Args:
        root: VOC root (``VOCdevkit/VOC2007``).
        expected: split sizes to check, keyed ``"<task>/<split>"`` (``"Main/test"``) or just ``"<split>"``
            for ``Main``.
        decode: decode every listed image and mask (on full VOC a minute or so on 2 cores).
        workers: threads decoding at once.
        progress: a progress bar on stderr while decoding.

    Returns:
        Human-readable problems, each bad file named on its own line; empty when none was found.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"VOC root {root} does not exist or is not a folder"]
    problems: list[str] = []
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        if not (root / folder).is_dir():
            problems.append(f"missing folder {root / folder}")
    if problems:
        return problems

    files = _Files.scan(root)
    splits, problems = _read_splits(root, expected, files)
    problems += _overlapping_splits(splits)
    for key, count in (expected or {}).items():
        full = key if "/" in key else f"Main/{key}"
        if full in splits and len(splits[full]) != count:
            problems.append(f"{full}: {len(splits[full])} images, expected {count}")
    problems += _each(_unreadable_annotations(root, splits, files.xmls), "unreadable annotations")
    if decode:
        bad_files = _decode_listed(root, splits, files, workers, progress)
        problems += _each(bad_files, "unreadable or mis-sized images and masks")
    return problems


def _read_splits(
    root: Path, expected: dict[str, int] | None, files: _Files
) -> tuple[dict[str, list[str]], list[str]]:
    """The ids of every split file there is, keyed ``"<task>/<split>"``, and the problems found in them.

    A missing split file is a problem only where ``expected`` asks for that split.
    """
    splits: dict[str, list[str]] = {}
    problems: list[str] = []
    for task, names in (("Main", MAIN_SPLITS), ("Segmentation", SEGMENTATION_SPLITS)):
        if task == "Segmentation" and not (root / "ImageSets" / task).is_dir():
            continue
        for split in names:
            if not (root / "ImageSets" / task / f"{split}.txt").is_file():
                # VOC2012 ships no Main/test; only a split a user asks for is required.
                if expected and (f"{task}/{split}" in expected or (task == "Main" and split in expected)):
                    problems.append(f"missing image set {root / 'ImageSets' / task / f'{split}.txt'}")
                continue
            try:
                ids = read_image_set(root, split, task)
            except DataError as e:
                problems.append(str(e))
                continue
            splits[f"{task}/{split}"] = ids
            problems += _split_problems(root, task, split, ids, files)
    return splits, problems


def _split_problems(root: Path, task: str, split: str, ids: list[str], files: _Files) -> list[str]:
    """Duplicated ids, an empty split, listed ids without their files, and (``Main``) per-class label files
    that list other ids."""
    key = f"{task}/{split}"
    problems = []
    if len(set(ids)) != len(ids):
        problems.append(f"{key}: {len(ids) - len(set(ids))} duplicated id(s)")
    if not ids:
        problems.append(f"{key}: empty image set")
    lacking = [i for i in ids if i not in files.jpegs]
    if lacking:
        problems.append(_summarise(f"{key}: ids without JPEGImages/<id>.jpg", lacking))
    if task == "Main":
        lacking = [i for i in ids if i not in files.xmls]
        if lacking:
            problems.append(_summarise(f"{key}: ids without Annotations/<id>.xml", lacking))
        try:
            label_ids, _ = read_classification_labels(root, split)
            if label_ids != ids:
                problems.append(f"{key}: the per-class files <class>_{split}.txt list other ids")
        except DataError as e:
            problems.append(str(e))
    else:
        lacking = [i for i in ids if i not in files.masks]
        if lacking:
            problems.append(_summarise(f"{key}: ids without SegmentationClass/<id>.png", lacking))
    return problems


def _overlapping_splits(splits: dict[str, list[str]]) -> list[str]:
    """Splits that VOC keeps disjoint and that share ids; a trainval that is not train ∪ val."""
    problems = []
    for task in ("Main", "Segmentation"):
        for a, b in (("train", "val"), ("trainval", "test"), ("train", "test"), ("val", "test")):
            both = set(splits.get(f"{task}/{a}", ())) & set(splits.get(f"{task}/{b}", ()))
            if both:
                problems.append(_summarise(f"{task}: ids in both {a} and {b}", sorted(both)))
        if all(f"{task}/{s}" in splits for s in ("train", "val", "trainval")):
            union = set(splits[f"{task}/train"]) | set(splits[f"{task}/val"])
            if union != set(splits[f"{task}/trainval"]):
                problems.append(f"{task}: trainval is not the union of train and val")
    return problems


def _unreadable_annotations(root: Path, splits: dict[str, list[str]], xmls: set[str]) -> list[str]:
    """One problem per annotation of a ``Main`` split's image that does not parse."""
    bad_xml: list[str] = []
    main_ids = sorted({i for k, ids in splits.items() if k.startswith("Main/") for i in ids} & xmls)
    for image_id in main_ids:
        try:
            parse_annotation(root / "Annotations" / f"{image_id}.xml")
        except DataError as e:
            bad_xml.append(str(e))
    return bad_xml


def _decode_listed(
    root: Path, splits: dict[str, list[str]], files: _Files, workers: int, progress: bool
) -> list[str]:
    """Decode every image a split lists and every mask of a ``Segmentation`` split's image."""
    listed = {i for ids in splits.values() for i in ids} & files.jpegs
    seg_ids = sorted({i for k, ids in splits.items() if k.startswith("Segmentation/") for i in ids})
    mask_paths = [(i, root / "SegmentationClass" / f"{i}.png") for i in seg_ids if i in files.masks]
    mask_paths += [(i, root / "SegmentationObject" / f"{i}.png") for i in seg_ids if i in files.object_masks]
    return _decode_all(root, listed, mask_paths, workers, progress)
