"""Selective-search proposals computed by the suite, for a VOC folder that comes without them.

The paper's detector is Fast R-CNN on selective-search proposals (PAPER.md §3; Uijlings et al. 2013). For
real VOC2007 the suite reads Fast R-CNN's own files (:mod:`ssl_bench.data.proposals`). The generated
SynthVOC has none, so the ``mini`` det recipe used to train an RPN instead (Faster R-CNN), a second network
learnt from scratch inside a short CPU budget. Here the proposals are computed the way Fast R-CNN's were,
by selective search, with OpenCV's implementation (``cv2.ximgproc.segmentation``, opencv-contrib): its
``fast`` mode is the diversification Fast R-CNN's data used (R-CNN ``selective_search_boxes.m``: HSV and Lab
colour spaces, k = 50 and 100, the four similarity combinations). Written by hand here: no library in the
suite's stack ships selective search but OpenCV's contrib module, and this file only drives it.

NOTE: OpenCV's port, not the MATLAB code behind Fast R-CNN's ``.mat`` files; boxes may differ in detail.
R-CNN drops boxes narrower than 20 px on ~500 px photographs (``minBoxWidth``) and duplicate boxes; here
``min_side`` defaults to the same fraction of the image's longer side (4%), and duplicates go too.

The result is a proposals file in the suite's format (``data/detection.py``: image id → VOC 1-based
``x1, y1, x2, y2``), computed once per dataset and mode and cached (:func:`cached_selective_search`), so the
recipe value ``proposals: selective_search`` costs minutes on first use and nothing after.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ssl_bench.atomic import atomic_open, exclusive_lock
from ssl_bench.errors import DataError

Mode = Literal["fast", "quality"]
MODES: tuple[str, ...] = get_args(Mode)
SELECTIVE_SEARCH = "selective_search"  # the det recipe's `proposals` value that asks for this module
MIN_SIDE_FRACTION = 20 / 500  # R-CNN's minBoxWidth on a ~500 px VOC photograph
VERSION = 1  # bump when the boxes this module makes change (the cache key holds it)


def _cv2_segmentation():  # noqa: ANN202 - cv2 has no stubs
    """OpenCV's selective-search module, or a clear error naming the package that provides it."""
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - cv2 is a dependency
        raise DataError(f"selective search needs OpenCV (opencv-contrib-python-headless): {e}") from e
    if not hasattr(cv2, "ximgproc"):
        raise DataError(
            "selective search needs OpenCV's contrib modules (cv2.ximgproc): install "
            "opencv-contrib-python-headless instead of opencv-python(-headless); the two cannot be "
            "installed side by side"
        )
    cv2.setNumThreads(1)  # one image per process; the pool gives the parallelism
    return cv2.ximgproc.segmentation


