"""Hole masks: shapes, coverage statistics, determinism, smoothness, cost, and the make_mask factory."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.data.masks import (
    MASK_TYPES,
    PREVIEW_MARGIN,
    PREVIEW_STRIDE,
    REGION_SCALE,
    _smooth_noise_factors,
    center_mask,
    fill_holes,
    make_mask,
    random_block_mask,
    random_region_mask,
)

SIZE = 227
N_MASKS = 200


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fraction(masks: torch.Tensor) -> torch.Tensor:
    """masks: [N, 1, H, W] bool → masked fraction per mask [N]."""
    return masks.flatten(1).float().mean(1)


def _boundary_pixels(masks: torch.Tensor) -> torch.Tensor:
    """Number of horizontally or vertically adjacent pixel pairs that differ, per mask [N]."""
    m = masks[:, 0]  # [N, H, W]
    return (m[:, 1:] != m[:, :-1]).flatten(1).sum(1) + (m[:, :, 1:] != m[:, :, :-1]).flatten(1).sum(1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Masks are drawn in DataLoader workers, which run torch on one thread; on a shared machine
    intra-op threads also make these small ops 10× slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def region_masks() -> torch.Tensor:
    return torch.stack([random_region_mask(SIZE, _gen(i)) for i in range(N_MASKS)])  # [N, 1, H, W]


@pytest.fixture(scope="module")
def block_masks() -> torch.Tensor:
    return torch.stack([random_block_mask(SIZE, _gen(i)) for i in range(N_MASKS)])  # [N, 1, H, W]


@pytest.mark.parametrize("kind", MASK_TYPES)
@pytest.mark.parametrize("size", [SIZE, (96, 160)])
def test_every_kind_is_a_bool_1hw_mask(kind: str, size: int | tuple[int, int]) -> None:
    mask = make_mask(kind, size, _gen(0))
    h, w = (size, size) if isinstance(size, int) else size
    assert mask.dtype == torch.bool and mask.shape == (1, h, w)


@pytest.mark.parametrize("kind", MASK_TYPES)
def test_same_seed_gives_the_same_mask(kind: str) -> None:
    assert torch.equal(make_mask(kind, SIZE, _gen(7)), make_mask(kind, SIZE, _gen(7)))


@pytest.mark.parametrize("kind", ["random_region", "random_block"])
def test_different_seeds_give_different_masks(kind: str) -> None:
    masks = [make_mask(kind, SIZE, _gen(seed)) for seed in range(5)]
    assert all(not torch.equal(a, b) for i, a in enumerate(masks) for b in masks[i + 1 :])


def test_random_region_coverage_is_20_to_30_percent(region_masks: torch.Tensor) -> None:
    frac = _fraction(region_masks)
    assert ((frac > 0.20) & (frac < 0.30)).all()
    # The public code's selection gives ~0.216, not 0.25: the smoothed noise is below 0.25 on only ~18%
    # of a crop, so accepted crops pile up near the lower bound.
    assert 0.205 < frac.mean() < 0.25


def test_random_region_masks_are_smooth_blobs(region_masks: torch.Tensor) -> None:
    frac = _fraction(region_masks)
    # Independent pixels with the same coverage: what the masks would look like without the upscaling.
    iid = torch.rand(region_masks.shape, generator=_gen(0)) < frac.view(-1, 1, 1, 1)
    assert _boundary_pixels(region_masks).float().mean() < 0.2 * _boundary_pixels(iid).float().mean()
    # The holes are blobs of about one noise cell (~17 px), not single pixels or one big square.
    perimeter_per_hole_px = _boundary_pixels(region_masks).float() / (frac * SIZE * SIZE)
    assert 0.05 < perimeter_per_hole_px.mean() < 0.5


def test_random_region_matches_crops_of_one_big_pattern(region_masks: torch.Tensor) -> None:
    """The per-sample draw has the statistics of the public code's crops of one huge upscaled pattern."""
    cells = 180  # a 3000×3000 pattern: a smaller stand-in for the public code's 600 → 10000
    noise = torch.rand(1, 1, cells, cells, generator=_gen(123))
    pattern = (
        F.interpolate(
            noise,
            scale_factor=REGION_SCALE,
            mode="bicubic",
            align_corners=False,
            recompute_scale_factor=False,
        )[0, 0]
        < 0.25
    )  # [3000, 3000]
    border = 3 * math.ceil(REGION_SCALE)  # keep away from the clamped border, as the generator does
    g = _gen(5)
    starts = torch.randint(border, pattern.shape[0] - SIZE - border, (1000, 2), generator=g)
    crops = torch.stack([pattern[y : y + SIZE, x : x + SIZE] for y, x in starts.tolist()])[:, None]
    frac = _fraction(crops)
    accepted = crops[(frac > 0.20) & (frac < 0.30)]
    assert len(accepted) > 100
    ours, theirs = region_masks, accepted
    assert float(_fraction(ours).mean()) == pytest.approx(float(_fraction(theirs).mean()), abs=0.01)
    assert float(_boundary_pixels(ours).float().mean()) == pytest.approx(
        float(_boundary_pixels(theirs).float().mean()), rel=0.1
    )


