"""VOC detection samples for torchvision detectors: box conventions, proposals files, the joint transform.

Coordinates. VOC boxes are 1-based and inclusive: ``x1..x2`` are the first and last pixel columns of the
object, counted from 1, and the devkit measures widths as ``x2 - x1 + 1``. torchvision works in 0-based
continuous coordinates, where pixel ``i`` (0-based) spans ``[i, i + 1)``. The same box is therefore
``[x1 - 1, x2]`` there: only the top-left corner moves (:func:`voc_to_torchvision`), and
:func:`torchvision_to_voc` moves it back, so that the ground truth and the detections handed to
:func:`~ssl_bench.metrics.voc_detection_ap` are both in the VOC convention. Widths, areas and IoUs agree
exactly between the two conventions (``x2 - (x1 - 1) == x2 - x1 + 1``). Horizontal flips in continuous
coordinates are ``x → W - x``, also exact.

Proposals file (``det`` recipe: ``--set proposals=FILE``): a ``.npz`` (``numpy.savez(FILE, **{image_id:
boxes})``) or a ``.pt`` (``torch.save({image_id: tensor}, FILE)``) mapping every train and test image id to a
float ``(K, 4)`` array of ``x1, y1, x2, y2`` boxes in VOC 1-based pixel coordinates of the original image.
Fast R-CNN's ``selective_search_data/voc_2007_*.mat`` store ``y1, x1, y2, x2`` (1-based): ``bench data
proposals`` converts them into this format (:mod:`ssl_bench.data.proposals`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ssl_bench.data.transforms import to_tensor
from ssl_bench.data.voc import VOCDetection
from ssl_bench.errors import DataError, RecipeError

# VOC 1-based inclusive → torchvision 0-based continuous: only the top-left corner moves by one pixel.
_VOC_TO_TORCHVISION = (-1.0, -1.0, 0.0, 0.0)


def voc_to_torchvision(boxes: torch.Tensor) -> torch.Tensor:
    """VOC boxes (1-based, inclusive pixel indices) → torchvision's 0-based continuous coordinates.

    Args:
        boxes: ``[..., 4]`` ``x1, y1, x2, y2`` as written in VOC annotations.

    Returns:
        ``[..., 4]`` ``x1 - 1, y1 - 1, x2, y2`` (a new tensor): the box covers ``[x1 - 1, x2]``.
    """
    return boxes + boxes.new_tensor(_VOC_TO_TORCHVISION)


def torchvision_to_voc(boxes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`voc_to_torchvision` (exact for VOC's integer coordinates)."""
    return boxes - boxes.new_tensor(_VOC_TO_TORCHVISION)


