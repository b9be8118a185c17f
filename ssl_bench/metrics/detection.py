"""PASCAL VOC detection average precision, with py-faster-rcnn ``voc_eval`` semantics (PAPER.md §5).

The paper's detection column is Fast R-CNN's VOC2007 test mAP, computed by py-faster-rcnn's
``lib/datasets/voc_eval.py`` (a Python port of the devkit's ``VOCevaldet.m``) with the VOC2007 11-point rule.
This module reproduces that number, not a re-interpretation of it:

* IoU uses inclusive pixel coordinates: a box's width is ``x2 - x1 + 1``.
* A detection matches when IoU > threshold (strict). NOTE: the MATLAB devkit tests ``>=``; they differ only
  when an IoU lands exactly on the threshold, and py-faster-rcnn's ``>`` is what the paper's numbers used.
* Detections of a class are ranked by score over the whole test set. Each takes the ground-truth box of its
  class in its image that it overlaps most (first box on an exact tie), difficult boxes included. If that
  box is difficult the detection is ignored (neither TP nor FP); if it was already taken by a higher-ranked
  detection the detection is a FP, with no fallback to the next-best box.
* The number of positives counts non-difficult boxes; every ground-truth image counts, objects or not.

``coco_style_detection_ap`` is an unrelated, COCO-protocol number kept only as a labelled extra.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ssl_bench.metrics.classification import voc_ap

_VOC_VARIANTS = ("voc07_11point", "area")

# Per-detection outcome codes.
_FALSE_POSITIVE, _TRUE_POSITIVE, _IGNORED = 0, 1, -1


class PrecisionRecallCurve(NamedTuple):
    """Ranked detections of one class and the curve they trace (ignored detections left out).

    Attributes:
        scores: (M,) scores, descending.
        true_positive: (M,) bool, True where the detection is a true positive.
        recall: (M,) recall after each detection; NaN everywhere when ``num_positives`` is 0.
        precision: (M,) precision after each detection.
        num_positives: number of non-difficult ground-truth boxes of the class.
    """

    scores: np.ndarray
    true_positive: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    num_positives: int


def _as_boxes(value: object, where: str) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must be (K, 4) x1,y1,x2,y2, got shape {boxes.shape}")
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f"{where}: boxes contain NaN or inf")
    return boxes


def _as_labels(value: object, count: int, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(value).reshape(-1)
    if labels.size != count:
        raise ValueError(f"{where}: {labels.size} labels for {count} boxes")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must be integers in [0, {num_classes})")
    return labels.astype(np.int64)


def _field(entry: Mapping[str, object], key: str, where: str) -> object:
    try:
        return entry[key]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: missing {key!r}") from None


def _pairwise_iou(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every detection with every ground-truth box, +1 pixel convention.

    The arithmetic is term for term the one in py-faster-rcnn's ``voc_eval`` so the floats agree exactly.
    Degenerate boxes give NaN or negative values there and here alike, which never exceed a threshold.
    """
    # det: [D, 1, 4] against gt: [1, K, 4] -> [D, K]
    d, g = det[:, None, :], gt[None, :, :]
    iw = np.maximum(np.minimum(g[..., 2], d[..., 2]) - np.maximum(g[..., 0], d[..., 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(g[..., 3], d[..., 3]) - np.maximum(g[..., 1], d[..., 1]) + 1.0, 0.0)
    inters = iw * ih
    union = (
        (d[..., 2] - d[..., 0] + 1.0) * (d[..., 3] - d[..., 1] + 1.0)
        + (g[..., 2] - g[..., 0] + 1.0) * (g[..., 3] - g[..., 1] + 1.0)
        - inters
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return inters / union


def _match_image(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray,
    det_boxes: np.ndarray,
    det_labels: np.ndarray,
    det_scores: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Outcome code of each detection of one image, in input order.

    Taken flags live per image, so an image's detections can be matched on their own: ranked among
    themselves they meet their boxes in the same order as in the test-set-wide ranking.
    """
    outcome = np.full(det_scores.size, _FALSE_POSITIVE, dtype=np.int8)
    if det_scores.size == 0 or gt_labels.size == 0:
        return outcome
    order = np.argsort(-det_scores, kind="stable")
    iou = _pairwise_iou(det_boxes[order], gt_boxes)  # [D, K]
    # Only boxes of the detection's own class compete; -inf keeps others out of the max (IoU is >= 0).
    iou = np.where(det_labels[order][:, None] == gt_labels[None, :], iou, -np.inf)
    best = iou.argmax(axis=1)  # first maximal box on ties, like np.argmax over the class's boxes
    overlap = iou[np.arange(best.size), best]
    hit = overlap > iou_threshold
    ignored = hit & gt_difficult[best]
    claims = np.flatnonzero(hit & ~gt_difficult[best])  # ascending = ranked order
    # The first-ranked claim on a box takes it; later claims on the same box stay false positives.
    _, first_claim = np.unique(best[claims], return_index=True)
    ranked = np.full(best.size, _FALSE_POSITIVE, dtype=np.int8)
    ranked[ignored] = _IGNORED
    ranked[claims[first_claim]] = _TRUE_POSITIVE
    outcome[order] = ranked
    return outcome


def detection_pr_curve(
    ground_truth: Mapping[Hashable, Mapping[str, object]],
    detections: Mapping[Hashable, Mapping[str, object]],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> list[PrecisionRecallCurve]:
    """Per-class ranked precision/recall curves of VOC detection, the input of :func:`voc_detection_ap`.

    Args:
        ground_truth: per-image boxes, labels and difficult flags; see :func:`voc_detection_ap`.
        detections: per-image boxes, labels and scores; see :func:`voc_detection_ap`.
        num_classes: C.
        iou_threshold: a detection matches when IoU is strictly greater than this.

    Returns:
        One :class:`PrecisionRecallCurve` per class, in class order.

    Raises:
        ValueError: as :func:`voc_detection_ap`.
    """
    unknown = [image_id for image_id in detections if image_id not in ground_truth]
    if unknown:
        raise ValueError(
            f"detections for {len(unknown)} image(s) absent from ground_truth, e.g. {unknown[:5]!r}; "
            "ground_truth must cover every test image"
        )
    all_scores, all_labels, all_outcomes, npos = [], [], [], np.zeros(num_classes, dtype=np.int64)
    # Ground-truth order is the image-set order: it decides how tied scores rank across images.
    for image_id, gt in ground_truth.items():
        where = f"ground_truth[{image_id!r}]"
        gt_boxes, gt_labels, gt_difficult = _image_ground_truth(gt, where, num_classes)
        npos += np.bincount(gt_labels[~gt_difficult], minlength=num_classes)
        det = detections.get(image_id)
        if det is None:
            continue
        det_boxes, det_labels, det_scores = _image_detections(det, f"detections[{image_id!r}]", num_classes)
        outcome = _match_image(
            gt_boxes, gt_labels, gt_difficult, det_boxes, det_labels, det_scores, iou_threshold
        )
        all_scores.append(det_scores)
        all_labels.append(det_labels)
        all_outcomes.append(outcome)

    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    labels = np.concatenate(all_labels) if all_labels else np.zeros(0, dtype=np.int64)
    outcomes = np.concatenate(all_outcomes) if all_outcomes else np.zeros(0, dtype=np.int8)
    return [_class_curve(scores, outcomes, labels == c, int(npos[c])) for c in range(num_classes)]


def _image_ground_truth(
    gt: Mapping[str, object], where: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's ground truth, checked: boxes [K, 4] float64, labels [K] int64, difficult [K] bool."""
    gt_boxes = _as_boxes(_field(gt, "boxes", where), where)
    gt_labels = _as_labels(_field(gt, "labels", where), len(gt_boxes), num_classes, where)
    gt_difficult = np.asarray(_field(gt, "difficult", where)).reshape(-1).astype(bool)
    if gt_difficult.size != gt_labels.size:
        raise ValueError(f"{where}: {gt_difficult.size} difficult flags for {gt_labels.size} boxes")
    if np.any(gt_boxes[:, 2:] - gt_boxes[:, :2] + 1 <= 0):
        raise ValueError(f"{where}: a box has x2 - x1 + 1 <= 0 or y2 - y1 + 1 <= 0 (empty)")
    return gt_boxes, gt_labels, gt_difficult


def _image_detections(
    det: Mapping[str, object], where: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's detections, checked: boxes [D, 4] float64, labels [D] int64, scores [D] float64."""
    det_boxes = _as_boxes(_field(det, "boxes", where), where)
    det_labels = _as_labels(_field(det, "labels", where), len(det_boxes), num_classes, where)
    det_scores = np.asarray(_field(det, "scores", where), dtype=np.float64).reshape(-1)
    if det_scores.size != det_labels.size:
        raise ValueError(f"{where}: {det_scores.size} scores for {det_labels.size} boxes")
    if not np.all(np.isfinite(det_scores)):
        raise ValueError(f"{where}: scores contain NaN or inf")
    return det_boxes, det_labels, det_scores


def _class_curve(
    scores: np.ndarray, outcomes: np.ndarray, of_class: np.ndarray, num_positives: int
) -> PrecisionRecallCurve:
    """The ranked curve of one class: ``of_class`` [N] selects its detections among all ``scores`` [N]."""
    # Ignored detections leave tp and fp unchanged, so dropping them changes no AP: in voc_eval they
    # only repeat the previous (recall, precision) point, or add (0, 0) before the first counted one.
    keep = of_class & (outcomes != _IGNORED)
    class_scores, class_outcomes = scores[keep], outcomes[keep]
    # NOTE: py-faster-rcnn ranks with np.argsort(-confidence), numpy's default introsort, whose order
    # among tied scores is unspecified; the devkit's MATLAB sort is stable. Stable is used here: tied
    # detections rank by image order in ground_truth, then by their order within the image.
    order = np.argsort(-class_scores, kind="stable")
    true_positive = class_outcomes[order] == _TRUE_POSITIVE
    tp = np.cumsum(true_positive)
    fp = np.cumsum(~true_positive)
    n = num_positives
    recall = tp / n if n else np.full(tp.size, np.nan)
    precision = tp / (tp + fp)
    return PrecisionRecallCurve(class_scores[order], true_positive, recall, precision, n)


def voc_detection_ap(
    ground_truth: Mapping[Hashable, Mapping[str, object]],
    detections: Mapping[Hashable, Mapping[str, object]],
    num_classes: int,
    variant: str = "voc07_11point",
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Per-class PASCAL VOC detection AP (py-faster-rcnn ``voc_eval`` / devkit ``VOCevaldet``).

    Args:
        ground_truth: ``{image_id: {"boxes": (K, 4), "labels": (K,), "difficult": (K,)}}`` for every test
            image, objects or not. Boxes are x1, y1, x2, y2 in VOC pixel coordinates (inclusive), labels
            integers in [0, num_classes), difficult booleans. Its iteration order is the image-set order.
        detections: ``{image_id: {"boxes": (D, 4), "labels": (D,), "scores": (D,)}}``; images may be left
            out (no detections), but every key must be in ``ground_truth``.
        num_classes: C.
        variant: ``"voc07_11point"`` (VOC2007, the paper's detection metric) or ``"area"`` (VOC2010+).
        iou_threshold: a detection matches when IoU is strictly greater than this.

    Returns:
        (C,) float64 APs.

    Raises:
        ValueError: a detection image is not in ``ground_truth`` (named in the message), an unknown
            variant, or malformed boxes, labels, scores or flags.

    Edge cases:
        * Tied scores rank by image order in ``ground_truth``, then by order within the image (a stable
          sort, as the devkit's MATLAB sort is). Which of two tied detections claims a box, and so the
          AP, can depend on that order.
        * A class with positives but no detections has AP 0 (PAPER.md §5).
        * A class without positives (no boxes, or only difficult ones) has AP NaN, detections or not:
          recall is undefined. NOTE: py-faster-rcnn returns 0 there for VOC2007 and NaN (with detections)
          or 0 (without) for the area rule; NaN is used throughout so that ``mean_ap`` skips the class.
          VOC2007 test has positives for all 20 classes, so the paper's numbers are unaffected.
    """
    if variant not in _VOC_VARIANTS:
        raise ValueError(f"unknown detection AP variant {variant!r}; expected one of {list(_VOC_VARIANTS)}")
    curves = detection_pr_curve(ground_truth, detections, num_classes, iou_threshold)
    return np.array(
        [voc_ap(c.recall, c.precision, variant) if c.num_positives else np.nan for c in curves],
        dtype=np.float64,
    )


def coco_style_detection_ap(
    ground_truth: Mapping[Hashable, Mapping[str, object]],
    detections: Mapping[Hashable, Mapping[str, object]],
    num_classes: int,
) -> dict[str, float]:
    """COCO-protocol box AP via pycocotools. NOT the VOC number: report it only as a labelled extra.

    COCO AP differs from VOC AP in every convention that matters: it averages IoU thresholds 0.5:0.05:0.95,
    interpolates precision at 101 recall points, keeps at most 100 detections per image and class, matches
    at IoU >= threshold, and averages only over classes that have ground truth.

    Boxes are converted to COCO's [x, y, width, height] with width ``x2 - x1 + 1``, so that pycocotools'
    IoU equals the VOC +1 pixel IoU. Difficult boxes become COCO "crowd" regions (pycocotools has no other
    ignore flag): detections on them are ignored, but crowd overlap is intersection over detection area.

    Args:
        ground_truth: as :func:`voc_detection_ap`.
        detections: as :func:`voc_detection_ap`.
        num_classes: C.

    Returns:
        ``{"coco_ap": AP@[.5:.95], "coco_ap50": AP@.5, "coco_ap75": AP@.75}``; 0 for all when there are no
        detections; -1 where pycocotools finds no ground truth at all.

    Raises:
        ImportError: pycocotools is not installed (``pip install ssl_bench[coco]``).
        ValueError: as :func:`voc_detection_ap`.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError(
            "coco_style_detection_ap needs pycocotools: pip install 'ssl_bench[coco]' (or pycocotools)"
        ) from err
    # Runs the VOC validation too, so both functions reject the same inputs.
    detection_pr_curve(ground_truth, detections, num_classes)
    # pycocotools wants integer image ids, and annotation ids from 1 (id 0 reads as "unmatched").
    image_index = {image_id: i + 1 for i, image_id in enumerate(ground_truth)}
    images, annotations = _coco_ground_truth(ground_truth, image_index)
    results = _coco_detections(detections, image_index)
    if not results:
        # pycocotools' loadRes cannot take an empty list; no detections is AP 0 at every threshold.
        return {"coco_ap": 0.0, "coco_ap50": 0.0, "coco_ap75": 0.0}

    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its summary table
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"coco_ap": float(stats[0]), "coco_ap50": float(stats[1]), "coco_ap75": float(stats[2])}


def _xywh(boxes: np.ndarray) -> np.ndarray:
    """VOC x1, y1, x2, y2 (inclusive) [N, 4] → COCO x, y, width, height with width ``x2 - x1 + 1``."""
    return np.stack(
        [boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], axis=1
    )


def _coco_ground_truth(
    ground_truth: Mapping[Hashable, Mapping[str, object]], image_index: Mapping[Hashable, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """pycocotools' images and annotations; a difficult box becomes a crowd region."""
    images, annotations = [], []
    for image_id, gt in ground_truth.items():
        images.append({"id": image_index[image_id]})
        boxes = _xywh(_as_boxes(gt["boxes"], ""))
        for box, label, difficult in zip(
            boxes, np.asarray(gt["labels"]).reshape(-1), np.asarray(gt["difficult"]).reshape(-1), strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_index[image_id],
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(bool(difficult)),
                }
            )
    return images, annotations


def _coco_detections(
    detections: Mapping[Hashable, Mapping[str, object]], image_index: Mapping[Hashable, int]
) -> list[dict[str, Any]]:
    """pycocotools' result list: one entry per detection."""
    results = []
    for image_id, det in detections.items():
        boxes = _xywh(_as_boxes(det["boxes"], ""))
        for box, label, score in zip(
            boxes, np.asarray(det["labels"]).reshape(-1), np.asarray(det["scores"]).reshape(-1), strict=True
        ):
            results.append(
                {
                    "image_id": image_index[image_id],
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "score": float(score),
                }
            )
    return results


def constant_detector_ap(
    ground_truth: Mapping[Hashable, Mapping[str, object]],
    image_sizes: Mapping[Hashable, tuple[int, int]],
    num_classes: int,
    variant: str = "voc07_11point",
) -> np.ndarray:
    """Per-class AP of the constant detector: the trivial level of VOC detection (issue #22).

    The constant detector looks at no pixel: for every test image and every class it returns one box
    covering the whole image, ``(1, 1, width, height)`` in VOC's 1-based inclusive pixels, all with the
    same score. It is scored by :func:`voc_detection_ap`, so the tie ranks by image order. Its AP is
    above 0 only where objects fill more than half of their image (IoU > 0.5 with the whole frame).

    Args:
        ground_truth: as :func:`voc_detection_ap` (every test image).
        image_sizes: ``{image_id: (width, height)}`` for every image of ``ground_truth``.
        num_classes: C.
        variant: ``"voc07_11point"`` or ``"area"``.

    Returns:
        (C,) float64 APs (NaN for a class without positives).
    """
    missing = [i for i in ground_truth if i not in image_sizes]
    if missing:
        raise ValueError(f"image_sizes lacks {len(missing)} image(s) of ground_truth, e.g. {missing[:5]!r}")
    detections = {}
    for image_id in ground_truth:
        width, height = image_sizes[image_id]
        detections[image_id] = {
            "boxes": np.tile(np.array([[1.0, 1.0, width, height]]), (num_classes, 1)),  # [C, 4]
            "labels": np.arange(num_classes),
            "scores": np.zeros(num_classes),
        }
    return voc_detection_ap(ground_truth, detections, num_classes, variant)
