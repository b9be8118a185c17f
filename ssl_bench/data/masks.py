"""Hole masks for inpainting pretraining (PAPER.md §1.2): random region, random block, centre, none.

Each generator draws ONE mask for ONE image, from an explicit ``torch.Generator``: the data pipeline
seeds that generator from (seed, epoch, sample index), so a resumed or multi-worker / multi-rank run
sees exactly the same masks as an uninterrupted single-process one. Everything is torch-only and
vectorised; a mask costs well under a millisecond (centre, block) or a few milliseconds (random region)
on one CPU core.

A mask is a ``torch.bool`` tensor ``[1, H, W]`` with True on the hole (the pixels to inpaint).
``make_mask(kind, size, generator, **options)`` dispatches by name over ``MASK_GENERATORS``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# Public code of Pathak et al. (train_random.lua): 600×600 uniform noise, bicubic-upscaled to
# 10000×10000, thresholded at 0.25; crops are kept when 20–30% of their pixels are masked.
REGION_DENSITY = 0.25
REGION_COVERAGE = (0.20, 0.30)
REGION_SCALE = 10000 / 600  # ≈ 16.7 px per noise cell
# NOTE: that cell size is the public code's for its 128-px crops (train_random.lua: fineSize 64 or 128 only);
# the paper recipe passes ``scale`` ×227/128 so that its 227-px masks are those masks enlarged (tests).

# Candidates drawn per vectorised batch of random-region retries. Only ~22% of 227-px candidates pass the
# 20–30% test (the thresholded field covers 18% on average, not 25%: bicubic smoothing pulls the noise
# towards 0.5). With the separable upscale a candidate costs ~0.1 ms, so a batch of 4 makes one draw
# usually enough.
_REGION_CANDIDATES_PER_DRAW = 4

# Coverage preview (random_region_mask): every 4th row and column; a candidate is computed in full when
# its previewed coverage lies within 0.03 of the accepted range (measured preview error: see tests).
PREVIEW_STRIDE = 4
PREVIEW_MARGIN = 0.03

MaskFn = Callable[..., torch.Tensor]


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from an int or an (H, W) pair; fails loudly on anything else."""
    if isinstance(size, Sequence):
        h, w = (int(s) for s in size)  # ValueError unless exactly two sides
    else:
        h = w = int(size)
    if h < 1 or w < 1:
        raise ValueError(f"mask size must be positive, got {size!r}")
    return h, w


@functools.lru_cache(maxsize=32)
def _bicubic_matrix(cells: int, scale: float) -> torch.Tensor:
    """[out, cells] weights of 1-D bicubic upscaling, taken from ``F.interpolate`` itself.

    Upscaling an impulse along one axis gives one column; bicubic is separable, so the 2-D upscale of a
    noise patch N is ``A_h @ N @ A_w.T`` exactly as ``F.interpolate`` computes it, and a crop needs only
    the crop's rows of ``A_h`` and ``A_w``: ~10× cheaper than upscaling the whole patch.
    """
    impulses = torch.eye(cells).view(cells, 1, cells, 1)  # one unit impulse per batch item, along H
    up = F.interpolate(impulses, scale_factor=(scale, 1.0), mode="bicubic", align_corners=False,
                       recompute_scale_factor=False)  # [cells, 1, out, 1]
    return up[:, 0, :, 0].T.contiguous()  # [out, cells]


