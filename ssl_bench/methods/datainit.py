"""Data-dependent initialisation (Krähenbühl et al. 2016, "magic init"; PAPER.md §2) on real batches.

Two stages, both on a handful of real (unlabelled) batches:

1. **Within-layer**: layer by layer, scale each output channel so its pre-activation has unit variance
   on real images; biases are set to ``bias`` (0.1, PAPER.md §2: "bias 0.1 where used").
2. **Between-layer**: rescale whole layers so that every layer's gradient-to-weight ratio
   ``E‖∇W_k‖² / ‖W_k‖²`` is equal (their geometric mean), under a random linear loss on pool5. A layer
   scaled by c (weights and bias) and its successor's weights by 1/c leave a ReLU network's function
   unchanged while moving the ratio by 1/c², so ``c_k = (r_k / r̄)^(α/2)`` with damping α.

NOTE: LRN is not positively homogeneous, so stage 2 preserves the function only approximately in
CaffeNet (LRN's alpha=1e-4 keeps the effect small). The original code also offers k-means / PCA
weights for the random draw; we start from the Gaussian init only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ssl_bench.encoders import create_encoder
from ssl_bench.encoders.init import gaussian_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method


def _pre_activations(encoder: nn.Module, conv: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().clone()))
    try:
        encoder(images)
    finally:
        handle.remove()
    return captured[0]  # [N, C, H, W], before ReLU (the encoder's ReLU is applied after the hook)


@torch.no_grad()
def within_layer_init_(
    encoder: nn.Module, images: torch.Tensor, bias: float = 0.1, eps: float = 1e-8
) -> None:
    """Scale each conv's output channels to unit pre-activation variance on ``images``; set biases."""
    for conv in encoder.conv_layers():
        if conv.bias is not None:
            conv.bias.zero_()
        pre = _pre_activations(encoder, conv, images)  # [N, C, H, W]
        std = pre.transpose(0, 1).flatten(1).std(dim=1)  # [C]
        conv.weight.div_(std.clamp_min(eps).view(-1, 1, 1, 1))
        if conv.bias is not None:
            conv.bias.fill_(bias)


def between_layer_rescale_(
    encoder: nn.Module, images: torch.Tensor, iterations: int = 10, alpha: float = 0.25, seed: int = 0
) -> list[float]:
    """Equalise gradient-to-weight ratios across conv layers; returns the final ratios' spread (max/min)."""
    convs = encoder.conv_layers()
    g = torch.Generator().manual_seed(seed)
    spreads: list[float] = []
    for _ in range(iterations):
        encoder.zero_grad(set_to_none=True)
        out = encoder(images)  # [N, 256, s, s]
        projection = torch.randn(out.shape[1:], generator=g).to(out)
        (out * projection).sum().div(out.shape[0]).backward()
        ratios = torch.stack([c.weight.grad.pow(2).sum() / c.weight.pow(2).sum() for c in convs]).detach()
        spreads.append(float(ratios.max() / ratios.min()))
        target = ratios.log().mean().exp()  # geometric mean
        scales = (ratios / target).pow(alpha / 2)
        with torch.no_grad():
            for k, (conv, c) in enumerate(zip(convs, scales.tolist(), strict=True)):
                conv.weight.mul_(c)
                if conv.bias is not None:
                    conv.bias.mul_(c)
                if k + 1 < len(convs):
                    convs[k + 1].weight.div_(c)
    encoder.zero_grad(set_to_none=True)
    return spreads


@register_method("datainit")
class DataDependentInit(PretrainMethod):
    """Krähenbühl data-dependent init of the encoder; no gradient training ("pretraining time: minutes").

    Args:
        num_images: real images used for the statistics (the whole first batches of the pipeline).
        bias: bias value after the within-layer stage.
        between_layer_iterations: 0 disables the between-layer stage.
    """

    supervision = "initialisation (data-dependent)"
    table_order = 3

    trains = False

    def __init__(
        self,
        encoder: str = "caffenet",
        image_size: int = 227,
        num_images: int = 256,
        bias: float = 0.1,
        between_layer_iterations: int = 10,
        alpha: float = 0.25,
    ) -> None:
        super().__init__()
        self.encoder = gaussian_init_(create_encoder(encoder))
        self.num_images, self.bias = num_images, bias
        self.iterations, self.alpha = between_layer_iterations, alpha
        self.spreads: list[float] = []

    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        chunks, n = [], 0
        for batch in batches:
            chunks.append(batch["image"])
            n += batch["image"].shape[0]
            if n >= self.num_images:
                break
        if not chunks:
            raise ValueError("datainit needs at least one batch of real images")
        images = torch.cat(chunks)[: self.num_images]  # [n, 3, H, W]
        was_training = self.encoder.training
        self.encoder.eval()
        within_layer_init_(self.encoder, images, bias=self.bias)
        if self.iterations > 0:
            self.spreads = between_layer_rescale_(self.encoder, images, self.iterations, self.alpha)
        self.encoder.train(was_training)
