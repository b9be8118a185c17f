"""The DCGAN parts of the semantic-inpainting net (``semantic_inpainting.py``), as the authors' Torch code
(``pathak22/context-encoder``) defines them: the 4×4 stride-2 encoder, the discriminator on its layout, the
up-conv decoder and the code's ``weights_init``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INIT_STD = 0.02  # the code's weights_init: conv weights N(0, 0.02²), BN weights N(1, 0.02²), biases 0
LEAK = 0.2  # LeakyReLU slope of the encoder and discriminator (DCGAN)


def doublings(small: int, large: int) -> int:
    """k with small · 2^k == large; ValueError when there is none."""
    k = round(math.log2(large / small)) if large >= small > 0 else -1
    if k < 0 or small * 2**k != large:
        raise ValueError(f"{large} px is not {small} px times a power of two")
    return k


def dcgan_widths(layers: int, width: int) -> list[int]:
    """Output channels of the code's stride-2 convs: the last four are w, 2w, 4w, 8w; earlier ones w.

    128 px (5 convs): w, w, 2w, 4w, 8w (``train.lua``'s encoder); 64 px (4 convs): w, 2w, 4w, 8w (its
    discriminator).
    """
    return [width * min(8, 2 ** max(0, j - (layers - 4))) for j in range(layers)]


class DCGANEncoder(nn.Module):
    """The code's encoder (and discriminator trunk): 4×4 stride-2 convs down to a 4×4 map.

    The first conv has no batch norm; every conv is followed by LeakyReLU 0.2. Named taps ``conv1`` …
    ``convK`` (after each activation), ``conv_layers()`` and ``out_channels`` as the suite's encoders.

    Args:
        image_size: input side, 4·2^K for K ≥ 1 convs (128 px: K = 5).
        width: w, the first conv's channels (64 in the code).
    """

    def __init__(self, image_size: int, width: int) -> None:
        super().__init__()
        layers = doublings(4, image_size)
        if layers < 1:
            raise ValueError(f"a DCGAN encoder needs an input of at least 8 px, not {image_size}")
        widths = dcgan_widths(layers, width)
        self.taps = tuple(f"conv{i}" for i in range(1, layers + 1))
        self.out_channels = widths[-1]
        cin = 3
        for i, cout in enumerate(widths, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False))
            if i > 1:
                self.add_module(f"bn{i}", nn.BatchNorm2d(cout))
            cin = cout
        self.act = nn.LeakyReLU(LEAK, inplace=True)

    def conv_layers(self) -> list[nn.Conv2d]:
        return [getattr(self, name) for name in self.taps]

    def forward(
        self, x: torch.Tensor, taps: tuple[str, ...] | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """x: [N, 3, S, S] → [N, 8w, 4, 4], or a dict of the requested taps."""
        unknown = set(taps or ()) - set(self.taps)
        if unknown:
            raise KeyError(f"unknown tap(s) {sorted(unknown)}; available: {', '.join(self.taps)}")
        out = {}
        for i, name in enumerate(self.taps, start=1):
            x = getattr(self, name)(x)  # [N, C_i, S/2^i, S/2^i]
            if i > 1:
                x = getattr(self, f"bn{i}")(x)
            x = self.act(x)
            if taps and name in taps:
                out[name] = x.clone()  # the next layer's activation is in place
        return out if taps is not None else x


class Discriminator(nn.Module):
    """DCGAN discriminator on a P×P region: the encoder's layout down to 4×4, then a 4×4 conv to one logit."""

    def __init__(self, region_size: int, width: int) -> None:
        super().__init__()
        self.trunk = DCGANEncoder(region_size, width)
        self.logit = nn.Conv2d(self.trunk.out_channels, 1, 4, bias=False)

    def forward(self, region: torch.Tensor) -> torch.Tensor:
        """region: [N, 3, P, P] in [-1, 1] → [N] logits (> 0: "real")."""
        return self.logit(self.trunk(region)).flatten().float()  # [N, 1, 1, 1] → [N]


def _up(cin: int, cout: int, last: bool) -> list[nn.Module]:
    """One 4×4 stride-2 up-conv (×2), then BN + ReLU, or tanh for the image."""
    conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
    return [conv, nn.Tanh()] if last else [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def dcgan_decoder(in_channels: int, in_size: int, out_size: int, width: int) -> nn.Sequential:
    """Up-convs from [N, in_channels, s, s] to the image [N, 3, P, P]: 4w, 2w, w, w, … channels, then 3.

    From 4×4 to 64×64 these are ``train.lua``'s (4w, 2w, w, 3), to 128×128 ``train_random.lua``'s.
    """
    steps = doublings(in_size, out_size)
    if steps < 1:
        raise ValueError(f"the decoder must grow the {in_size}-px code to the {out_size}-px region")
    layers: list[nn.Module] = []
    cin = in_channels
    for i in range(steps):
        cout = 3 if i == steps - 1 else width * max(1, 8 >> (i + 1))
        layers += _up(cin, cout, last=i == steps - 1)
        cin = cout
    return nn.Sequential(*layers)


def dcgan_init_(module: nn.Module, std: float = INIT_STD) -> nn.Module:
    """The code's ``weights_init``: conv weights N(0, std²), BN weights N(1, std²), biases 0, in place."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module
