"""Sharpness of a filled hole: its gradient energy relative to the original's (issue #15).

An L2 loss fills a hole with the mean of the plausible contents, a blur; the paper's adversarial loss
(PAPER.md §1.1) is there to make the fill sharp. PSNR cannot show that (a blur often has the better PSNR),
so the ``inpaint`` evaluator also measures how much detail a fill has:

- ``gradient_energy(images, mask)`` [N]: the sum, over horizontally and vertically neighbouring pixel pairs
  that BOTH lie in the hole, of the squared difference of the pair (all channels; images in [0, 1]).
  Pairs that straddle the hole's border are left out: they measure the seam between the fill and the
  context, not the fill's own detail (a flat fill in a busy image would otherwise score as sharp).
- ``sharpness`` = Σ_images energy(fill) / Σ_images energy(original): 1 when the fills have as much detail
  as the originals, 0 for a flat fill (the mean fill), below 1 for a blur. A ratio of sums over the test
  set, not a mean of per-image ratios: SynthVOC holes can be nearly flat in the original (a sky, a wall),
  where a per-image ratio explodes. Above 1 is possible (noise, or detail that is not in the original), so
  read it beside PSNR.

Written with plain tensor differences rather than a library filter (``skimage.filters.sobel``,
``kornia.filters.spatial_gradient``) because those pad or reach across the hole's border; restricting the
pairs to the hole is the point.
"""

from __future__ import annotations

import torch


def gradient_energy(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squared neighbour differences inside the hole.

    Args:
        images: [N, C, H, W], values in [0, 1].
        mask: bool [N, 1, H, W] (or [N, H, W]), True on the hole.

    Returns:
        [N] float64.
    """
    if mask.dim() == 3:
        mask = mask[:, None]
    x, m = images.double(), mask.bool()
    dx = (x[..., :, 1:] - x[..., :, :-1]).square() * (m[..., :, 1:] & m[..., :, :-1])  # [N, C, H, W-1]
    dy = (x[..., 1:, :] - x[..., :-1, :]).square() * (m[..., 1:, :] & m[..., :-1, :])  # [N, C, H-1, W]
    return dx.flatten(1).sum(1) + dy.flatten(1).sum(1)


def sharpness_ratio(fill_energy: torch.Tensor, original_energy: torch.Tensor) -> float:
    """Σ energy(fill) / Σ energy(original) over a test set; nan if every original is flat."""
    total = float(original_energy.sum())
    return float(fill_energy.sum()) / total if total > 0 else float("nan")
