"""FCN-32s on an AlexNet-family encoder: the ``seg`` evaluator's network (``segmentation.py``).

fc6 as a 6×6 convolution over pool5, fc7 and the class scores as 1×1 convolutions, FCN's fixed bilinear ×32
``upscore`` and its crop, with the input padding and crop offset that align each score cell with the
receptive field it sees (``TRUNK_GEOMETRY``). The NOTEs on each choice are in ``segmentation.py``'s docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.errors import RecipeError

NUM_CLASSES = 21  # 20 VOC classes + background
FC6_KERNEL = 6  # fc6 as a 6×6 convolution over pool5
UPSAMPLE_STRIDE = 32  # FCN-32s
UPSAMPLE_KERNEL = 63  # FCN voc-fcn-alexnet upscore
FC_WIDTH = 4096  # fc6 / fc7 outputs (FCN voc-fcn-alexnet)
DROPOUT = 0.5
INPUT_PAD = 100  # FCN conv1 pad 100

# (kernel, stride, padding) of each layer from the input up to pool5, per encoder architecture; fc6 follows.
# They fix where each score cell sits over the input, hence the crop offset.
_CONV2_TO_POOL5 = ((3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0))  # pool1…pool5
TRUNK_GEOMETRY: dict[str, tuple[tuple[int, int, int], ...]] = {
    "caffenet": ((11, 4, 0), *_CONV2_TO_POOL5),  # conv1 11×11 stride 4, no padding
    "caffenet_bn": ((11, 4, 0), *_CONV2_TO_POOL5),
    "torchvision_alexnet": ((11, 4, 2), *_CONV2_TO_POOL5),  # conv1 padded by 2
}


def first_cell_centre(layers: tuple[tuple[int, int, int], ...]) -> float:
    """Input coordinate of the receptive-field centre of output cell 0 of a stack of (kernel, stride, pad)."""
    centre, jump = 0.0, 1
    for kernel, stride, pad in layers:
        centre += jump * ((kernel - 1) / 2 - pad)
        jump *= stride
    return centre


def output_size(size: int, layers: tuple[tuple[int, int, int], ...]) -> int:
    """Side of the output of a stack of (kernel, stride, pad) layers with floor rounding (PyTorch's)."""
    for kernel, stride, pad in layers:
        size = (size + 2 * pad - kernel) // stride + 1
    return size


def bilinear_kernel(size: int) -> torch.Tensor:
    """[size, size] bilinear weights for upsampling by ``(size + 1) // 2`` (FCN ``upsample_filt``)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return torch.outer(ramp, ramp).float()


def bilinear_upsampling_matrix(cells: int, size: int, offset: int) -> torch.Tensor:
    """[size, cells] 1-D weights of FCN-32s' bilinear ``upscore``, rows ``offset … offset + size - 1`` only.

    The transposed convolution (kernel 63, stride 32) puts ``ramp(y - 32n)`` of cell n at upsampled pixel y,
    with ``ramp`` the 1-D bilinear kernel; the 2-D kernel is the outer product of two ramps, so
    ``A_h @ scores @ A_w.T`` is the cropped transposed convolution exactly.
    """
    factor = UPSAMPLE_STRIDE
    y = torch.arange(offset, offset + size, dtype=torch.float64).view(-1, 1)  # upsampled pixel
    centres = factor * torch.arange(cells, dtype=torch.float64).view(1, -1) + (UPSAMPLE_KERNEL - 1) / 2
    return (1 - (y - centres).abs() / factor).clamp(min=0).float()  # [size, cells]


class FCN32s(nn.Module):
    """FCN-32s: encoder → fc6 (6×6 conv) → fc7 (1×1) → score (1×1) → ×32 bilinear upsampling → crop.

    Args:
        encoder: conv1…pool5 trunk; ``encoder(x)`` returns pool5 ``[N, encoder.out_channels, h, w]``.
        arch: the encoder's architecture name (a key of ``TRUNK_GEOMETRY``), for the alignment.
        num_classes, fc_width, dropout, pad: defaults FCN ``voc-fcn-alexnet``'s (constants above).
    """

    def __init__(
        self,
        encoder: nn.Module,
        arch: str,
        num_classes: int = NUM_CLASSES,
        fc_width: int = FC_WIDTH,
        dropout: float = DROPOUT,
        pad: int = INPUT_PAD,
    ) -> None:
        super().__init__()
        if arch not in TRUNK_GEOMETRY:
            supported = ", ".join(TRUNK_GEOMETRY)
            raise RecipeError(f"seg: no FCN alignment for encoder '{arch}'; supported: {supported}")
        self.encoder = encoder
        self.fc6 = nn.Conv2d(encoder.out_channels, fc_width, FC6_KERNEL)
        self.fc7 = nn.Conv2d(fc_width, fc_width, 1)
        self.score = nn.Conv2d(fc_width, num_classes, 1)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.fc6, self.fc7):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

        # Score cell n is centred over padded-input pixel 32n + centre; the upsampling kernel puts it at
        # upsampled pixel 32n + (kernel-1)/2. Image pixel x is padded pixel x + pad, hence the offset.
        self.layers = (*TRUNK_GEOMETRY[arch], (FC6_KERNEL, 1, 0))
        centre = first_cell_centre(self.layers)
        offset = pad + (UPSAMPLE_KERNEL - 1) / 2 - centre
        if offset < 0 or offset != int(offset):
            raise ValueError(f"pad {pad} gives crop offset {offset}; it must be a whole number >= 0")
        self.pad, self.offset = pad, int(offset)

    def upsample(self, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """FCN-32s ``upscore`` + ``crop``: scores [N, C, h, w] → [N, C, height, width], fixed bilinear ×32."""
        a_h = bilinear_upsampling_matrix(scores.shape[-2], height, self.offset).to(scores)  # [H, h]
        a_w = bilinear_upsampling_matrix(scores.shape[-1], width, self.offset).to(scores)  # [W, w]
        return a_h @ scores @ a_w.T  # [N, C, H, W]

    def pool5(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, H, W] normalised → pool5 of the padded input, [N, 256, h5, w5] (fc6's input)."""
        h, w = x.shape[-2:]
        # Zero padding is the mean pixel after normalisation, as FCN's zero pad after mean subtraction.
        return self.encoder(F.pad(x, (self.pad, self.far_pad(w), self.pad, self.far_pad(h))))

    def far_pad(self, size: int) -> int:
        """Bottom/right padding for an image side ``size``: ``pad``, plus what floor-rounded pooling loses."""
        extra = 0
        while True:
            cells = output_size(size + 2 * self.pad + extra, self.layers)
            if cells >= 1 and UPSAMPLE_STRIDE * (cells - 1) + UPSAMPLE_KERNEL >= self.offset + size:
                return self.pad + extra
            extra += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, H, W] normalised → class scores [N, num_classes, H, W]."""
        h, w = x.shape[-2:]
        f = self.pool5(x)  # [N, 256, h5, w5] of the input padded to [N, 3, H+2·100+e, W+2·100+e]
        f = self.dropout(F.relu(self.fc6(f)))  # [N, 4096, h5-5, w5-5]
        f = self.dropout(F.relu(self.fc7(f)))  # [N, 4096, h5-5, w5-5]
        scores = self.score(f)  # [N, 21, h5-5, w5-5]
        return self.upsample(scores, h, w)  # [N, 21, H, W]
