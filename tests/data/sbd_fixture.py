"""A tiny SBD release in its real formats for tests: ``img/*.jpg``, ``cls/*.mat`` (MATLAB), the two lists.

``write_sbd`` writes what ``benchmark_RELEASE/dataset`` of the SBD release holds (Hariharan et al. 2011):
``img/<id>.jpg``, ``train.txt`` / ``val.txt`` and each ``cls/<id>.mat`` a MATLAB 5 file with the 1×1 struct
``GTcls`` and the release's three fields, ``Segmentation`` (uint8 class map, 0 background, 1…20),
``Boundaries`` (20×1 cell of sparse logical maps, one a class) and ``CategoriesPresent`` (the classes present,
a uint8 column), so a reader written for the release, like FCN's
``loadmat(...)['GTcls'][0]['Segmentation'][0]``, reads it as it reads the real files.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

NUM_CLASSES = 20


def fixture_mask(image_id: str, size: tuple[int, int] = (40, 60)) -> np.ndarray:
    """The class map ``write_sbd`` stores for ``image_id``: uint8 [H, W], one class rectangle on background.

    The class (1…20) and the rectangle follow from the id alone, so a test can check which file a sample
    was read from.
    """
    h, w = size
    code = zlib.crc32(image_id.encode())
    mask = np.zeros((h, w), dtype=np.uint8)
    top, left = code % (h // 2), (code // 7) % (w // 2)
    mask[top : top + h // 3, left : left + w // 3] = 1 + code % NUM_CLASSES
    return mask


def write_sbd(
    root: str | Path,
    splits: Mapping[str, Sequence[str]],
    size: tuple[int, int] = (40, 60),
) -> Path:
    """Write a tiny SBD ``dataset`` folder: every listed id's JPEG and ``cls`` .mat, and the lists.

    Args:
        root: the ``dataset`` folder to write (created).
        splits: ``{"train": [ids…], "val": [ids…]}``; an id may be in several lists (written once).
        size: (H, W) of every image and mask.

    Returns:
        ``root``.
    """
    from scipy.io import savemat
    from scipy.sparse import csc_matrix

    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "cls").mkdir(exist_ok=True)
    for image_id in dict.fromkeys(i for ids in splits.values() for i in ids):
        mask = fixture_mask(image_id, size)
        image = np.stack([mask * 12, np.full(size, 90, np.uint8), 255 - mask * 12], axis=-1)
        Image.fromarray(image.astype(np.uint8)).save(root / "img" / f"{image_id}.jpg", quality=95)
        boundaries = np.empty((NUM_CLASSES, 1), dtype=object)
        for c in range(1, NUM_CLASSES + 1):
            region = mask == c
            edge = region & ~np.pad(region, 1)[2:, 1:-1] | region & ~np.pad(region, 1)[1:-1, 2:]
            boundaries[c - 1, 0] = csc_matrix(edge)
        present = np.unique(mask[mask > 0]).astype(np.uint8).reshape(-1, 1)
        gtcls = {"Segmentation": mask, "Boundaries": boundaries, "CategoriesPresent": present}
        savemat(root / "cls" / f"{image_id}.mat", {"GTcls": gtcls}, do_compression=True)
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root
