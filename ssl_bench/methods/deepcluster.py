"""DeepCluster (Caron, Bojanowski, Joulin & Douze, ECCV 2018): the network learns to predict the k-means
clusters of its own features, re-clustered at the start of every epoch.

At the start of each epoch (``on_epoch_start``, the contract's epoch hook in ``methods/base.py``)::

    every pool image, centre crop, eval mode
      → [Sobel] → CaffeNet conv1…pool5 → fc6 → ReLU → fc7   [n, head_width]  (fc7 before its ReLU, as the
                                                                             authors' code clusters)
      → PCA to ``pca_dim``, whitened, L2-normalised         [n, pca_dim]     (faiss PCAMatrix, eigen power -½)
      → k-means, ``num_clusters`` centroids, 20 iterations  (faiss Kmeans, seeded by the epoch's seed)
      → empty clusters refilled (paper §3.3: a perturbed copy of a non-empty cluster's centroid, its points
        shared between the two) → pseudo-labels = cluster ids
      → the top layer re-initialised, N(0, 0.01²), bias 0 (authors' code)
      → the epoch's sample order: uniform over the clusters (authors' UnifLabelSampler: the same number of
        draws from every cluster, with replacement from the small ones, shuffled, cut to the pool size)

A training step: image → [Sobel] → CaffeNet → fc6 → ReLU → fc7 → ReLU → top layer [N, k] → cross-entropy
with the pseudo-labels of the images (looked up by ``batch["index"]``).

The loss is per sample given the epoch's pseudo-labels (the batch mean of each image's cross-entropy): a
batch's loss is the mean of its two halves' losses, so DDP equals one process on the combined batch (batch
norm with ``caffenet_bn`` and the dropout masks aside, as for every method). The clustering couples the
whole pool, but once per epoch and outside the loss.

Resume: the epoch's plan (its number, pseudo-labels, order, NMI) is the method's extra state
(``get_extra_state``), so checkpoint.pt holds it; a run resumed mid-epoch gets the plan back instead of
re-clustering with weights that have moved. DDP: rank 0 computes the features and the clusters and
broadcasts the pseudo-labels; every rank draws the same order and top layer from the epoch's seed. The
other ranks wait in that broadcast while rank 0 reads the whole pool (at ImageNet scale, minutes: longer
than a short process-group timeout); sharding the feature pass over the ranks is not done yet. Rank 0
holds the features in memory, [n, head_width] float32 (21 GB for ImageNet at 4096), as the authors' code.

Logged with the loss: ``accuracy`` (top-1 on the pseudo-labels of the batch) and, from the second epoch
on, ``nmi``: the normalised mutual information between this epoch's assignment and the previous one's
(scikit-learn's, arithmetic mean), the paper's measure of how the clusters settle (its Fig. 2).

NOTE: Sobel (the paper's input for AlexNet). The authors' code puts a fixed layer in front of the network,
grey = mean of R, G, B, then the two 3×3 Sobel filters, and gives conv1 these 2 channels. Here the encoder
keeps the 3 RGB input channels that every evaluator feeds: conv1's weight is *computed*
(``torch.nn.utils.parametrize``) from a trained 96×2×9×9 kernel over the two Sobel maps, composed with the
fixed grey + Sobel filter into the 96×3×11×11 RGB kernel that computes exactly the same thing (CaffeNet's
conv1 has no padding, so Sobel-then-9×9 equals one 11×11 convolution). encoder.pt then holds that plain
RGB kernel (``exported_encoder_state``), and the evaluators measure the features the method trained. Two
departures follow: the learnt kernel spans 9×9 Sobel pixels (11×11 in the paper's conv1, which sees 13×13
image pixels), and neither the Sobel maps nor conv1 are padded (the authors pad by 1 and 2).
NOTE: CaffeNet (LRN, groups; ``caffenet_bn`` for batch norm) instead of the authors' AlexNet (batch norm, no
groups, no LRN, conv1 padded by 2).
NOTE: the training crops are the suite's (resize, random crop, flip: ``data/pretrain.py``); the authors
use RandomResizedCrop(224) and a flip. The clustering crops are the pipeline's centre crops at the
training size; the authors resize to 256 and crop 224.
NOTE: one optimizer holds the top layer as every other parameter, so its re-initialised weights keep the
optimizer's state (momentum, Adam moments) from the previous epoch's layer; the authors build a fresh SGD
without momentum for it each epoch. The old state fades within tens of steps.
NOTE: ``num_clusters`` above the number of pool images, and ``pca_dim`` above the features' rank (pool
images − 1, or the feature width), are lowered to them (a small pool); the log's ``clusters`` says k.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faiss
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score
from torch import nn
from torch.nn.utils import parametrize

from ssl_bench.encoders import CaffeNetEncoder, alexnet_head, create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method

# Authors' code (facebookresearch/deepcluster, clustering.py / models/alexnet.py).
KMEANS_MAX_POINTS_PER_CENTROID = 10_000_000  # all points train the centroids
LINEAR_STD = 0.01  # fc6, fc7 and the top layer (re-initialised every epoch): N(0, 0.01²), bias 0
# The two Sobel filters of the authors' code, d/dx and d/dy: [2, 3, 3].
SOBEL = torch.tensor([[[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
                      [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]])  # fmt: skip
WHITEN_FLOOR = 1e-3  # smallest whitening scale, relative to the first component's (``pca_whiten``)
SPLIT_EPS = 1e-3  # relative size of the perturbation that splits a cluster in two (paper §3.3: "small")


class SobelRGBKernel(nn.Module):
    """conv1's parametrization: a kernel over the two Sobel maps of the grey image → the RGB kernel.

    ``v`` [C, 2, 9, 9] → ``w`` [C, 3, 11, 11] with ``w[o, c] = ⅓ Σ_k v[o, k] ∗ sobel_k`` (full 2-D
    convolution, grey = mean of R, G, B): ``conv(x, w) == conv(sobel(grey(x)), v)`` without padding.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("sobel", SOBEL[:, None].clone(), persistent=False)  # [2, 1, 3, 3]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # A stride-1 transposed convolution is the full convolution: [C, 2, 9, 9] → [C, 1, 11, 11] (Σ over k).
        k = F.conv_transpose2d(v, self.sobel.to(v.dtype))
        return k.repeat(1, 3, 1, 1) / 3.0  # [C, 3, 11, 11]


