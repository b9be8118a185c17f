"""Readers for the PASCAL VOCdevkit layout, shared by pretraining and the evaluators.

The suite reads VOC with its own code rather than ``torchvision.datasets.VOCDetection`` and friends because
the evaluators need what those do not give:
- ``difficult`` and ``truncated`` flags as arrays (detection AP ignores difficult boxes, PAPER.md §5);
- the per-class classification files ``ImageSets/Main/<class>_<split>.txt`` with their 1/-1/0 labels;
- safe XML parsing (``defusedxml``: annotations may come from anywhere, and entity expansion or external
  entities must be refused, not expanded);
- errors that name the offending file (:class:`~ssl_bench.errors.DataError`), so the command line can say
  which of 10,000 files is broken.

Boxes are kept exactly as written in the XML: VOC 1-based, inclusive pixel coordinates
``(xmin, ymin, xmax, ymax)``. The VOC AP code relies on that (``+1`` in widths), so converting is left to
whoever feeds a model.

The datasets hold only ids (a numpy array of bytes, see ``folder.py`` for why) and read files on access,
so they pickle cheaply into DataLoader workers.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
import numpy as np
import torch
from defusedxml import DefusedXmlException
from PIL import Image
from torch.utils.data import Dataset

from ssl_bench.data.folder import load_image
from ssl_bench.errors import DataError

__all__ = [
    "VOC_CLASSES",
    "VOC_PALETTE",
    "VOCClassification",
    "VOCDetection",
    "VOCSegmentation",
    "load_detection_ground_truth",
    "load_image",
    "load_segmentation_mask",
    "parse_annotation",
    "read_classification_labels",
    "read_image_set",
]

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

_CLASS_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}

VOID_LABEL = 255  # segmentation: object boundaries and ambiguous pixels, ignored by mean IU


def _voc_palette() -> list[int]:
    """The devkit's colour map (``VOClabelcolormap.m``): the bits of the index are spread over R, G, B."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= (c & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


# 768 ints: index 1 (aeroplane) is (128, 0, 0), 15 (person) (192, 128, 128), 255 (void) (224, 224, 192).
VOC_PALETTE: list[int] = _voc_palette()

MAIN_SPLITS = ("train", "val", "trainval", "test")
SEGMENTATION_SPLITS = ("train", "val", "trainval")


