"""Linear SVM probe on frozen features, VOC2007 classification (task ``cls-linear``, PAPER.md §3 extension).

Protocol source: Goyal, Mahajan, Gupta, Misra, "Scaling and Benchmarking Self-Supervised Visual
Representation Learning", ICCV 2019, VOC07 image-classification benchmark
(``facebookresearch/fair_self_supervision_benchmark``, carried on as VISSL's ``svm_trainer.py``):

* the trunk is frozen; every Main ``trainval`` and ``test`` image gives one feature vector from a tap
  (``pool5`` by default), L2-normalised per image;
* for each class and each cost of a sweep, a linear SVM (scikit-learn ``LinearSVC``: squared hinge, L2
  penalty, dual, intercept scaling 1, tol 1e-4, class weight 2 for positives, at most 2000 iterations);
* the cost is chosen per class by the mean average precision of 3-fold cross-validation on trainval, and the
  SVM of that cost, trained on all of trainval, scores the test images;
* metric: VOC2010+ area AP (``map_area``, primary); the 11-point and scikit-learn variants are reported too.

The trunk is asserted frozen: in ``eval()`` mode, without gradients, and bit-identical after the evaluation.
:func:`frozen_features` (feature extraction with those checks) is shared with the ``knn`` evaluator.

NOTE: features come from one centre crop: the shorter side resized to ``resize`` (default: ``image_size``),
then an ``image_size`` square from the middle (Goyal et al. centre-crop too, at 224 px for ResNets).
NOTE: a tap with more than ``max_dim`` values (e.g. conv3: 384×13×13) is average-pooled to the largest square
s×s with C·s² ≤ max_dim (9216, pool5's size), adaptively. Goyal et al. pick a fixed average-pool kernel per
layer to reach about 9k values; the dimension bound is the same, the pooling windows may differ.
NOTE: difficult labels (0) are left out of SVM training by default, as out of the test AP; Goyal et al. train
on them as negatives (``difficult_as_negative: true`` restores that).
NOTE: the cost sweep is a recipe list (paper recipe 1e-4 … 1e1 in decades); the published configs sweep a
longer list. ``cost_selection: val`` (train on ``train``, choose on ``val``, retrain on ``trainval``) replaces
cross-validation where it is too slow.
NOTE: folds are stratified and shuffled with the evaluation seed (scikit-learn's default ``cv=3`` is not
shuffled); a class with fewer positives (or negatives) than folds uses as many folds as it can, down to 2.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ssl_bench.data.transforms import normalize, to_tensor
from ssl_bench.data.voc import VOC_CLASSES, VOCClassification, read_image_set
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import (
    EvalContext,
    Metrics,
    assert_unchanged,
    check_disjoint,
    freeze,
    frozen_state,
    register_evaluator,
)
from ssl_bench.evaluators.classification import autocast, classification_metrics, images_to

if TYPE_CHECKING:  # scikit-learn is imported where the SVMs run, to keep `bench` start-up fast
    from sklearn.svm import LinearSVC

# Feature extraction (shared with knn.py).
LAYER = "pool5"
IMAGE_SIZE = 227
MAX_DIM = 9216  # 256 × 6 × 6: pool5 at 227 px, the bound Goyal et al. pool every tap down to

# SVM protocol (Goyal et al. 2019 / VISSL svm_trainer.py).
COSTS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
CV_FOLDS = 3
POSITIVE_CLASS_WEIGHT = 2.0
SVM_MAX_ITER = 2000
SVM_TOL = 1e-4
COST_SELECTION = "cv"  # or "val"
TRAIN_SPLIT, TEST_SPLIT = "trainval", "test"
PRIMARY_AP = "area"


# ------------------------------------------------------------------------------------------------------
# Frozen features.


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to take from the frozen trunk, and how to feed it.

    Attributes:
        layer: an encoder tap (``conv1`` … ``pool5``).
        image_size: side of the centre crop.
        resize: shorter side before cropping (None: ``image_size``).
        max_dim: taps with more values are average-pooled spatially to at most this many.
        batch_size, workers: of the extraction DataLoader.
    """

    layer: str = LAYER
    image_size: int = IMAGE_SIZE
    resize: int | None = None
    max_dim: int = MAX_DIM
    batch_size: int = 64
    workers: int = 2

    @classmethod
    def from_recipe(cls, ctx: EvalContext) -> FeatureSpec:
        o = ctx.option
        return cls(
            layer=str(o("layer", LAYER)),
            image_size=int(o("image_size", IMAGE_SIZE)),
            resize=o("resize", None),
            max_dim=int(o("max_dim", MAX_DIM)),
            batch_size=int(o("batch_size", 64)),
            workers=int(o("workers", 2)),
        )


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


