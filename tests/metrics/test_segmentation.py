"""Segmentation confusion and FCN scores: hand-worked values, a per-pixel loop reference, merging."""

import math

import numpy as np
import pytest

from ssl_bench.metrics import SegmentationConfusion


def naive_confusion(pred, target, num_classes, ignore_index=255):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist(), strict=True):
        if t != ignore_index:
            matrix[t, p] += 1
    return matrix


def fcn_scores(hist):
    """FCN score.py's formulas, as written there (warnings and all)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        acc = np.diag(hist) / hist.sum(1)
        freq = hist.sum(1) / hist.sum()
        return {
            "pixel_acc": np.diag(hist).sum() / hist.sum(),
            "mean_acc": np.nanmean(acc),
            "miou": np.nanmean(iu),
            "fwiou": (freq[freq > 0] * iu[freq > 0]).sum(),
        }


def test_hand_worked_scores():
    # Valid (gt, pred) pixels: (0,0) (0,1) (1,1) (1,1) (2,0); the 255 pixel is dropped.
    #   rows (gt): [1 1 0], [0 2 0], [1 0 0]; diag 1 2 0; row sums 2 2 1; column sums 2 3 0.
    #   IU = 1/(2+2-1) = 1/3, 2/(2+3-2) = 2/3, 0/(1+0-0) = 0 -> mean IU 1/3.
    #   pixel acc 3/5; class acc 1/2, 1, 0 -> mean 1/2; fwIU = 2/5*1/3 + 2/5*2/3 + 1/5*0 = 2/5.
    conf = SegmentationConfusion(3)
    conf.update(np.array([0, 1, 1, 1, 0, 2]), np.array([0, 0, 1, 1, 2, 255]))
    np.testing.assert_array_equal(conf.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert conf.matrix.dtype == np.int64
    scores = conf.compute()
    np.testing.assert_allclose(scores["iou"], [1 / 3, 2 / 3, 0.0], rtol=0, atol=1e-15)
    assert scores["miou"] == pytest.approx(1 / 3, abs=1e-15)
    assert scores["pixel_acc"] == pytest.approx(3 / 5, abs=1e-15)
    assert scores["mean_acc"] == pytest.approx(1 / 2, abs=1e-15)
    assert scores["fwiou"] == pytest.approx(2 / 5, abs=1e-15)


def test_absent_classes_follow_fcn_nanmean():
    # gt 0 0 1, pred 0 0 2 over 4 classes. IU: class 0 = 2/2 = 1; class 1 (in gt, never predicted) = 0;
    # class 2 (predicted, not in gt) = 0/(0+1) = 0 and counts; class 3 (nowhere) = 0/0 = NaN, skipped.
    # mean IU = (1 + 0 + 0)/3 = 1/3. Class accuracy 1, 0, NaN, NaN -> mean 1/2.
    conf = SegmentationConfusion(4)
    conf.update(np.array([[0, 0, 2]]), np.array([[0, 0, 1]]))
    scores = conf.compute()
    assert np.isnan(scores["iou"][3]) and scores["iou"][2] == 0.0
    assert scores["miou"] == pytest.approx(1 / 3, abs=1e-15)
    assert scores["mean_acc"] == pytest.approx(1 / 2, abs=1e-15)
    for key, value in fcn_scores(conf.matrix).items():
        assert scores[key] == pytest.approx(value, abs=1e-15)


def test_random_arrays_match_per_pixel_loop_and_fcn_formulas():
    rng = np.random.default_rng(0)
    for _ in range(50):
        num_classes = int(rng.integers(1, 8))
        shape = tuple(rng.integers(1, 9, int(rng.integers(1, 4))))
        # Few classes present per problem, so some are absent from gt or prediction or both.
        pred = rng.integers(0, num_classes, shape)
        target = rng.integers(0, num_classes, shape)
        target[rng.random(shape) < 0.2] = 255
        conf = SegmentationConfusion(num_classes)
        conf.update(pred, target)
        np.testing.assert_array_equal(conf.matrix, naive_confusion(pred, target, num_classes))
        scores = conf.compute()
        for key, value in fcn_scores(conf.matrix).items():
            if np.isnan(value):
                assert np.isnan(scores[key])
            else:
                assert abs(scores[key] - value) < 1e-12, key


def test_uint8_labels_do_not_overflow():
    # 20 * 21 + 20 = 440 does not fit in uint8.
    pred = np.array([20, 3, 0], dtype=np.uint8)
    target = np.array([20, 255, 20], dtype=np.uint8)
    conf = SegmentationConfusion(21)
    conf.update(pred, target)
    np.testing.assert_array_equal(conf.matrix, naive_confusion(pred, target, 21))


def test_one_matrix_over_the_whole_set_and_merge_equals_update_on_concatenation():
    rng = np.random.default_rng(1)
    preds = [rng.integers(0, 5, (4, 6)) for _ in range(3)]
    targets = [np.where(rng.random((4, 6)) < 0.1, 255, rng.integers(0, 5, (4, 6))) for _ in range(3)]
    whole = SegmentationConfusion(5)
    whole.update(np.concatenate(preds), np.concatenate(targets))
    shards = [SegmentationConfusion(5) for _ in range(3)]
    for shard, pred, target in zip(shards, preds, targets, strict=True):
        shard.update(pred, target)
    merged = SegmentationConfusion(5)
    for shard in shards:
        assert merged.merge(shard) is merged
    np.testing.assert_array_equal(merged.matrix, whole.matrix)
    assert merged.compute()["miou"] == whole.compute()["miou"]
    # Batch by batch on one object is the same.
    batched = SegmentationConfusion(5)
    for pred, target in zip(preds, targets, strict=True):
        batched.update(pred, target)
    np.testing.assert_array_equal(batched.matrix, whole.matrix)
    batched.reset()
    assert batched.matrix.sum() == 0


def test_empty_confusion_scores_are_nan():
    scores = SegmentationConfusion(3).compute()
    assert all(math.isnan(scores[key]) for key in ("miou", "pixel_acc", "mean_acc", "fwiou"))


@pytest.mark.parametrize(
    ("pred", "target"),
    [
        (np.array([0, 3]), np.array([0, 1])),  # prediction outside [0, C)
        (np.array([0, -1]), np.array([0, 1])),  # negative prediction
        (np.array([0, 1]), np.array([0, 7])),  # stray ground-truth label
        (np.array([0, 1]), np.array([[0, 1]])),  # shapes differ
        (np.array([0.0, 1.0]), np.array([0, 1])),  # not integers
    ],
)
def test_bad_input_raises(pred, target):
    with pytest.raises(ValueError):
        SegmentationConfusion(3).update(pred, target)


def test_ignored_pixels_are_not_counted_but_their_predictions_are_checked():
    conf = SegmentationConfusion(3)
    conf.update(np.array([0, 1]), np.array([0, 255]))
    assert conf.matrix.sum() == 1
    with pytest.raises(ValueError):  # a prediction of 3 means the model has the wrong number of classes
        conf.update(np.array([0, 3]), np.array([0, 255]))


def test_merge_rejects_mismatched_confusions():
    with pytest.raises(ValueError):
        SegmentationConfusion(3).merge(SegmentationConfusion(4))
    with pytest.raises(ValueError):
        SegmentationConfusion(3).merge(SegmentationConfusion(3, ignore_index=-1))
