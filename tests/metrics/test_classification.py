"""VOC classification AP: hand-worked cases, and agreement with scikit-learn and a devkit transcription."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from ssl_bench.metrics import AP_VARIANTS, mean_ap, voc_ap, voc_classification_ap
from ssl_bench.metrics.classification import SKLEARN_POSITIVE_NUDGE


def _one_class(scores, labels, variant):
    return voc_classification_ap(np.array(scores)[:, None], np.array(labels)[:, None], variant)[0]


# Ranking TP FP FP TP TP over 3 positives:
#   precision 1, 1/2, 1/3, 1/2, 3/5 at recall 1/3, 1/3, 1/3, 2/3, 1.
#   sklearn: 1/3*1 + 1/3*1/2 + 1/3*3/5 = 21/30.
#   area: envelope lifts the recall-2/3 point to 3/5: 1/3*1 + 1/3*3/5 + 1/3*3/5 = 11/15.
#   11-point: t = 0, .1, .2, .3 reach recall 1/3 -> 1; t = .4 ... 1 (7 thresholds) -> 3/5:
#     (4 + 7*3/5)/11 = 41/55.
HAND_SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]
HAND_LABELS = [1, -1, -1, 1, 1]


@pytest.mark.parametrize(
    ("variant", "expected"), [("sklearn", 21 / 30), ("area", 11 / 15), ("voc07_11point", 41 / 55)]
)
def test_hand_worked_ap_per_variant(variant, expected):
    assert _one_class(HAND_SCORES, HAND_LABELS, variant) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("variant", list(AP_VARIANTS))
def test_difficult_images_are_dropped_for_their_class_only(variant):
    # A difficult image ranked first would be a false positive if it counted as absent.
    scores = np.array([[0.95, 0.95]] + [[s, s] for s in HAND_SCORES])
    labels = np.array([[0, -1]] + [[y, y] for y in HAND_LABELS])
    ap = voc_classification_ap(scores, labels, variant)
    assert ap[0] == pytest.approx(_one_class(HAND_SCORES, HAND_LABELS, variant), abs=1e-15)
    assert ap[1] < ap[0]


def test_tied_scores_devkit_ranks_by_row_order_sklearn_ranks_the_positive_last():
    # Scores 0.9, 0.5, 0.5, 0.1 with labels +, -, +, -: 2 positives.
    # Devkit (stable sort): T F T F -> precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1.
    #   area = 1/2*1 + 1/2*2/3 = 5/6;  11-point: t <= .5 (6 thresholds) -> 1, t >= .6 (5) -> 2/3: 28/33.
    # Rows of the tie swapped: T T F F -> AP 1 under both devkit rules.
    # sklearn (Krähenbühl): the tied positive drops to 0.49999, under the negative: T F T F, 5/6 both ways.
    neg_first, pos_first = [1, -1, 1, -1], [1, 1, -1, -1]
    scores = [0.9, 0.5, 0.5, 0.1]
    assert _one_class(scores, neg_first, "area") == pytest.approx(5 / 6, abs=1e-15)
    assert _one_class(scores, neg_first, "voc07_11point") == pytest.approx(28 / 33, abs=1e-15)
    assert _one_class(scores, pos_first, "area") == pytest.approx(1.0, abs=1e-15)
    assert _one_class(scores, pos_first, "voc07_11point") == pytest.approx(1.0, abs=1e-15)
    assert _one_class(scores, neg_first, "sklearn") == pytest.approx(5 / 6, abs=1e-15)
    assert _one_class(scores, pos_first, "sklearn") == pytest.approx(5 / 6, abs=1e-15)


def test_sklearn_variant_nudges_a_near_tied_positive_below_the_negative():
    # Labels +, -, +, - with the second positive 5e-6 above the negative: a near-tie.
    # Plain scikit-learn ranks T T F F: AP 1.
    # Krähenbühl's code scores 0.9 - 1e-5, 0.5, 0.500005 - 1e-5 = 0.499995, 0.1: ranking T F T F,
    #   precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    scores, labels = [0.9, 0.5, 0.500005, 0.1], [1, -1, 1, -1]
    assert average_precision_score(np.array(labels) > 0, scores) == 1.0
    assert _one_class(scores, labels, "sklearn") == pytest.approx(5 / 6, abs=1e-15)
    assert _one_class(scores, labels, "sklearn") == krahenbuhl_ap(np.array(scores), np.array(labels))
    # 2e-5 above the negative is out of the nudge's reach: the positive stays ahead.
    assert _one_class([0.9, 0.5, 0.50002, 0.1], labels, "sklearn") == 1.0
    assert "1e-5" in AP_VARIANTS["sklearn"] and "Krähenbühl" in AP_VARIANTS["sklearn"]


def test_voc07_uses_numpy_arange_thresholds():
    # 5 positives: T T T F F F T T. Recall 3/5 == 0.6 does not reach numpy's 6 * 0.1 = 0.6000000000000001.
    #   t = 0 ... .5 (6 thresholds) -> precision 1; t = .6+ ... 1 (5) -> max(4/7, 5/8) = 5/8.
    #   AP = (6 + 5 * 5/8) / 11 = 73/88 (a threshold of exactly 0.6 would give 19/22).
    scores = [8, 7, 6, 5, 4, 3, 2, 1]
    labels = [1, 1, 1, -1, -1, -1, 1, 1]
    assert _one_class(scores, labels, "voc07_11point") == pytest.approx(73 / 88, abs=1e-15)


@pytest.mark.parametrize("variant", list(AP_VARIANTS))
def test_class_without_positives_is_nan_and_mean_ap_skips_it(variant):
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.5, 0.5, 0.5]])
    labels = np.array([[1, -1, 0], [-1, -1, 0], [1, -1, 0]])  # class 1: no positives; class 2: all difficult
    ap = voc_classification_ap(scores, labels, variant)
    assert ap[0] == pytest.approx(1.0)
    assert np.isnan(ap[1]) and np.isnan(ap[2])
    assert mean_ap(ap) == pytest.approx(1.0)
    assert math.isnan(mean_ap(np.array([np.nan])))


def test_voc_ap_of_empty_curve_is_zero():
    assert voc_ap(np.zeros(0), np.zeros(0), "voc07_11point") == 0.0
    assert voc_ap(np.zeros(0), np.zeros(0), "area") == 0.0


@pytest.mark.parametrize(
    ("scores", "labels", "variant"),
    [
        (np.zeros((3, 2)), np.ones((3, 3)), "area"),  # shape mismatch
        (np.zeros(3), np.ones(3), "area"),  # not (N, C)
        (np.zeros((2, 1)), np.array([[1], [2]]), "area"),  # label outside {-1, 0, 1}
        (np.array([[np.nan], [0.0]]), np.array([[1], [-1]]), "area"),  # NaN score
        (np.zeros((2, 1)), np.array([[1], [-1]]), "voc12"),  # unknown variant
    ],
)
def test_bad_input_raises(scores, labels, variant):
    with pytest.raises(ValueError):
        voc_classification_ap(scores, labels, variant)


def test_ap_variants_describe_each_variant():
    assert set(AP_VARIANTS) == {"voc07_11point", "area", "sklearn"}
    assert all(isinstance(text, str) and text for text in AP_VARIANTS.values())


# ---------------------------------------------------------------------------------------------------------
# Randomised agreement with independent references.


def _matlab_max(a, b):
    # MATLAB's max ignores NaN.
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


def devkit_classification_ap(confidence, gt, use_07_metric):
    """Loop transcription of the devkit's VOCevalcls.m (+ VOCap.m), difficult images kept in the ranking.

    Difficult (0) images stay in the sort and count as neither TP nor FP, exactly as in MATLAB; leading ones
    give 0/0 = NaN precision, which MATLAB's max skips. Thresholds are numpy's arange, as specified.
    """
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])  # stable, like MATLAB sort
    npos = sum(1 for g in gt if g > 0)
    rec, prec, tp, fp = [], [], 0, 0
    for i in order:
        tp += gt[i] > 0
        fp += gt[i] < 0
        rec.append(tp / npos)
        prec.append(tp / (tp + fp) if tp + fp else math.nan)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0, 1.1, 0.1):
            p = math.nan
            for r, q in zip(rec, prec, strict=True):
                if r >= t:
                    p = _matlab_max(p, q)
            ap += (0.0 if math.isnan(p) else p) / 11
        return ap
    mrec = [0.0] + rec + [1.0]
    mpre = [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = _matlab_max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def krahenbuhl_ap(score, label):
    """philkr/voc-classification ``src/train_cls.py``, transcribed for one class.

    Its labels are 1 present, 0 absent, 255 difficult (``src/data.py`` swaps the devkit's -1 and 0); then::

        metrics.average_precision_score(gts[i][gts[i]<=1], scr[i][gts[i]<=1]-1e-5*gts[i][gts[i]<=1])
    """
    gt = np.where(label > 0, 1, np.where(label < 0, 0, 255)).astype(np.uint8)
    keep = gt <= 1
    return average_precision_score(gt[keep], score[keep] - 1e-5 * gt[keep])


def _random_classification_problem(rng):
    n, c = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    # Scores on a coarse grid so that ties are common.
    scores = np.round(rng.random((n, c)), int(rng.integers(1, 3)))
    labels = rng.choice([-1, 0, 1], size=(n, c), p=rng.dirichlet([2, 1, 2]))
    return scores, labels


def test_random_problems_agree_with_krahenbuhl_and_devkit_transcriptions():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        scores, labels = _random_classification_problem(rng)
        ours = {variant: voc_classification_ap(scores, labels, variant) for variant in AP_VARIANTS}
        for c in range(scores.shape[1]):
            if not np.any(labels[:, c] > 0):
                assert all(np.isnan(ours[v][c]) for v in AP_VARIANTS)
                continue
            checked += 1
            assert abs(ours["sklearn"][c] - krahenbuhl_ap(scores[:, c], labels[:, c])) < 1e-12
            for variant, use_07 in (("voc07_11point", True), ("area", False)):
                expected = devkit_classification_ap(list(scores[:, c]), list(labels[:, c]), use_07)
                assert abs(ours[variant][c] - expected) < 1e-12, (variant, scores[:, c], labels[:, c])
    assert checked > 300


def _near_tie_problem(rng):
    """Scores on a 0.1 grid plus offsets of 0, 4e-6, 8e-6 or 1.5e-5: exact ties and near-ties within and
    beyond the nudge's 1e-5."""
    n, c = int(rng.integers(4, 40)), int(rng.integers(1, 4))
    offsets = rng.choice([0.0, 4e-6, 8e-6, 1.5e-5], size=(n, c))
    scores = np.round(rng.random((n, c)), 1) + offsets
    labels = rng.choice([-1, 0, 1], size=(n, c), p=[0.45, 0.1, 0.45])
    return scores, labels


def test_sklearn_variant_agrees_with_krahenbuhl_on_near_ties():
    rng = np.random.default_rng(1)
    checked = changed = 0
    for _ in range(60):
        scores, labels = _near_tie_problem(rng)
        ours = voc_classification_ap(scores, labels, "sklearn")
        for c in range(scores.shape[1]):
            keep = labels[:, c] != 0
            if not np.any(labels[:, c] > 0):
                continue
            checked += 1
            expected = krahenbuhl_ap(scores[:, c], labels[:, c])
            assert abs(ours[c] - expected) < 1e-12, (scores[:, c], labels[:, c])
            plain = average_precision_score(labels[keep, c] > 0, scores[keep, c])
            changed += abs(ours[c] - plain) > 1e-12
    assert checked > 100
    assert changed > 10  # the near-ties do move the AP: the nudge is exercised, not just tolerated
    assert SKLEARN_POSITIVE_NUDGE == 1e-5
