"""Masked reconstruction loss of the context encoder (PAPER.md §1.2: "masked L2 normalised over the hole").

Weights per pixel: 1 on the hole, ``overlap_weight`` on visible pixels within ``overlap`` px of the hole
(the semantic-inpainting net's 10×-weighted ring, PAPER.md §1.1), 0 elsewhere; a sample with no hole
(the autoencoder baseline) weighs every pixel 1. Each sample's loss is its weighted mean error; the
batch loss is the plain mean of the samples' losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_KINDS = ("l2", "l1")


def reconstruction_weights(
    mask: torch.Tensor, overlap: int = 0, overlap_weight: float = 10.0
) -> torch.Tensor:
    """Per-pixel loss weights: 1 on the hole, ``overlap_weight`` on the ring around it, 0 elsewhere.

    Args:
        mask: bool [N, 1, H, W], True on the hole.
        overlap: width in px of the visible ring around the hole that is also reconstructed
            (Chebyshev distance, i.e. a square neighbourhood, as the public code's ring around its
            square hole). A sample with an empty mask ignores it.
        overlap_weight: weight of the ring pixels.

    Returns:
        Float32 [N, 1, H, W] weights on the mask's device; every sample has a positive total.
    """
    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be bool [N, 1, H, W], got {mask.dtype} {tuple(mask.shape)}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    hole = mask.float()  # [N, 1, H, W]
    weight = hole.clone()
    if overlap > 0:
        # Beyond the image size the ring cannot grow, and a smaller kernel keeps the pooling cheap.
        r = min(overlap, max(mask.shape[-2:]))
        # Separable max-pool = dilation by a (2r+1)² square: O(r) per pixel instead of O(r²).
        grown = F.max_pool2d(hole, (2 * r + 1, 1), stride=1, padding=(r, 0))
        grown = F.max_pool2d(grown, (1, 2 * r + 1), stride=1, padding=(0, r))  # [N, 1, H, W]
        weight = weight + overlap_weight * (grown - hole)
    # No hole (autoencoder, mask "none"): reconstruct the whole input. torch.where, not indexing, so a
    # GPU batch needs no host sync.
    empty = ~mask.flatten(1).any(1)  # [N]
    return torch.where(empty.view(-1, 1, 1, 1), torch.ones_like(weight), weight)  # [N, 1, H, W]


def masked_reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    kind: str = "l2",
    overlap: int = 0,
    overlap_weight: float = 10.0,
) -> torch.Tensor:
    """Weighted per-pixel reconstruction error, normalised per sample, averaged over the batch.

    The per-pixel error (squared for ``l2``, absolute for ``l1``) is averaged over channels and weighed
    by ``reconstruction_weights``; each sample's loss is divided by that sample's total weight (so with
    ``overlap=0`` it is the mean error over the hole), and the batch loss is the mean of the samples'.
    Pixels of weight 0 get exactly zero gradient.

    Per-sample normalisation is deliberate: a sample's loss does not depend on which other samples share
    its batch. With DDP, each rank's loss is the mean over its own samples and DDP averages the ranks'
    gradients, which (with equal per-rank batch sizes, as ``EpochSampler`` and ``DistributedSampler``
    give) is exactly the gradient of this loss on the combined batch in one process. Normalising by the
    batch's total hole area instead would make the result depend on how samples are split across ranks,
    since holes differ in size (random region masks cover 20–30%).

    NOTE: the public code uses Torch7's MSECriterion, a mean over all elements of the predicted region
    (the 64×64 centre plus ring, or the whole image in train_random.lua); for a fixed centre hole that is
    this loss times a constant, so only the scale differs. For holes of varying area this divides by the
    sample's own hole, which is what the paper's "normalised over the hole" says.
    NOTE: the public train_random.lua's ``useOverlapPred`` puts weight 10 on EVERY visible pixel; that
    is ``overlap`` >= the image size here.

    Args:
        pred: [N, 3, H, W] reconstruction.
        target: [N, 3, H, W] original image.
        mask: bool [N, 1, H, W], True on the hole; ``None`` or an all-False sample means that sample's
            whole image is reconstructed with weight 1.
        kind: ``"l2"`` (paper default) or ``"l1"`` (an author's reply; "no significant difference").
        overlap: width in px of the visible ring around the hole that is also reconstructed.
        overlap_weight: weight of the ring pixels (10 in the public code).

    Returns:
        Scalar float32 tensor.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; valid kinds: {', '.join(LOSS_KINDS)}")
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be equal [N, C, H, W]"
        )
    n, _, h, w = pred.shape
    if mask is None:
        mask = torch.zeros(n, 1, h, w, dtype=torch.bool, device=pred.device)  # no hole: whole image
    elif mask.shape[0] != n or mask.shape[-2:] != (h, w):
        raise ValueError(f"mask {tuple(mask.shape)} does not fit pred {tuple(pred.shape)}")
    # float32 so that bf16/fp16 predictions under autocast do not lose the loss's precision.
    diff = pred.float() - target.float()  # [N, C, H, W]
    err = diff.square() if kind == "l2" else diff.abs()
    err = err.mean(1, keepdim=True)  # [N, 1, H, W]
    weight = reconstruction_weights(mask, overlap, overlap_weight)  # [N, 1, H, W]
    per_sample = (weight * err).flatten(1).sum(1) / weight.flatten(1).sum(1)  # [N]
    return per_sample.mean()