def sobel_input_(encoder: nn.Module, std: float | None) -> None:
    """Make ``encoder``'s conv1 see the image through the grey + Sobel filter (module NOTE), in place.

    The new trained kernel [96, 2, 9, 9] is drawn N(0, std²), or He-normal (fan-in 2·9·9) for None.
    """
    if not isinstance(encoder, CaffeNetEncoder):
        raise ValueError("sobel: true needs a CaffeNet encoder (caffenet or caffenet_bn)")
    conv1 = encoder.conv1
    size = conv1.kernel_size[0] - 2  # 9: a 3×3 Sobel in front makes it 11
    kernel = torch.empty(conv1.out_channels, 2, size, size, device=conv1.weight.device)
    if std is None:
        nn.init.kaiming_normal_(kernel, mode="fan_in", nonlinearity="relu")
    else:
        nn.init.normal_(kernel, 0.0, std)
    conv1.weight = nn.Parameter(kernel)
    parametrize.register_parametrization(conv1, "weight", SobelRGBKernel(), unsafe=True)  # shape changes


# ------------------------------------------------------------------------------------------------------
# The clustering, on numpy arrays (faiss)


def pca_whiten(features: np.ndarray, dim: int) -> np.ndarray:
    """[n, d] → [n, dim']: PCA with whitening (faiss), then each row L2-normalised (authors' code).

    ``dim' = min(dim, d, n - 1)``: the centred features have no more directions than that. Whitening divides
    each component by its standard deviation, floored at ``WHITEN_FLOOR`` times the first one's.

    NOTE: the floor is ours; the authors' faiss ``PCAMatrix(eigen_power=-0.5)`` divides by the raw value,
    which is 0 (or, numerically, negative) for a direction a small pool does not span. On ImageNet (1.28M
    images, 256 of 4096 dimensions) it never applies.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    n, d = x.shape
    dim = max(1, min(dim, d, n - 1))
    pca = faiss.PCAMatrix(d, dim, 0.0)  # eigen power 0: centred and rotated, not yet whitened
    pca.train(x)
    y = pca.apply(x)  # [n, dim]
    variance = faiss.vector_to_array(pca.eigenvalues)[:dim].astype(np.float64)  # descending
    y = y / np.sqrt(np.maximum(variance, WHITEN_FLOOR**2 * max(variance[0], 1e-30))).astype(np.float32)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def fill_empty_clusters(
    x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Give every empty cluster points (paper §3.3, "Avoiding trivial solutions").

    For each empty cluster: pick a cluster that has at least two points, copy its centroid with a small
    random perturbation ``δ`` (the two centroids become ``c + δ`` and ``c - δ``), and share its points
    between the two by the nearest centroid (the side of the hyperplane through c normal to δ). Should
    every point fall on one side (identical points), the one farthest along ``δ`` moves alone.

    NOTE: the cluster split is drawn with probability proportional to its size minus one, as faiss's
    k-means does (the paper: "randomly select a non-empty cluster").

    Args:
        x: [n, d] the clustered points.
        centroids: [k, d].
        labels: [n] cluster of each point (nearest centroid).
        rng: the draws (which cluster, which perturbation).

    Returns:
        The new labels [n] (every cluster non-empty when n ≥ k), and how many clusters were refilled.
    """
    labels = labels.astype(np.int64).copy()
    centroids = centroids.astype(np.float64).copy()
    k, d = centroids.shape
    counts = np.bincount(labels, minlength=k)
    empty = np.flatnonzero(counts == 0)
    for e in empty:
        weights = np.maximum(counts - 1, 0).astype(np.float64)
        if weights.sum() == 0:
            raise ValueError(f"cannot refill cluster {e}: fewer points ({len(labels)}) than clusters ({k})")
        big = int(rng.choice(k, p=weights / weights.sum()))
        members = np.flatnonzero(labels == big)
        c = centroids[big]
        delta = rng.standard_normal(d)
        delta *= SPLIT_EPS * max(float(np.linalg.norm(c)), 1e-12) / np.linalg.norm(delta)
        along = (x[members] - c) @ delta  # [m]: > 0 nearer to c + δ, < 0 nearer to c - δ
        to_new = along > 0
        if not to_new.any():
            to_new[np.argmax(along)] = True
        if to_new.all():
            to_new[np.argmin(along)] = False
        labels[members[to_new]] = e
        centroids[e] = x[members[to_new]].mean(0)
        centroids[big] = x[members[~to_new]].mean(0)
        counts[e], counts[big] = int(to_new.sum()), int((~to_new).sum())
    return labels, len(empty)


