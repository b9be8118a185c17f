"""Evaluation metrics: pure functions (and one accumulator) on numpy arrays, matching the canonical code.

* Classification: :func:`voc_classification_ap` in the variants of :data:`AP_VARIANTS`, :func:`mean_ap`.
* Detection: :func:`voc_detection_ap` (py-faster-rcnn ``voc_eval``), :func:`detection_pr_curve`, and the
  labelled COCO-protocol extra :func:`coco_style_detection_ap`.
* Segmentation: :class:`SegmentationConfusion` (FCN ``score.py``).
* Inpainting: :func:`hole_metrics` (hole L1 %, L2 %, PSNR dB; Table 1).
"""

from ssl_bench.metrics.classification import AP_VARIANTS, mean_ap, voc_ap, voc_classification_ap
from ssl_bench.metrics.detection import (
    PrecisionRecallCurve,
    coco_style_detection_ap,
    detection_pr_curve,
    voc_detection_ap,
)
from ssl_bench.metrics.filters import conv1_structure
from ssl_bench.metrics.inpainting import hole_errors, hole_metrics, psnr, summarize_hole_errors
from ssl_bench.metrics.segmentation import SegmentationConfusion

__all__ = [
    "AP_VARIANTS",
    "PrecisionRecallCurve",
    "SegmentationConfusion",
    "coco_style_detection_ap",
    "conv1_structure",
    "detection_pr_curve",
    "hole_errors",
    "hole_metrics",
    "mean_ap",
    "psnr",
    "summarize_hole_errors",
    "voc_ap",
    "voc_classification_ap",
    "voc_detection_ap",
]