def tap_features(encoder: nn.Module, x: torch.Tensor, layer: str, max_dim: int) -> torch.Tensor:
    """One feature vector per image from ``layer``, average-pooled if it holds over ``max_dim`` values.

    Args:
        encoder: a frozen encoder with named taps.
        x: [N, 3, H, W] normalised images.
        layer: tap name.
        max_dim: bound on the vector length (see the module NOTE).

    Returns:
        [N, D] float32 features, D = C·s² ≤ max_dim (or C·H·W when that already fits).
    """
    fmap = encoder(x, taps=(layer,))[layer].float()  # [N, C, H, W], e.g. pool5 [N, 256, 6, 6]
    c, h, w = fmap.shape[1:]
    if c * h * w > max_dim:
        side = max(1, math.isqrt(max_dim // c))
        fmap = F.adaptive_avg_pool2d(fmap, min(side, h, w))  # [N, C, s, s]
    return fmap.flatten(1)


@torch.no_grad()
def extract_features(
    ctx: EvalContext, encoder: nn.Module, voc: VOCClassification, spec: FeatureSpec
) -> np.ndarray:
    """Features of every image of ``voc`` (in its order) from the frozen ``encoder``.

    Returns:
        (N, D) float32 array, not normalised.
    """
    voc.transform = CentreCrop(spec.image_size, spec.resize)
    loader = DataLoader(
        voc,
        batch_size=spec.batch_size,
        shuffle=False,
        num_workers=spec.workers,
        pin_memory=ctx.device.type == "cuda",
    )
    out = []
    desc = f"{spec.layer} features ({voc.split})"
    with tqdm(total=len(voc), desc=desc, unit="img", disable=not ctx.progress) as bar:
        for images, _ in loader:  # images: [B, 3, S, S]
            images = images_to(ctx.device, images)
            with autocast(ctx.device):
                out.append(tap_features(encoder, images, spec.layer, spec.max_dim).cpu())
            ctx.images_processed += images.shape[0]
            bar.update(images.shape[0])
    return torch.cat(out).numpy()  # [N, D]


def frozen_features(
    ctx: EvalContext, splits: tuple[str, ...], spec: FeatureSpec
) -> dict[str, tuple[VOCClassification, np.ndarray]]:
    """Load the encoder, freeze it, extract features of each Main split, assert the trunk did not change.

    Args:
        ctx: evaluation context (weights, device, VOC root).
        splits: Main split names, e.g. ``("trainval", "test")``.
        spec: what to extract.

    Returns:
        ``{split: (dataset, features (N, D) float32)}``; ``dataset.labels`` holds the devkit labels.

    Raises:
        AssertionError: the trunk left ``eval()`` mode or any weight or buffer changed.
    """
    encoder = ctx.load_encoder()
    taps = getattr(encoder, "taps", ())
    if spec.layer not in taps:
        raise RecipeError(f"layer '{spec.layer}' is not a tap of {ctx.arch}; available: {', '.join(taps)}")
    encoder = freeze(encoder.to(ctx.device))
    if ctx.device.type == "cuda":
        encoder = encoder.to(memory_format=torch.channels_last)
    before = frozen_state(encoder)
    out = {}
    for split in splits:
        voc = VOCClassification(ctx.voc_root, split)
        out[split] = (voc, extract_features(ctx, encoder, voc, spec))
        assert not encoder.training, "frozen trunk left eval() mode"
        assert not any(p.requires_grad for p in encoder.parameters()), "frozen trunk has trainable weights"
    assert_unchanged(encoder, before)
    ctx.extra |= {
        "layer": spec.layer,
        "feature_dim": int(next(iter(out.values()))[1].shape[1]),
        "image_size": spec.image_size,
        "trunk_frozen": True,
    }
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (VISSL's ``+1e-5`` guard keeps all-zero rows at zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)


# ------------------------------------------------------------------------------------------------------
# SVMs.


def _svm(cost: float, max_iter: int) -> LinearSVC:
    from sklearn.svm import LinearSVC

    return LinearSVC(
        C=cost,
        class_weight={1: POSITIVE_CLASS_WEIGHT, -1: 1.0},
        loss="squared_hinge",
        penalty="l2",
        dual=True,
        tol=SVM_TOL,
        intercept_scaling=1.0,
        max_iter=max_iter,
    )


def binary_targets(labels: np.ndarray, difficult_as_negative: bool) -> tuple[np.ndarray, np.ndarray]:
    """One class's devkit labels (N,) → (rows used for training, targets ±1 of those rows)."""
    keep = np.ones(len(labels), dtype=bool) if difficult_as_negative else labels != 0
    return keep, np.where(labels[keep] > 0, 1, -1)


def cross_validated_ap(
    x: np.ndarray,
    labels: np.ndarray,
    costs: tuple[float, ...],
    *,
    folds: int,
    seed: int,
    difficult_as_negative: bool,
    max_iter: int,
    jobs: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Mean k-fold average precision (scikit-learn's) of every class × cost.

    Args:
        x: (N, D) normalised features; labels: (N, C) devkit labels.

    Returns:
        (C, K) mean AP; NaN for a class with fewer than 2 positives or negatives (it cannot be split).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    ap = np.full((labels.shape[1], len(costs)), np.nan)
    for c in tqdm(range(labels.shape[1]), desc="SVM cost sweep (cv)", unit="class", disable=not progress):
        keep, y = binary_targets(labels[:, c], difficult_as_negative)
        n_folds = min(folds, int((y > 0).sum()), int((y < 0).sum()))
        if n_folds < 2:
            continue
        cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, cost in enumerate(costs):
            ap[c, k] = cross_val_score(
                _svm(cost, max_iter), x[keep], y, cv=cv, scoring="average_precision", n_jobs=jobs
            ).mean()
    return ap


def validation_ap(
    x_train: np.ndarray,
    labels_train: np.ndarray,
    x_val: np.ndarray,
    labels_val: np.ndarray,
    costs: tuple[float, ...],
    *,
    difficult_as_negative: bool,
    max_iter: int,
    progress: bool = False,
) -> np.ndarray:
    """Average precision (scikit-learn's) on ``val`` of SVMs trained on ``train``, every class × cost.

    Returns:
        (C, K); NaN where train or val lacks positives or negatives.
    """
    from sklearn.metrics import average_precision_score

    ap = np.full((labels_train.shape[1], len(costs)), np.nan)
    for c in tqdm(
        range(labels_train.shape[1]), desc="SVM cost sweep (val)", unit="class", disable=not progress
    ):
        keep, y = binary_targets(labels_train[:, c], difficult_as_negative)
        val_keep = labels_val[:, c] != 0
        y_val = labels_val[val_keep, c] > 0
        if len(set(y.tolist())) < 2 or y_val.all() or not y_val.any():
            continue
        for k, cost in enumerate(costs):
            svm = _svm(cost, max_iter).fit(x_train[keep], y)
            ap[c, k] = average_precision_score(y_val, svm.decision_function(x_val[val_keep]))
    return ap


def choose_costs(ap: np.ndarray, costs: tuple[float, ...]) -> np.ndarray:
    """Per class, the cost of the highest selection AP (the smallest such cost on ties, as ``argmax``).

    A class whose selection AP is undefined everywhere gets the middle cost of the sweep.
    """
    chosen = np.full(ap.shape[0], costs[len(costs) // 2], dtype=np.float64)
    defined = ~np.isnan(ap).all(axis=1)
    chosen[defined] = np.asarray(costs)[np.nanargmax(ap[defined], axis=1)]
    return chosen


def svm_scores(
    x_train: np.ndarray,
    labels_train: np.ndarray,
    x_test: np.ndarray,
    chosen: np.ndarray,
    *,
    difficult_as_negative: bool,
    max_iter: int,
) -> tuple[np.ndarray, list[str]]:
    """Train one SVM per class at its chosen cost on all of ``x_train``; decision values on ``x_test``.

    Returns:
        ((M, C) scores, names of classes that could not be trained: no positive or no negative; they score 0).
    """
    scores = np.zeros((x_test.shape[0], labels_train.shape[1]))
    untrained = []
    for c in range(labels_train.shape[1]):
        keep, y = binary_targets(labels_train[:, c], difficult_as_negative)
        if len(set(y.tolist())) < 2:
            untrained.append(VOC_CLASSES[c])
            continue
        scores[:, c] = _svm(float(chosen[c]), max_iter).fit(x_train[keep], y).decision_function(x_test)
    return scores, untrained


@register_evaluator("cls-linear")
def evaluate_linear_svm(ctx: EvalContext) -> Metrics:
    """Per-class linear SVMs on frozen features; test mAP (see the module docstring).

    Recipe keys: ``layer``, ``image_size``, ``resize``, ``max_dim``, ``batch_size``, ``workers`` (features);
    ``costs``, ``cost_selection`` (``cv`` | ``val``), ``cv_folds``, ``difficult_as_negative``,
    ``svm_max_iter``, ``svm_jobs``, ``train_split``, ``test_split``.
    """
    from sklearn.exceptions import ConvergenceWarning

    o = ctx.option
    spec = FeatureSpec.from_recipe(ctx)
    costs = tuple(float(c) for c in o("costs", COSTS))
    selection = o("cost_selection", COST_SELECTION)
    if selection not in ("cv", "val") or not costs:
        raise RecipeError(
            "cls-linear recipe: cost_selection must be 'cv' or 'val' and costs a non-empty list"
        )
    train_split, test_split = o("train_split", TRAIN_SPLIT), o("test_split", TEST_SPLIT)
    negative = bool(o("difficult_as_negative", False))
    max_iter = int(o("svm_max_iter", SVM_MAX_ITER))
    splits = (train_split, test_split) + (("train", "val") if selection == "val" else ())
    ids = {s: read_image_set(ctx.voc_root, s, "Main") for s in (train_split, test_split)}
    check_disjoint(ids[train_split], ids[test_split], f"cls-linear: Main/{train_split} vs Main/{test_split}")

    features = frozen_features(ctx, splits, spec)
    (train_voc, train_x), (test_voc, test_x) = features[train_split], features[test_split]
    train_x, test_x = l2_normalize(train_x), l2_normalize(test_x)
    with warnings.catch_warnings():
        # liblinear stops at max_iter on the weakest costs/features; the protocol accepts that (VISSL too).
        warnings.simplefilter("ignore", ConvergenceWarning)
        if selection == "cv":
            ap = cross_validated_ap(
                train_x,
                train_voc.labels,
                costs,
                folds=int(o("cv_folds", CV_FOLDS)),
                seed=ctx.seed,
                difficult_as_negative=negative,
                max_iter=max_iter,
                jobs=int(o("svm_jobs", 1)),
                progress=ctx.progress,
            )
        else:
            (sel_train_voc, sel_train_x), (val_voc, val_x) = features["train"], features["val"]
            ap = validation_ap(
                l2_normalize(sel_train_x),
                sel_train_voc.labels,
                l2_normalize(val_x),
                val_voc.labels,
                costs,
                difficult_as_negative=negative,
                max_iter=max_iter,
                progress=ctx.progress,
            )
        chosen = choose_costs(ap, costs)
        scores, untrained = svm_scores(
            train_x, train_voc.labels, test_x, chosen, difficult_as_negative=negative, max_iter=max_iter
        )

    metrics = classification_metrics(ctx, scores, test_voc.labels, PRIMARY_AP)
    selectable = ~np.isnan(ap).all(axis=1)
    if selectable.any():
        metrics["selection_map"] = float(np.nanmax(ap[selectable], axis=1).mean())
    ctx.extra |= {
        "train_split": train_split,
        "test_split": test_split,
        "num_train_images": len(train_voc),
        "num_test_images": len(test_voc),
        "costs": list(costs),
        "cost_selection": selection,
        "chosen_costs": {n: float(c) for n, c in zip(VOC_CLASSES, chosen, strict=True)},
        "selection_map": "mean over classes of the best cost's selection AP (scikit-learn AP)",
        "difficult_in_training": "negative" if negative else "ignored",
    }
    if untrained:
        ctx.extra["classes_without_svm"] = untrained
    return metrics