def cluster_features(
    features: np.ndarray, num_clusters: int, pca_dim: int, iterations: int, seed: int, gpu: bool = False
) -> tuple[np.ndarray, dict[str, float]]:
    """[n, d] features → [n] cluster ids in [0, k), every cluster non-empty, k = min(num_clusters, n).

    PCA-whitening + L2 (``pca_whiten``), faiss k-means seeded by ``seed``, then ``fill_empty_clusters``.
    Returns the ids and {"clusters": k, "refilled": empty clusters refilled, "kmeans_loss": faiss's final
    objective}.
    """
    x = pca_whiten(features, pca_dim)  # [n, pca_dim]
    n, d = x.shape
    k = min(num_clusters, n)
    kmeans = faiss.Kmeans(
        d,
        k,
        niter=iterations,
        seed=seed,
        min_points_per_centroid=1,  # no warning for a small pool
        max_points_per_centroid=KMEANS_MAX_POINTS_PER_CENTROID,
        gpu=1 if gpu else False,
    )
    kmeans.train(x)
    _, nearest = kmeans.index.search(x, 1)  # [n, 1]
    labels, refilled = fill_empty_clusters(x, kmeans.centroids, nearest[:, 0], np.random.default_rng(seed))
    return labels, {"clusters": float(k), "refilled": float(refilled), "kmeans_loss": float(kmeans.obj[-1])}


