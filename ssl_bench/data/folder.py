"""Any folder of images as a pretraining set, with a listing whose memory stays flat.

The listing is built once with ``os.scandir`` (no image is opened) and kept as one numpy array of
fixed-width bytes. A Python list of ``str`` would be touched by every DataLoader worker (reference counts
live inside each object), so after ``fork`` each worker would slowly copy the whole listing page by page:
for ImageNet's 1.28M paths that is hundreds of MB per worker. A numpy array is a single object.

Labels, when present, come from one of two places:
- ``root/labels.csv`` (the SynthVOC pool format): header ``image,<class names…>``, one row per image with
  its path relative to ``root`` and a 0/1 multi-hot vector → float32 ``(N, C)``;
- class subfolders (ImageNet ``train/<wnid>/*.JPEG``) → int64 class indices ``(N,)``.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from ssl_bench.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp",
)  # fmt: skip

LABELS_CSV = "labels.csv"


def load_image(path: str | os.PathLike, min_short_side: int | None = None) -> Image.Image:
    """Read an image fully into memory as RGB.

    Decoding happens here (``img.load()``) rather than lazily in a later transform, so a corrupt or
    truncated file fails at this line with its name instead of deep inside a transform.

    With ``min_short_side``, a JPEG whose shorter side is at least twice that is decoded at 1/2, 1/4 or 1/8
    of its size by libjpeg's DCT-domain scaling (PIL's ``Image.draft``), the largest reduction that keeps the
    shorter side >= ``min_short_side``: a reader that resizes the image down to that side anyway decodes
    4-64x fewer pixels. The scaled decode averages each 2x2 (4x4, 8x8) block, a box filter ahead of the
    reader's own antialiased resize; the result stays within a few 8-bit levels of full decoding + the same
    resize (tests/data/test_decode_draft.py). Other formats, and JPEGs not that large, decode in full.

    Args:
        path: image file.
        min_short_side: the smallest shorter side the caller needs; None: full size.

    Returns:
        A decoded RGB image.

    Raises:
        DataError: the file is missing, not an image, truncated or otherwise unreadable.
    """
    return _decode(path, min_short_side)[0]


def _decode(path: str | os.PathLike, min_short_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """``load_image``, and the stored (full) size ``(W, H)`` of the image."""
    try:
        with Image.open(path) as img:
            size = img.size
            if min_short_side is not None and img.format == "JPEG":
                scale = min_short_side / min(size)
                img.draft("RGB", (math.ceil(size[0] * scale), math.ceil(size[1] * scale)))  # this or larger
            img.load()
            return (img if img.mode == "RGB" else img.convert("RGB")), size  # convert would copy an RGB image
    # PIL signals bad files through several unrelated exception types.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def load_image_uint8(path: str | os.PathLike) -> torch.Tensor:
    """Read an image fully into memory as a uint8 RGB tensor ``[3, H, W]`` (the pretraining pipeline's input).

    Decoded by PIL, as ``load_image`` (torchvision's own decoders are deprecated since 0.29 in favour of
    TorchCodec, which the suite does not depend on).

    Raises:
        DataError: the file is missing, not an image, truncated or otherwise unreadable.
    """
    return load_scaled_uint8(path)[0]


def load_scaled_uint8(
    path: str | os.PathLike, min_short_side: int | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``load_image_uint8``, decoding a large JPEG scaled down to ``min_short_side`` (as ``load_image``).

    Returns:
        The pixels ``[3, h, w]``, and the image's stored size ``(W, H)`` (larger than ``(w, h)`` after a
        scaled decode): a reader places its crop by the stored size, so a scaled decode cuts the same region.
    """
    image, size = _decode(path, min_short_side)
    array = np.asarray(image, dtype=np.uint8)  # [h, w, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1), size


def _list_images(root: Path) -> list[str]:
    """Relative paths (``/``-separated) of all image files under ``root``, sorted."""
    found: list[str] = []
    seen_dirs: set[tuple[int, int]] = set()
    stack = [""]
    while stack:
        rel = stack.pop()
        folder = root / rel if rel else root
        st = folder.stat()
        # Symlinked folders are followed (ImageNet setups often use them), but a cycle is walked once.
        if (st.st_dev, st.st_ino) in seen_dirs:
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as it:
            for entry in it:
                # NOTE: hidden entries (.ipynb_checkpoints, .DS_Store, temp files) are skipped.
                if entry.name.startswith("."):
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir():
                    stack.append(child)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                    found.append(child)
    found.sort()
    return found


def _read_labels_csv(csv_path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Parse ``labels.csv``: class names from the header, and image path → multi-hot row."""
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {csv_path}: {e}") from e
    if not rows or len(rows[0]) < 2 or rows[0][0] != "image":
        raise DataError(f"{csv_path}: the header must be 'image,<class names...>'")
    class_names = tuple(rows[0][1:])
    table: dict[str, np.ndarray] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(class_names) + 1:
            raise DataError(
                f"{csv_path} line {line_no}: {len(row) - 1} label values, expected {len(class_names)}"
            )
        try:
            values = np.array([float(v) for v in row[1:]], dtype=np.float32)
        except ValueError as e:
            raise DataError(f"{csv_path} line {line_no}: {e}") from e
        if row[0] in table:
            raise DataError(f"{csv_path} line {line_no}: image {row[0]!r} is listed twice")
        table[row[0]] = values
    return class_names, table


class ImageFolderIndex:
    """Sorted listing of the images under a folder, with optional image-level labels.

    Args:
        root: folder to list recursively.
        labels: ``"auto"`` (``labels.csv`` if present, else class subfolders if the images all live in
            two or more top-level subfolders, else none) or ``"none"``.

    Raises:
        DataError: the folder is missing or holds no image, or ``labels.csv`` does not match the files.
    """

    def __init__(self, root: str | os.PathLike, labels: str = "auto") -> None:
        if labels not in ("auto", "none"):
            raise ValueError(f"labels must be 'auto' or 'none', got {labels!r}")
        self.root = Path(root)
        if self.root.is_file():
            raise DataError(f"image folder {self.root} is a file, not a folder of images")
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} does not exist")
        rel_paths = _list_images(self.root)
        if not rel_paths:
            raise DataError(f"image folder {self.root} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        # paths: [N] fixed-width bytes, relative to root (see the module docstring for why not a list).
        self._paths = np.array([os.fsencode(p) for p in rel_paths])
        self._class_names: tuple[str, ...] = ()
        self._labels: np.ndarray | None = None  # [N, C] float32 multi-hot, or [N] int64
        if labels == "auto":
            self._find_labels(rel_paths)

    def _find_labels(self, rel_paths: list[str]) -> None:
        csv_path = self.root / LABELS_CSV
        if csv_path.is_file():
            class_names, table = _read_labels_csv(csv_path)
            listed = set(rel_paths)
            for name in table:
                if name not in listed:
                    raise DataError(f"{csv_path} names {name!r}, but {self.root / name} is not an image file")
            missing = [p for p in rel_paths if p not in table]
            if missing:
                raise DataError(
                    f"{csv_path} has no row for {len(missing)} image(s), e.g. {self.root / missing[0]}"
                )
            self._class_names = class_names
            self._labels = np.stack([table[p] for p in rel_paths])
            return
        tops = [p.split("/", 1)[0] if "/" in p else None for p in rel_paths]
        folders = set(tops)
        if None not in folders and len(folders) >= 2:
            self._class_names = tuple(sorted(folders))  # type: ignore[arg-type]
            lookup = {name: i for i, name in enumerate(self._class_names)}
            self._labels = np.array([lookup[t] for t in tops], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._paths)

    def listing_hash(self) -> str:
        """SHA-256 of the sorted relative paths: equal for the same files under another root."""
        return hashlib.sha256(b"\n".join(self._paths.tolist())).hexdigest()

    def path(self, i: int) -> Path:
        """Path of image ``i``: ``root`` joined with its stored relative path."""
        return self.root / os.fsdecode(self._paths[i])

    def label(self, i: int) -> np.ndarray | int | None:
        """Label of image ``i``: float32 multi-hot ``(C,)``, a class index, or None when unlabelled."""
        if self._labels is None:
            return None
        if self._labels.ndim == 1:
            return int(self._labels[i])
        return self._labels[i]

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 when the folder is unlabelled."""
        return len(self._class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in label order; empty when the folder is unlabelled."""
        return self._class_names

    @property
    def multi_label(self) -> bool:
        """True for multi-hot labels (``labels.csv``), False for class indices or no labels."""
        return self._labels is not None and self._labels.ndim == 2


class ImageFolderDataset(Dataset):
    """Map-style dataset over an :class:`ImageFolderIndex`.

    Items are dicts ``{"image": tensor, "label": tensor, "index": int}``; ``"label"`` is a float32 ``(C,)``
    multi-hot vector or an int64 scalar class index, and is left out when the folder is unlabelled (so that
    the default collate function still works).

    Args:
        index: the listing.
        transform: PIL RGB image → tensor. Default: ``to_tensor`` (float in [0, 1]).
        skip_bad: if True, an unreadable image makes ``__getitem__`` return None (with a warning naming the
            file) instead of raising. The DataLoader must then use :func:`collate_skip_none`, which drops
            the Nones and counts them in ``batch["skipped"]``.
    """

    def __init__(
        self,
        index: ImageFolderIndex,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        skip_bad: bool = False,
    ) -> None:
        self.index = index
        self.transform = transform
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        try:
            img = load_image(self.index.path(i))
        except DataError as e:
            if not self.skip_bad:
                raise
            warnings.warn(f"skipping: {e}", stacklevel=2)
            return None
        if self.transform is None:
            from torchvision.transforms.functional import to_tensor

            image = to_tensor(img)
        else:
            image = self.transform(img)
        item: dict[str, Any] = {"image": image, "index": i}
        label = self.index.label(i)
        if isinstance(label, np.ndarray):
            item["label"] = torch.from_numpy(label.copy())
        elif label is not None:
            item["label"] = torch.tensor(label, dtype=torch.int64)
        return item


def collate_skip_none(batch: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Collate function for ``skip_bad=True``: drop None items and count them.

    Returns:
        The default-collated dict of the good items plus ``"skipped"`` (int). When every item was bad the
        dict holds only ``"skipped"``; the training loop should skip such a batch.
    """
    good = [item for item in batch if item is not None]
    skipped = len(batch) - len(good)
    if not good:
        return {"skipped": skipped}
    out = default_collate(good)
    out["skipped"] = skipped
    return out
