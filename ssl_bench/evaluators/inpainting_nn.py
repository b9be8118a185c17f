"""Nearest-neighbour inpainting (Pathak et al. 2016, Table 1, the "NN-inpainting" rows).

Describe the VISIBLE context of every database image and of every query (hole filled with a constant), find
the nearest database image with faiss (exact search), paste its hole into the query's hole. The context is
described by a network's feature map (``context_features`` with an encoder, cosine search) or by raw pixels
(16×16 average-pooled, Euclidean); the HOG description is in ``inpainting_baselines.py``. Used by the
``inpaint`` evaluator (``inpainting.py``), whose docstring gives the protocol.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.data.masks import fill_holes
from ssl_bench.data.transforms import denormalize
from ssl_bench.evaluators.features import tap_features

# The raw-pixel context feature of runs without a decoder: the context downsampled to 16×16 (768 values).
PIXEL_FEATURE_SIDE = 16


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Normalised images → [0, 1] rounded to 8-bit levels (k / 255), float64 for exact sums."""
    return denormalize(x.float()).double().mul(255.0).round().div(255.0)


def feature_tap(encoder: nn.Module) -> str:
    """The tap the NN search describes the context with: ``pool5`` if the encoder has one (CaffeNet),
    else its deepest (the last conv of a DCGAN encoder)."""
    return "pool5" if "pool5" in encoder.taps else encoder.taps[-1]


def context_features(
    images: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor, encoder: nn.Module | None = None
) -> torch.Tensor:
    """A vector describing what is visible around the hole.

    Args:
        images: normalised [N, 3, H, W]; masks: bool [N, 1, H, W]; fill: (3,) value put into the hole,
            so the hole carries no information (it is the same for every image).
        encoder: given, its ``feature_tap`` map flattened and L2-normalised (cosine search); None, the
            filled image average-pooled to 16×16 (``pixels``, Euclidean search).

    Returns:
        float32 [N, D].
    """
    visible = fill_holes(images, masks, fill)  # [N, 3, H, W]
    if encoder is None:
        return F.adaptive_avg_pool2d(visible.float(), PIXEL_FEATURE_SIDE).flatten(1)  # [N, 3·16·16]
    return F.normalize(tap_features(encoder, visible, feature_tap(encoder), None), dim=1)  # e.g. [N, 256·s·s]


def hole_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom/right exclusive, of the hole of one mask [1, H, W]."""
    rows = mask[0].any(1).nonzero()
    cols = mask[0].any(0).nonzero()
    if len(rows) == 0:
        raise ValueError("the mask has no hole")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class NearestNeighbourInpainter:
    """Fill a hole with the hole of the database image whose visible context is nearest (faiss, exact).

    Only the hole's bounding box of each database image is kept, as 8-bit values (a 227-px database of
    10,000 images holds 390 MB of holes instead of 6 GB of float images).

    Args:
        box: (top, bottom, left, right) of the hole, the same for every image (the centre mask).
        metric: ``ip`` (inner product: cosine on L2-normalised features) or ``l2``.
    """

    def __init__(self, box: tuple[int, int, int, int], metric: str) -> None:
        if metric not in ("ip", "l2"):
            raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
        self.box, self.metric = box, metric
        self.index: faiss.Index | None = None
        self._holes: list[torch.Tensor] = []
        self.holes: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.index is None else self.index.ntotal

    def add(self, features: torch.Tensor, images: torch.Tensor) -> None:
        """features: [B, D]; images: [B, 3, H, W] in [0, 1] on 8-bit levels (see ``to_8bit``)."""
        if self.index is None:
            dim = features.shape[1]
            self.index = faiss.IndexFlatIP(dim) if self.metric == "ip" else faiss.IndexFlatL2(dim)
        self.index.add(np.ascontiguousarray(features.detach().cpu().float().numpy()))
        top, bottom, left, right = self.box
        hole = images[..., top:bottom, left:right]  # [B, 3, h, w]
        self._holes.append(hole.mul(255.0).round().to(torch.uint8).cpu())
        self.holes = None

    def search(self, features: torch.Tensor) -> torch.Tensor:
        """Index of the nearest database image for each query: [N] int64."""
        if self.index is None or self.index.ntotal == 0:
            raise RuntimeError("the nearest-neighbour database is empty")
        _, nearest = self.index.search(np.ascontiguousarray(features.detach().cpu().float().numpy()), 1)
        return torch.from_numpy(nearest[:, 0]).long()  # [N]

    def inpaint(
        self, features: torch.Tensor, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Paste each query's nearest database hole into its hole.

        Args:
            features: [N, D] context features of the queries; images: [N, 3, H, W] in [0, 1];
            masks: bool [N, 1, H, W] (holes inside ``box``).

        Returns:
            (inpainted images [N, 3, H, W] like ``images``, nearest database indices [N]).
        """
        if self.holes is None:
            self.holes = torch.cat(self._holes)  # [M, 3, h, w] uint8
            self._holes = [self.holes]
        nearest = self.search(features)
        rows, cols = slice(self.box[0], self.box[1]), slice(self.box[2], self.box[3])
        pasted = self.holes[nearest].to(images.dtype).div(255.0)  # [N, 3, h, w]
        out = images.clone()
        out[..., rows, cols] = torch.where(masks[..., rows, cols], pasted, images[..., rows, cols])
        return out, nearest
