"""The hole-sharpness metric (issue #15): gradient energy of a fill relative to the original's."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ssl_bench.data.masks import center_mask
from ssl_bench.metrics.sharpness import gradient_energy, sharpness_ratio


def _checkerboard(n: int = 2, side: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    board = ((yy // 2 + xx // 2) % 2).float()  # 2-px squares: every pixel has a differing neighbour
    return board.expand(n, 3, side, side).clone()


def test_energy_counts_only_pairs_inside_the_hole():
    image = _checkerboard()
    mask = center_mask(32).expand(2, 1, 32, 32)  # the centre 16×16
    flat = torch.where(mask, torch.full_like(image, 0.5), image)  # a mean fill: seams at the border only
    assert torch.all(gradient_energy(flat, mask) == 0)
    # A single horizontal edge inside a 4-px-wide hole: 4 vertical pairs differ by 1, on 3 channels.
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:, :] = 1.0
    hole = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    hole[..., 2:6, 2:6] = True
    assert gradient_energy(step, hole).tolist() == [12.0]


def test_sharpness_is_one_for_the_original_zero_for_a_flat_fill_and_lower_for_a_blur():
    image = _checkerboard()
    mask = center_mask(32).expand(2, 1, 32, 32)
    original = gradient_energy(image, mask)
    assert sharpness_ratio(gradient_energy(image, mask), original) == 1.0
    flat = torch.where(mask, torch.full_like(image, 0.5), image)
    assert sharpness_ratio(gradient_energy(flat, mask), original) == 0.0
    blurred = F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    assert 0.0 < sharpness_ratio(gradient_energy(blurred, mask), original) < 0.5
    assert math.isnan(sharpness_ratio(original, torch.zeros(2, dtype=torch.float64)))
