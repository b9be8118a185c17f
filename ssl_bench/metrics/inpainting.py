"""Inpainting errors on the hole: the one definition of hole L1, L2 and PSNR in the suite.

Pathak et al. 2016, Table 1 reports "mean L1 loss, mean L2 loss, PSNR" on the centre hole. Here, on images
in [0, 1] (8-bit levels in the evaluator), over the hole pixels of every channel:

- ``l1_pct`` = 100 · mean over images of the image's mean absolute error;
- ``l2_pct`` = 100 · mean over images of the image's mean squared error (not its root);
- ``psnr_db`` = mean over images of 10 · log10(1 / MSE_i), peak value 1, MSE floored at ``MSE_FLOOR``.

Per-image PSNR then averaged: Table 1's numbers only fit that reading (see ``evaluators/inpainting.py``).
The training sample grids, the ``inpaint`` evaluator, the figures and ``bench show`` all use these functions.

NOTE: the paper does not say whether its L1/L2 use [0, 1] or [-1, 1] pixel values (unverified); [0, 1] here.
"""

from __future__ import annotations

import torch

# An exact reconstruction has MSE 0 and infinite PSNR; the floor caps one image's PSNR at 100 dB.
MSE_FLOOR = 1e-10


def hole_errors(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean absolute and mean squared error over the hole pixels (all channels).

    Args:
        pred, target: [N, 3, H, W] in [0, 1].
        mask: bool [N, 1, H, W] (or [N, H, W]), True on the hole; every image needs a hole pixel.

    Returns:
        (l1 [N], mse [N]) in float64, in [0, 1] units.
    """
    if mask.dim() == 3:
        mask = mask[:, None]
    weight = mask.expand_as(pred).double()  # [N, 3, H, W]
    count = weight.flatten(1).sum(1)  # [N]
    if bool((count == 0).any()):
        raise ValueError("every image needs a non-empty hole")
    diff = (pred.double() - target.double()) * weight  # [N, 3, H, W], 0 outside the hole
    return diff.abs().flatten(1).sum(1) / count, diff.pow(2).flatten(1).sum(1) / count


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for peak value 1: 10·log10(1 / MSE), MSE floored at ``MSE_FLOOR`` (100 dB)."""
    return 10.0 * torch.log10(1.0 / mse.double().clamp_min(MSE_FLOOR))


def summarize_hole_errors(l1: torch.Tensor, mse: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """Per-image errors → ``{prefix}l1_pct``, ``{prefix}l2_pct`` (means ×100), ``{prefix}psnr_db``."""
    return {
        f"{prefix}l1_pct": 100.0 * float(l1.mean()),
        f"{prefix}l2_pct": 100.0 * float(mse.mean()),
        f"{prefix}psnr_db": float(psnr(mse).mean()),
    }


def hole_metrics(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, prefix: str = ""
) -> dict[str, float]:
    """``summarize_hole_errors(*hole_errors(pred, target, mask), prefix)``: images in [0, 1]."""
    return summarize_hole_errors(*hole_errors(pred, target, mask), prefix=prefix)
