"""The relative-position pretext (Doersch et al. 2015): patch geometry, labels, shortcut guards, training."""

from __future__ import annotations

from itertools import repeat

import pytest
import torch

from ssl_bench.data.transforms import normalize
from ssl_bench.methods import create_method
from ssl_bench.methods.relative_position import (
    PatchGrid,
    crop_pair,
    drop_colour,
    normalise_patches,
    patch_grid,
    project_colour,
    random_downsample,
    to_gray,
)
from ssl_bench.recipes import PROFILES, find_recipe, load_yaml
from ssl_bench.training.recipe import check_recipe
from tests.methods.steps import take_steps

# The documented label order: (row, column) offset of the neighbour from the centre patch.
#   0 1 2
#   3 · 4
#   5 6 7
EXPECTED_OFFSETS = {
    0: (-1, -1),
    1: (-1, 0),
    2: (-1, 1),
    3: (0, -1),
    4: (0, 1),
    5: (1, -1),
    6: (1, 0),
    7: (1, 1),
}


def _coordinate_image(size: int) -> torch.Tensor:
    """[3, size, size]: channel 0 holds each pixel's row, channel 1 its column, channel 2 zero."""
    rows = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size)
    return torch.stack([rows, rows.T, torch.zeros(size, size)])


def _method(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_method("relative_position", image_size=99, patch_input=67, head_width=64, **options)


def _batch(n: int = 8, size: int = 99) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    # smooth random images (upsampled noise), so patches hold structure rather than pixel noise
    image = torch.nn.functional.interpolate(
        torch.randn(n, 3, 12, 12, generator=g), size=(size, size), mode="bilinear"
    )
    return {"image": image, "sample_seed": torch.arange(100, 100 + n), "index": torch.arange(n)}


def _train(
    method: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int, lr: float = 1e-3
) -> list[float]:
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    return [s["loss"] for s in take_steps(method, optimizer, repeat(batch, steps))]


def test_default_grid_keeps_the_paper_proportions_and_fits_the_crop():
    assert patch_grid(398) == patch_grid(398, 96, 48, 7)  # the paper's own sizes where they fit
    for size, (patch, gap, jitter) in {227: (54, 27, 3), 128: (30, 15, 2), 99: (23, 11, 1)}.items():
        grid = patch_grid(size)
        assert (grid.patch, grid.gap, grid.jitter) == (patch, gap, jitter)
        assert grid.span <= size
    with pytest.raises(ValueError, match="spans"):
        patch_grid(99, patch=30)


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_recipes_are_valid(profile: str) -> None:
    path = find_recipe("pretrain", profile, "relative_position")
    recipe = check_recipe(load_yaml(path), str(path))
    if profile == "paper":  # the paper's own grid
        assert patch_grid(recipe.data.image_size) == PatchGrid(96, 48, 7)


def test_every_label_puts_the_neighbour_at_its_place_around_the_centre():
    image = _coordinate_image(99)
    grid = patch_grid(99, jitter=0)
    p = grid.patch
    ramp = torch.arange(p, dtype=torch.float32)
    for label, (dy, dx) in EXPECTED_OFFSETS.items():
        for seed in range(3):  # different grid placements
            pair = crop_pair(image, grid, label, torch.Generator().manual_seed(seed))  # [2, 3, p, p]
            assert pair.shape == (2, 3, p, p)
            corners = []
            for patch in pair:
                y, x = int(patch[0, 0, 0]), int(patch[1, 0, 0])
                # a whole, unscaled p×p window of the image starting there
                assert torch.equal(patch[0], (y + ramp)[:, None].expand(p, p))
                assert torch.equal(patch[1], (x + ramp)[None, :].expand(p, p))
                corners.append((y, x))
            (cy, cx), (ny, nx) = corners
            assert (ny - cy, nx - cx) == (dy * grid.stride, dx * grid.stride), label
            # the centre patch is the middle cell: a full cell of the grid fits on each side of it
            assert cy - grid.stride >= 0 and cy + grid.stride + p <= 99
            assert cx - grid.stride >= 0 and cx + grid.stride + p <= 99


def test_jitter_moves_each_patch_by_at_most_its_bound_and_stays_inside():
    image = _coordinate_image(99)
    grid = patch_grid(99, gap=8, jitter=4)
    for seed in range(40):
        label = seed % 8
        pair = crop_pair(image, grid, label, torch.Generator().manual_seed(seed))
        (cy, cx), (ny, nx) = [(int(q[0, 0, 0]), int(q[1, 0, 0])) for q in pair]
        dy, dx = EXPECTED_OFFSETS[label]
        assert abs(ny - cy - dy * grid.stride) <= 2 * grid.jitter
        assert abs(nx - cx - dx * grid.stride) <= 2 * grid.jitter
        assert pair.shape == (2, 3, grid.patch, grid.patch)  # a slice past the border would be shorter


def test_the_method_labels_the_pair_it_cut():
    """make_pairs' labels are the ones the crops were cut for (no colour change, downsampling or resize)."""
    method = create_method(
        "relative_position",
        image_size=227,
        patch_size=67,
        gap=10,
        patch_input=67,
        colour="none",
        downsample_probability=0.0,
        head_width=8,
    )
    images = torch.rand(8, 3, 227, 227)
    patches, labels = method.make_pairs(images, [torch.Generator().manual_seed(seed) for seed in range(8)])
    assert patches.shape == (16, 3, 67, 67) and labels.shape == (8,)
    for seed in range(8):
        replay = torch.Generator().manual_seed(seed)
        label = int(torch.randint(0, 8, (), generator=replay))
        assert labels[seed] == label
        expected = normalise_patches(crop_pair(images[seed], method.grid, label, replay))
        assert torch.allclose(patches[2 * seed : 2 * seed + 2], expected, atol=1e-5)


def test_shortcut_guards_remove_colour_and_brightness_cues():
    g = torch.Generator().manual_seed(0)
    patches = torch.rand(4, 3, 20, 20, generator=g) * torch.tensor([0.5, 2.0, 1.0]).view(3, 1, 1) + 3.0
    normalised = normalise_patches(patches)
    assert torch.allclose(normalised.mean(dim=(-2, -1)), torch.zeros(4, 3), atol=1e-5)
    assert torch.allclose(normalised.square().mean(dim=(1, 2, 3)), torch.ones(4), atol=1e-4)

    keep = torch.tensor([0, 1, 2, 1])
    dropped = drop_colour(patches, keep, torch.randn(4, 3, 20, 20, generator=g), 0.01)
    for i, kept in enumerate(keep.tolist()):
        stds = dropped[i].flatten(1).std(dim=1)
        assert torch.equal(dropped[i, kept], patches[i, kept])
        others = [c for c in range(3) if c != kept]
        assert torch.allclose(stds[others], 0.01 * stds[kept].expand(2), rtol=0.3)

    projected = project_colour(patches)
    green_magenta = torch.tensor([-1.0, 2.0, -1.0])
    assert torch.allclose(
        torch.einsum("c,nchw->nhw", green_magenta, projected), torch.zeros(4, 20, 20), atol=1e-4
    )
    gray = to_gray(patches)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])

    # downsampling always (probability 1) loses detail but keeps the size
    noisy = torch.rand(3, 30, 30, generator=g)
    small = random_downsample(noisy, 1.0, g)
    assert small.shape == noisy.shape and small.std() < noisy.std()


