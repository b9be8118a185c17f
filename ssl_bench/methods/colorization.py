"""Colorization as a pretext task (Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016).

The net sees the lightness L of an image and predicts, at every position of a low-resolution grid, a
distribution over quantised ab colours; the loss is a class-rebalanced multinomial cross-entropy against a
soft encoding of the true ab. Architecture, at a 227-px input::

    image [N,3,227,227] (RGB, normalised) → Lab (kornia.color.rgb_to_lab)            [N, 3, 227, 227]
      L/100 replicated to three channels, normalised like an image (a gray image)    [N, 3, 227, 227]
      → CaffeNet conv1…conv5                                                         [N, 256, 13, 13]
      → 3×3 conv, ReLU                                                               [N, 256, 13, 13]
      → two 4×4 stride-2 up-convolutions, ReLU                                       [N, 128, 52, 52]
      → 1×1 conv: logits over the Q in-gamut ab bins                                 [N, Q, 52, 52]
    target: ab subsampled to the prediction's grid (about 1/4 of the input side), soft-encoded
    loss:   Σ_q −Z_q log Ẑ_q per position, weighted by v(nearest bin), mean per sample, mean over the batch

Sources: the paper (§2.1–2.2) and the authors' released Caffe code (``richzhang/colorization``:
``models/colorization_train_val_v2.prototxt``, ``train/solver.prototxt``,
``resources/caffe_traininglayers.py``).

Quantisation (§2.1): ab space on a grid of 10, keeping the in-gamut bins. Zhang et al. have Q = 313; here
the in-gamut set is computed (``in_gamut_ab_bins``) as the bins hit by a dense sRGB grid (64 levels per
channel, 262,144 colours, converted by kornia): **Q = 261**, the same set as all 256³ 8-bit colours give.
NOTE: 261, not 313 bins. The authors' file of bin centres is named ``pts_in_hull``: their set is
presumably the bins inside the convex hull of the gamut, which adds bins no sRGB colour falls in; such bins
never occur as targets, so leaving them out changes nothing but the output width.
Soft encoding (§2.1): the 5 nearest bins, Gaussian weights of σ = 5.
NOTE: the released training layer (``NNEncLayer``) uses 10 nearest bins; we follow the paper's 5.

Class rebalancing (§2.2): ``w ∝ ((1 − λ)·p̃ + λ/Q)⁻¹`` with λ = 0.5, normalised so ``E_p̃[w] = 1``, where p̃
is the empirical bin prior smoothed by a Gaussian of σ = 5 over the bin centres; a position's weight is that
of its nearest bin.
NOTE: Zhang et al. estimate the prior once, on the whole ImageNet training set. Here it is a running
estimate over the training batches: the method counts every target position's nearest bin (a persistent
buffer ``bin_counts``, saved in checkpoints so ``--resume`` continues it). A step's weights come from the
batches *before* it (the current batch is counted after its loss), so the first step is unweighted and
the prior settles within the first few steps (one 128-px batch of 32 holds ~18k target positions).
This couples batches over time, not the samples of one batch: given the prior, the loss is a mean of
per-sample losses. Under DDP the batch counts are summed over all processes (``all_reduce``), so every
process holds the prior one process would hold on the combined batches, and DDP equals one process.
Gray images (no |a| or |b| above 5 anywhere) get weight 0 and are not counted, as the released code's
``NonGrayMaskLayer`` does (the paper does not mention it).

Input channels and evaluation: the encoder keeps CaffeNet's three input channels, so its ``encoder.pt``
loads (strictly) into every evaluator of the suite. It is trained on gray images (L replicated to three
channels, each normalised with that channel's ImageNet mean/std, as ``data/transforms.py`` does for RGB).
NOTE: Zhang et al.'s transfer net has a one-channel conv1 and is evaluated on the L channel only (colour
is never seen). The suite's evaluators are shared by all methods and feed RGB images: this encoder,
trained on gray, sees colour at evaluation (its conv1 filters weigh R, G and B as they were initialised
and trained on equal inputs). Fine-tuning evaluators adapt conv1; frozen probes see the mismatch.

NOTE: Zhang et al.'s colorization net is VGG-style (eight blocks, dilated convolutions, batch norm); for
feature transfer they train AlexNet on this loss (its exact head is **unverified** here). We keep the
suite's CaffeNet encoder and add the small head drawn above, from conv5 (13×13 at 227 px; pool5 at 6×6
or smaller would give too coarse a colour map).
NOTE: the target ab is *subsampled* (nearest) to the prediction's grid, as the released net does (a
stride-4 subsampling, ``data_ab_ss``); here the factor is (input side)/(4 · conv5 side), about 4 to 5.
NOTE: the per-position loss is averaged (per sample, then over the batch). The released code weights only
the gradient (``ClassRebalanceMultLayer``), so its logged loss is unweighted: we log that as
``cross_entropy`` next to the weighted ``loss`` (whose scale moves while the prior settles).
"""

