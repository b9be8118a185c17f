"""Relative patch position (Doersch, Gupta & Efros, ICCV 2015, "Unsupervised Visual Representation Learning
by Context Prediction"; PAPER.md §2 and §4, the "relative context" row): which of its 8 neighbours is a patch?

Pretext, per training crop (one pair per crop)::

    crop [3,S,S] ── 3×3 grid of p-px patches, g px apart, each patch jittered by up to j px
      the centre patch and one of its 8 neighbours; the label is the neighbour's place:
            0 1 2
            3 · 4      (row-major, centre skipped: the order of ``pos2lbl`` in the authors' code)
            5 6 7
      each patch: sometimes downsampled and back up, resized to patch_input px, colour dropped
      (or projected / made gray), then mean/variance normalised on its own
      → CaffeNet conv1…pool5, shared by both patches  [2N, 256, s, s]   (s = 2 at patch_input 99)
      → fc6 per patch                                [2N, W]
      → concatenated (centre ‖ neighbour)            [N, 2W]
      → fc7 [N, W] → fc8 [N, W] → fc9 [N, 8]         (late fusion, the paper's Fig. 3; the authors' code)
    loss: 8-way cross-entropy; logged: "accuracy" (chance = 1/8)

Every random choice of a sample (label, grid place, jitter, downsampling, colour) is drawn from the generator
of its ``sample_seed``, so the loss is a mean of per-sample terms, unless batch norm (``head_batch_norm``, a
``caffenet_bn`` encoder) couples the samples of a batch through its statistics, as in any BN network (DDP
then normalises per process, like the authors' single-GPU batches of 512 patches).

The authors' public code (``cdoersch/deepcontext``, ``train.py``: "significantly refactored from what was
used to produce the results in the paper") is the source of the numbers the paper text leaves out; it is
cited as "the authors' code" below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.data.transforms import denormalize
from ssl_bench.encoders import create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.methods.base import PretrainMethod, per_sample_generators
from ssl_bench.methods.registry import register_method

# The paper's grid: 96-px patches, 48 px apart, each jittered by up to 7 px, in images resized to
# 150k–450k pixels. Spanning 3·96 + 2·48 + 2·7 = 398 px, it does not fit a 227-px crop: by default the
# grid keeps these proportions at the largest size that fits the crop (54 / 27 / 3 px at 227 px).
PAPER_PATCH, PAPER_GAP, PAPER_JITTER = 96, 48, 7

# (row, column) offset of the neighbour from the centre patch, indexed by label: row-major, centre skipped.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

# The authors' code downsamples a third of the patches to a side drawn between 10 px (the paper's "as
# little as 100 total pixels") and 95 px, i.e. between 10/96 and 95/96 of the patch side.
DOWNSAMPLE_MIN_FRACTION = 10 / PAPER_PATCH

# The "green-magenta" colour axis of the paper's colour projection (RGB).
GREEN_MAGENTA = (-1.0, 2.0, -1.0)
# Luminance weights (ITU-R BT.601, as PIL's "L" mode) for colour: gray.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)

COLOUR_MODES = ("drop", "project", "gray", "none")


@dataclass(frozen=True)
class PatchGrid:
    """The 3×3 grid's patch side, the gap between patches and the largest jitter, in pixels of the crop."""

    patch: int
    gap: int
    jitter: int

    @property
    def stride(self) -> int:
        """Distance between the top-left corners of two adjacent cells."""
        return self.patch + self.gap

    @property
    def span(self) -> int:
        """Side the grid needs, jitter included."""
        return 3 * self.patch + 2 * self.gap + 2 * self.jitter


