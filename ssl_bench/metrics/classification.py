"""PASCAL VOC classification average precision, in the three variants the literature mixes up.

The paper's classification column (PAPER.md §3) comes from Krähenbühl's ``voc-classification`` code,
which scores with scikit-learn's non-interpolated AP after nudging every positive's score down by 1e-5
(``src/train_cls.py``, PAPER.md §5); the VOC2007 devkit scores with 11-point interpolated
AP; linear SVM probe suites use the VOC2010+ devkit's area under the precision envelope. The three differ
by a few points of mAP on the same scores, so every number this package reports carries its variant name.

The precision/recall ranking follows the devkit's ``VOCevalcls.m``::

    [so,si] = sort(-confidence);  tp = gt(si) > 0;  fp = gt(si) < 0;
    rec = cumsum(tp) / sum(gt > 0);  prec = cumsum(tp) ./ (cumsum(fp) + cumsum(tp));

and the two devkit AP rules follow ``VOCevalcls.m`` (2007) and ``VOCap.m`` (2010+), in the numpy form of
py-faster-rcnn's ``voc_ap``. ``voc_ap`` is shared with :mod:`ssl_bench.metrics.detection`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

AP_VARIANTS: Mapping[str, str] = {
    "voc07_11point": (
        "VOC2007 devkit 11-point interpolated AP (recall 0, 0.1, ..., 1); the paper's detection metric "
        "(Fast R-CNN, py-faster-rcnn use_07_metric=True)"
    ),
    "area": (
        "VOC2010+ devkit AP: area under the monotone precision envelope; used by linear-SVM probe suites"
    ),
    "sklearn": (
        "Krähenbühl's voc-classification AP, the source of the paper's classification numbers: scikit-learn "
        "average_precision_score(gt, score - 1e-5 * gt), non-interpolated, positives nudged down by 1e-5 "
        "so near-ties count pessimistically"
    ),
}
"""Names accepted by the ``variant`` arguments, each with the one-line description tables print."""

# Recall thresholds of the VOC2007 11-point AP, exactly as py-faster-rcnn builds them. Some are not the
# decimal they print as (0.1 * 3 == 0.30000000000000004, 0.1 * 6 == 0.6000000000000001, ...).
# NOTE: the MATLAB devkit's ``0:0.1:1`` rounds some of them differently (MATLAB's colon operator builds the
# upper half of the range down from 1), so when a recall lands exactly on such a value (e.g. 3 of 5
# positives found, recall 0.6) the MATLAB number can differ from this one. PAPER.md §5 fixes the numpy
# thresholds, which is what the paper's detection numbers (py-faster-rcnn) used.
_VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


# Krähenbühl's voc-classification (src/train_cls.py) scores each class with
#     metrics.average_precision_score(gt, score - 1e-5 * gt)      (gt 1 present, 0 absent; difficult dropped)
# "to make AP work for tied scores": a positive within 1e-5 above a negative, or tied with it, ranks below it.
SKLEARN_POSITIVE_NUDGE = 1e-5


def _check_variant(variant: str, allowed: tuple[str, ...]) -> None:
    if variant not in allowed:
        raise ValueError(f"unknown AP variant {variant!r}; expected one of {list(allowed)}")


def voc_ap(recall: np.ndarray, precision: np.ndarray, variant: str = "voc07_11point") -> float:
    """AP of one ranked precision/recall curve under a VOC devkit rule.

    Args:
        recall: (M,) recall after each ranked item.
        precision: (M,) precision after each ranked item, same length.
        variant: ``"voc07_11point"``: mean over t in ``numpy.arange(0, 1.1, 0.1)`` of the highest precision at
            recall >= t (0 where recall never reaches t). ``"area"``: area under the precision envelope
            (precision made non-increasing from the right), summed where recall changes.

    Returns:
        The AP, a float in [0, 1]. An empty curve gives 0 under both rules.
    """
    _check_variant(variant, ("voc07_11point", "area"))
    recall = np.asarray(recall, dtype=np.float64).ravel()
    precision = np.asarray(precision, dtype=np.float64).ravel()
    if recall.shape != precision.shape:
        raise ValueError(f"recall {recall.shape} and precision {precision.shape} differ in length")
    if variant == "voc07_11point":
        ap = 0.0
        for t in _VOC07_RECALL_THRESHOLDS:
            reached = recall >= t
            # Accumulated term by term, in the devkit's order, so the float sum matches it bit for bit.
            ap += (precision[reached].max() if reached.any() else 0.0) / 11.0
        return float(ap)
    # Sentinels: the curve starts at recall 0 and ends at recall 1 with precision 0.
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changed = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changed + 1] - mrec[changed]) * mpre[changed + 1]))


def _ranked_ap(scores: np.ndarray, positive: np.ndarray, variant: str) -> float:
    """AP of one class from per-item scores and binary truth (difficult items already dropped)."""
    npos = int(positive.sum())
    if npos == 0:
        return float("nan")
    if variant == "sklearn":
        # Krähenbühl's nudge, the same float64 subtraction as his code.
        scores = scores - SKLEARN_POSITIVE_NUDGE * positive
    # Stable sort of the negated scores == MATLAB's sort(-confidence): tied items keep input order.
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / npos
    precision = tp / (tp + fp)
    if variant != "sklearn":
        return voc_ap(recall, precision, variant)
    # scikit-learn puts one curve point per distinct score (its thresholds), i.e. at the last item of each
    # run of tied scores, then sums (R_k - R_{k-1}) * P_k without interpolation.
    sorted_scores = scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), sorted_scores.size - 1]
    recall, precision = recall[last_of_tie], precision[last_of_tie]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def voc_classification_ap(
    scores: np.ndarray, labels: np.ndarray, variant: str = "voc07_11point"
) -> np.ndarray:
    """Per-class average precision of multi-label image classification, PASCAL VOC style.

    Args:
        scores: (N, C) float scores, higher = more confident the class is present.
        labels: (N, C) ground truth in the devkit convention: 1 present, -1 absent, 0 difficult. A 0 drops
            that image for that class only (devkit: neither a true nor a false positive).
        variant: one of :data:`AP_VARIANTS`.

    Returns:
        (C,) float64 APs in [0, 1].

    Edge cases:
        * Tied scores. ``"voc07_11point"`` and ``"area"`` rank tied images in input (row) order, as the
          devkit's stable ``sort(-confidence)`` does, so the AP of a tie block depends on row order.
          ``"sklearn"`` first moves every positive 1e-5 down (Krähenbühl's nudge), so a positive tied with a
          negative, or less than 1e-5 above it, ranks below it; items still tied after the nudge form one
          threshold (one curve point), as in scikit-learn, so row order does not matter.
        * A class with no positive image (after dropping difficult ones) gets NaN in every variant: recall
          is undefined. NOTE: the devkit itself returns 0 for VOC2007 and NaN for VOC2010+ there, and
          scikit-learn warns and returns 0; NaN is used so that :func:`mean_ap` skips the class instead of
          silently averaging in a 0. VOC2007's 20 classes all have positives in every split.
    """
    _check_variant(variant, tuple(AP_VARIANTS))
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be (N, C)")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf; the ranking would be undefined")
    if not np.all(np.isin(labels, (-1, 0, 1))):
        raise ValueError("labels must be 1 (present), -1 (absent) or 0 (difficult, ignored)")
    aps = np.empty(scores.shape[1], dtype=np.float64)
    for c in range(scores.shape[1]):
        keep = labels[:, c] != 0
        aps[c] = _ranked_ap(scores[keep, c], labels[keep, c] > 0, variant)
    return aps


def mean_ap(ap: np.ndarray) -> float:
    """Mean of per-class APs, skipping NaN (classes without positives).

    Args:
        ap: (C,) per-class APs as returned by :func:`voc_classification_ap` or
            :func:`ssl_bench.metrics.voc_detection_ap`.

    Returns:
        The mean over the non-NaN entries; NaN if every entry is NaN (or ``ap`` is empty).
    """
    ap = np.asarray(ap, dtype=np.float64).ravel()
    defined = ap[~np.isnan(ap)]
    return float(defined.mean()) if defined.size else float("nan")


# ------------------------------------------------------------------------------------------------------
# Trivial levels: what a classifier that learnt nothing about the images scores (issue #22).


def constant_scorer_ap(labels: np.ndarray, variant: str = "voc07_11point") -> np.ndarray:
    """Per-class AP of a constant scorer: every image gets the same score for a class (the label prior).

    Defined as :func:`voc_classification_ap` of all-equal scores, so each variant treats the tie as it
    treats any tie: ``"sklearn"`` ranks every positive below every negative (Krähenbühl's nudge), one curve
    point at recall 1, AP = the class's positive fraction (difficult images dropped); ``"voc07_11point"`` and
    ``"area"`` rank the tied images in row order, so the AP is that of the test list's own order.

    Args:
        labels: (N, C) devkit labels (1 present, -1 absent, 0 difficult).
        variant: one of :data:`AP_VARIANTS`.

    Returns:
        (C,) float64 APs; NaN for a class without positives, as :func:`voc_classification_ap`.
    """
    labels = np.asarray(labels)
    return voc_classification_ap(np.zeros(labels.shape, dtype=np.float64), labels, variant)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) = -p log p - (1-p) log(1-p) in nats, 0 at p = 0 and p = 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p) + (1.0 - p) * np.log1p(-p))
    return np.where((p > 0) & (p < 1), h, 0.0)


def label_prior_cross_entropy(labels: np.ndarray) -> float:
    """The chance loss of multi-label sigmoid cross-entropy: the best constant per-class logits' loss.

    The loss is summed over classes and averaged over images, difficult labels (0) left out, as the ``cls``
    fine-tuning loss (Caffe's sigmoid cross-entropy). A constant logit ``logit(p_c)``, with ``p_c`` the
    class's positive fraction among its non-difficult labels, minimises it; its value is
    ``sum_c (valid_c / N) * H(p_c)``, with ``H`` the binary entropy in nats. A training loss that does not go
    below this number has learnt nothing beyond the label frequencies.

    Args:
        labels: (N, C) devkit labels (1 present, -1 absent, 0 difficult) of the training images.

    Returns:
        The loss in nats per image; NaN for no images.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (N, C), got shape {labels.shape}")
    if labels.shape[0] == 0:
        return float("nan")
    valid = (labels != 0).sum(axis=0).astype(np.float64)  # (C,)
    positive = (labels > 0).sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        prior = np.where(valid > 0, positive / valid, 0.0)
    return float(np.sum(valid / labels.shape[0] * _binary_entropy(prior)))