from __future__ import annotations

import functools

import torch
import torch.distributed as dist
import torch.nn.functional as F
from kornia.color import rgb_to_lab
from torch import nn

from ssl_bench.data.transforms import denormalize, normalize
from ssl_bench.encoders import create_encoder
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.errors import RecipeError
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method

# Zhang et al. 2016, §2.1–2.2.
AB_GRID = 10.0  # quantisation step of the ab plane
SOFT_NEIGHBOURS = 5  # soft encoding: the 5 nearest bins …
SOFT_SIGMA = 5.0  # … weighted by a Gaussian of σ = 5
PRIOR_SIGMA = 5.0  # Gaussian smoothing of the empirical bin prior
REBALANCE_LAMBDA = 0.5  # mix of the smoothed prior with the uniform distribution
GRAY_THRESHOLD = 5.0  # an image is gray when no |a|, |b| exceeds this (released code, NonGrayMaskLayer)
# sRGB levels per channel of the grid that finds the in-gamut bins: 64 give the same 261 bins as all 256
# 8-bit levels (checked once; 15 s instead of 0.3 s). 128 levels add one bin, (20, −80), that only
# colours between 8-bit levels reach.
GAMUT_LEVELS = 64


def image_to_lab(image: torch.Tensor) -> torch.Tensor:
    """Normalised RGB images [N, 3, H, W] → CIE Lab [N, 3, H, W] (L in [0, 100]; a, b about ±110).

    kornia's conversion (sRGB, D65 white); computed in float32 whatever the autocast state.
    """
    with torch.autocast(image.device.type, enabled=False):
        return rgb_to_lab(denormalize(image.float()))


def gray_input(lab: torch.Tensor) -> torch.Tensor:
    """Lab [N, 3, H, W] → the encoder's input: L/100 replicated to three channels, normalised [N, 3, H, W]."""
    lightness = lab[:, :1] / 100.0  # [N, 1, H, W] in [0, 1]
    return normalize(lightness.expand(-1, 3, -1, -1))


@functools.cache
def _in_gamut_ab_bins(grid: float, levels: int) -> torch.Tensor:
    v = torch.linspace(0.0, 1.0, levels)
    r, g, b = torch.meshgrid(v, v, v, indexing="ij")
    rgb = torch.stack([r, g, b]).reshape(1, 3, -1, 1)  # [1, 3, levels³, 1]
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T  # [levels³, 2]
    hit = torch.unique(torch.floor(ab / grid + 0.5), dim=0)  # [Q, 2] bin indices, sorted by a then b
    return hit * grid


def in_gamut_ab_bins(grid: float = AB_GRID, levels: int = GAMUT_LEVELS) -> torch.Tensor:
    """Centres [Q, 2] (a, b) of the ab bins (a grid of ``grid``) that a colour of a dense sRGB grid falls in.

    Q = 261 for a grid of 10 (Zhang et al.: 313, see the module docstring). Computed once per process.
    """
    return _in_gamut_ab_bins(grid, levels).clone()


def soft_encode(
    ab: torch.Tensor, centres: torch.Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA
) -> torch.Tensor:
    """ab values [P, 2] → distributions [P, Q] over the bins: the ``neighbours`` nearest, Gaussian weights."""
    distance = torch.cdist(ab, centres)  # [P, Q]
    near, index = distance.topk(neighbours, dim=1, largest=False)  # [P, k]
    weight = torch.exp(-near.square() / (2 * sigma**2))
    weight = weight / weight.sum(dim=1, keepdim=True)
    return torch.zeros_like(distance).scatter_(1, index, weight)


