"""Evaluation metrics: pure functions (and one accumulator) on numpy arrays, matching the canonical code.

* Classification: :func:`voc_classification_ap` in the variants of :data:`AP_VARIANTS`, :func:`mean_ap`.
* Detection: :func:`voc_detection_ap` (py-faster-rcnn ``voc_eval``), :func:`detection_pr_curve`, and the
  labelled COCO-protocol extra :func:`coco_style_detection_ap`.
* Segmentation: :class:`SegmentationConfusion` (FCN ``score.py``).
* Trivial levels (issue #22): :func:`constant_scorer_ap`, :func:`constant_prediction_miou`,
  :func:`constant_detector_ap`; chance losses :func:`label_prior_cross_entropy`,
  :func:`pixel_prior_cross_entropy`.
* Inpainting: :func:`hole_metrics` (hole L1 %, L2 %, PSNR dB; Table 1).
"""

from ssl_bench.metrics.classification import (
    AP_VARIANTS,
    constant_scorer_ap,
    label_prior_cross_entropy,
    mean_ap,
    voc_ap,
    voc_classification_ap,
)
from ssl_bench.metrics.detection import (
    PrecisionRecallCurve,
    coco_style_detection_ap,
    constant_detector_ap,
    detection_pr_curve,
    voc_detection_ap,
)
from ssl_bench.metrics.filters import conv1_structure
from ssl_bench.metrics.inpainting import hole_errors, hole_metrics, psnr, summarize_hole_errors
from ssl_bench.metrics.segmentation import (
    SegmentationConfusion,
    class_pixel_counts,
    constant_prediction_miou,
    pixel_prior_cross_entropy,
)

__all__ = [
    "AP_VARIANTS",
    "PrecisionRecallCurve",
    "SegmentationConfusion",
    "class_pixel_counts",
    "coco_style_detection_ap",
    "constant_detector_ap",
    "constant_prediction_miou",
    "constant_scorer_ap",
    "conv1_structure",
    "detection_pr_curve",
    "hole_errors",
    "hole_metrics",
    "label_prior_cross_entropy",
    "mean_ap",
    "pixel_prior_cross_entropy",
    "psnr",
    "summarize_hole_errors",
    "voc_ap",
    "voc_classification_ap",
    "voc_detection_ap",
]