def _smooth_noise_factors(
    n: int, h: int, w: int, scale: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Factors of n independent h×w crops of bicubically upscaled uniform noise (one cell = ``scale`` px).

    Crop k is ``a_h[k] @ noise[k] @ a_w[k].T``, distributed like a random crop of the public code's
    10000×10000 pattern away from its border.

    Returns:
        ``a_h`` [n, h, ch], ``noise`` [n, ch, cw], ``a_w`` [n, w, cw].
    """
    # A crop of the big pattern only sees the noise cells under it plus the bicubic support (one cell
    # before, two after). Draw just those cells, with enough margin that no cropped pixel touches the
    # patch border (where interpolate clamps and the field would be smoother than in the interior).
    margin = math.ceil(1.5 * scale)  # first output pixel whose support cells floor(u)-1.. are all >= 0
    phase = math.ceil(scale)  # a random shift within one cell: the crop's sub-cell offset
    cells_h = math.ceil((margin + phase + h + 0.5) / scale + 2.5)
    cells_w = math.ceil((margin + phase + w + 0.5) / scale + 2.5)
    noise = torch.rand(n, cells_h, cells_w, generator=generator)  # [n, ch, cw]
    # The pixel→cell mapping is the big pattern's: u = (x + 0.5) / scale - 0.5 (recompute_scale_factor=False).
    rows, cols = _bicubic_matrix(cells_h, scale), _bicubic_matrix(cells_w, scale)  # [~ch*scale, ch], [.., cw]
    offsets = margin + torch.randint(0, phase, (n, 2), generator=generator)  # [n, 2] (y, x)
    a_h = rows[offsets[:, :1] + torch.arange(h)]  # [n, h, ch]: rows oy … oy+h-1 of each crop
    a_w = cols[offsets[:, 1:] + torch.arange(w)]  # [n, w, cw]
    return a_h, noise, a_w


def random_region_mask(
    size: int | Sequence[int],
    generator: torch.Generator | None = None,
    density: float = REGION_DENSITY,
    coverage: tuple[float, float] = REGION_COVERAGE,
    scale: float = REGION_SCALE,
    max_tries: int = 50,
) -> torch.Tensor:
    """Smooth random blobs: thresholded, bicubically upscaled uniform noise (the public code's masks).

    The public code builds one 10000×10000 pattern per run and takes random crops whose masked fraction
    lies strictly between 20% and 30%. This draws, per sample, only the low-resolution noise a crop of
    that pattern would see, at a random sub-cell offset, upscales it, thresholds ``< density`` and keeps
    the first candidate whose masked fraction lies strictly inside ``coverage``. Bicubic smoothing pulls
    the noise towards 0.5, so the threshold 0.25 masks only ~18% of a crop on average and the accepted
    masks cover ~21.6% (not 25%) at 227 px, as in the public code.

    NOTE: there is no literal 10000² pattern. Each mask gets its own fresh noise, so masks are
    independent draws of the same random field instead of overlapping crops of one fixed pattern
    (the public code's pattern is also fixed for a whole run). Crops next to the big pattern's border,
    where its border handling changes the field (~1% of its crops), are not reproduced.
    NOTE: the public code draws ONE mask per batch and applies it to all 64 images; here every sample
    gets its own mask (more variety per step; the per-sample loss normalisation handles unequal holes).
    NOTE: Torch7's ``image.scale`` (public code) uses a Catmull-Rom cubic (a = -0.5) with corner-aligned
    sampling (cells of 9999/599 px); PyTorch's bicubic uses a = -0.75 with centre-aligned sampling. The
    accepted masks are statistically the same (measured at 227 px: mean coverage 0.216 vs 0.213,
    boundary length within 2%); only the share of candidates that pass differs (22% vs 10%).
    NOTE: if no candidate passes within ``max_tries`` (probability ~4e-6 per mask with the defaults at
    227 px) the candidate whose masked fraction is closest to ``coverage`` is returned, where the
    public code would loop until one passes (closest by its preview, for candidates only previewed).
    The paper itself used deformed PASCAL segmentation shapes (PAPER.md §1.2); this is the public code.

    Args:
        size: image side, or (H, W).
        generator: source of randomness; ``None`` uses torch's global generator (not reproducible
            across DataLoader workers).
        density: threshold on the smoothed noise (uniform noise in [0, 1] before upscaling).
        coverage: (low, high) bounds, exclusive, on the accepted masked fraction.
        scale: pixels per noise cell (10000 / 600 in the public code); larger gives bigger blobs.
        max_tries: candidates drawn at most before falling back to the closest one.

    Returns:
        Bool tensor [1, H, W], True on the hole.
    """
    h, w = _hw(size)
    low, high = coverage
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"coverage must satisfy 0 <= low < high <= 1, got {coverage!r}")
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must lie in (0, 1), got {density}")
    if scale < 1.0 or max_tries < 1:
        raise ValueError(f"need scale >= 1 and max_tries >= 1, got scale={scale}, max_tries={max_tries}")

    return _first_region_in_range(h, w, generator, density, low, high, scale, max_tries)


def _first_region_in_range(
    h: int,
    w: int,
    generator: torch.Generator | None,
    density: float,
    low: float,
    high: float,
    scale: float,
    max_tries: int,
) -> torch.Tensor:
    """The first candidate region mask [1, H, W] whose masked fraction lies in (low, high), else the
    closest of ``max_tries`` (``random_region_mask``)."""
    # Each candidate's coverage is first estimated on every PREVIEW_STRIDE-th row and column (1/16 of
    # the work); only candidates whose estimate lies within PREVIEW_MARGIN of the range are computed in
    # full and tested exactly. The field is smooth over ~17 px, so the estimate errs by far less than the
    # margin (tests), and the accepted masks are exactly those of testing every candidate in full.
    best, best_gap = None, math.inf  # the closest candidate so far, as (factors, index)
    tried = 0
    while tried < max_tries:
        n = min(_REGION_CANDIDATES_PER_DRAW, max_tries - tried)
        a_h, noise, a_w = _smooth_noise_factors(n, h, w, scale, generator)
        preview = a_h[:, ::PREVIEW_STRIDE] @ noise @ a_w[:, ::PREVIEW_STRIDE].transpose(1, 2)  # [n, h/4, w/4]
        estimate = (preview < density).flatten(1).float().mean(1).tolist()  # n floats
        for i in range(n):
            gap = max(low - estimate[i], estimate[i] - high)
            if gap < PREVIEW_MARGIN:
                candidate = (a_h[i] @ noise[i] @ a_w[i].T) < density  # [H, W]
                frac = int(candidate.count_nonzero()) / (h * w)
                if low < frac < high:
                    return candidate.unsqueeze(0)  # [1, H, W]
                gap = max(low - frac, frac - high)
            if gap < best_gap:
                best, best_gap = (a_h[i], noise[i], a_w[i]), gap
        tried += n
    a, m, b = best
    return ((a @ m @ b.T) < density).unsqueeze(0)  # [1, H, W]


def random_block_mask(
    size: int | Sequence[int],
    generator: torch.Generator | None = None,
    num_blocks: int = 4,
    max_coverage: float = 0.25,
    min_side_frac: float = 1.0,
) -> torch.Tensor:
    """Several smaller, possibly overlapping axis-aligned rectangles covering at most ``max_coverage``.

    PAPER.md §1.2: "several smaller, possibly overlapping blocks, covering up to 1/4 of the image". The
    paper gives no sizes. Each block's height is at most H·sqrt(max_coverage / num_blocks) and its width
    at most W·sqrt(max_coverage / num_blocks), so every block covers at most max_coverage / num_blocks
    of the image and their union at most ``max_coverage``: the bound holds by construction, with no
    rejection loop. Each side is drawn uniformly (independently) between ``min_side_frac`` × that maximum
    and the maximum; positions are uniform over the image.

    NOTE: block sizes and count are this suite's choice (the paper gives none). The default draws four
    equal squares of the largest allowed side (56 px at 227 px), so that blocks hide as much of the image
    as random regions do and the two masks differ in shape only: measured over 1000 masks at 227 px the
    union covers 21.4% on average (13–24%; random region: 21.6%) and is in more than one piece 87% of
    the time. ``min_side_frac=0.75`` gives varied rectangles of 42–56 px instead (17% on average).

    Args:
        size: image side, or (H, W).
        generator: source of randomness; ``None`` uses torch's global generator.
        num_blocks: number of rectangles.
        max_coverage: bound on the fraction of the image the union may cover.
        min_side_frac: smallest side as a fraction of the largest allowed side, in (0, 1].

    Returns:
        Bool tensor [1, H, W], True on the hole.
    """
    h, w = _hw(size)
    if num_blocks < 1 or not 0.0 < max_coverage <= 1.0 or not 0.0 < min_side_frac <= 1.0:
        raise ValueError(
            f"need num_blocks >= 1, 0 < max_coverage <= 1, 0 < min_side_frac <= 1; got "
            f"{num_blocks}, {max_coverage}, {min_side_frac}"
        )
    side_frac = math.sqrt(max_coverage / num_blocks)
    # floor keeps each block's area within max_coverage / num_blocks of the image.
    max_h, max_w = max(1, math.floor(h * side_frac)), max(1, math.floor(w * side_frac))
    min_h, min_w = max(1, round(min_side_frac * max_h)), max(1, round(min_side_frac * max_w))
    bh = torch.randint(min_h, max_h + 1, (num_blocks,), generator=generator)  # [B]
    bw = torch.randint(min_w, max_w + 1, (num_blocks,), generator=generator)  # [B]
    # Top-left corners uniform over the positions where the block fits.
    u = torch.rand(2, num_blocks, generator=generator)  # [2, B]
    top = (u[0] * (h - bh + 1)).long()  # [B]
    left = (u[1] * (w - bw + 1)).long()  # [B]
    rows, cols = torch.arange(h), torch.arange(w)
    in_rows = (rows >= top[:, None]) & (rows < (top + bh)[:, None])  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + bw)[:, None])  # [B, W]
    return (in_rows[:, :, None] & in_cols[:, None, :]).any(0, keepdim=True)  # [1, H, W]


def center_mask(
    size: int | Sequence[int], generator: torch.Generator | None = None, area: float = 0.25
) -> torch.Tensor:
    """One central rectangle covering ``area`` of the image (a square of side round(size/2) by default).

    PAPER.md §1.2: the centre hole is one central square of 1/4 of the area (the public code's 64×64
    centre of a 128×128 image). Sides are round(H·sqrt(area)) × round(W·sqrt(area)) (Python's round,
    half to even), placed at ((H - side) // 2, (W - side) // 2): at 227 px a 114×114 hole at rows and
    columns 56…169, 25.2% of the image.

    Args:
        size: image side, or (H, W).
        generator: unused (the centre mask is deterministic); accepted so every mask has one signature.
        area: fraction of the image to cover, in (0, 1].

    Returns:
        Bool tensor [1, H, W], True on the hole.
    """
    del generator  # deterministic
    h, w = _hw(size)
    if not 0.0 < area <= 1.0:
        raise ValueError(f"area must lie in (0, 1], got {area}")
    sh, sw = round(h * math.sqrt(area)), round(w * math.sqrt(area))
    top, left = (h - sh) // 2, (w - sw) // 2
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[:, top : top + sh, left : left + sw] = True
    return mask


def no_mask(size: int | Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
    """No hole at all: the autoencoder baseline reconstructs the whole input (PAPER.md §2).

    Returns:
        Bool tensor [1, H, W], all False.
    """
    del generator  # deterministic
    h, w = _hw(size)
    return torch.zeros(1, h, w, dtype=torch.bool)


MASK_GENERATORS: dict[str, MaskFn] = {
    "random_region": random_region_mask,
    "random_block": random_block_mask,
    "center": center_mask,
    "none": no_mask,
}
MASK_TYPES: tuple[str, ...] = tuple(MASK_GENERATORS)


def mask_options(kind: str) -> tuple[str, ...]:
    """Names of the keyword options ``make_mask`` accepts for ``kind`` (everything but size, generator)."""
    if kind not in MASK_GENERATORS:
        raise ValueError(f"unknown mask kind {kind!r}; valid kinds: {', '.join(MASK_TYPES)}")
    params = inspect.signature(MASK_GENERATORS[kind]).parameters
    return tuple(p for p in params if p not in ("size", "generator"))


def make_mask(
    kind: str, size: int | Sequence[int], generator: torch.Generator | None = None, **options: object
) -> torch.Tensor:
    """Draw one mask of the named kind.

    Args:
        kind: one of ``MASK_TYPES``.
        size: image side, or (H, W).
        generator: source of randomness (ignored by ``center`` and ``none``).
        **options: keyword options of that kind's generator (e.g. ``coverage`` for random_region).

    Returns:
        Bool tensor [1, H, W], True on the hole.

    Raises:
        ValueError: on an unknown kind or an option that kind does not take.
    """
    # Options are checked only when given: inspecting the signature costs ~0.1 ms, a fifth of a mask.
    if options or kind not in MASK_GENERATORS:
        allowed = mask_options(kind)  # raises on an unknown kind, naming the valid ones
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for mask {kind!r}; "
                f"valid options: {', '.join(allowed) or '(none)'}"
            )
    return MASK_GENERATORS[kind](size, generator, **options)


def fill_holes(
    images: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """Replace the hole pixels by a constant colour; visible pixels are returned unchanged.

    The paper fills the hole with the mean pixel (PAPER.md §1.1, ``2*{117,104,123}/255-1`` in the
    public code's [-1, 1] units); here ``fill`` is that mean in the images' own normalised units.

    Args:
        images: float [N, 3, H, W] (or one image [3, H, W]).
        masks: bool [N, 1, H, W] (or [1, H, W]), True on the hole.
        fill: per-channel value, shape (3,).

    Returns:
        A new tensor shaped like ``images``; the inputs are not modified.
    """
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be a bool tensor, got {masks.dtype}")
    if masks.shape[-3] != 1 or masks.shape[-2:] != images.shape[-2:] or masks.dim() != images.dim():
        raise ValueError(f"masks {tuple(masks.shape)} do not fit images {tuple(images.shape)}")
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device).view(-1, 1, 1)  # [3, 1, 1]
    if fill.shape[0] != images.shape[-3]:
        raise ValueError(f"fill has {fill.shape[0]} values for {images.shape[-3]} channels")
    return torch.where(masks, fill, images)  # [N, 3, H, W]
