"""Context encoder (feature-learning variant, PAPER.md §1.2) and its autoencoder baseline (§2).

Architecture, at a 227-px input::

    image [N,3,227,227] ── hole filled with the dataset mean
      → CaffeNet conv1…pool5            [N, 256, 6, 6]
      → channel-wise fully connected     [N, 256, 6, 6]   256·6⁴ = 331,776 weights
      → stride-1 conv (mixes channels)   [N, 256, 6, 6]
      → 5 up-convolutions (×2 each)      [N, 3, 192, 192]
      → bilinear resize to the input     [N, 3, 227, 227]
    loss: masked L2 (or L1) on the hole only, reconstruction only (no adversarial term)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.data.masks import MASK_TYPES, fill_holes
from ssl_bench.encoders import create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.losses import masked_reconstruction_loss
from ssl_bench.methods.registry import register_method

# NOTE: decoder widths and kernels are unverified in the paper (PAPER.md §1.2: "five up-convolutions,
# each followed by ReLU"). We use 4×4 stride-2 transposed convolutions (DCGAN-style, as in the
# authors' semantic-inpainting net) with halving widths.
DECODER_WIDTHS = (256, 128, 64, 32, 3)


class GroupedFC(nn.Conv2d):
    """The parameters of a grouped convolution with kernel n, m groups and m·n² outputs (the authors' recipe,
    PAPER.md §1.2), applied as one batched matrix product: m products of [N, n²] by [n², n²].

    The same function and the same weights (``weight`` [m·n², 1, n, n], ``bias`` [m·n²]: state dicts and the
    He init of ``kaiming_init_`` are unchanged), computed differently: oneDNN's backward of a convolution
    with one input channel per group ran at ~1/40 of its forward on an Intel AMX CPU in bf16 (28 ms of a
    237-ms step; ``bench speed``'s per-layer table), where ``baddbmm``'s backward is two more batched
    products. Input [N, m, n, n] → output [N, m·n², 1, 1], the convolution's layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_img, m = x.shape[:2]
        if m != self.groups or tuple(x.shape[2:]) != tuple(self.kernel_size):
            kh, kw = self.kernel_size
            raise ValueError(f"GroupedFC expects [N, {self.groups}, {kh}, {kw}], got {list(x.shape)}")
        area = x.shape[2] * x.shape[3]
        weight = self.weight.reshape(m, area, area).transpose(1, 2)  # [m, in, out]
        xt = x.reshape(n_img, m, area).transpose(0, 1)  # [m, N, in]
        if self.bias is None:
            y = torch.bmm(xt, weight)
        else:
            y = torch.baddbmm(self.bias.view(m, 1, area), xt, weight)  # [m, N, out]
        return y.transpose(0, 1).reshape(n_img, m * area, 1, 1)


class ChannelWiseFC(nn.Module):
    """Each of the m feature maps (n×n) is fully connected to its own output map only: m·n⁴ weights.

    The authors' recipe (PAPER.md §1.2): a grouped convolution with kernel n, m groups and m·n² outputs,
    reshaped back to m×n×n (``GroupedFC``: its weights, computed as a batched matrix product). Dropout on its
    input, this layer's only (PAPER.md §1.2: 0.5, "since it has more parameters than other layers"; the paper
    recipe); default off.
    """

    def __init__(self, channels: int, size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = GroupedFC(channels, channels * size * size, kernel_size=size, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]  # x: [N, m, s, s]
        y = self.fc(self.dropout(x))  # [N, m·s², 1, 1]; outputs of group g are channels g·s² … (g+1)·s²−1
        return y.view(n, self.channels, self.size, self.size)  # [N, m, s, s]


class Decoder(nn.Module):
    """Five up-convolutions, each doubling the size, then a resize that makes the output cover the image.

    NOTE: the last up-convolution has no ReLU (the paper puts one after each): targets are
    mean-subtracted images, which a ReLU output could not represent below the mean.
    NOTE: 6·2⁵ = 192 px; a final bilinear resize maps it onto the 227-px input (PAPER.md leaves the
    output size open: "make the output cover the input image").
    """

    def __init__(self, in_channels: int = 256, widths: Sequence[int] = DECODER_WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(widths):
            layers.append(nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1))
            if i < len(widths) - 1:
                layers.append(nn.ReLU(inplace=True))
            cin = cout
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        y = self.layers(z)  # [N, 3, 32·s, 32·s]
        if tuple(y.shape[-2:]) != tuple(out_size):
            y = F.interpolate(y, size=out_size, mode="bilinear", align_corners=False)
        return y  # [N, 3, H, W]


@register_method("context_encoder")
class ContextEncoder(PretrainMethod):
    """Encoder–decoder trained to fill holes in images with a reconstruction loss only.

    Args:
        image_size: training crop side (227 in the paper); fixes the channel-wise layer's n.
        encoder: encoder architecture name (``caffenet`` by default, ``caffenet_bn`` for batch norm).
        mask: ``random_region`` (paper's choice for features), ``random_block``, ``center`` or ``none``.
        mask_options: passed to the mask generator (e.g. ``coverage: [0.2, 0.3]``).
        loss: ``l2`` (paper) or ``l1`` (an author reply says L1 was used; "no significant difference").
        overlap / overlap_weight: visible ring around the hole also predicted, with its own weight
            (the semantic-inpainting net used 4 px at 10×; 0 = off, the default for features).
        fill: hole value per channel in normalised units (the dataset mean; resolved by the trainer).
        channel_dropout: dropout on the channel-wise layer's input, the net's only dropout (PAPER.md §1.2:
            0.5, the paper recipes; 0 in smoke / mini).
        bottleneck_kernel: kernel of the stride-1 channel-mixing convolution (unverified; default 1).
        encoder_init_std: N(0, std²) for the encoder's weights instead of He-normal (None); the authors'
            code draws every conv from N(0, 0.02²). Behind batch norm (``caffenet_bn``) the scale of a conv's
            weights does not change what the net computes, only how far each Adam step turns them.
    """

    supervision = "context"
    table_order = 4

    def __init__(
        self,
        image_size: int = 227,
        encoder: str = "caffenet",
        mask: str = "random_region",
        mask_options: dict[str, Any] | None = None,
        loss: str = "l2",
        overlap: int = 0,
        overlap_weight: float = 10.0,
        fill: Sequence[float] = (0.0, 0.0, 0.0),
        channel_dropout: float = 0.0,
        bottleneck_kernel: int = 1,
        encoder_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if mask not in MASK_TYPES:
            raise ValueError(f"unknown mask '{mask}'; choose from {', '.join(MASK_TYPES)}")
        if loss not in ("l1", "l2"):
            raise ValueError(f"unknown loss '{loss}'; choose l1 or l2")
        self.mask_type, self.mask_options = mask, dict(mask_options or {})
        self.loss_kind, self.overlap, self.overlap_weight = loss, overlap, overlap_weight
        self.encoder = create_encoder(encoder)
        s = pool5_size(image_size)
        c = self.encoder.out_channels
        self.channel_fc = ChannelWiseFC(c, s, dropout=channel_dropout)
        self.mix = nn.Conv2d(c, c, bottleneck_kernel, padding=bottleneck_kernel // 2)
        self.relu = nn.ReLU(inplace=True)
        self.decoder = Decoder(c)
        self.register_buffer("fill", torch.as_tensor(fill, dtype=torch.float32).view(3), persistent=True)
        kaiming_init_(self)
        if encoder_init_std is not None:
            gaussian_init_(self.encoder, encoder_init_std)

    def reconstruct(self, visible: torch.Tensor) -> torch.Tensor:
        """visible: [N,3,H,W] image with holes already filled → full reconstruction [N,3,H,W]."""
        z = self.encoder(visible)  # [N, 256, s, s]
        z = self.relu(self.channel_fc(z))  # [N, 256, s, s]
        z = self.relu(self.mix(z))  # [N, 256, s, s]
        return self.decoder(z, visible.shape[-2:])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image, mask = batch["image"], batch["mask"]  # [N,3,H,W] float, [N,1,H,W] bool
        out = self.reconstruct(fill_holes(image, mask, self.fill)).float()
        loss = masked_reconstruction_loss(
            out,
            image.float(),
            mask,
            kind=self.loss_kind,
            overlap=self.overlap,
            overlap_weight=self.overlap_weight,
        )
        return {"loss": loss}

    @torch.no_grad()
    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Prediction pasted into the hole, original pixels elsewhere (whole output if the mask is empty)."""
        out = self.reconstruct(fill_holes(image, mask, self.fill)).float()
        if not mask.any():
            return out
        return torch.where(mask, out, image)


@register_method("autoencoder")
class Autoencoder(ContextEncoder):
    """The same encoder–decoder with no mask, reconstructing the whole input (PAPER.md §2)."""

    supervision = "–"  # none: it reconstructs its whole input
    table_order = 2

    def __init__(self, **options: Any) -> None:
        if options.get("mask", "none") != "none":
            raise ValueError("the autoencoder baseline uses no mask (mask: none)")
        options["mask"] = "none"
        super().__init__(**options)
