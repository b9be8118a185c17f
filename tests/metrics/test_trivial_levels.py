"""Trivial levels and chance losses (issue #22), against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench.metrics import (
    SegmentationConfusion,
    class_pixel_counts,
    constant_detector_ap,
    constant_prediction_miou,
    constant_scorer_ap,
    label_prior_cross_entropy,
    pixel_prior_cross_entropy,
)

# Column 0: positives at rows 0 and 3 of 4 (row 4 difficult, dropped); column 1: one positive of 4.
LABELS = np.array([[1, 1], [-1, -1], [-1, -1], [1, -1], [0, -1]])


def test_constant_scorer_sklearn_ap_is_the_positive_fraction():
    # The nudge ranks both positives below both negatives: one curve point, recall 1, precision 2/4.
    assert constant_scorer_ap(LABELS, "sklearn") == pytest.approx([2 / 4, 1 / 5])


def test_constant_scorer_devkit_aps_rank_the_tie_in_row_order():
    # Column 0 in row order: hit, miss, miss, hit → recall .5 .5 .5 1, precision 1 .5 1/3 .5.
    voc07, area = constant_scorer_ap(LABELS, "voc07_11point"), constant_scorer_ap(LABELS, "area")
    assert voc07[0] == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)  # t ≤ .5 reach precision 1; t > .5 only .5
    assert area[0] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    # Column 1: its one positive comes first → AP 1 under both devkit rules (row order is the scorer's).
    assert voc07[1] == pytest.approx(1.0) and area[1] == pytest.approx(1.0)


def test_constant_scorer_class_without_positives_is_nan():
    assert math.isnan(constant_scorer_ap(np.array([[-1], [-1]]), "sklearn")[0])


def test_label_prior_cross_entropy_by_hand_and_as_the_best_constant_logits_loss():
    labels = np.array([[1, -1], [1, 1], [-1, 0], [-1, -1]])
    h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))  # noqa: E731
    expected = 4 / 4 * h(2 / 4) + 3 / 4 * h(1 / 3)  # class 1 has 3 valid labels (one difficult)
    assert label_prior_cross_entropy(labels) == pytest.approx(expected)
    # The same number from the cls loss (summed over classes, mean over images, difficult left out)
    # at the prior's logits.
    t = torch.tensor(labels)
    logits = torch.logit(torch.tensor([2 / 4, 1 / 3], dtype=torch.float64)).expand(4, 2)
    loss = F.binary_cross_entropy_with_logits(logits, (t > 0).double(), reduction="none")
    assert float((loss * (t != 0)).sum() / 4) == pytest.approx(expected)


def test_label_prior_cross_entropy_is_zero_for_a_class_always_present():
    assert label_prior_cross_entropy(np.array([[1], [1], [1]])) == 0.0


SEG_TARGETS = [np.array([[0, 0, 1]]), np.array([[1, 255, 2]])]


def test_all_background_miou_by_hand():
    counts = class_pixel_counts(SEG_TARGETS, 4)
    assert counts.tolist() == [2, 2, 1, 0]  # 255 ignored
    # Background column holds all 5 pixels: IU 2 / (2 + 5 - 2); classes 1, 2 IU 0; class 3 absent (NaN).
    assert constant_prediction_miou(counts) == pytest.approx((2 / 5 + 0 + 0) / 3)
    confusion = SegmentationConfusion(4)
    for t in SEG_TARGETS:
        confusion.update(np.zeros_like(t), t)
    assert constant_prediction_miou(counts) == pytest.approx(confusion.compute()["miou"])


def test_pixel_prior_cross_entropy_by_hand():
    counts = class_pixel_counts(SEG_TARGETS, 4)
    expected = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    assert pixel_prior_cross_entropy(counts) == pytest.approx(expected)
    assert math.isnan(pixel_prior_cross_entropy(np.zeros(3)))


def test_constant_detector_ap_by_hand():
    ground_truth = {
        # A (100×100): a class-0 box covering 81% of it → the whole-image box matches (IoU .81).
        "A": {"boxes": [[1, 1, 90, 90]], "labels": [0], "difficult": [False]},
        # B (100×50): a small class-0 box (IoU .02: missed) and a class-1 box covering all of it.
        "B": {"boxes": [[1, 1, 10, 10], [1, 1, 100, 50]], "labels": [0, 1], "difficult": [False, False]},
    }
    sizes = {"A": (100, 100), "B": (100, 50)}
    ap = constant_detector_ap(ground_truth, sizes, 3)
    # Class 0 ranked A, B: TP then FP of 2 positives → recall .5 .5, precision 1 .5: 6 of 11 points at 1.
    assert ap[0] == pytest.approx(6 / 11)
    # Class 1: A's box is a FP (no class-1 object), B's a TP → precision .5 at recall 1: every point .5.
    assert ap[1] == pytest.approx(0.5)
    assert math.isnan(ap[2])  # no positives
    with pytest.raises(ValueError, match="image_sizes"):
        constant_detector_ap(ground_truth, {"A": (100, 100)}, 3)