def load_proposals(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a proposals file (format in the module docstring).

    Returns:
        image id → float32 ``(K, 4)`` boxes ``x1, y1, x2, y2`` in VOC 1-based pixel coordinates.

    Raises:
        DataError: unreadable file, or an entry that is not a finite ``(K, 4)`` array.
        RecipeError: a suffix other than ``.npz`` / ``.pt``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"proposals file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path) as f:
                raw: Mapping[str, Any] = {k: f[k] for k in f.files}
        elif path.suffix == ".pt":
            raw = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise RecipeError(f"proposals file {path}: expected a .npz or .pt file")
    except (OSError, ValueError, RuntimeError) as e:
        raise DataError(f"cannot read proposals file {path}: {e}") from e
    if not isinstance(raw, Mapping):
        raise DataError(f"proposals file {path} holds a {type(raw).__name__}, not a mapping image id → boxes")
    proposals = {}
    for image_id, value in raw.items():
        boxes = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
        boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
            raise DataError(f"proposals file {path}: entry {image_id!r} is not a finite (K, 4) array")
        proposals[str(image_id)] = boxes
    return proposals


def check_proposals_cover(
    proposals: Mapping[str, np.ndarray], image_ids: Iterable[str], path: str | os.PathLike
) -> None:
    """Raise :class:`DataError` naming up to 5 of ``image_ids`` that the proposals file ``path`` lacks."""
    lacking = [i for i in image_ids if i not in proposals]
    if lacking:
        raise DataError(f"proposals file {path} lacks {len(lacking)} image(s), e.g. {lacking[:5]}")


class DetectionSample:
    """Joint transform for :class:`~ssl_bench.data.voc.VOCDetection`: PIL image and VOC target → model input.

    Returns ``(image [3, H, W] in [0, 1], target)`` with target ``{"boxes": [K, 4] torchvision coordinates,
    "labels": [K] in 1..20 (0 is background), "image_id": str}`` plus ``"proposals": [P, 4]`` (torchvision
    coordinates) when a proposals mapping is given. Difficult boxes are dropped (py-faster-rcnn
    ``use_diff=False``); the detector normalises the image itself.
    """

    def __init__(self, flip: bool, proposals: Mapping[str, np.ndarray] | None = None) -> None:
        self.flip = flip
        self.proposals = proposals

    def __call__(self, image: Image.Image, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        x = to_tensor(image)  # [3, H, W]
        keep = ~target["difficult"]
        out: dict[str, Any] = {
            "boxes": voc_to_torchvision(target["boxes"][keep].float()),  # [K, 4]
            "labels": target["labels"][keep] + 1,  # [K]
            "image_id": target["image_id"],
        }
        if self.proposals is not None:
            out["proposals"] = voc_to_torchvision(torch.from_numpy(self.proposals[target["image_id"]]))
        if self.flip and torch.rand(()) < 0.5:  # py-faster-rcnn TRAIN.USE_FLIPPED
            x, width = x.flip(-1), x.shape[-1]
            for key in ("boxes", "proposals"):
                if key in out:
                    b = out[key]
                    out[key] = torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1)
        return x, out


def voc_detection_set(
    root: str | os.PathLike, split: str, flip: bool, proposals: Mapping[str, np.ndarray] | None
) -> tuple[VOCDetection, list[str]]:
    """VOC ``Main/<split>`` served as :class:`DetectionSample` items, and its image ids in order."""
    dataset = VOCDetection(root, split, DetectionSample(flip, proposals))
    return dataset, [dataset.image_id(i) for i in range(len(dataset))]


def collate_detection_samples(batch: list) -> tuple:
    """``[(image, target), …]`` → ``(images, targets)`` tuples: images differ in size, so none is stacked."""
    return tuple(zip(*batch, strict=True))


def detection_batch_to(
    batch: tuple[Sequence[torch.Tensor], Sequence[dict[str, Any]]], device: torch.device, with_proposals: bool
) -> tuple[list[torch.Tensor], list[dict[str, Any]], list[torch.Tensor] | None]:
    """Move a collated batch of :class:`DetectionSample` items to ``device``.

    Returns:
        The images, the targets (their tensors moved) and each image's proposals (``None`` unless
        ``with_proposals``).
    """
    images = [im.to(device, non_blocking=True) for im in batch[0]]
    targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in batch[1]]
    proposals = [t["proposals"] for t in targets] if with_proposals else None
    return images, targets, proposals


def detections_to_voc(
    outputs: Sequence[Mapping[str, torch.Tensor]], image_ids: Sequence[str]
) -> dict[str, dict]:
    """torchvision detections (continuous coordinates, labels 1..20) → the VOC AP code's input.

    The inverse of :class:`DetectionSample`'s conversion of the targets.

    Returns:
        image id → ``{"boxes": float64 [D, 4] VOC 1-based, "labels": int64 [D] in 0..19, "scores": [D]}``.
    """
    detections = {}
    for out, image_id in zip(outputs, image_ids, strict=True):
        detections[image_id] = {
            "boxes": torchvision_to_voc(out["boxes"].detach().double().cpu()).numpy(),
            "labels": out["labels"].cpu().numpy().astype(np.int64) - 1,
            "scores": out["scores"].detach().double().cpu().numpy(),
        }
    return detections
