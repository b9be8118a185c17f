"""The conv1 structure measure: noise scores about 0, smooth oriented filters high, a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench.metrics import conv1_structure
from ssl_bench.metrics.filters import neighbour_correlations


def _gabors(n: int = 96, channels: int = 3, k: int = 11, seed: int = 0) -> torch.Tensor:
    """Oriented Gabor filters of random orientation, wavelength, phase and per-channel colour weight."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(k) - k // 2, torch.arange(k) - k // 2, indexing="ij")
    out = []
    for _ in range(n):
        theta, lam, phase = (torch.rand(3, generator=g) * torch.tensor([math.pi, 4.0, 2 * math.pi])).tolist()
        u = x * math.cos(theta) + y * math.sin(theta)
        envelope = torch.exp(-(x**2 + y**2) / (2 * (k / 4) ** 2))
        gabor = envelope * torch.cos(2 * math.pi * u / (6.0 + lam) + phase)  # [k, k]
        colour = torch.randn(channels, 1, 1, generator=g)
        out.append(colour * gabor)
    return torch.stack(out).float()  # [n, C, k, k]


def test_gaussian_filters_score_about_zero():
    for seed in range(3):  # 0.074: the He-normal std of CaffeNet's conv1
        w = torch.randn(96, 3, 11, 11, generator=torch.Generator().manual_seed(seed)) * 0.074
        assert abs(conv1_structure(w)) < 0.05


def test_smooth_oriented_filters_score_high():
    assert conv1_structure(_gabors()) > 0.5
    # Gaussian-blurred noise (σ = 1.5 px), per channel: smooth colour blobs without orientation
    noise = torch.randn(96 * 3, 1, 21, 21, generator=torch.Generator().manual_seed(1))
    t = torch.arange(-5, 6, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * 1.5**2))
    kernel = (kernel[:, None] * kernel[None, :] / kernel.sum() ** 2)[None, None]  # [1, 1, 11, 11]
    blurred = F.conv2d(noise, kernel).view(96, 3, 11, 11)
    assert conv1_structure(blurred) > 0.5


def test_hand_computed_case():
    # [[1, 2], [3, 4]]: horizontal pairs (1,2), (3,4); vertical pairs (1,3), (2,4).
    # first = [1, 3, 1, 2] (mean 1.75), second = [2, 4, 3, 4] (mean 3.25):
    # Σ dx·dy = 2.25, Σ dx² = Σ dy² = 2.75 → r = 2.25 / 2.75 = 9/11.
    w = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert neighbour_correlations(w).tolist() == pytest.approx([9 / 11])
    checkerboard = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
    assert conv1_structure(checkerboard) == pytest.approx(-1.0)
    # the mean is over filters; numpy input is accepted
    both = np.concatenate([w.numpy(), checkerboard.numpy()])
    assert conv1_structure(both) == pytest.approx((9 / 11 - 1) / 2)


def test_flat_filter_is_skipped_and_bad_shapes_refused():
    w = torch.cat([torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])])
    values = neighbour_correlations(w)
    assert math.isnan(values[0]) and values[1] == pytest.approx(9 / 11)
    assert conv1_structure(w) == pytest.approx(9 / 11)
    assert math.isnan(conv1_structure(torch.zeros(2, 3, 3, 3)))
    with pytest.raises(ValueError, match="kh, kw >= 2"):
        conv1_structure(torch.zeros(4, 3, 1, 1))
    with pytest.raises(ValueError, match=r"\[O, C, kh, kw\]"):
        conv1_structure(torch.zeros(3, 11, 11))