def selective_search(image: np.ndarray, mode: Mode = "fast", min_side: float | None = None) -> np.ndarray:
    """Selective-search boxes of one image.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        mode: OpenCV's ``fast`` (Fast R-CNN's setting) or ``quality`` (more strategies, ~2× the boxes).
        min_side: drop boxes whose shorter side is below this many pixels (default: 4% of the image's
            longer side, R-CNN's ``minBoxWidth`` of 20 px on a 500 px photograph).

    Returns:
        float32 ``[K, 4]`` VOC 1-based inclusive ``x1, y1, x2, y2``, duplicates removed, sorted (the same
        array on every call; Fast R-CNN uses every proposal, so their rank is not needed).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"selective search needs an [H, W, 3] uint8 RGB image: {image.shape} {image.dtype}")
    if mode not in MODES:
        raise ValueError(f"selective-search mode {mode!r}: choose from {', '.join(MODES)}")
    ss = _cv2_segmentation().createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV wants BGR
    ss.switchToSelectiveSearchFast() if mode == "fast" else ss.switchToSelectiveSearchQuality()
    xywh = np.asarray(ss.process(), dtype=np.int64).reshape(-1, 4)  # 0-based x, y, width, height
    if min_side is None:
        min_side = MIN_SIDE_FRACTION * max(image.shape[:2])
    # OpenCV ranks the hierarchy's boxes with a random factor (as the MATLAB code does): the set is
    # reproducible, the order is not, so the boxes come sorted (np.unique), duplicates out.
    xywh = np.unique(xywh[np.minimum(xywh[:, 2], xywh[:, 3]) >= min_side], axis=0)
    x1, y1 = xywh[:, 0] + 1, xywh[:, 1] + 1  # VOC pixels count from 1 and are inclusive
    return np.stack([x1, y1, x1 + xywh[:, 2] - 1, y1 + xywh[:, 3] - 1], axis=1).astype(np.float32)


def _one(job: tuple[str, str, str]) -> tuple[str, np.ndarray]:
    from PIL import Image

    image_id, path, mode = job
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise DataError(f"{path}: cannot read the image for selective search: {e}") from e
    return image_id, selective_search(rgb, mode)  # type: ignore[arg-type]


def compute_selective_search(
    voc_root: str | os.PathLike,
    image_ids: Sequence[str],
    out: str | os.PathLike,
    mode: Mode = "fast",
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Selective search on ``JPEGImages/<id>.jpg`` of every id, written atomically as a proposals ``.npz``.

    Returns:
        ``{"images": N, "boxes": total}``.

    Raises:
        DataError: an image that is missing or unreadable (named), or no image at all.
    """
    root, out = Path(voc_root), Path(out)
    if out.suffix != ".npz":
        raise DataError(f"{out}: the proposals file must end in .npz")
    if not image_ids:
        raise DataError(f"{root}: no image to compute selective-search proposals for")
    missing = [i for i in image_ids if not (root / "JPEGImages" / f"{i}.jpg").is_file()]
    if missing:
        raise DataError(f"{root / 'JPEGImages'}: {len(missing)} image(s) missing, e.g. {missing[:5]}")
    _cv2_segmentation()  # fail before starting processes
    jobs = [(i, str(root / "JPEGImages" / f"{i}.jpg"), mode) for i in image_ids]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    from tqdm import tqdm

    boxes: dict[str, np.ndarray] = {}
    with ProcessPoolExecutor(workers) as pool:
        bar = tqdm(pool.map(_one, jobs, chunksize=8), total=len(jobs), unit="img", disable=not progress,
                   desc=f"selective search ({mode}, {workers} processes)")  # fmt: skip
        for image_id, b in bar:
            boxes[image_id] = b
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "wb") as f:
        np.savez(f, **boxes)
    return {"images": len(boxes), "boxes": int(sum(len(b) for b in boxes.values()))}


def cache_file(voc_root: str | os.PathLike, image_ids: Iterable[str], mode: Mode, cache_dir: Path) -> Path:
    """Where the proposals of these images are cached: keyed on the folder, the ids with each image's size
    and modification time, the mode and :data:`VERSION`, so a changed dataset gets new proposals."""
    root = Path(voc_root).resolve()
    h = hashlib.sha256(json.dumps([str(root), mode, VERSION]).encode())
    for i in sorted(image_ids):
        st = (root / "JPEGImages" / f"{i}.jpg").stat()
        h.update(f"{i}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return cache_dir / "proposals" / f"selective_search-{mode}-{h.hexdigest()[:16]}.npz"


def cached_selective_search(
    voc_root: str | os.PathLike, image_ids: Sequence[str], mode: Mode = "fast", progress: bool = True
) -> Path:
    """The proposals file of these images, computed on first use (:func:`compute_selective_search`) under
    ``$SSL_BENCH_CACHE/proposals/`` and reused after."""
    from ssl_bench.data.synthvoc.cache import default_cache_dir

    path = cache_file(voc_root, image_ids, mode, default_cache_dir())
    with exclusive_lock(path.with_name(f".{path.name}.lock")):  # a second process waits, then finds it
        if not path.is_file():
            print(f"ssl_bench: computing selective-search proposals ({mode}) for {len(image_ids)} images "
                  f"of {voc_root} once, cached at {path}")  # fmt: skip
            compute_selective_search(voc_root, image_ids, path, mode, progress=progress)
    return path
