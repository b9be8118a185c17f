"""AlexNet encoders: the CaffeNet shape the paper's evaluations load (PAPER.md §1.2), and torchvision's.

State-dict layout of ``CaffeNetEncoder`` (this is the layout of every ``encoder.pt``)::

    conv1.weight [96, 3, 11, 11]    conv1.bias [96]
    conv2.weight [256, 48, 5, 5]    conv2.bias [256]     (groups=2)
    conv3.weight [384, 256, 3, 3]   conv3.bias [384]
    conv4.weight [384, 192, 3, 3]   conv4.bias [384]     (groups=2)
    conv5.weight [256, 192, 3, 3]   conv5.bias [256]     (groups=2)
    bn1 … bn5 .weight/.bias/.running_mean/.running_var/.num_batches_tracked   (batch_norm=True only)
"""

from __future__ import annotations

import torch
from torch import nn

# Taps in forward order; ``forward(x, taps=...)`` returns any subset of them.
CAFFENET_TAPS = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")

# (name, in, out, kernel, stride, padding, groups): Krizhevsky et al. 2012 / Caffe's bvlc_reference_caffenet.
_CAFFENET_CONVS = (
    ("conv1", 3, 96, 11, 4, 0, 1),
    ("conv2", 96, 256, 5, 1, 2, 2),
    ("conv3", 256, 384, 3, 1, 1, 1),
    ("conv4", 384, 384, 3, 1, 1, 2),
    ("conv5", 384, 256, 3, 1, 1, 2),
)


def pool5_size(image_size: int) -> int:
    """Side of the pool5 map for a square input: 6 at 227 px (conv1 55 → 27 → 13 → 6)."""
    s = (image_size - 11) // 4 + 1  # conv1
    s = (s - 3) // 2 + 1  # pool1
    s = (s - 3) // 2 + 1  # pool2 (conv2..5 keep the size)
    s = (s - 3) // 2 + 1  # pool5
    if s < 1:
        raise ValueError(f"image size {image_size} is too small for AlexNet (pool5 would be empty)")
    return s


class CaffeNetEncoder(nn.Module):
    """AlexNet conv1…pool5 in the CaffeNet shape: 96/256/384/384/256 channels, groups 2 on conv2/4/5, LRN.

    Args:
        batch_norm: replace LRN by batch norm after every conv (a switch the paper does not use; it
            helps when training from scratch at small batch sizes).

    NOTE: the order conv → ReLU → LRN → max-pool follows PAPER.md §1.2 ("conv1 …, LRN, max-pool");
    Caffe's bvlc_reference_caffenet pools before LRN. The difference is immaterial for transfer.
    """

    taps = CAFFENET_TAPS
    out_channels = 256

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        for i, (name, cin, cout, k, s, p, g) in enumerate(_CAFFENET_CONVS, start=1):
            self.add_module(name, nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=g))
            if batch_norm:
                self.add_module(f"bn{i}", nn.BatchNorm2d(cout))
        # LRN constants from Krizhevsky et al. 2012 / CaffeNet: size 5, alpha 1e-4, beta 0.75, k=1.
        self.lrn = nn.Identity() if batch_norm else nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.relu = nn.ReLU(inplace=True)

    def conv_layers(self) -> list[nn.Conv2d]:
        return [self.conv1, self.conv2, self.conv3, self.conv4, self.conv5]

    def _block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, f"conv{i}")(x)
        if self.batch_norm:
            x = getattr(self, f"bn{i}")(x)
        return self.relu(x)

    def forward(
        self, x: torch.Tensor, taps: tuple[str, ...] | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """x: [N, 3, H, W] → pool5 [N, 256, s, s] (s = 6 at 227 px), or a dict of the requested taps."""
        want = set(taps or ())
        unknown = want - set(self.taps)
        if unknown:
            raise KeyError(f"unknown tap(s) {sorted(unknown)}; available: {', '.join(self.taps)}")
        out: dict[str, torch.Tensor] = {}

        def keep(name: str, t: torch.Tensor) -> None:
            if name in want:
                out[name] = t.clone() if name.startswith("conv") else t  # in-place ReLU follows convs

        x = self._block(1, x)  # [N, 96, 55, 55]
        keep("conv1", x)
        x = self.pool(self.lrn(x))  # [N, 96, 27, 27]
        keep("pool1", x)
        x = self._block(2, x)  # [N, 256, 27, 27]
        keep("conv2", x)
        x = self.pool(self.lrn(x))  # [N, 256, 13, 13]
        keep("pool2", x)
        x = self._block(3, x)  # [N, 384, 13, 13]
        keep("conv3", x)
        x = self._block(4, x)  # [N, 384, 13, 13]
        keep("conv4", x)
        x = self._block(5, x)  # [N, 256, 13, 13]
        keep("conv5", x)
        x = self.pool(x)  # [N, 256, 6, 6]
        keep("pool5", x)
        if taps is None:
            return x
        return out


class TorchvisionAlexNetEncoder(nn.Module):
    """torchvision's AlexNet ``features`` (64/192/384/256/256 channels, no groups, no LRN) with the same taps.

    Loads a torchvision-format AlexNet state dict (``features.N.weight`` keys); used for the
    "ImageNet labels" row when users bring torchvision's supervised weights.
    """

    taps = CAFFENET_TAPS
    out_channels = 256
    # indices inside torchvision.models.AlexNet.features
    _tap_index = {
        "conv1": 1,
        "pool1": 2,
        "conv2": 4,
        "pool2": 5,
        "conv3": 7,
        "conv4": 9,
        "conv5": 11,
        "pool5": 12,
    }

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import alexnet

        self.features = alexnet(weights=None).features

    def conv_layers(self) -> list[nn.Conv2d]:
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def forward(
        self, x: torch.Tensor, taps: tuple[str, ...] | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        if taps is None:
            return self.features(x)
        unknown = set(taps) - set(self.taps)
        if unknown:
            raise KeyError(f"unknown tap(s) {sorted(unknown)}; available: {', '.join(self.taps)}")
        by_index = {v: k for k, v in self._tap_index.items() if k in taps}
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in by_index:
                out[by_index[i]] = x.clone()
        return out
