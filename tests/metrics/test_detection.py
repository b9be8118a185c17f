"""VOC detection AP: hand-worked cases, and agreement with a loop transcription of py-faster-rcnn voc_eval."""

import sys

import numpy as np
import pytest

from ssl_bench.metrics import coco_style_detection_ap, detection_pr_curve, voc_detection_ap

VARIANTS = ("voc07_11point", "area")


def gt_entry(boxes, labels, difficult=None):
    boxes = np.array(boxes, dtype=float).reshape(-1, 4)
    difficult = [False] * len(boxes) if difficult is None else difficult
    return {"boxes": boxes, "labels": np.array(labels, dtype=int), "difficult": np.array(difficult, bool)}


def det_entry(boxes, labels, scores):
    return {
        "boxes": np.array(boxes, dtype=float).reshape(-1, 4),
        "labels": np.array(labels, dtype=int),
        "scores": np.array(scores, dtype=float),
    }


def test_hand_worked_ranking_duplicate_and_difficult():
    # Image A: boxes g1, g2 of class 0. Image B: one difficult class-0 box. npos = 2.
    gt = {
        "A": gt_entry([[0, 0, 9, 9], [20, 20, 29, 29]], [0, 0]),
        "B": gt_entry([[0, 0, 9, 9]], [0], [True]),
    }
    det = {
        # .9 on g1: TP.  .7 on g1 again (IoU 81/119 = .68): g1 taken -> FP.  .6 on g2: TP.
        "A": det_entry([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29]], [0, 0, 0], [0.9, 0.7, 0.6]),
        # .8 on the difficult box: ignored.
        "B": det_entry([[0, 0, 9, 9]], [0], [0.8]),
    }
    # Counted ranking T F T: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    #   11-point: t = 0 ... .5 (6 thresholds) -> 1; t = .6 ... 1 (5) -> 2/3: (6 + 10/3)/11 = 28/33.
    #   area: 1/2*1 + 1/2*2/3 = 5/6.
    assert voc_detection_ap(gt, det, 1, "voc07_11point")[0] == pytest.approx(28 / 33, abs=1e-15)
    assert voc_detection_ap(gt, det, 1, "area")[0] == pytest.approx(5 / 6, abs=1e-15)
    curve = detection_pr_curve(gt, det, 1)[0]
    assert curve.num_positives == 2
    np.testing.assert_array_equal(curve.scores, [0.9, 0.7, 0.6])  # the ignored .8 is left out
    np.testing.assert_array_equal(curve.true_positive, [True, False, True])


def test_no_fallback_to_second_best_box():
    # g1 = [0,0,9,9] (100 px), g2 = [0,0,9,10] (110 px). A second detection on g1 exactly overlaps g2 by
    # 100/110 > .5 too, but its best box g1 is taken: FP. Ranking T F: precision 1, 1/2 at recall 1/2, 1/2.
    #   11-point: t = 0 ... .5 -> 1 (6 of 11) = 6/11; area = 1/2.
    gt = {"A": gt_entry([[0, 0, 9, 9], [0, 0, 9, 10]], [0, 0])}
    det = {"A": det_entry([[0, 0, 9, 9], [0, 0, 9, 9]], [0, 0], [0.9, 0.8])}
    assert voc_detection_ap(gt, det, 1, "voc07_11point")[0] == pytest.approx(6 / 11, abs=1e-15)
    assert voc_detection_ap(gt, det, 1, "area")[0] == pytest.approx(0.5, abs=1e-15)