def _region_mask_testing_every_candidate_in_full(seed: int, size: int) -> torch.Tensor:
    """The same draws as ``random_region_mask``, every candidate computed in full (no preview)."""
    g = _gen(seed)
    while True:
        a_h, noise, a_w = _smooth_noise_factors(4, size, size, REGION_SCALE, g)
        candidates = (a_h @ noise @ a_w.transpose(1, 2)) < 0.25  # [4, S, S]
        for c in candidates:
            if 0.20 < c.float().mean() < 0.30:
                return c[None]


def test_random_region_preview_accepts_exactly_the_masks_a_full_test_would() -> None:
    for seed in range(300):
        for size in (SIZE, 64):
            expected = _region_mask_testing_every_candidate_in_full(seed, size)
            assert torch.equal(random_region_mask(size, _gen(seed)), expected), (seed, size)
    # Why: the previewed coverage errs by much less than the margin (measured 0.008 at most here).
    g, worst = _gen(1), 0.0
    for _ in range(100):
        a_h, noise, a_w = _smooth_noise_factors(8, SIZE, SIZE, REGION_SCALE, g)
        full = ((a_h @ noise @ a_w.transpose(1, 2)) < 0.25).flatten(1).float().mean(1)
        preview = a_h[:, ::PREVIEW_STRIDE] @ noise @ a_w[:, ::PREVIEW_STRIDE].transpose(1, 2)
        worst = max(worst, float((full - (preview < 0.25).flatten(1).float().mean(1)).abs().max()))
    assert worst < PREVIEW_MARGIN / 2


def test_random_region_falls_back_to_the_closest_candidate() -> None:
    # Coverage 90–95% is unreachable at threshold 0.25: the generator must still return, not loop.
    mask = random_region_mask(64, _gen(0), coverage=(0.90, 0.95), max_tries=5)
    assert mask.shape == (1, 64, 64) and _fraction(mask[None]) < 0.90
    # ... and the fallback is the best of the candidates it drew.
    assert _fraction(mask[None]) >= _fraction(
        random_region_mask(64, _gen(0), coverage=(0.9, 0.95), max_tries=1)[None]
    )


def test_random_blocks_never_cover_more_than_a_quarter(block_masks: torch.Tensor) -> None:
    assert (_fraction(block_masks) <= 0.25).all()
    assert _fraction(block_masks).mean() > 0.15  # about as much as a random region hides
    for options in ({"num_blocks": 1}, {"num_blocks": 7, "min_side_frac": 0.3}, {"max_coverage": 0.1}):
        for seed in range(20):
            frac = _fraction(random_block_mask((100, 300), _gen(seed), **options)[None])
            assert frac <= options.get("max_coverage", 0.25)


def test_random_blocks_are_usually_several_pieces(block_masks: torch.Tensor) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    pieces = torch.tensor([ndimage.label(m[0].numpy())[1] for m in block_masks])
    assert (pieces >= 1).all() and (pieces <= 4).all()
    assert (pieces > 1).float().mean() > 0.7


