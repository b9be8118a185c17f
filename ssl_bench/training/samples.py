"""Sample grids (masked input / output / original) and the inpainting-vs-fill numbers logged beside them."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from ssl_bench.atomic import atomic_open
from ssl_bench.data.masks import fill_holes
from ssl_bench.data.transforms import denormalize
from ssl_bench.metrics.inpainting import hole_errors, summarize_hole_errors
from ssl_bench.metrics.sharpness import gradient_energy, sharpness_ratio


def _scored_pixels(mask: torch.Tensor) -> torch.Tensor:
    """The hole, or every pixel of an image without one (the autoencoder reconstructs the whole image)."""
    no_hole = ~mask.flatten(1).any(1)  # [N]
    return mask | no_hole.view(-1, 1, 1, 1)  # [N, 1, H, W]


@torch.no_grad()
def write_sample_grid(
    method: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path
) -> dict[str, float] | None:
    """Save rows masked-input / output / original; return how well the output and the mean fill match.

    The numbers are the suite's one hole metric (``ssl_bench.metrics.inpainting``, images in [0, 1]):
    ``sample_l2`` / ``fill_l2`` are Table 1's hole L2 in % (100 · mean squared error) of the output and of
    the mean fill, ``sample_psnr_db`` / ``fill_psnr_db`` their PSNR, and ``sample_sharpness`` the output's
    detail inside the hole over the original's (``ssl_bench.metrics.sharpness``: 0 for a flat fill, 1 as
    detailed as the original; None when every original hole is flat).

    Returns None for methods without a decoder.
    """
    image, mask = batch["image"], batch["mask"]  # [N, 3, H, W] normalised, [N, 1, H, W] bool
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
    array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    with atomic_open(path, "wb") as f:
        Image.fromarray(array).save(f, format="PNG")

    scored = _scored_pixels(mask)
    target, inpainted_01 = denormalize(image.float()), denormalize(output.float())
    inpainted = summarize_hole_errors(*hole_errors(inpainted_01, target, scored))
    filled = summarize_hole_errors(*hole_errors(denormalize(fill_holes(image, scored, fill)), target, scored))
    detail = sharpness_ratio(gradient_energy(inpainted_01, scored), gradient_energy(target, scored))
    return {
        "sample_l2": inpainted["l2_pct"],
        "fill_l2": filled["l2_pct"],
        "sample_psnr_db": inpainted["psnr_db"],
        "fill_psnr_db": filled["psnr_db"],
        "sample_sharpness": None if math.isnan(detail) else detail,  # metrics.jsonl stays strict JSON
    }