def test_best_box_difficult_ignores_detection_even_if_another_box_overlaps():
    # g1 difficult = [0,0,9,9], g2 = [0,0,9,10]. Detection on g1 (IoU 1 with g1, 100/110 with g2): ignored,
    # not a TP on g2. The second detection takes g2: ranking (ignored) T -> AP 1. Were the first one a FP,
    # precision would be 1/2 and AP 1/2.
    gt = {"A": gt_entry([[0, 0, 9, 9], [0, 0, 9, 10]], [0, 0], [True, False])}
    det = {"A": det_entry([[0, 0, 9, 9], [0, 0, 9, 10]], [0, 0], [0.9, 0.8])}
    for variant in VARIANTS:
        # (11-point sums 11 terms of 1/11: 1.0000000000000002, as in the devkit.)
        assert voc_detection_ap(gt, det, 1, variant)[0] == pytest.approx(1.0, abs=1e-15)


def test_plus_one_pixel_iou_and_strict_threshold():
    gt = {"A": gt_entry([[0, 0, 9, 9]], [0])}  # 10 x 10 = 100 px
    # [0,0,9,18]: 10 x 19 = 190 px, IoU 100/190 = .526 -> TP (without the +1 it would be 81/162 = .5 -> FP).
    tall = {"A": det_entry([[0, 0, 9, 18]], [0], [1.0])}
    # [0,0,9,19]: 10 x 20 = 200 px, IoU exactly 100/200 = .5 -> not > .5 -> FP.
    taller = {"A": det_entry([[0, 0, 9, 19]], [0], [1.0])}
    for variant in VARIANTS:
        assert voc_detection_ap(gt, tall, 1, variant)[0] == pytest.approx(1.0, abs=1e-15)
        assert voc_detection_ap(gt, taller, 1, variant)[0] == pytest.approx(0.0, abs=1e-15)
    assert voc_detection_ap(gt, taller, 1, "area", iou_threshold=0.49)[0] == pytest.approx(1.0, abs=1e-15)


def test_tied_scores_rank_by_ground_truth_image_order():
    # Score .5 on A (TP) and .5 on B (no objects -> FP), npos = 1.
    #   A first: T F -> precision 1 at recall 1 -> AP 1.
    #   B first: F T -> precision 1/2 at recall 1 -> AP 1/2.
    det = {"B": det_entry([[0, 0, 9, 9]], [0], [0.5]), "A": det_entry([[0, 0, 9, 9]], [0], [0.5])}
    a_first = {"A": gt_entry([[0, 0, 9, 9]], [0]), "B": gt_entry([], [])}
    b_first = {"B": gt_entry([], []), "A": gt_entry([[0, 0, 9, 9]], [0])}
    for variant in VARIANTS:
        assert voc_detection_ap(a_first, det, 1, variant)[0] == pytest.approx(1.0, abs=1e-15)
        assert voc_detection_ap(b_first, det, 1, variant)[0] == pytest.approx(0.5, abs=1e-15)


def test_empty_classes_and_images():
    gt = {
        "A": gt_entry([[0, 0, 9, 9], [0, 0, 9, 9]], [0, 2], [False, True]),
        "empty": gt_entry([], []),  # every test image counts, also those without objects
    }
    det = {
        "A": det_entry([[0, 0, 9, 9], [0, 0, 9, 9]], [0, 1], [0.9, 0.9]),
        "empty": det_entry([[0, 0, 9, 9]], [0], [0.95]),
    }
    # Class 0: F (image without objects) then T -> precision 1/2 at recall 1 -> AP 1/2 under both rules.
    # Class 1: detections, no boxes -> NaN. Class 2: only a difficult box -> NaN. Class 3: nothing -> NaN.
    ap = voc_detection_ap(gt, det, 4)
    assert ap[0] == pytest.approx(0.5, abs=1e-15)
    assert np.isnan(ap[1:]).all()
    # A class with positives and no detections: AP 0.
    assert voc_detection_ap(gt, {}, 4, "area")[0] == pytest.approx(0.0, abs=1e-15)
    assert voc_detection_ap(gt, {"A": det_entry([], [], [])}, 4)[0] == pytest.approx(0.0, abs=1e-15)


