"""The colorization pretext (Zhang et al. 2016): ab bins, soft encoding, rebalancing, loss, encoder export."""

import copy
from itertools import repeat

import pytest
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_lab

from ssl_bench.data.transforms import denormalize, normalize
from ssl_bench.encoders import create_encoder, exported_encoder_state, load_state_dict_strict
from ssl_bench.methods import create_method
from ssl_bench.methods.colorization import (
    AB_GRID,
    decode_expectation,
    gray_input,
    image_to_lab,
    in_gamut_ab_bins,
    rebalancing_weights,
    soft_encode,
)
from tests.methods.steps import take_steps


def _batch(n=4, size=99, seed=0):
    """Smooth colourful images (bilinearly upsampled 4×4 noise, normalised units) and their sample seeds."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 4, 4, generator=g)
    image = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return {"image": image, "sample_seed": torch.arange(n, dtype=torch.long) + 100 * seed}


def test_in_gamut_bins_are_the_261_grid_points_that_srgb_colours_reach():
    centres = in_gamut_ab_bins()  # [Q, 2]
    assert centres.shape == (261, 2)  # Zhang et al.: 313 (bins of the gamut's convex hull)
    assert torch.equal(centres, (centres / AB_GRID).round() * AB_GRID)  # on the grid of 10
    bins = {tuple(c) for c in centres.int().tolist()}
    assert (0, 0) in bins  # grays
    # the sRGB primaries' bins: red (80.1, 67.2) → (80, 70), green (−86.2, 83.2), blue (79.2, −107.9)
    primaries = torch.eye(3).view(3, 3, 1, 1)
    ab = rgb_to_lab(primaries)[:, 1:, 0, 0]
    assert {tuple(c) for c in (torch.floor(ab / AB_GRID + 0.5) * AB_GRID).int().tolist()} <= bins
    assert (-110, 110) not in bins and (100, -100) not in bins  # far outside the gamut


def test_each_bin_centre_soft_encodes_to_itself_and_decodes_back_into_its_bin():
    centres = in_gamut_ab_bins()
    soft = soft_encode(centres, centres)  # [Q, Q]
    assert torch.allclose(soft.sum(dim=1), torch.ones(len(centres)))
    assert torch.equal((soft > 0).sum(dim=1), torch.full((len(centres),), 5))  # the 5 nearest bins
    assert torch.equal(soft.argmax(dim=1), torch.arange(len(centres)))
    error = (decode_expectation(soft, centres) - centres).norm(dim=1)  # [Q]
    assert error.max() < AB_GRID / 2  # the expectation stays inside its own bin …
    assert (error < 1e-4).float().mean() > 0.5  # … and is exact where the neighbours are symmetric
    one_hot = F.one_hot(soft.argmax(dim=1), len(centres)).float()
    assert torch.equal(decode_expectation(one_hot, centres), centres)  # hard decode round-trips exactly


def test_lab_conversion_of_a_known_colour_matches_the_library():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # sRGB red
    lab = image_to_lab(normalize(rgb))[0, :, 0, 0]
    assert torch.allclose(lab, rgb_to_lab(rgb)[0, :, 0, 0], atol=1e-3)
    assert torch.allclose(lab, torch.tensor([53.24, 80.09, 67.20]), atol=0.02)  # CIE Lab of sRGB red (D65)


def test_encoder_input_is_the_lightness_as_a_gray_image():
    image = _batch(n=2)["image"]
    x = gray_input(image_to_lab(image))  # [2, 3, H, W]
    gray = denormalize(x)
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-5)
    assert torch.allclose(gray[:, 0], gray[:, 2], atol=1e-5)
    white = gray_input(image_to_lab(normalize(torch.ones(1, 3, 4, 4))))
    assert torch.allclose(white, normalize(torch.ones(1, 3, 4, 4)), atol=1e-3)


def test_rebalancing_weights_boost_rare_bins_and_have_prior_mean_one():
    centres = in_gamut_ab_bins()
    counts = torch.zeros(len(centres), dtype=torch.long)
    gray = int((centres == 0).all(dim=1).nonzero())
    counts[gray], counts[0] = 10_000, 10  # grays common, one colour rare
    w = rebalancing_weights(counts, centres)  # [Q]
    assert w[0] > 5 * w[gray]
    kernel = torch.exp(-torch.cdist(centres, centres).square() / 50.0)  # σ = 5
    smoothed = kernel @ (counts.float() / counts.sum())
    smoothed = smoothed / smoothed.sum()
    assert float((smoothed * w).sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(rebalancing_weights(counts, centres, lam=1.0), torch.ones(len(centres)))
    assert torch.equal(rebalancing_weights(torch.zeros_like(counts), centres), torch.ones(len(centres)))


def test_training_steps_count_the_prior_and_gray_images_weigh_nothing():
    method = create_method("colorization", image_size=99)
    batch = _batch(n=2)
    out = method(batch)
    h = method.logits(image_to_lab(batch["image"])).shape[-1]  # 20 at 99 px (conv5 5×5, ×4)
    assert int(method.bin_counts.sum()) == 2 * h * h
    assert set(out) == {"loss", "cross_entropy", "accuracy"}
    method.eval()
    method(batch)
    assert int(method.bin_counts.sum()) == 2 * h * h  # eval forwards do not count
    method.train()
    gray = {"image": normalize(torch.full((2, 3, 99, 99), 0.4)), "sample_seed": torch.arange(2)}
    assert method(gray)["loss"].item() == 0.0
    assert int(method.bin_counts.sum()) == 2 * h * h  # nor do gray images
    assert "bin_counts" in method.state_dict()  # saved with checkpoints, so --resume continues the prior


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    method = create_method("colorization", image_size=67)
    batch = _batch(n=2, size=67)
    method(batch)  # settle the prior first: the loss's weights then stay (nearly) fixed
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = [s["loss"] for s in take_steps(method, optimizer, repeat(batch, 8))]
    assert min(losses[-2:]) < 0.8 * losses[0]


def _steps(seed: int, n_steps: int = 2) -> list[float]:
    torch.manual_seed(seed)
    method = create_method("colorization", image_size=67)
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    batches = (_batch(n=2, size=67, seed=step) for step in range(n_steps))
    return [s["loss"] for s in take_steps(method, opt, batches)]


def test_the_same_seed_gives_the_same_steps():
    first = _steps(0)
    assert _steps(0) == first
    assert _steps(1, n_steps=1)[0] != first[0]  # the seed sets the initial weights


def test_the_loss_of_a_batch_is_the_mean_of_its_halves_losses():
    """Given the prior (``bin_counts``), the loss is per sample: DDP on two halves equals one process."""
    torch.manual_seed(0)
    method = create_method("colorization", image_size=99)
    method(_batch(n=4, seed=1))  # a non-trivial prior from an earlier batch
    batch = _batch(n=4, seed=2)
    halves = [{k: v[:2] for k, v in batch.items()}, {k: v[2:] for k, v in batch.items()}]
    whole = copy.deepcopy(method)(batch)["loss"]
    parts = [copy.deepcopy(method)(half)["loss"] for half in halves]
    assert torch.allclose(whole, (parts[0] + parts[1]) / 2, rtol=1e-5)
    # … and counting the two halves gives the prior the whole batch gives (all_reduce under DDP)
    one, two = copy.deepcopy(method), copy.deepcopy(method)
    one(batch)
    for half in halves:
        two(half)
    assert torch.equal(one.bin_counts, two.bin_counts)


@pytest.mark.parametrize("encoder", ["caffenet", "caffenet_bn"])
def test_encoder_loads_strictly_into_the_rgb_caffenet_of_the_evaluators(encoder):
    """Trained on gray (L in three channels), evaluated on RGB: encoder.pt is a plain 3-channel CaffeNet."""
    method = create_method("colorization", image_size=99, encoder=encoder)
    method(_batch(n=2))  # a training forward (updates BN statistics where there are any)
    state = exported_encoder_state(method.encoder, fold_bn=encoder == "caffenet_bn")
    evaluator_encoder = create_encoder("caffenet")
    load_state_dict_strict(evaluator_encoder, state, "colorization encoder.pt")
    assert tuple(evaluator_encoder.conv1.weight.shape) == (96, 3, 11, 11)
    rgb = normalize(torch.rand(2, 3, 99, 99))
    features = evaluator_encoder.eval()(rgb)  # [2, 256, 2, 2]
    assert features.shape == (2, 256, 2, 2) and torch.isfinite(features).all()
