"""The one hole-metric definition, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_bench.metrics import hole_errors, hole_metrics, psnr


def test_hand_computed_case():
    # Two 1×2×2 RGB images; the hole is the left column (2 pixels × 3 channels = 6 values per image).
    target = torch.zeros(2, 3, 2, 2)
    pred = target.clone()
    pred[0, :, :, 0] = 0.1  # image 0: every hole value off by 0.1 → L1 0.1, MSE 0.01
    pred[1, 0, 0, 0] = 0.6  # image 1: one of 6 hole values off by 0.6 → L1 0.1, MSE 0.06
    pred[:, :, :, 1] = 1.0  # errors outside the hole do not count
    mask = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    mask[:, :, :, 0] = True
    l1, mse = hole_errors(pred, target, mask)
    assert l1.tolist() == pytest.approx([0.1, 0.1])
    assert mse.tolist() == pytest.approx([0.01, 0.06])
    m = hole_metrics(pred, target, mask)
    assert m["l1_pct"] == pytest.approx(10.0)
    assert m["l2_pct"] == pytest.approx(3.5)
    # PSNR per image, then averaged: (20 + 10·log10(1/0.06)) / 2
    assert m["psnr_db"] == pytest.approx((20.0 + 10 * math.log10(1 / 0.06)) / 2)
    prefixed = hole_metrics(pred, target, mask[:, 0], prefix="nn_")
    assert set(prefixed) == {"nn_l1_pct", "nn_l2_pct", "nn_psnr_db"}


def test_exact_fill_is_capped_and_empty_hole_refused():
    x = torch.rand(1, 3, 4, 4)
    assert float(psnr(torch.zeros(1))) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="non-empty hole"):
        hole_errors(x, x, torch.zeros(1, 1, 4, 4, dtype=torch.bool))
