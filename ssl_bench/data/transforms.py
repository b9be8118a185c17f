"""Image normalisation shared by pretraining and every evaluator (one convention for the whole suite)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# NOTE: the paper's Caffe/Torch code used BGR mean subtraction (CaffeNet) or [-1, 1] scaling (Lua code).
# The suite uses RGB with ImageNet mean/std everywhere so that torchvision-format weights (the
# "ImageNet labels" row) and from-scratch encoders see the same input; the mean pixel maps to 0.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB → float tensor [3, H, W] in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def normalize_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 [.., 3, H, W] → normalised float32, keeping the memory format (one pass on the batch).

    The pretraining pipeline ships uint8 pixels from its workers (4× less to move between processes, and
    no per-image float work there) and normalises whole batches here, on the training device.
    """
    mean = torch.tensor(MEAN, device=x.device) * 255.0
    inv_std = 1.0 / (torch.tensor(STD, device=x.device) * 255.0)
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        # Broadcasting [3, 1, 1] over NHWC memory makes the innermost loop 3 long (unvectorised). Seen as
        # rows of W·3 interleaved pixels against a W·3 pattern it runs ~5× faster, with identical values.
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n * h, w * c)  # a view: one image row per row
        out = rows.float().sub_(mean.repeat(w)).mul_(inv_std.repeat(w))  # in place: no extra 10 MB
        return out.view(n, h, w, c).permute(0, 3, 1, 2)  # [N, 3, H, W], channels_last
    return x.float().sub_(mean.view(3, 1, 1)).mul_(inv_std.view(3, 1, 1))


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[.., 3, H, W] in [0, 1] → normalised."""
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalize``, clamped to [0, 1] for display."""
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0.0, 1.0)


def rgb_to_normalized(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """A pixel value in [0, 1] per channel → normalised units (e.g. the hole fill value)."""
    return tuple((c - m) / s for c, m, s in zip(rgb, MEAN, STD, strict=True))  # type: ignore[return-value]
