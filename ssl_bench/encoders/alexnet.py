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
import torch.nn.functional as F
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


class _ChannelLRNFunction(torch.autograd.Function):
    """``ChannelLRN``'s forward with a hand-written backward: no second ``pow`` and three saved tensors.

    With ``s = k + W·x²`` (W: the band, a 1×1 convolution), ``d = s^-β`` and ``y = x·d``, the gradient is
    ``∂L/∂x = g·d + 2x · Wᵀ(-β · g·d·x / s)``. Autograd's own graph evaluates ``pow`` again for ``s^(-β-1)``
    and keeps more intermediates; this is ~25% faster forward + backward in bf16 on a 2-core Intel AMX CPU.
    ``tests/encoders/test_alexnet.py`` checks its gradient against torch's ``LocalResponseNorm``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, band: torch.Tensor, k: float, beta: float) -> torch.Tensor:
        s = F.conv2d(x * x, band) + k
        d = s.pow(-beta)
        ctx.save_for_backward(x, band, s, d)
        ctx.beta = beta
        return x * d

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, band, s, d = ctx.saved_tensors
        grad_d = grad * d
        r = (grad_d * x).div_(s).mul_(-2.0 * ctx.beta)
        r = F.conv2d(r.to(band.dtype), band.transpose(0, 1))
        return torch.addcmul(grad_d, x, r.to(grad_d.dtype)), None, None, None


class ChannelLRN(nn.Module):
    """Cross-channel local response norm, the same function as ``nn.LocalResponseNorm``, computed faster.

    ``y_c = x_c / (k + alpha/size · Σ_{c' in window(c)} x_c'²) ** beta`` with the window of
    ``nn.LocalResponseNorm`` (``size // 2`` channels before c, ``(size - 1) // 2`` after, clipped at the
    ends). torch's version pads and
    runs a 3-D average pool, which on a CPU costs about as much as all five convolutions of the step together
    (measured by ``torch.profiler``); here the window sum is a 1×1 convolution by a banded 0/1 matrix, which
    oneDNN/cuDNN run as one small GEMM in any memory format and dtype. No parameters: state dicts are
    unchanged.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self._band: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def band(self, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """[C, C, 1, 1] weight: alpha/size where output channel c reads input channel c'."""
        key = (channels, dtype, device)
        if key not in self._band:
            c = torch.arange(channels)
            offset = c[None, :] - c[:, None]  # [out, in]: c' - c
            inside = (offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)
            weight = inside.to(torch.float64) * (self.alpha / self.size)
            self._band[key] = weight.to(dtype=dtype, device=device)[:, :, None, None]
        return self._band[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] → [N, C, H, W]."""
        weight = self.band(x.shape[1], x.dtype, x.device)
        return _ChannelLRNFunction.apply(x, weight, self.k, self.beta)  # keeps nothing when no grad is needed

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


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
        self.lrn = nn.Identity() if batch_norm else ChannelLRN(5, alpha=1e-4, beta=0.75, k=1.0)
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


@torch.no_grad()
def fold_batch_norm(encoder: CaffeNetEncoder) -> CaffeNetEncoder:
    """A plain (LRN) CaffeNet computing what ``encoder``'s convs + batch norms compute in eval mode.

    Each BN (running statistics, affine) is folded into the conv before it:
    ``w' = w · γ/√(var+ε)``, ``b' = (b − mean) · γ/√(var+ε) + β``. The plain net then applies LRN after
    conv1 and conv2, which the BN net does not.

    NOTE: LRN's α = 1e-4 over 5 channels makes it all but the identity on BN-scaled activations
    (unit-scale: a factor (1 + 1e-4/5 · Σx²)^-0.75 ≈ 1 − 1e-4), so the folded net's pool5 matches the BN
    net's to about 1e-3 relative (tested). This lets a net trained with BN as a training aid be evaluated
    by every evaluator as the paper's CaffeNet, beside the random and data-dependent inits.
    """
    if not encoder.batch_norm:
        raise ValueError("fold_batch_norm needs a caffenet_bn encoder")
    plain = CaffeNetEncoder(batch_norm=False)
    for i in range(1, 6):
        conv, bn, out = getattr(encoder, f"conv{i}"), getattr(encoder, f"bn{i}"), getattr(plain, f"conv{i}")
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [C]
        out.weight.copy_(conv.weight * scale[:, None, None, None])
        out.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    return plain.to(encoder.conv1.weight.device)


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
