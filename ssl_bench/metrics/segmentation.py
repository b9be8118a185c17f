"""Semantic segmentation scores from one confusion matrix over the whole test set (FCN ``score.py``).

The paper's segmentation column is FCN's mean IU. FCN accumulates a single class-by-class histogram over
all test pixels (``fast_hist``: ``np.bincount(n * gt + pred)``, ground truth as rows) and reads every score
off it: per-class IU = diag / (row + column - diag), mean IU = ``np.nanmean`` of those. Averaging per-image
IUs instead gives a different, usually lower, number.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _nanmean(values: np.ndarray) -> float:
    """``np.nanmean`` without its all-NaN RuntimeWarning (the result is NaN then as well)."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


class SegmentationConfusion:
    """Pixel confusion matrix of a segmentation test set, and the FCN scores read from it.

    Feed predictions batch by batch with :meth:`update`; combine shards (or DDP ranks) with :meth:`merge`
    or by all-reducing :attr:`matrix`; read scores with :meth:`compute`.

    Attributes:
        num_classes: C.
        ignore_index: ground-truth value whose pixels are left out (VOC's 255 object boundaries).
        matrix: (C, C) int64 pixel counts, rows = ground truth, columns = prediction. It may be replaced
            or reduced in place, e.g. ``dist.all_reduce(torch.from_numpy(conf.matrix))`` on CPU.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Zero the counts."""
        self.matrix[...] = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add the pixels of one batch.

        Args:
            pred: integer class predictions in [0, C), any shape.
            target: integer ground truth, same shape: classes in [0, C) or ``ignore_index``.

        Raises:
            ValueError: shapes differ, a non-integer array, a prediction outside [0, C), or a target
                outside [0, C) that is not ``ignore_index``. NOTE: FCN's ``fast_hist`` silently drops every
                out-of-range target, not only 255; a stray label here is a data bug, so it is reported.
        """
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise ValueError(f"pred {pred.shape} and target {target.shape} must have the same shape")
        if pred.dtype.kind not in "iu" or target.dtype.kind not in "iu":
            raise ValueError(f"pred and target must be integer arrays, got {pred.dtype} and {target.dtype}")
        # int64 first: a uint8 target times C would wrap around.
        pred, target = pred.astype(np.int64).ravel(), target.astype(np.int64).ravel()
        n = self.num_classes
        # Checked on every pixel, ignored ones too: an out-of-range prediction means a wrong num_classes.
        if pred.size and (pred.min() < 0 or pred.max() >= n):
            raise ValueError(f"pred has values outside [0, {n}): min {pred.min()}, max {pred.max()}")
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        if target.size and (target.min() < 0 or target.max() >= n):
            raise ValueError(
                f"target has values outside [0, {n}) other than ignore_index={self.ignore_index}: "
                f"min {target.min()}, max {target.max()}"
            )
        self.matrix += np.bincount(n * target + pred, minlength=n * n).reshape(n, n)

    def merge(self, other: SegmentationConfusion) -> SegmentationConfusion:
        """Add another confusion's counts to this one (e.g. another shard of the test set).

        Returns:
            self, for chaining.
        """
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge a confusion over {other.num_classes} classes (ignore {other.ignore_index}) "
                f"into one over {self.num_classes} classes (ignore {self.ignore_index})"
            )
        self.matrix += other.matrix
        return self

    def compute(self) -> dict[str, float | np.ndarray]:
        """FCN ``score.py`` scores of the accumulated counts.

        Returns:
            ``miou``: mean over classes of IU; ``iou``: (C,) per-class IU = TP / (TP + FP + FN);
            ``pixel_acc``: correct pixels / all pixels; ``mean_acc``: mean over classes of per-class pixel
            accuracy (recall); ``fwiou``: IU weighted by each class's ground-truth pixel share.

            Means are ``nanmean`` over classes, as in FCN: a class absent from both ground truth and
            predictions has IU NaN and is skipped, while a class absent from the ground truth but predicted
            has IU 0 and counts. A class absent from the ground truth is skipped in ``mean_acc``.
            With no pixels at all every score is NaN.
        """
        hist = self.matrix.astype(np.float64)
        diag = np.diag(hist)
        gt_pixels = hist.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = diag / (gt_pixels + hist.sum(axis=0) - diag)
            class_acc = diag / gt_pixels
            pixel_acc = diag.sum() / hist.sum()
            freq = gt_pixels / hist.sum()
        present = freq > 0  # also drops the NaN freq of an empty matrix
        return {
            "miou": _nanmean(iou),
            "pixel_acc": float(pixel_acc),
            "mean_acc": _nanmean(class_acc),
            "fwiou": float((freq[present] * iou[present]).sum()) if present.any() else float("nan"),
            "iou": iou,
        }


# ------------------------------------------------------------------------------------------------------
# Trivial levels: what a segmenter that learnt nothing about the images scores (issue #22).


def class_pixel_counts(
    targets: Iterable[np.ndarray], num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """(C,) int64 ground-truth pixels of each class over ``targets``, ``ignore_index`` left out."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for target in targets:
        target = np.asarray(target).astype(np.int64).ravel()
        target = target[target != ignore_index]
        if target.size and (target.min() < 0 or target.max() >= num_classes):
            raise ValueError(f"target has values outside [0, {num_classes}) other than {ignore_index}")
        counts += np.bincount(target, minlength=num_classes)
    return counts


def constant_prediction_miou(class_counts: np.ndarray, label: int = 0) -> float:
    """Mean IU (:meth:`SegmentationConfusion.compute`) of predicting ``label`` at every pixel.

    With ground-truth pixel counts ``n_k``, that confusion has one column: IU of ``label`` is its share of
    all pixels, every other class present in the ground truth has IU 0 and absent classes are NaN (skipped).
    ``label = 0`` is the all-background answer, the trivial level of VOC segmentation.

    Args:
        class_counts: (C,) ground-truth pixels of each class (:func:`class_pixel_counts` of the test masks).
        label: the class predicted everywhere.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    confusion = SegmentationConfusion(counts.size)
    confusion.matrix[:, label] = counts
    return float(confusion.compute()["miou"])


def pixel_prior_cross_entropy(class_counts: np.ndarray) -> float:
    """The chance loss of per-pixel softmax cross-entropy: the entropy (nats) of the pixel-class prior.

    The best constant logits (log of each class's pixel share) give a mean per-pixel cross-entropy equal to
    the entropy ``-sum_k q_k log q_k`` of the shares ``q_k``; a training loss not below it has learnt nothing
    beyond the class frequencies. NaN when there are no pixels.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    q = counts[counts > 0] / total
    return float(-(q * np.log(q)).sum())
