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

Features come from ``features.py`` (shared with ``knn``): one centre crop per image, the trunk asserted frozen
(in ``eval()`` mode, without gradients, bit-identical after the evaluation); its NOTEs apply here.
NOTE: difficult labels (0) are left out of SVM training by default, as out of the test AP; Goyal et al. train
on them as negatives (``difficult_as_negative: true`` restores that).
NOTE: the cost sweep is a recipe list (paper recipe 1e-4 … 1e1 in decades); the published configs sweep a
longer list. ``cost_selection: val`` (train on ``train``, choose on ``val``, retrain on ``trainval``) replaces
cross-validation where it is too slow.
NOTE: folds are stratified and shuffled with the evaluation seed (scikit-learn's default ``cv=3`` is not
shuffled); a class with fewer positives (or negatives) than folds uses as many folds as it can, down to 2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from tqdm import tqdm

from ssl_bench.data.voc import VOC_CLASSES, VOCClassification, read_image_set
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext, Metrics, check_disjoint, register_evaluator
from ssl_bench.evaluators.classification import classification_metrics
from ssl_bench.evaluators.features import FeatureProtocol, l2_normalize, voc_features

if TYPE_CHECKING:  # scikit-learn is imported where the SVMs run, to keep `bench` start-up fast
    from sklearn.svm import LinearSVC

# SVM protocol (Goyal et al. 2019 / VISSL svm_trainer.py).
POSITIVE_CLASS_WEIGHT = 2.0
SVM_TOL = 1e-4
PRIMARY_AP = "area"


@dataclass(frozen=True)
class Protocol(FeatureProtocol):
    """``cls-linear`` recipe keys: the feature keys (``FeatureProtocol``) and Goyal et al.'s SVM protocol."""

    train_split: str = "trainval"
    test_split: str = "test"
    costs: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # NOTE: the published configs sweep more
    cost_selection: Literal["cv", "val"] = "cv"  # "val": train on train, choose on val (NOTE above)
    cv_folds: int = 3
    difficult_as_negative: bool = False  # NOTE: Goyal et al. train on difficult labels as negatives
    svm_max_iter: int = 2000
    svm_jobs: int = 1

    def __post_init__(self) -> None:
        if not self.costs:
            raise RecipeError("cls-linear: costs must be a non-empty list")


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


@register_evaluator("cls-linear", protocol=Protocol, label="linear probe", metric="map_area", order=4,
                    short="linear", trivial="a constant scorer (same AP rule)")
def evaluate_linear_svm(ctx: EvalContext) -> Metrics:
    """Per-class linear SVMs on frozen features; test mAP (see the module docstring)."""
    from sklearn.exceptions import ConvergenceWarning

    p: Protocol = ctx.protocol
    train_split, test_split, costs = p.train_split, p.test_split, p.costs
    negative, max_iter = p.difficult_as_negative, p.svm_max_iter
    splits = (train_split, test_split) + (("train", "val") if p.cost_selection == "val" else ())
    ids = {s: read_image_set(ctx.voc_root, s, "Main") for s in (train_split, test_split)}
    check_disjoint(ids[train_split], ids[test_split], f"cls-linear: Main/{train_split} vs Main/{test_split}")

    features = voc_features(ctx, splits, p)
    (train_voc, train_x), (test_voc, test_x) = features[train_split], features[test_split]
    train_x, test_x = l2_normalize(train_x), l2_normalize(test_x)
    with warnings.catch_warnings():
        # liblinear stops at max_iter on the weakest costs/features; the protocol accepts that (VISSL too).
        warnings.simplefilter("ignore", ConvergenceWarning)
        ap = _selection_ap(ctx, features, train_x, train_voc.labels)
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
        "cost_selection": p.cost_selection,
        "chosen_costs": {n: float(c) for n, c in zip(VOC_CLASSES, chosen, strict=True)},
        "selection_map": "mean over classes of the best cost's selection AP (scikit-learn AP)",
        "difficult_in_training": "negative" if negative else "ignored",
    }
    if untrained:
        ctx.extra["classes_without_svm"] = untrained
    return metrics


def _selection_ap(
    ctx: EvalContext,
    features: dict[str, tuple[VOCClassification, np.ndarray]],
    train_x: np.ndarray,
    train_labels: np.ndarray,
) -> np.ndarray:
    """(C, costs) selection AP of each cost: cross-validated on the training split (``cv``), or trained on
    Main ``train`` and scored on ``val`` (``val``). Called with liblinear's convergence warnings off."""
    p: Protocol = ctx.protocol
    if p.cost_selection == "cv":
        return cross_validated_ap(
            train_x,
            train_labels,
            p.costs,
            folds=p.cv_folds,
            seed=ctx.seed,
            difficult_as_negative=p.difficult_as_negative,
            max_iter=p.svm_max_iter,
            jobs=p.svm_jobs,
            progress=ctx.progress,
        )
    (sel_train_voc, sel_train_x), (val_voc, val_x) = features["train"], features["val"]
    return validation_ap(
        l2_normalize(sel_train_x),
        sel_train_voc.labels,
        l2_normalize(val_x),
        val_voc.labels,
        p.costs,
        difficult_as_negative=p.difficult_as_negative,
        max_iter=p.svm_max_iter,
        progress=ctx.progress,
    )