def decode_expectation(distribution: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Distributions [P, Q] → the expected ab [P, 2] (a one-hot decodes to its bin centre)."""
    return distribution @ centres


def rebalancing_weights(
    counts: torch.Tensor,
    centres: torch.Tensor,
    lam: float = REBALANCE_LAMBDA,
    sigma: float = PRIOR_SIGMA,
) -> torch.Tensor:
    """Per-bin weights [Q] from bin counts [Q]: ``w ∝ ((1 − λ)·p̃ + λ/Q)⁻¹`` with ``Σ p̃·w = 1``.

    p̃ is the empirical prior ``counts / Σ counts`` smoothed by a Gaussian of ``sigma`` over the bin centres
    (Zhang et al. §2.2). With no counts yet every weight is 1; λ = 1 gives 1 everywhere too (no rebalancing).
    """
    q = centres.shape[0]
    if int(counts.sum()) == 0:
        return torch.ones(q, device=centres.device)
    prior = counts.double() / counts.sum()  # [Q]
    c = centres.double()
    kernel = torch.exp(-torch.cdist(c, c).square() / (2 * sigma**2))  # [Q, Q]
    smoothed = kernel @ prior
    smoothed = smoothed / smoothed.sum()
    weight = 1.0 / ((1.0 - lam) * smoothed + lam / q)
    weight = weight / (smoothed * weight).sum()
    return weight.float()


@register_method("colorization")
class Colorization(PretrainMethod):
    """CaffeNet on gray images + a small head predicting a distribution over ab bins (Zhang et al. 2016).

    Args:
        image_size: training crop side, from the data (the released training net crops 176 px); nothing
            here depends on it: the prediction grid follows conv5 (4 × its side) at any size ≥ 67 px.
        encoder: ``caffenet`` or ``caffenet_bn`` (any encoder with a ``conv5`` tap).
        head_width: width of the head's up-convolutions (its 3×3 conv keeps conv5's 256 channels).
        rebalance_lambda: λ of the class rebalancing (0.5 in the paper; 1 turns rebalancing off).
        encoder_init_std: N(0, std²) for the encoder's weights instead of He-normal (None), as the
            context encoder's option of the same name.

    The loss needs no random choices (no ``sample_seed``); given ``bin_counts`` it is a per-sample mean.
    """

    supervision = "colour"

    def __init__(
        self,
        image_size: int = 227,
        encoder: str = "caffenet",
        head_width: int = 128,
        rebalance_lambda: float = REBALANCE_LAMBDA,
        encoder_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= rebalance_lambda <= 1.0:
            raise ValueError(f"rebalance_lambda must lie in [0, 1], got {rebalance_lambda}")
        self.encoder = create_encoder(encoder)
        if "conv5" not in getattr(self.encoder, "taps", ()):
            raise RecipeError(f"colorization needs an encoder with a conv5 tap (caffenet), not '{encoder}'")
        self.rebalance_lambda = rebalance_lambda
        self.register_buffer("centres", in_gamut_ab_bins(), persistent=False)  # [Q, 2]
        q = self.centres.shape[0]
        # Target positions counted per nearest bin over all training batches so far (the running prior).
        self.register_buffer("bin_counts", torch.zeros(q, dtype=torch.long))  # [Q]
        c = self.encoder.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, head_width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(head_width, head_width, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_width, q, 1),
        )
        kaiming_init_(self)
        if encoder_init_std is not None:
            gaussian_init_(self.encoder, encoder_init_std)

    def logits(self, lab: torch.Tensor) -> torch.Tensor:
        """Lab images [N, 3, H, W] → bin logits [N, Q, h, w] from their L channel (h = 4 · conv5 side)."""
        features = self.encoder(gray_input(lab), taps=("conv5",))["conv5"]  # [N, 256, s, s]
        return self.head(features).float()  # [N, Q, 4s, 4s]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            lab = image_to_lab(batch["image"])  # [N, 3, H, W]
        logits = self.logits(lab)  # [N, Q, h, w]
        n, q, h, w = logits.shape
        with torch.no_grad():
            ab = F.interpolate(lab[:, 1:], size=(h, w), mode="nearest")  # [N, 2, h, w] subsampled
            colourful = (ab.abs() > GRAY_THRESHOLD).flatten(1).any(dim=1)  # [N]; gray images weigh 0
            target = soft_encode(ab.permute(0, 2, 3, 1).reshape(-1, 2), self.centres)  # [P, Q], P = N·h·w
            nearest = target.argmax(dim=1)  # [P]
            weight = rebalancing_weights(self.bin_counts, self.centres, self.rebalance_lambda)[nearest]  # [P]
        log_p = F.log_softmax(logits.permute(0, 2, 3, 1).reshape(-1, q), dim=1)  # [P, Q]
        cross_entropy = -(target * log_p).sum(dim=1).view(n, h * w)  # [N, h·w]
        per_sample = (cross_entropy * weight.view(n, h * w)).mean(dim=1) * colourful  # [N]
        loss = per_sample.mean()
        hit = log_p.detach().argmax(dim=1) == nearest  # [P]: the top bin is the true colour's bin
        if self.training:
            self._count(nearest.view(n, h * w)[colourful].flatten())
        return {
            "loss": loss,
            "cross_entropy": cross_entropy.detach().mean(),  # unweighted, as the released code logs it
            "accuracy": hit.float().mean(),
        }

    @torch.no_grad()
    def _count(self, nearest: torch.Tensor) -> None:
        """Add this batch's nearest bins [P] to the running prior, summed over DDP processes."""
        counts = torch.bincount(nearest, minlength=self.bin_counts.numel())  # [Q] int64
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)  # every process then holds the prior of the combined batch
        self.bin_counts += counts