def test_detection_on_unknown_image_is_named():
    gt = {"000001": gt_entry([[0, 0, 9, 9]], [0])}
    det = {"000002": det_entry([[0, 0, 9, 9]], [0], [0.5])}
    with pytest.raises(ValueError, match="000002"):
        voc_detection_ap(gt, det, 1)


@pytest.mark.parametrize(
    ("gt", "det", "variant"),
    [
        ({"A": gt_entry([[0, 0, 9, 9]], [1])}, {}, "area"),  # label >= num_classes
        ({"A": {"boxes": np.zeros((1, 4)), "labels": np.zeros(1, int)}}, {}, "area"),  # no difficult
        ({"A": gt_entry([[0, 0, 9, 9]], [0])}, {"A": det_entry([[0, 0, 9, 9]], [0], [np.nan])}, "area"),
        ({"A": gt_entry([[0, 0, 9, 9]], [0])}, {"A": det_entry([[0, 0, 9, 9]], [0], [1, 2])}, "area"),
        ({"A": gt_entry([[0, 0, 9, 9]], [0])}, {}, "sklearn"),  # not a detection variant
    ],
)
def test_bad_input_raises(gt, det, variant):
    with pytest.raises(ValueError):
        voc_detection_ap(gt, det, 1, variant)


# ---------------------------------------------------------------------------------------------------------
# Randomised agreement with a deliberately naive transcription of py-faster-rcnn's voc_eval.


