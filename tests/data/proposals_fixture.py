"""Writes selective-search ``.mat`` files in Fast R-CNN's distributed layout, for the converter's tests.

The layout (``ssl_bench/data/proposals.py`` docstring; rbgirshick/fast-rcnn ``lib/datasets/pascal_voc.py``
``_load_selective_search_roidb``): ``boxes`` a cell array of ``(K, 4)`` 1-based ``[y1 x1 y2 x2]`` arrays,
``images`` a cell array of image names, same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from ssl_bench.data.voc import load_detection_ground_truth, read_image_set


def write_selective_search_mat(path: Path, boxes_xyxy: Mapping[str, np.ndarray]) -> Path:
    """Write ``name → (K, 4) VOC 1-based x1, y1, x2, y2`` as Fast R-CNN's ``.mat`` (y-first, 1-based)."""
    names = list(boxes_xyxy)
    boxes = np.empty((len(names), 1), dtype=object)  # an N×1 cell array, as MATLAB writes a column
    images = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        xyxy = np.asarray(boxes_xyxy[name], dtype=np.float64).reshape(-1, 4)
        boxes[i, 0] = xyxy[:, (1, 0, 3, 2)]  # y1, x1, y2, x2
        images[i, 0] = name
    scipy.io.savemat(path, {"boxes": boxes, "images": images})
    return path


def voc_selective_search_mats(
    voc_root: Path, out_dir: Path, per_image: int = 20, seed: int = 0
) -> list[Path]:
    """``voc_2007_trainval.mat`` and ``voc_2007_test.mat`` for a VOC year folder: around each ground-truth box
    a jittered copy, plus random boxes inside the image (a stand-in for selective search)."""
    rng = np.random.default_rng(seed)
    paths = []
    for split in ("trainval", "test"):
        gt = load_detection_ground_truth(voc_root, split)
        boxes = {}
        for image_id in read_image_set(voc_root, split):
            with Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg") as im:
                width, height = im.size
            truth = gt[image_id]["boxes"].astype(np.float64)
            jitter = np.clip(np.round(truth + rng.normal(0, 2, truth.shape)), 1, [width, height] * 2)
            x1 = rng.integers(1, width // 2, per_image)
            y1 = rng.integers(1, height // 2, per_image)
            x2 = np.minimum(x1 + rng.integers(8, width // 2, per_image), width)
            y2 = np.minimum(y1 + rng.integers(8, height // 2, per_image), height)
            random = np.stack([x1, y1, x2, y2], axis=1).astype(np.float64)
            both = np.concatenate([jitter, random])
            both[:, 2:] = np.maximum(both[:, 2:], both[:, :2])
            boxes[image_id] = both
        out_dir.mkdir(parents=True, exist_ok=True)
        paths.append(write_selective_search_mat(out_dir / f"voc_2007_{split}.mat", boxes))
    return paths