def uniform_cluster_order(labels: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """An epoch's sample order that draws equally from every cluster (authors' ``UnifLabelSampler``).

    Each non-empty cluster gives ``length // clusters + 1`` images (drawn with replacement when it holds no
    more than that, without otherwise); the draws are shuffled and cut to ``length``.

    Args:
        labels: [n] cluster of each image; -1 for images that were not clustered (never drawn).
        length: images in the order (the pool size: one epoch).
        generator: a CPU generator (the epoch's seed).

    Returns:
        int64 [length] image indices.
    """
    labels = labels.cpu()
    clustered = torch.nonzero(labels >= 0)[:, 0]  # [m]
    by_cluster = clustered[torch.argsort(labels[clustered], stable=True)]  # image indices, cluster by cluster
    sizes = torch.unique_consecutive(labels[by_cluster], return_counts=True)[1].tolist()
    per = length // len(sizes) + 1
    draws = []
    for members in torch.split(by_cluster, sizes):
        if len(members) <= per:
            draws.append(members[torch.randint(len(members), (per,), generator=generator)])
        else:
            draws.append(members[torch.randperm(len(members), generator=generator)[:per]])
    order = torch.cat(draws)  # [clusters · per] ≥ length
    return order[torch.randperm(len(order), generator=generator)[:length]]


def _is_rank0() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _from_rank0(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``values`` as rank 0 holds them, on every rank (a no-op without DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    on_device = values.to(device)  # NCCL broadcasts CUDA tensors
    dist.broadcast(on_device, src=0)
    return on_device.cpu()


# ------------------------------------------------------------------------------------------------------
# The method


@register_method("deepcluster")
class DeepCluster(PretrainMethod):
    """CaffeNet + fc6/fc7 + a top layer trained on k-means pseudo-labels, re-clustered every epoch.

    Args:
        encoder: a CaffeNet (``caffenet``, ``caffenet_bn``; another encoder only with ``sobel: false``).
        image_size: training crop side (from the data).
        num_clusters: k (10000 on ImageNet in the paper).
        pca_dim: whitened PCA dimension of the clustered features (256 in the paper).
        kmeans_iterations: faiss k-means iterations (20 in the authors' code).
        head_width: fc6/fc7 width (4096 in AlexNet).
        dropout: before fc6 and fc7 (0.5, authors' code).
        sobel: the fixed grey + Sobel input of the paper, folded into conv1 (module NOTE).
        encoder_init_std: N(0, std²) for the encoder's (and the Sobel kernel's) weights instead of He-normal
            (None), as the other methods' option of the same name.
    """

    supervision = "clustering"

    heldout_pretext = False  # pseudo-labels exist per pool index only (training/memorisation.py)

    def __init__(
        self,
        encoder: str = "caffenet",
        image_size: int = 227,
        num_clusters: int = 10000,
        pca_dim: int = 256,
        kmeans_iterations: int = 20,
        head_width: int = 4096,
        dropout: float = 0.5,
        sobel: bool = True,
        encoder_init_std: float | None = None,
    ) -> None:
        super().__init__()
        if num_clusters < 2 or pca_dim < 1 or kmeans_iterations < 1:
            raise ValueError("num_clusters must be at least 2, pca_dim and kmeans_iterations at least 1")
        self.num_clusters, self.pca_dim, self.kmeans_iterations = num_clusters, pca_dim, kmeans_iterations
        self.encoder = create_encoder(encoder)
        s = pool5_size(image_size)
        # fc7's output, before the ReLU, is what is clustered
        self.head = alexnet_head(self.encoder.out_channels * s * s, head_width, dropout=dropout,
                                 dropout_at="input", fc7_relu=False)  # fmt: skip
        self.top = nn.Linear(head_width, num_clusters)
        if encoder_init_std is None:
            kaiming_init_(self.encoder)
        else:
            gaussian_init_(self.encoder, encoder_init_std)
        gaussian_init_(self.head, LINEAR_STD)  # authors' code: every linear layer N(0, 0.01²), bias 0
        self._reset_top(torch.Generator().manual_seed(0))
        if sobel:
            sobel_input_(self.encoder, encoder_init_std)
        # The epoch's plan (``on_epoch_start``), checkpointed through get_extra_state.
        self.register_buffer("pseudo_labels", torch.zeros(0, dtype=torch.long), persistent=False)  # [n]
        self.planned_epoch = -1
        self.sample_order = torch.zeros(0, dtype=torch.long)  # [n]
        self.stats: dict[str, float] = {}  # nmi (from the second epoch), clusters, refilled

    @torch.no_grad()
    def _reset_top(self, generator: torch.Generator) -> None:
        weight = torch.randn(self.top.weight.shape, generator=generator) * LINEAR_STD
        self.top.weight.copy_(weight)
        self.top.bias.zero_()

    @torch.no_grad()
    def pool_features(self, images: Iterable[dict[str, torch.Tensor]]) -> tuple[np.ndarray, torch.Tensor]:
        """fc7 (before its ReLU) of every image, in eval mode: [m, head_width] float32; their indices [m]."""
        was_training = self.training
        self.eval()
        features, indices = [], []
        for batch in images:
            features.append(self.head(self.encoder(batch["image"])).float().cpu())  # [N, head_width]
            indices.append(batch["index"].cpu())
        self.train(was_training)
        return torch.cat(features).numpy(), torch.cat(indices)

    @torch.no_grad()
    def on_epoch_start(
        self, epoch: int, images: Iterable[dict[str, torch.Tensor]], seed: int
    ) -> torch.Tensor | None:
        """Re-cluster the pool, re-initialise the top layer; the epoch's order: uniform over clusters."""
        if epoch == self.planned_epoch:
            return self.sample_order  # a resumed run: the plan made at the epoch's start (checkpointed)
        n = len(images)  # type: ignore[arg-type]  # PoolImages is sized
        device = self.top.weight.device
        labels = torch.full((n,), -1, dtype=torch.long)  # -1: not clustered (an unreadable image)
        stats = torch.zeros(3, dtype=torch.float64)
        if _is_rank0():
            features, indices = self.pool_features(images)
            gpu = device.type == "cuda" and faiss.get_num_gpus() > 0  # faiss-gpu installed
            ids, numbers = cluster_features(
                features, self.num_clusters, self.pca_dim, self.kmeans_iterations, seed, gpu
            )
            labels[indices] = torch.from_numpy(ids)
            stats = torch.tensor([numbers["clusters"], numbers["refilled"], numbers["kmeans_loss"]])
        labels = _from_rank0(labels, device)
        stats = _from_rank0(stats, device).tolist()
        previous = self.pseudo_labels.cpu()
        self.stats = {"clusters": stats[0], "refilled": stats[1], "kmeans_loss": stats[2]}
        if len(previous) == n:
            both = (previous >= 0) & (labels >= 0)
            self.stats["nmi"] = float(normalized_mutual_info_score(previous[both], labels[both]))
        generator = torch.Generator().manual_seed(seed)
        self._reset_top(generator)
        self.sample_order = uniform_cluster_order(labels, n, generator)
        self.pseudo_labels = labels.to(device)
        self.planned_epoch = epoch
        return self.sample_order

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.planned_epoch < 0:
            raise RuntimeError("DeepCluster trains on the pseudo-labels of on_epoch_start: call it first")
        target = self.pseudo_labels[batch["index"]]  # [N]
        logits = self.top(F.relu(self.head(self.encoder(batch["image"])))).float()  # [N, k]
        loss = F.cross_entropy(logits, target)
        out = {"loss": loss, "accuracy": (logits.detach().argmax(1) == target).float().mean()}
        for name in ("nmi", "clusters"):
            if name in self.stats:
                out[name] = torch.tensor(self.stats[name], device=loss.device)
        return out

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "planned_epoch": self.planned_epoch,
            "pseudo_labels": self.pseudo_labels.cpu(),
            "sample_order": self.sample_order,
            "stats": dict(self.stats),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.planned_epoch = int(state["planned_epoch"])
        self.pseudo_labels = state["pseudo_labels"].to(self.top.weight.device)
        self.sample_order = state["sample_order"]
        self.stats = dict(state["stats"])
