"""Selective-search proposals as distributed for Fast R-CNN → the suite's proposals file.

The paper's detection numbers are Fast R-CNN on selective-search proposals (PAPER.md §3). Fast R-CNN's
``data/scripts/fetch_selective_search_data.sh`` (rbgirshick/fast-rcnn) downloads
``selective_search_data/voc_2007_{trainval,test}.mat``: MATLAB v5 files with

* ``boxes``: a cell array, one ``(K, 4)`` array per image, **1-based** ``[y1 x1 y2 x2]`` (row first);
* ``images``: a cell array of the image names (``'000005'``), in the same order.

Fast R-CNN reads them in ``lib/datasets/pascal_voc.py::_load_selective_search_roidb``:
``sio.loadmat(filename)['boxes'].ravel()``, then ``raw_data[i][:, (1, 0, 3, 2)] - 1`` — columns reordered to
``x1 y1 x2 y2`` and made 0-based — relying on the order matching the image-set file (it never reads
``images``). Here the names in ``images`` key the boxes instead, so the order does not matter, and the boxes
stay 1-based: the suite's proposals file holds VOC 1-based ``x1, y1, x2, y2`` (``data/detection.py``).

A ``.mat`` is untrusted input: ``scipy.io.loadmat`` parses it as data (no code runs), and every problem —
not a MATLAB v5 file, a missing field, a box that is not ``(K, 4)``, not finite, not 1-based, or inverted, a
name listed twice — is a :class:`DataError` that names the file and the image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ssl_bench.atomic import atomic_open
from ssl_bench.data.detection import check_proposals_cover
from ssl_bench.errors import DataError

# Fast R-CNN's .mat columns (y1, x1, y2, x2) → the suite's (x1, y1, x2, y2): pascal_voc.py's (1, 0, 3, 2).
_YXYX_TO_XYXY = (1, 0, 3, 2)


def _names(images: np.ndarray, path: Path) -> list[str]:
    """The ``images`` field as strings: a cell array of char arrays, or a char matrix (one name a row)."""
    if images.dtype.kind in "US":
        return [str(n).strip() for n in images.ravel()]
    names = []
    for i, cell in enumerate(images.ravel()):
        flat = np.asarray(cell).ravel()
        if flat.size != 1 or flat.dtype.kind not in "US":
            raise DataError(f"{path}: images{{{i + 1}}} is not a name (a string)")
        names.append(str(flat[0]).strip())
    return names


def read_selective_search_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one Fast R-CNN selective-search ``.mat`` (format in the module docstring).

    Returns:
        image name → float32 ``(K, 4)`` boxes ``x1, y1, x2, y2`` in VOC 1-based pixel coordinates.

    Raises:
        DataError: the file is missing, not a MATLAB v5 file, or holds something other than the format.
    """
    import scipy.io  # only the converter needs it

    path = Path(path)
    if not path.is_file():
        raise DataError(f"selective-search file not found: {path}")
    try:
        raw = scipy.io.loadmat(str(path), variable_names=("boxes", "images"))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5): scipy reads v4–v7.2 only
        raise DataError(f"{path}: a MATLAB v7.3 file; save it as v7 (-v7) or older: {e}") from e
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds on a corrupt or foreign file
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from e
    missing = [k for k in ("boxes", "images") if k not in raw]
    if missing:
        raise DataError(
            f"{path}: no {' or '.join(missing)} field; expected Fast R-CNN's selective-search layout "
            "(boxes: cell of (K,4) [y1 x1 y2 x2] arrays, images: cell of names)"
        )
    names = _names(raw["images"], path)
    cells = raw["boxes"].ravel()
    if len(cells) != len(names):
        raise DataError(f"{path}: {len(cells)} box arrays but {len(names)} image names")
    out: dict[str, np.ndarray] = {}
    for name, cell in zip(names, cells, strict=True):
        if name in out:
            raise DataError(f"{path}: image {name!r} is listed twice")
        try:
            yxyx = np.asarray(cell, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}: the boxes of image {name!r} are not numbers") from None
        yxyx = yxyx.reshape(0, 4) if yxyx.size == 0 else yxyx
        if yxyx.ndim != 2 or yxyx.shape[1] != 4:
            raise DataError(f"{path}: the boxes of image {name!r} have shape {yxyx.shape}, not (K, 4)")
        if not np.isfinite(yxyx).all():
            raise DataError(f"{path}: the boxes of image {name!r} are not all finite")
        boxes = yxyx[:, _YXYX_TO_XYXY]  # [K, 4] x1, y1, x2, y2, still 1-based
        if len(boxes) and (boxes.min() < 1 or (boxes[:, 2:] < boxes[:, :2]).any()):
            raise DataError(f"{path}: image {name!r} has a box that is not 1-based [y1 x1 y2 x2] with "
                            "y1 <= y2 and x1 <= x2 (is the file 0-based, or in x-first order?)")  # fmt: skip
        out[name] = boxes.astype(np.float32)
    return out


def convert_selective_search(
    mat_files: Iterable[str | os.PathLike], out: str | os.PathLike, image_ids: Iterable[str] | None = None
) -> dict[str, int]:
    """Merge Fast R-CNN selective-search ``.mat`` files into one proposals ``.npz`` (written atomically).

    Args:
        mat_files: e.g. ``voc_2007_trainval.mat`` and ``voc_2007_test.mat``.
        out: the ``.npz`` to write (``--set proposals=OUT`` in the ``det`` recipe).
        image_ids: when given (a VOC year's train and test ids), every one must have proposals.

    Returns:
        ``{"images": N, "boxes": total}``.

    Raises:
        DataError: a bad file, an image in two files, or ``image_ids`` not covered.
    """
    out = Path(out)
    if out.suffix != ".npz":
        raise DataError(f"--out {out}: the proposals file must end in .npz")
    mat_files = list(mat_files)
    merged: dict[str, np.ndarray] = {}
    for mat in mat_files:
        for name, boxes in read_selective_search_mat(mat).items():
            if name in merged:
                raise DataError(f"{mat}: image {name!r} also has proposals in an earlier file")
            merged[name] = boxes
    if not merged:
        raise DataError("the selective-search files list no image")
    if image_ids is not None:
        check_proposals_cover(merged, image_ids, ", ".join(map(str, mat_files)))
    with atomic_open(out, "wb") as f:
        np.savez(f, **merged)
    return {"images": len(merged), "boxes": int(sum(len(b) for b in merged.values()))}