@pytest.mark.parametrize(("size", "lo", "hi"), [(227, 56, 170), (128, 32, 96), (64, 16, 48)])
def test_center_mask_is_the_central_quarter_square(size: int, lo: int, hi: int) -> None:
    expected = torch.zeros(1, size, size, dtype=torch.bool)
    expected[:, lo:hi, lo:hi] = True
    mask = center_mask(size)
    assert torch.equal(mask, expected)
    assert _fraction(mask[None]) == pytest.approx(0.25, abs=2 / size)


def test_center_mask_with_another_area_and_a_rectangle() -> None:
    mask = make_mask("center", (60, 100), area=1 / 25)  # sides round(60/5) × round(100/5)
    rows, cols = mask[0].any(1).nonzero().flatten(), mask[0].any(0).nonzero().flatten()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (24, 35, 40, 59)
    assert int(mask.sum()) == 12 * 20


def test_none_mask_is_empty() -> None:
    assert not make_mask("none", SIZE, _gen(0)).any()


def test_make_mask_fails_loudly_on_unknown_kind_or_option() -> None:
    with pytest.raises(ValueError, match="random_region, random_block, center, none"):
        make_mask("random_regions", SIZE, _gen(0))
    with pytest.raises(ValueError, match="density"):  # the message lists the valid options
        make_mask("random_region", SIZE, _gen(0), coverge=(0.2, 0.3))
    with pytest.raises(ValueError, match="valid options"):
        make_mask("none", SIZE, _gen(0), area=0.25)


def test_make_mask_passes_options_through() -> None:
    assert torch.equal(
        make_mask("random_block", SIZE, _gen(3), num_blocks=2), random_block_mask(SIZE, _gen(3), num_blocks=2)
    )


def test_fill_holes_replaces_only_the_hole() -> None:
    images = torch.randn(2, 3, 8, 8, generator=_gen(0))
    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[0, :, 2:5, 3:6] = True
    fill = torch.tensor([0.1, -0.2, 0.3])
    out = fill_holes(images, masks, fill)
    hole = masks.expand_as(images)
    assert torch.equal(out[~hole], images[~hole])
    assert torch.equal(out[0, :, 2:5, 3:6], fill.view(3, 1, 1).expand(3, 3, 3))
    assert torch.equal(out[1], images[1])  # an empty mask leaves the image as it is
    assert not torch.equal(out, images)  # a new tensor; the input is untouched
    # One image [3, H, W] with its mask [1, H, W], as a dataset worker holds them.
    assert torch.equal(fill_holes(images[0], masks[0], fill), out[0])


def test_paper_recipe_scales_the_regions_to_227_px_as_the_public_code_draws_them_at_128() -> None:
    """train_random.lua cuts its masks for 128-px crops; the paper recipe's 227-px masks are the same masks
    enlarged: masked fraction within 20–30% and boundary length per image side as at 128 px."""
    from ssl_bench.recipes import find_recipe, load_yaml

    scale = load_yaml(find_recipe("pretrain", "paper", "context_encoder"))["model"]["mask_options"]["scale"]
    assert scale == pytest.approx(REGION_SCALE * SIZE / 128, abs=0.01)

    def draw(size: int, scale: float, n: int = 120) -> torch.Tensor:
        g = _gen(11)
        return torch.stack([random_region_mask(size, g, scale=scale) for _ in range(n)])  # [n, 1, S, S]

    public, paper, unscaled = draw(128, REGION_SCALE), draw(SIZE, scale), draw(SIZE, REGION_SCALE)
    frac = _fraction(paper)
    assert bool(((frac > 0.20) & (frac < 0.30)).all())
    assert float(frac.mean()) == pytest.approx(float(_fraction(public).mean()), abs=0.01)
    per_side = {name: float(_boundary_pixels(m).float().mean()) / m.shape[-1]
                for name, m in (("public", public), ("paper", paper), ("unscaled", unscaled))}
    assert per_side["paper"] == pytest.approx(per_side["public"], rel=0.1)
    assert per_side["unscaled"] > 1.4 * per_side["public"]  # unscaled blobs are ~1.7x smaller per image
