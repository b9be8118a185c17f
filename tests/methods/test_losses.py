"""Masked reconstruction loss: hole-only, L1/L2, the overlap ring, per-sample normalisation, no-hole case."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.methods.losses import masked_reconstruction_loss, reconstruction_weights


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(n: int = 3, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pred, target [n, 3, size, size] and masks [n, 1, size, size] with holes of different areas."""
    g = _gen(seed)
    pred = torch.randn(n, 3, size, size, generator=g)
    target = torch.randn(n, 3, size, size, generator=g)
    mask = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i in range(n):
        mask[i, :, 2 : 4 + 3 * i, 5 : 7 + 2 * i] = True
    return pred, target, mask


def test_loss_is_the_mean_error_over_the_hole() -> None:
    pred, target, mask = _batch()
    loss = masked_reconstruction_loss(pred, target, mask)
    per_pixel = (pred - target).square().mean(1, keepdim=True)  # [N, 1, H, W], channel mean
    expected = torch.stack([per_pixel[i][mask[i]].mean() for i in range(len(mask))]).mean()
    assert loss.shape == () and torch.allclose(loss, expected)


def test_pixels_outside_the_hole_change_nothing() -> None:
    pred, target, mask = _batch()
    loss = masked_reconstruction_loss(pred, target, mask)
    other = torch.where(mask, pred, pred + 100.0)  # change only visible pixels
    assert torch.equal(masked_reconstruction_loss(other, target, mask), loss)

    pred.requires_grad_(True)
    masked_reconstruction_loss(pred, target, mask).backward()
    hole = mask.expand_as(pred)
    assert (pred.grad[~hole] == 0).all()
    assert (pred.grad[hole] != 0).all()


def test_l1_and_l2() -> None:
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.full((1, 3, 4, 4), 2.0)
    pred[:, 0] = 4.0  # channel errors 4, 2, 2 → L1 mean 8/3, L2 mean (16+4+4)/3 = 8
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 1:3, 1:3] = True
    assert masked_reconstruction_loss(pred, target, mask, kind="l2").item() == pytest.approx(8.0)
    assert masked_reconstruction_loss(pred, target, mask, kind="l1").item() == pytest.approx(8 / 3)
    with pytest.raises(ValueError, match="l2, l1"):
        masked_reconstruction_loss(pred, target, mask, kind="mse")


def test_overlap_ring_weighting_by_hand() -> None:
    # 5×5 image, hole = the centre pixel. overlap=1 → the 8 neighbours form the ring (weight 10);
    # the 16 border pixels get weight 0.
    mask = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    mask[..., 2, 2] = True
    target = torch.zeros(1, 3, 5, 5)
    pred = torch.full((1, 3, 5, 5), 100.0)  # border error: must not count
    pred[..., 1:4, 1:4] = 0.5  # ring: squared error 0.25
    pred[..., 2, 2] = 1.0  # hole: squared error 1

    weights = reconstruction_weights(mask, overlap=1, overlap_weight=10.0)
    expected_w = torch.zeros(5, 5)
    expected_w[1:4, 1:4] = 10.0
    expected_w[2, 2] = 1.0
    assert torch.equal(weights[0, 0], expected_w)

    loss = masked_reconstruction_loss(pred, target, mask, overlap=1, overlap_weight=10.0)
    assert loss.item() == pytest.approx((1 * 1.0 + 10 * 8 * 0.25) / (1 + 10 * 8))  # 21/81
    assert masked_reconstruction_loss(pred, target, mask, overlap=0).item() == pytest.approx(1.0)

    # overlap=2 reaches the border: 24 ring pixels, 8 with error 0.25 and 16 with error 100².
    loss2 = masked_reconstruction_loss(pred, target, mask, overlap=2, overlap_weight=10.0)
    assert loss2.item() == pytest.approx((1.0 + 10 * (8 * 0.25 + 16 * 100.0**2)) / (1 + 10 * 24))


def test_overlap_larger_than_the_image_weighs_every_visible_pixel() -> None:
    # The public train_random.lua's useOverlapPred: weight 10 on all visible pixels.
    mask = torch.zeros(2, 1, 9, 7, dtype=torch.bool)
    mask[0, :, 0, 0] = True
    mask[1, :, 4:6, 2:5] = True
    weights = reconstruction_weights(mask, overlap=1000, overlap_weight=10.0)
    assert torch.equal(weights, torch.where(mask, 1.0, 10.0))


def test_each_sample_is_normalised_by_its_own_hole() -> None:
    pred, target, mask = _batch(n=4)
    batch_loss = masked_reconstruction_loss(pred, target, mask, overlap=2)
    singles = [
        masked_reconstruction_loss(pred[i : i + 1], target[i : i + 1], mask[i : i + 1], overlap=2)
        for i in range(4)
    ]
    assert torch.allclose(batch_loss, torch.stack(singles).mean())
    # Two "ranks" with two samples each: the mean of their losses is the combined batch's loss, which is
    # what DDP's gradient averaging computes.
    halves = [
        masked_reconstruction_loss(pred[s], target[s], mask[s], overlap=2) for s in (slice(0, 2), slice(2, 4))
    ]
    assert torch.allclose(batch_loss, torch.stack(halves).mean())
    # Pooling the holes of the whole batch (the alternative) would give a different number.
    err = (pred - target).square().mean(1, keepdim=True)
    assert not torch.allclose(batch_loss, err[mask].mean())


def test_no_hole_means_whole_image_loss() -> None:
    pred, target, mask = _batch(n=2)
    whole = (pred - target).square().mean()
    empty = torch.zeros_like(mask)
    assert torch.allclose(masked_reconstruction_loss(pred, target, None), whole)
    assert torch.allclose(masked_reconstruction_loss(pred, target, empty), whole)
    assert torch.allclose(masked_reconstruction_loss(pred, target, empty, overlap=4), whole)
    assert torch.allclose(
        masked_reconstruction_loss(pred, target, None, kind="l1"), (pred - target).abs().mean()
    )
    # A batch mixing an empty mask with a real hole treats each sample on its own.
    mixed = mask.clone()
    mixed[1] = False
    expected = (
        masked_reconstruction_loss(pred[:1], target[:1], mask[:1]) + (pred[1] - target[1]).square().mean()
    ) / 2
    assert torch.allclose(masked_reconstruction_loss(pred, target, mixed), expected)


def test_bad_shapes_fail_loudly() -> None:
    pred, target, mask = _batch(n=2)
    with pytest.raises(ValueError):
        masked_reconstruction_loss(pred, target[:1], mask)
    with pytest.raises(ValueError):
        masked_reconstruction_loss(pred, target, mask[:1])
    with pytest.raises(ValueError):
        masked_reconstruction_loss(pred, target, mask.float())
