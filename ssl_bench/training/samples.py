"""Sample grids (masked input / output / original) and the inpainting-vs-fill numbers logged beside them."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid

from ssl_bench.atomic import atomic_open
from ssl_bench.data.transforms import denormalize
from ssl_bench.data.masks import fill_holes


def hole_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean squared error over hole pixels (whole image when the mask is empty), normalised units."""
    err = (pred - target).pow(2).mean(1, keepdim=True)  # [N, 1, H, W]
    weight = mask.float() if mask.any() else torch.ones_like(err)
    return float((err * weight).sum() / weight.sum())


@torch.no_grad()
def write_sample_grid(
    method: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path
) -> dict[str, float] | None:
    """Save rows masked-input / output / original; return the hole L2 of output and of the mean fill.

    Returns None for methods without a decoder.
    """
    image, mask = batch["image"], batch["mask"]
    was_training = method.training
    method.eval()
    try:
        output = method.inpaint(image, mask)
    finally:
        method.train(was_training)
    if output is None:
        return None
    fill = getattr(method, "fill", torch.zeros(3, device=image.device))
    masked = fill_holes(image, mask, fill)
    rows = torch.cat([masked, output, image]).float().cpu()  # [3N, 3, H, W]
    grid = make_grid(denormalize(rows), nrow=image.shape[0], padding=2, pad_value=1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    with atomic_open(path, "wb") as f:
        Image.fromarray(array).save(f, format="PNG")
    return {"sample_l2": hole_l2(output, image, mask), "fill_l2": hole_l2(masked, image, mask)}
