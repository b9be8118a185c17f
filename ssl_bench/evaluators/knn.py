"""k-nearest-neighbour classification on frozen features, VOC2007 (task ``knn``).

Protocol: weighted kNN on L2-normalised frozen features (Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning
via Non-Parametric Instance Discrimination", CVPR 2018, and DINO's ``eval_knn.py``: cosine similarity,
neighbour weight ``exp(sim / τ)`` with τ = 0.07; k = 20 as in DINO's tables, Wu et al. use 200), carried over
to VOC's multi-label setting:

    score(test image, class c) = Σ over its k nearest trainval images j of weight_j · [label_jc = 1]

A difficult label (0) counts as absent in the neighbours' votes; in the test AP it is ignored (devkit rule).
Neighbours come from an exact inner-product index (faiss ``IndexFlatIP``; on a GPU when ctx.device is CUDA
and the installed faiss has GPU support). Features are those of ``cls-linear`` (``features.py``: pool5 of a
centre crop by default; the trunk is asserted frozen). Metric: VOC2010+ area AP (``map_area``, primary) and
the other variants.

NOTE: the kNN protocols cited are single-label (a weighted class vote); summing the weights of neighbours
that hold each label is the multi-label form used here. ``weighting: plain`` uses the similarity itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ssl_bench.data.voc import read_image_set
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext, Metrics, check_disjoint, register_evaluator
from ssl_bench.evaluators.classification import classification_metrics
from ssl_bench.evaluators.features import FeatureProtocol, voc_features

PRIMARY_AP = "area"


@dataclass(frozen=True)
class Protocol(FeatureProtocol):
    """``knn`` recipe keys: the feature keys (``FeatureProtocol``) and the kNN vote (module docstring)."""

    train_split: str = "trainval"
    test_split: str = "test"
    k: int = 20  # DINO's tables (Wu et al.: 200)
    temperature: float = 0.07  # τ of the exp(sim / τ) weights (Wu et al., DINO)
    weighting: Literal["exp", "plain"] = "exp"


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(
    train: np.ndarray, test: np.ndarray, k: int, use_gpu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine-similarity neighbours with faiss.

    Args:
        train: (N, D) features; test: (M, D) features (normalised here).
        k: neighbours per test row (at most N).
        use_gpu: put the index on GPU 0 if faiss was built with GPU support.

    Returns:
        ((M, k) similarities, best first; (M, k) int64 row indices into ``train``).
    """
    import faiss

    train, test = _unit_rows(train), _unit_rows(test)
    index = faiss.IndexFlatIP(train.shape[1])
    if use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(train)
    return index.search(test, k)


def knn_scores(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    k: int = Protocol.k,
    temperature: float = Protocol.temperature,
    weighting: str = Protocol.weighting,
    use_gpu: bool = False,
) -> np.ndarray:
    """Multi-label kNN scores: per class, the summed weights of the k nearest neighbours that hold it.

    Args:
        train_features: (N, D); train_labels: (N, C) devkit labels (1 present; -1 and 0 count as absent).
        test_features: (M, D).
        k: neighbours (capped at N).
        temperature: τ of ``exp(sim / τ)`` weights.
        weighting: ``"exp"`` (``exp(sim / τ)``) or ``"plain"`` (``sim``).
        use_gpu: see :func:`nearest_neighbours`.

    Returns:
        (M, C) float64 scores.
    """
    if weighting not in ("exp", "plain"):
        raise RecipeError(f"knn weighting must be 'exp' or 'plain', got {weighting!r}")
    k = min(int(k), train_features.shape[0])
    sims, idx = nearest_neighbours(train_features, test_features, k, use_gpu)  # [M, k] each
    sims = sims.astype(np.float64)
    weights = np.exp(sims / temperature) if weighting == "exp" else sims  # [M, k]
    present = (np.asarray(train_labels) > 0).astype(np.float64)  # [N, C]
    return np.einsum("mk,mkc->mc", weights, present[idx])  # [M, C]


@register_evaluator("knn", protocol=Protocol, label="kNN", metric="map_area", order=5, short="kNN",
                    trivial="a constant scorer (same AP rule)")
def evaluate_knn(ctx: EvalContext) -> Metrics:
    """Weighted kNN classification of the test split against trainval on frozen features; mAP."""
    p: Protocol = ctx.protocol
    check_disjoint(
        read_image_set(ctx.voc_root, p.train_split, "Main"),
        read_image_set(ctx.voc_root, p.test_split, "Main"),
        f"knn: Main/{p.train_split} vs Main/{p.test_split}",
    )
    features = voc_features(ctx, (p.train_split, p.test_split), p)
    (train_voc, train_x), (test_voc, test_x) = features[p.train_split], features[p.test_split]
    scores = knn_scores(
        train_x, train_voc.labels, test_x, p.k, p.temperature, p.weighting, use_gpu=ctx.device.type == "cuda"
    )
    metrics = classification_metrics(ctx, scores, test_voc.labels, PRIMARY_AP)
    ctx.extra |= {
        "train_split": p.train_split,
        "test_split": p.test_split,
        "num_train_images": len(train_voc),
        "num_test_images": len(test_voc),
        "k": min(p.k, len(train_voc)),
        "temperature": p.temperature,
        "weighting": p.weighting,
        "similarity": "cosine (L2-normalised features, faiss IndexFlatIP)",
    }
    return metrics