def _cone_batch(step: int, n: int = 16, size: int = 99) -> dict[str, torch.Tensor]:
    """Gray images that rise with the distance from (about) their centre: a patch's slope, which per-patch
    normalisation keeps, points away from the centre patch, so a patch's place can be read off it."""
    g = torch.Generator().manual_seed(step)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    centre = 0.5 + 0.1 * (torch.rand(2, n, 1, 1, generator=g) - 0.5)
    cone = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2).sqrt()  # [n, size, size]
    image = cone[:, None].expand(n, 3, size, size) + 0.02 * torch.randn(n, 3, size, size, generator=g)
    return {"image": normalize(image.clamp(0, 1)), "sample_seed": torch.arange(step * n, (step + 1) * n)}


def test_the_method_learns_where_a_patch_lies_when_the_image_tells():
    """End to end, shortcut guards included (colour dropping, downsampling, normalisation): the labels agree
    with the geometry, so a cue of position is learnt within a few steps."""
    method = _method()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    accuracies = [s["accuracy"] for s in take_steps(method, optimizer, map(_cone_batch, range(40)))]
    assert sum(accuracies[-10:]) / 10 > 0.4  # chance: 1/8


def test_loss_falls_on_a_fixed_batch():
    method = _method()
    losses = _train(method, _batch(), steps=12)
    assert losses[-1] < 0.5 * losses[0], losses
    assert method(_batch())["accuracy"].item() > 0.5


def test_a_fixed_seed_gives_identical_steps():
    runs = [_train(_method(), _batch(4), steps=3) for _ in range(2)]
    assert runs[0] == runs[1]


def test_loss_is_per_sample_so_ddp_halves_average_to_the_batch_loss():
    """Without batch norm (plain ``caffenet``, ``head_batch_norm: false``) each sample's term depends on its
    image and ``sample_seed`` only: two DDP processes on the halves give the one-process loss."""
    method = _method(head_batch_norm=False)
    batch = _batch(4)
    halves = [{k: v[i : i + 2] for k, v in batch.items()} for i in (0, 2)]
    with torch.no_grad():
        whole = method(batch)["loss"]
        parts = torch.stack([method(half)["loss"] for half in halves])
    assert torch.allclose(whole, parts.mean(), atol=1e-5)