def patch_grid(
    image_size: int, patch: int | None = None, gap: int | None = None, jitter: int | None = None
) -> PatchGrid:
    """The grid for a crop of ``image_size`` px: the paper's 96/48/7 proportions scaled to fit (each value
    rounded down), or the sizes given. 54/27/3 at 227 px, 30/15/2 at 128 px, 23/11/1 at 99 px."""
    scale = image_size / (3 * PAPER_PATCH + 2 * PAPER_GAP + 2 * PAPER_JITTER)
    grid = PatchGrid(
        patch=int(PAPER_PATCH * scale) if patch is None else patch,
        gap=int(PAPER_GAP * scale) if gap is None else gap,
        jitter=int(PAPER_JITTER * scale) if jitter is None else jitter,
    )
    if grid.patch < 1 or grid.gap < 0 or grid.jitter < 0:
        raise ValueError(f"patch grid {grid} needs patch ≥ 1, gap ≥ 0 and jitter ≥ 0")
    if grid.span > image_size:
        raise ValueError(
            f"a 3×3 grid of {grid.patch}-px patches {grid.gap} px apart with {grid.jitter} px jitter spans "
            f"{grid.span} px, more than the {image_size}-px crop"
        )
    return grid


def _randint(low: int, high: int, g: torch.Generator) -> int:
    """Uniform integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (), generator=g))


def pair_corners(
    grid: PatchGrid, height: int, width: int, label: int, g: torch.Generator
) -> list[tuple[int, int]]:
    """(y, x) top-left corners of the centre patch and of its neighbour ``label``.

    The grid is placed at a random spot of the image where every jittered patch stays inside (the authors'
    code draws the grid's start at random too); each patch then moves by up to ``grid.jitter`` px in y and x.
    """
    core = 3 * grid.patch + 2 * grid.gap  # the grid without jitter
    if core + 2 * grid.jitter > min(height, width):
        raise ValueError(
            f"a {height}×{width} image is smaller than the patch grid {grid} (needs {grid.span} px)"
        )
    top = _randint(grid.jitter, height - core - grid.jitter, g)
    left = _randint(grid.jitter, width - core - grid.jitter, g)
    dy, dx = NEIGHBOURS[label]
    corners = []
    for row, col in ((1, 1), (1 + dy, 1 + dx)):  # centre, then neighbour
        y = top + row * grid.stride + _randint(-grid.jitter, grid.jitter, g)
        x = left + col * grid.stride + _randint(-grid.jitter, grid.jitter, g)
        corners.append((y, x))
    return corners


def crop_pair(image: torch.Tensor, grid: PatchGrid, label: int, g: torch.Generator) -> torch.Tensor:
    """image [3, H, W] → the centre patch and its neighbour ``label``, [2, 3, p, p]."""
    p = grid.patch
    corners = pair_corners(grid, image.shape[-2], image.shape[-1], label, g)
    return torch.stack([image[:, y : y + p, x : x + p] for y, x in corners])


def _resize(patches: torch.Tensor, side: int) -> torch.Tensor:
    """[N, C, h, w] → [N, C, side, side], bilinear (antialiased when shrinking)."""
    return F.interpolate(patches, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def random_downsample(patch: torch.Tensor, probability: float, g: torch.Generator) -> torch.Tensor:
    """[3, p, p] → [3, p, p]: with ``probability``, shrunk to a side whose pixel count is uniform between
    (10/96 · p)² and (p − 1)², then resized back (the authors' code; the paper: "as little as 100 total
    pixels"), so that fine detail is not a reliable cue."""
    if float(torch.rand((), generator=g)) >= probability:
        return patch
    p = patch.shape[-1]
    low, high = max(1, round(DOWNSAMPLE_MIN_FRACTION * p)), max(1, p - 1)
    side = int(math.sqrt(float(torch.rand((), generator=g)) * (high**2 - low**2) + low**2))
    return _resize(_resize(patch[None], side), p)[0]


def drop_colour(
    patches: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor, noise_ratio: float
) -> torch.Tensor:
    """The paper's "colour dropping": in each patch one channel is kept and the two others are replaced by
    Gaussian noise with ``noise_ratio`` × the kept channel's standard deviation.

    Args:
        patches: [M, 3, P, P].
        keep: [M] the channel each patch keeps (0, 1 or 2).
        noise: [M, 3, P, P] standard normal draws (the kept channel's are unused).
    """
    kept = patches[torch.arange(patches.shape[0], device=patches.device), keep]  # [M, P, P]
    scale = noise_ratio * kept.flatten(1).std(dim=1)  # [M]
    is_kept = F.one_hot(keep, 3).bool()[:, :, None, None]  # [M, 3, 1, 1]
    return torch.where(is_kept, patches, noise * scale[:, None, None, None])


def project_colour(patches: torch.Tensor) -> torch.Tensor:
    """[.., 3, H, W] → the same with the green-magenta component removed: every pixel times
    A = I − bᵀb / (b bᵀ), b = [−1, 2, −1] (the paper's colour "projection")."""
    b = torch.tensor(GREEN_MAGENTA, dtype=patches.dtype, device=patches.device)
    a = torch.eye(3, dtype=patches.dtype, device=patches.device) - torch.outer(b, b) / b.dot(b)  # [3, 3]
    return torch.einsum("ij,...jhw->...ihw", a, patches)


def to_gray(patches: torch.Tensor) -> torch.Tensor:
    """[.., 3, H, W] → luminance in all three channels [.., 3, H, W]."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=patches.dtype, device=patches.device)
    gray = torch.einsum("c,...chw->...hw", w, patches).unsqueeze(-3)  # [.., 1, H, W]
    return gray.expand_as(patches).contiguous()


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """[N, 3, H, W] → each patch minus its per-channel mean, divided by its root-mean-square over all
    channels (the authors' code), so that brightness and contrast say nothing of where a patch was.

    NOTE: the authors' code then multiplies by 50, the spread of Caffe's 0–255 mean-subtracted inputs; the
    suite's inputs are ImageNet-normalised (about unit spread), so patches are left at unit spread.
    """
    centred = patches - patches.mean(dim=(-2, -1), keepdim=True)
    rms = centred.square().mean(dim=(-3, -2, -1), keepdim=True).sqrt()
    return centred / (rms + eps)


@register_method("relative_position")
class RelativePosition(PretrainMethod):
    """Predict which of the 8 neighbouring places of a 3×3 grid a patch came from, given the centre patch.

    Args:
        image_size: training crop side (from the data); sets the default patch grid.
        encoder: encoder architecture name (``caffenet``, or ``caffenet_bn`` with batch norm).
        patch_size / gap / jitter: the grid in crop pixels; None keeps the paper's 96 / 48 / 7 proportions
            at the largest size the crop holds (``patch_grid``).
        patch_input: side every patch is resized to before the encoder.
        colour: against chromatic aberration (the paper): ``drop`` (keep one channel, noise in the others; the
            authors' code), ``project`` (remove the green-magenta axis), ``gray`` (luminance) or ``none``.
        drop_noise: noise std of dropped channels as a fraction of the kept channel's (the paper: "~1/100").
        downsample_probability: share of patches downsampled and resized back (1/3 in the authors' code).
        head_width: fc6 / fc7 / fc8 width (4096 in the paper).
        head_batch_norm: batch norm without scale and shift (the paper) after fc6 and fc7 (the authors' code).
        encoder_init_std: N(0, std²) for the encoder's weights instead of He-normal (None), as the
            other methods' option of the same name.

    NOTE: the CaffeNet encoder needs at least 67 px and the default grid gives 23–54 px patches, so patches
    are resized up to ``patch_input`` (99 by default: pool5 is then 2×2, the size the paper's 96-px patches
    gave in the authors' modified AlexNet, whose conv1 was padded by 5; it also had no conv groups and batch
    norm on conv3–conv5 only). ``encoder.pt`` keeps the CaffeNet shape every evaluator loads.
    NOTE: one pair (centre + neighbour) per crop; the authors' code takes every adjacent pair of every grid
    it lays over an image (about 2,000 pairs from a batch of 512 patches).
    """

    supervision = "context"

    def __init__(
        self,
        image_size: int = 227,
        encoder: str = "caffenet",
        patch_size: int | None = None,
        gap: int | None = None,
        jitter: int | None = None,
        patch_input: int = 99,
        colour: str = "drop",
        drop_noise: float = 0.01,
        downsample_probability: float = 1 / 3,
        head_width: int = 4096,
        head_batch_norm: bool = True,
        encoder_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if colour not in COLOUR_MODES:
            raise ValueError(f"unknown colour '{colour}'; choose from {', '.join(COLOUR_MODES)}")
        if not 0.0 <= downsample_probability <= 1.0:
            raise ValueError(f"downsample_probability must be in [0, 1], not {downsample_probability}")
        self.grid = patch_grid(image_size, patch_size, gap, jitter)
        self.patch_input, self.colour = patch_input, colour
        self.drop_noise, self.downsample_probability = drop_noise, downsample_probability
        self.encoder = create_encoder(encoder)
        s = pool5_size(patch_input)  # raises below 67 px
        w = head_width

        def fc(n_in: int, n_out: int, batch_norm: bool) -> list[nn.Module]:
            norm = nn.BatchNorm1d(n_out, affine=False) if batch_norm else nn.Identity()
            return [nn.Linear(n_in, n_out), norm, nn.ReLU(inplace=True)]

        self.fc6 = nn.Sequential(nn.Flatten(), *fc(self.encoder.out_channels * s * s, w, head_batch_norm))
        self.fusion = nn.Sequential(
            *fc(2 * w, w, head_batch_norm),  # fc7, on the two patches' fc6 side by side
            *fc(w, w, False),  # fc8
            nn.Linear(w, len(NEIGHBOURS)),  # fc9: the 8 places
        )
        kaiming_init_(self)
        if encoder_init_std is not None:
            gaussian_init_(self.encoder, encoder_init_std)

    def make_pairs(
        self, images: torch.Tensor, generators: list[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops [N, 3, S, S] in [0, 1], one generator each → (patches for the encoder [2N, 3, P, P], ordered
        centre 0, neighbour 0, centre 1, neighbour 1, …; labels [N])."""
        crops, labels = [], []
        for image, g in zip(images, generators, strict=True):
            label = _randint(0, len(NEIGHBOURS) - 1, g)
            pair = crop_pair(image, self.grid, label, g)  # [2, 3, p, p]
            crops += [random_downsample(patch, self.downsample_probability, g) for patch in pair]
            labels.append(label)
        patches = _resize(torch.stack(crops), self.patch_input)  # [2N, 3, P, P]
        if self.colour == "drop":
            # each sample's own generator, continued, for its two patches: centre then neighbour
            keep = [_randint(0, 2, g) for g in generators for _ in range(2)]
            noise = [torch.randn(patches.shape[1:], generator=g) for g in generators for _ in range(2)]
            keep_t = torch.tensor(keep, device=patches.device)  # [2N]
            noise_t = torch.stack(noise).to(patches.device)  # [2N, 3, P, P]
            patches = drop_colour(patches, keep_t, noise_t, self.drop_noise)
        elif self.colour == "project":
            patches = project_colour(patches)
        elif self.colour == "gray":
            patches = to_gray(patches)
        return normalise_patches(patches), torch.tensor(labels, device=images.device)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = denormalize(batch["image"].float())  # [N, 3, S, S] in [0, 1]
        generators = per_sample_generators(batch["sample_seed"])
        patches, label = self.make_pairs(image, generators)  # [2N, 3, P, P], [N]
        n = label.shape[0]
        features = self.fc6(self.encoder(patches))  # [2N, W]
        pairs_side_by_side = features.reshape(n, -1)  # [N, 2W]: row i = fc6(centre i) ‖ fc6(neighbour i)
        logits = self.fusion(pairs_side_by_side).float()  # [N, 8]
        loss = F.cross_entropy(logits, label)
        accuracy = (logits.detach().argmax(1) == label).float().mean()
        return {"loss": loss, "accuracy": accuracy}