def reference_voc_ap(rec, prec, use_07_metric):
    """py-faster-rcnn's voc_ap, loop form."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    ap = 0.0
    for i in range(mrec.size - 1):
        if mrec[i + 1] != mrec[i]:
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1]
    return ap


def reference_voc_eval(ground_truth, detections, classname, ovthresh, use_07_metric):
    """py-faster-rcnn voc_eval for one class, on in-memory inputs. Returns (ap, npos).

    Deviations from the original, both deliberate: detections are read in image-set order (the order
    py-faster-rcnn writes its detection files in), and sorted with a stable sort (the original's default
    introsort leaves ties in unspecified order); precision divides by max(tp + fp, eps) as in its later
    versions (the first version gave NaN when the top-ranked detection was ignored).
    """
    class_recs = {}
    npos = 0
    for imagename, gt in ground_truth.items():
        keep = [j for j in range(len(gt["labels"])) if gt["labels"][j] == classname]
        bbox = np.array([gt["boxes"][j] for j in keep])
        difficult = np.array([gt["difficult"][j] for j in keep]).astype(bool)
        det = [False] * len(keep)
        npos = npos + sum(~difficult)
        class_recs[imagename] = {"bbox": bbox, "difficult": difficult, "det": det}

    image_ids, confidence, boxes = [], [], []
    for imagename in ground_truth:
        if imagename not in detections:
            continue
        d = detections[imagename]
        for j in range(len(d["labels"])):
            if d["labels"][j] == classname:
                image_ids.append(imagename)
                confidence.append(float(d["scores"][j]))
                boxes.append([float(v) for v in d["boxes"][j]])
    confidence = np.array(confidence)
    BB = np.array(boxes).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]

    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = (
                (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0)
                - inters
            )
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0

    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return reference_voc_ap(rec, prec, use_07_metric), int(npos)


def _random_box(rng, size=30):
    x1, y1 = rng.integers(0, size, 2)
    w, h = rng.integers(0, 15, 2)
    return [x1, y1, x1 + w, y1 + h]


def _random_detection_problem(rng):
    num_classes = int(rng.integers(1, 5))
    score_grid = np.round(rng.random(6), 1)  # few distinct scores: many ties
    gt, det = {}, {}
    all_difficult_class = int(rng.integers(0, num_classes)) if rng.random() < 0.2 else None
    for i in range(int(rng.integers(1, 7))):
        image_id = f"img{i}" if rng.random() < 0.5 else i
        k = int(rng.integers(0, 5))  # 0: an image with no objects
        boxes = [_random_box(rng) for _ in range(k)]
        labels = rng.integers(0, num_classes, k)
        difficult = rng.random(k) < 0.25
        if all_difficult_class is not None:
            difficult |= labels == all_difficult_class
        gt[image_id] = gt_entry(boxes, labels, difficult)
        if rng.random() < 0.2:
            continue  # an image with no detections
        d_boxes, d_labels = [], []
        for _ in range(int(rng.integers(0, 9))):
            if k and rng.random() < 0.7:
                # Near a ground-truth box (jittered, so duplicates and partial overlaps both occur).
                j = int(rng.integers(0, k))
                d_boxes.append(list(np.array(boxes[j]) + rng.integers(-3, 4, 4) * (rng.random() < 0.7)))
                d_labels.append(labels[j] if rng.random() < 0.8 else rng.integers(0, num_classes))
            else:
                d_boxes.append(_random_box(rng))
                d_labels.append(rng.integers(0, num_classes))
        # Keep boxes well-formed (x2 >= x1) after jitter.
        d_boxes = [[b[0], b[1], max(b[0], b[2]), max(b[1], b[3])] for b in d_boxes]
        det[image_id] = det_entry(d_boxes, d_labels, rng.choice(score_grid, len(d_boxes)))
    # The detections' own dict order must not matter; only the ground-truth (image-set) order does.
    keys = list(det)
    rng.shuffle(keys)
    return gt, {key: det[key] for key in keys}, num_classes


def test_random_problems_agree_with_py_faster_rcnn_transcription():
    rng = np.random.default_rng(0)
    compared = nan_classes = 0
    for _ in range(200):
        gt, det, num_classes = _random_detection_problem(rng)
        threshold = float(rng.choice([0.5, 0.5, 0.3, 0.7]))
        for variant, use_07 in (("voc07_11point", True), ("area", False)):
            ours = voc_detection_ap(gt, det, num_classes, variant, iou_threshold=threshold)
            for c in range(num_classes):
                expected, npos = reference_voc_eval(gt, det, c, threshold, use_07)
                if npos == 0:
                    # Documented deviation: py-faster-rcnn gives 0 (VOC07) or NaN/0 (area) here.
                    assert np.isnan(ours[c])
                    nan_classes += 1
                    continue
                assert abs(ours[c] - expected) < 1e-12, (variant, c, gt, det)
                compared += 1
    assert compared > 500 and nan_classes > 20


# ---------------------------------------------------------------------------------------------------------
# COCO-style extra.


def test_coco_style_ap_is_labelled_extra():
    pytest.importorskip("pycocotools")
    gt = {"A": gt_entry([[0, 0, 99, 99]], [0]), "B": gt_entry([[10, 10, 59, 59]], [1])}
    perfect = {"A": det_entry([[0, 0, 99, 99]], [0], [0.9]), "B": det_entry([[10, 10, 59, 59]], [1], [0.8])}
    result = coco_style_detection_ap(gt, perfect, 2)
    assert result == pytest.approx({"coco_ap": 1.0, "coco_ap50": 1.0, "coco_ap75": 1.0})
    # One class, IoU 100*62 / (100*100) = .62: matched at IoU thresholds .5, .55, .6 of the ten -> 3/10.
    one = {"A": gt_entry([[0, 0, 99, 99]], [0])}
    result = coco_style_detection_ap(one, {"A": det_entry([[0, 0, 99, 61]], [0], [0.9])}, 1)
    assert result == pytest.approx({"coco_ap": 0.3, "coco_ap50": 1.0, "coco_ap75": 0.0})
    assert coco_style_detection_ap(one, {}, 1) == {"coco_ap": 0.0, "coco_ap50": 0.0, "coco_ap75": 0.0}


def test_coco_style_ap_without_pycocotools_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)  # makes the import fail
    with pytest.raises(ImportError, match="pycocotools"):
        coco_style_detection_ap({"A": gt_entry([], [])}, {}, 1)