def read_image_set(root: str | os.PathLike, split: str, task: str = "Main") -> list[str]:
    """Image ids of ``ImageSets/<task>/<split>.txt``.

    Args:
        root: VOC root (the folder holding ``JPEGImages``, e.g. ``VOCdevkit/VOC2007``).
        split: ``train``, ``val``, ``trainval`` or ``test``.
        task: ``Main`` or ``Segmentation``.

    Raises:
        DataError: the file is missing or unreadable.
    """
    path = Path(root) / "ImageSets" / task / f"{split}.txt"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read image set {path}: {e}") from e
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def _text(node: ET.Element, tag: str, path: Path, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"annotation {path}: {where} has no <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path, where: str) -> float:
    value = _text(node, tag, path, where)
    try:
        return float(value)
    except ValueError as e:
        raise DataError(f"annotation {path}: {where} <{tag}> is not a number: {value!r}") from e


def _flag(node: ET.Element, tag: str, path: Path, where: str) -> bool:
    # NOTE: some VOC2012 objects lack <difficult>/<truncated>; the devkit (PASreadrecord.m) reads a
    # missing flag as 0, and so does this reader.
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return False
    value = child.text.strip()
    if value not in ("0", "1"):
        raise DataError(f"annotation {path}: {where} <{tag}> must be 0 or 1, got {value!r}")
    return value == "1"


def parse_annotation(path: str | os.PathLike) -> dict[str, Any]:
    """Read one VOC annotation XML.

    Args:
        path: ``Annotations/<id>.xml``.

    Returns:
        ``{"filename": str, "width": int, "height": int,
        "boxes": float32 [K, 4] (xmin, ymin, xmax, ymax; VOC 1-based inclusive, as written),
        "labels": int64 [K] in [0, 20), "difficult": bool [K], "truncated": bool [K]}``.

    Raises:
        DataError: unreadable or malformed XML, a forbidden construct (DTD entities, external
            references), an unknown class name or a missing field. The message names the file.
    """
    path = Path(path)
    try:
        root = SafeET.parse(path).getroot()
    except DefusedXmlException as e:
        raise DataError(f"annotation {path}: refused unsafe XML ({type(e).__name__}: {e})") from e
    except ET.ParseError as e:
        raise DataError(f"annotation {path}: malformed XML: {e}") from e
    except OSError as e:
        raise DataError(f"cannot read annotation {path}: {e}") from e

    size = root.find("size")
    if size is None:
        raise DataError(f"annotation {path}: no <size>")
    width = int(_number(size, "width", path, "<size>"))
    height = int(_number(size, "height", path, "<size>"))
    filename = root.findtext("filename", default="").strip()

    boxes, labels, difficult, truncated = [], [], [], []
    for k, obj in enumerate(root.findall("object")):
        where = f"object {k + 1}"
        name = _text(obj, "name", path, where)
        if name not in _CLASS_INDEX:
            raise DataError(f"annotation {path}: {where} has unknown class {name!r}")
        box = obj.find("bndbox")
        if box is None:
            raise DataError(f"annotation {path}: {where} has no <bndbox>")
        boxes.append([_number(box, tag, path, where) for tag in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(_CLASS_INDEX[name])
        difficult.append(_flag(obj, "difficult", path, where))
        truncated.append(_flag(obj, "truncated", path, where))
    return {
        "filename": filename,
        "width": width,
        "height": height,
        "boxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.array(labels, dtype=np.int64),
        "difficult": np.array(difficult, dtype=bool),
        "truncated": np.array(truncated, dtype=bool),
    }


def read_classification_labels(root: str | os.PathLike, split: str) -> tuple[list[str], np.ndarray]:
    """Image-level labels from the 20 files ``ImageSets/Main/<class>_<split>.txt``.

    Args:
        root: VOC root.
        split: ``train``, ``val``, ``trainval`` or ``test``.

    Returns:
        ``(ids, labels)`` with labels int8 ``[N, 20]`` in {1 present, -1 absent, 0 difficult only}.

    Raises:
        DataError: a class file is missing or malformed, or its ids differ from the first class file's.
    """
    ids: list[str] | None = None
    columns = []
    for name in VOC_CLASSES:
        path = Path(root) / "ImageSets" / "Main" / f"{name}_{split}.txt"
        try:
            lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read classification labels {path}: {e}") from e
        file_ids, values = [], []
        for line_no, parts in enumerate(lines, start=1):
            if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                raise DataError(f"{path} line {line_no}: expected '<id> <1|-1|0>', got {' '.join(parts)!r}")
            file_ids.append(parts[0])
            values.append(int(parts[1]))
        if ids is None:
            ids = file_ids
        elif file_ids != ids:
            raise DataError(
                f"{path}: its image ids differ from those of {VOC_CLASSES[0]}_{split}.txt "
                "(every class file must list the same ids in the same order)"
            )
        columns.append(values)
    assert ids is not None
    return ids, np.array(columns, dtype=np.int8).T.reshape(len(ids), len(VOC_CLASSES))


def load_segmentation_mask(path: str | os.PathLike) -> Image.Image:
    """Read a ``SegmentationClass`` / ``SegmentationObject`` PNG as an ``L`` image of indices (255 kept).

    The masks are palette PNGs: the pixel values are the class indices, the palette only colours them.
    ``convert("L")`` would turn the colours into grey levels, so the indices are taken as they are.

    Raises:
        DataError: the file is missing, unreadable, or not a palette / grey-level PNG.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("P", "L"):
                raise DataError(f"segmentation mask {path}: mode {img.mode}, expected a palette PNG")
            return Image.fromarray(np.asarray(img, dtype=np.uint8))  # 2-D uint8 → mode L
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read segmentation mask {path}: {e}") from e


def _ids_array(ids: list[str]) -> np.ndarray:
    return np.array([i.encode() for i in ids]) if ids else np.array([], dtype="S1")


class VOCClassification(Dataset):
    """Images with their 20 image-level labels (1 present, -1 absent, 0 difficult only).

    Args:
        root: VOC root.
        split: ``train``, ``val``, ``trainval`` or ``test``.
        transform: applied to the PIL RGB image.

    Items: ``(image, labels)`` with labels an int8 tensor ``[20]``.
    """

    def __init__(
        self, root: str | os.PathLike, split: str, transform: Callable[[Image.Image], Any] | None = None
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        ids, labels = read_classification_labels(self.root, split)
        self._ids = _ids_array(ids)
        self.labels = labels  # [N, 20] int8

    def __len__(self) -> int:
        return len(self._ids)

    def image_id(self, i: int) -> str:
        return self._ids[i].decode()

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        image = load_image(self.root / "JPEGImages" / f"{self.image_id(i)}.jpg")
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.from_numpy(self.labels[i].copy())


class VOCDetection(Dataset):
    """Images with their boxes, read from ``Annotations/<id>.xml`` on access.

    Args:
        root: VOC root.
        split: ``Main`` split.
        transform: joint transform ``(image, target) -> (image, target)``; a detection transform must move
            the boxes with the pixels, so it sees both.

    Items: ``(image, target)`` with target ``{"boxes": float32 [K, 4] (VOC 1-based inclusive, as written),
    "labels": int64 [K], "difficult": bool [K], "truncated": bool [K], "image_id": str}``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: Callable[[Image.Image, dict[str, Any]], tuple[Any, dict[str, Any]]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self._ids = _ids_array(read_image_set(self.root, split, "Main"))

    def __len__(self) -> int:
        return len(self._ids)

    def image_id(self, i: int) -> str:
        return self._ids[i].decode()

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        image_id = self.image_id(i)
        ann = parse_annotation(self.root / "Annotations" / f"{image_id}.xml")
        image = load_image(self.root / "JPEGImages" / f"{image_id}.jpg")
        target = {key: torch.from_numpy(ann[key]) for key in ("boxes", "labels", "difficult", "truncated")}
        target["image_id"] = image_id
        if self.transform is not None:
            return self.transform(image, target)
        return image, target


class VOCSegmentation(Dataset):
    """Images with their ``SegmentationClass`` masks (0 background, 1..20 classes, 255 void).

    Args:
        root: VOC root.
        split: ``Segmentation`` split (``train``, ``val``, ``trainval``).
        transform: joint transform ``(image, mask) -> (image, mask)``; crops and flips must hit both.

    Items: ``(image, mask)``: PIL RGB image and PIL ``L`` mask of class indices with 255 kept.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: Callable[[Image.Image, Image.Image], tuple[Any, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self._ids = _ids_array(read_image_set(self.root, split, "Segmentation"))

    def __len__(self) -> int:
        return len(self._ids)

    def image_id(self, i: int) -> str:
        return self._ids[i].decode()

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        image_id = self.image_id(i)
        image = load_image(self.root / "JPEGImages" / f"{image_id}.jpg")
        mask_path = self.root / "SegmentationClass" / f"{image_id}.png"
        mask = load_segmentation_mask(mask_path)
        if mask.size != image.size:
            raise DataError(f"segmentation mask {mask_path}: size {mask.size}, its image's is {image.size}")
        if self.transform is not None:
            return self.transform(image, mask)
        return image, mask


def load_detection_ground_truth(root: str | os.PathLike, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Ground truth of a whole split for the AP code.

    Returns:
        image id → ``{"boxes": float32 [K, 4], "labels": int64 [K], "difficult": bool [K]}``, with every
        image of the split present, also those without objects (they still count: PAPER.md §5).
    """
    root = Path(root)
    gt = {}
    for image_id in read_image_set(root, split, "Main"):
        ann = parse_annotation(root / "Annotations" / f"{image_id}.xml")
        gt[image_id] = {key: ann[key] for key in ("boxes", "labels", "difficult")}
    return gt


def read_image_sizes(root: str | os.PathLike, image_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``{image_id: (width, height)}`` from the images' annotation XMLs (``<size>``)."""
    root = Path(root)
    sizes = {}
    for image_id in image_ids:
        ann = parse_annotation(root / "Annotations" / f"{image_id}.xml")
        sizes[image_id] = (int(ann["width"]), int(ann["height"]))
    return sizes
