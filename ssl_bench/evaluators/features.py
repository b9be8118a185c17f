"""The one frozen-feature extractor: ``cls-linear``, ``knn``, the inpainting NN baseline, the t-SNE figure.

The trunk is asserted frozen (moco ``main_lincls.py``'s sanity check): in ``eval()`` mode, without gradients,
and bit-identical after the extraction (:func:`frozen`).

NOTE: features come from one centre crop: the shorter side resized to ``resize`` (default: ``image_size``),
then an ``image_size`` square from the middle (Goyal et al. 2019 centre-crop too, at 224 px for ResNets).
NOTE: a tap with more than ``max_dim`` values (e.g. conv3: 384×13×13) is average-pooled to the largest square
s×s with C·s² ≤ max_dim (9216, pool5's size), adaptively. Goyal et al. pick a fixed average-pool kernel per
layer to reach about 9k values; the dimension bound is the same, the pooling windows may differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from ssl_bench.data.transforms import normalize, to_tensor
from ssl_bench.data.voc import VOCClassification
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext
from ssl_bench.evaluators.engine import (
    eval_performance,
    images_to,
    make_loader,
    on_device,
    protocol_performance,
)


@dataclass(frozen=True)
class FeatureProtocol:
    """Which features to take from the frozen trunk, and how to feed it (keys of ``cls-linear`` and ``knn``).

    Attributes:
        layer: an encoder tap (``conv1`` … ``pool5``).
        image_size: side of the centre crop.
        resize: shorter side before cropping (null: ``image_size``).
        max_dim: taps with more values are average-pooled spatially to at most this many.
        batch_size, workers: of the extraction DataLoader.
        cpu_amp, cpu_channels_last: bf16 autocast / channels-last on a CPU too (``engine.FinetuneProtocol``).
    """

    layer: str = "pool5"
    image_size: int = 227
    resize: int | None = None
    max_dim: int = 9216  # 256 × 6 × 6: pool5 at 227 px, the bound Goyal et al. pool every tap down to
    batch_size: int = 64
    workers: int = 2
    cpu_amp: bool = False
    cpu_channels_last: bool = False


class CentreCrop:
    """PIL image → normalised [3, size, size]: shorter side resized to ``resize``, then the central square."""

    def __init__(self, size: int, resize: int | None = None) -> None:
        self.size, self.resize = size, resize or size
        if self.resize < size:
            raise RecipeError(f"resize {self.resize} is smaller than the crop {size}")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        w, h = image.size
        scale = self.resize / min(w, h)
        rw, rh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        image = image.resize((rw, rh), resample=Image.BILINEAR)
        x0, y0 = (rw - self.size) // 2, (rh - self.size) // 2
        return normalize(to_tensor(image.crop((x0, y0, x0 + self.size, y0 + self.size))))


def tap_features(encoder: nn.Module, x: torch.Tensor, layer: str, max_dim: int | None) -> torch.Tensor:
    """One feature vector per image from ``layer``, average-pooled if it holds over ``max_dim`` values.

    Args:
        encoder: a frozen encoder with named taps.
        x: [N, 3, H, W] normalised images.
        layer: tap name.
        max_dim: bound on the vector length (module NOTE); None: no bound.

    Returns:
        [N, D] float32 features, D = C·s² ≤ max_dim (or C·H·W when that already fits).
    """
    fmap = encoder(x, taps=(layer,))[layer].float()  # [N, C, H, W], e.g. pool5 [N, 256, 6, 6]
    c, h, w = fmap.shape[1:]
    if max_dim is not None and c * h * w > max_dim:
        side = max(1, math.isqrt(max_dim // c))
        fmap = F.adaptive_avg_pool2d(fmap, min(side, h, w))  # [N, C, s, s]
    return fmap.flatten(1)


def freeze(module: nn.Module) -> nn.Module:
    """Frozen trunk: no gradients, and ``eval()`` so batch-norm statistics stay put."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Freeze ``module`` for the ``with`` block, then assert it stayed frozen and bit-identical.

    Raises:
        AssertionError: the module left ``eval()`` mode, has trainable weights, or a weight or buffer changed.
    """
    freeze(module)
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    yield module
    assert not module.training, "frozen trunk left eval() mode"
    assert not any(p.requires_grad for p in module.parameters()), "frozen trunk has trainable weights"
    changed = [k for k, v in module.state_dict().items() if not torch.equal(v, before[k])]
    if changed:
        raise AssertionError(f"frozen trunk changed during evaluation: {', '.join(changed)}")


@torch.no_grad()
def extract_features(
    ctx: EvalContext,
    encoder: nn.Module,
    batches: Iterable[torch.Tensor],
    p: FeatureProtocol,
    total: int,
    desc: str,
) -> np.ndarray:
    """Features of every image of ``batches`` (normalised [B, 3, S, S], on the CPU) from a frozen encoder.

    Returns:
        (N, D) float32 array, not normalised.
    """
    perf = protocol_performance(ctx.device, p)
    out = []
    with tqdm(total=total, desc=desc, unit="img", disable=not ctx.progress) as bar:
        for images in batches:  # [B, 3, S, S]
            images = images_to(images, ctx.device, perf)
            with perf.autocast(ctx.device):
                out.append(tap_features(encoder, images, p.layer, p.max_dim).cpu())
            ctx.images_processed += images.shape[0]
            bar.update(images.shape[0])
    return torch.cat(out).numpy()  # [N, D]


@torch.no_grad()
def image_features(
    encoder: nn.Module,
    images: torch.Tensor,
    layer: str = "pool5",
    max_dim: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
) -> np.ndarray:
    """Features of in-memory images (normalised [N, 3, H, W], e.g. the t-SNE figure's) from ``encoder``,
    frozen and checked unchanged as in the evaluators.

    Returns:
        (N, D) float32 array.
    """
    device = torch.device(device)
    perf = eval_performance(device)
    encoder = encoder.to(device)
    out = []
    with frozen(encoder):
        for start in range(0, len(images), batch_size):
            x = images_to(images[start : start + batch_size], device, perf)  # [B, 3, H, W]
            with perf.autocast(device):
                out.append(tap_features(encoder, x, layer, max_dim).cpu())
    return torch.cat(out).numpy()  # [N, D]


def voc_features(
    ctx: EvalContext, splits: Iterable[str], p: FeatureProtocol
) -> dict[str, tuple[VOCClassification, np.ndarray]]:
    """Load the encoder, freeze it, extract centre-crop features of each Main split, check it did not change.

    Returns:
        ``{split: (dataset, features (N, D) float32)}``; ``dataset.labels`` holds the devkit labels.
    """
    encoder = ctx.load_encoder()
    taps = getattr(encoder, "taps", ())
    if p.layer not in taps:
        raise RecipeError(f"layer '{p.layer}' is not a tap of {ctx.arch}; available: {', '.join(taps)}")
    encoder = on_device(encoder, ctx.device, protocol_performance(ctx.device, p))
    out = {}
    with frozen(encoder):
        for split in splits:
            voc = VOCClassification(ctx.voc_root, split, transform=CentreCrop(p.image_size, p.resize))
            loader = make_loader(voc, ctx, p.batch_size, p.workers, shuffle=False)
            images = (x for x, _ in loader)
            out[split] = (
                voc,
                extract_features(ctx, encoder, images, p, len(voc), f"{p.layer} features ({split})"),
            )
    ctx.extra |= {
        "layer": p.layer,
        "feature_dim": int(next(iter(out.values()))[1].shape[1]),
        "image_size": p.image_size,
        "trunk_frozen": True,
    }
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (VISSL's ``+1e-5`` guard keeps all-zero rows at zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)
