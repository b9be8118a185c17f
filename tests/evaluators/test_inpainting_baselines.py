"""The inpaint evaluator's baselines without a network: HOG nearest neighbours, Telea, Navier–Stokes and
biharmonic inpainting."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_bench.data.masks import center_mask, fill_holes
from ssl_bench.evaluators.inpainting_baselines import (
    CLASSIC_BASELINES,
    classic_inpaint,
    hog_context_features,
    opencv_inpaint,
    visible_hog_blocks,
)
from ssl_bench.evaluators.inpainting_nn import NearestNeighbourInpainter, context_features, hole_box
from ssl_bench.metrics.inpainting import hole_errors


def _eight_bit(x: torch.Tensor) -> torch.Tensor:
    return x.double().clamp(0, 1).mul(255).round().div(255)


def _stripes(size: int, angle_deg: float, phase: float = 0.0, period: float = 6.0) -> torch.Tensor:
    """[3, S, S] grey stripes at ``angle_deg`` (their gradient's direction), in [0.2, 0.8]."""
    y, x = torch.meshgrid(torch.arange(size).double(), torch.arange(size).double(), indexing="ij")
    theta = math.radians(angle_deg)
    wave = torch.sin(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / period + phase)
    return (0.5 + 0.3 * wave).expand(3, size, size).clone()


# -------------------------------------------------------------------------------------------------- HOG


def test_hog_keeps_only_the_blocks_outside_the_hole() -> None:
    # 128 px: 8-px cells, 15×15 blocks of 2×2 cells; those starting at rows/cols 24…88 touch 32…95
    visible = visible_hog_blocks(128, (32, 96, 32, 96))
    assert visible.shape == (15, 15) and visible.sum() == 225 - 9 * 9
    assert not visible[3:12, 3:12].any() and visible[:3].all() and visible[12:].all()
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)).double()
    masks = center_mask(128).expand(2, 1, 128, 128)
    features = hog_context_features(images, masks, (32, 96, 32, 96))
    assert features.shape == (2, 144 * 2 * 2 * 9) and features.dtype == torch.float32


def test_hog_features_ignore_the_hole() -> None:
    """Two images that differ only inside the hole have the same HOG context vector."""
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 64, 64, generator=g).double()
    masks = center_mask(64)[None]
    b = torch.where(masks, torch.rand(1, 3, 64, 64, generator=g).double(), a)
    box = hole_box(masks[0])
    assert torch.equal(hog_context_features(a, masks, box), hog_context_features(b, masks, box))


def test_hog_nearest_neighbour_picks_the_image_with_the_same_oriented_context() -> None:
    """Database: contexts of stripes at 0°, 45°, 90°, 135°, each with its own solid-coloured hole. A query
    with the 45° context, shifted by half a period, brightness and contrast changed and noise added, must
    get image 1's hole: HOG sees the orientation, not the grey levels (raw pixels are misled)."""
    size, colours = 64, torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    masks = center_mask(size).expand(4, 1, size, size)
    database = torch.stack([_stripes(size, a) for a in (0, 45, 90, 135)])  # [4, 3, S, S]
    database = _eight_bit(fill_holes(database, masks, torch.zeros(3)) + masks * colours[:, :, None, None])
    box = hole_box(masks[0])
    nn = NearestNeighbourInpainter(box, "l2")
    nn.add(hog_context_features(database, masks, box), database)

    g = torch.Generator().manual_seed(2)
    query = (
        0.1
        + 0.7 * _stripes(size, 45, phase=math.pi)[None]
        + 0.03 * torch.randn(1, 3, size, size, generator=g)
    )
    query = _eight_bit(torch.where(masks[:1], torch.rand(1, 3, size, size, generator=g).double(), query))
    out, nearest = nn.inpaint(hog_context_features(query, masks[:1], box), query, masks[:1])
    assert nearest.tolist() == [1]
    hole = masks[:1].expand_as(query)
    assert torch.equal(out[hole], database[1:2][hole])  # the green hole pasted
    assert torch.equal(out[~hole], query[~hole])  # the query's context kept

    # the same query on raw pixels (the suite's feature-free NN) is misled by the grey levels
    pixels_nn = NearestNeighbourInpainter(box, "l2")
    pixels_nn.add(context_features(database.float(), masks, torch.zeros(3)), database)
    assert pixels_nn.search(context_features(query.float(), masks[:1], torch.zeros(3))).tolist() != [1]


# ---------------------------------------------------------------------------------------- classic fills


def _gradient(size: int) -> torch.Tensor:
    """[1, 3, S, S] a linear ramp per channel, on 8-bit levels."""
    y, x = torch.meshgrid(torch.arange(size).double(), torch.arange(size).double(), indexing="ij")
    ramp = torch.stack([(x + y) / (2 * (size - 1)), 0.2 + 0.6 * x / (size - 1), 0.9 - 0.7 * y / (size - 1)])
    return _eight_bit(ramp[None])


@pytest.mark.parametrize("name", CLASSIC_BASELINES)
def test_classic_baseline_fills_the_hole_from_the_context_only(name: str) -> None:
    image, mask = _gradient(32), center_mask(32)[None]  # [1, 3, 32, 32], [1, 1, 32, 32]
    hole = mask.expand_as(image)
    scrambled = image.clone()
    scrambled[hole] = torch.rand(int(hole.sum()), generator=torch.Generator().manual_seed(3)).double()

    out = classic_inpaint(scrambled, mask, name)
    assert out.shape == image.shape and out.dtype == torch.float64
    assert torch.equal(out[~hole], image[~hole])  # visible pixels unchanged
    assert torch.equal(out, classic_inpaint(image, mask, name))  # the hole's own pixels are never read
    assert torch.equal(out, out.mul(255).round().div(255))  # on 8-bit levels, as every row is scored
    assert out[hole].std() > 0.05  # filled with a ramp, not one colour

    # on a smooth image the fill is close to the truth: far better than the mean colour of the context
    visible_mean = image.masked_select(~hole).view(3, -1).mean(1)  # (3,): channel-major order
    _, mse = hole_errors(out, image, mask)
    _, mse_fill = hole_errors(fill_holes(image, mask, visible_mean), image, mask)
    assert float(mse) < 0.3 * float(mse_fill)


def test_biharmonic_reproduces_a_linear_ramp() -> None:
    """A linear function is biharmonic: the fill equals the ramp up to 8-bit rounding."""
    image, mask = _gradient(32), center_mask(32)[None]
    l1, _ = hole_errors(classic_inpaint(image, mask, "biharmonic"), image, mask)
    assert float(l1) < 1.5 / 255


def test_classic_baselines_run_on_a_batch_with_threads() -> None:
    images = torch.cat(
        [_gradient(24), _eight_bit(torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(4)))]
    )
    masks = center_mask(24).expand(3, 1, 24, 24)
    for name in CLASSIC_BASELINES:
        assert torch.equal(
            classic_inpaint(images, masks, name, threads=2), classic_inpaint(images, masks, name)
        )


def test_unknown_baselines_are_refused() -> None:
    image, mask = _gradient(16), center_mask(16)[None]
    with pytest.raises(ValueError, match="telea"):
        opencv_inpaint(image, mask, "fast_marching")
    with pytest.raises(ValueError, match="biharmonic"):
        classic_inpaint(image, mask, "patchmatch")
