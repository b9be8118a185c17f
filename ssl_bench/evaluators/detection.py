"""Detection transfer: Fast R-CNN (or Faster R-CNN) on the encoder's conv5, VOC2007 trainval → test.

Protocol (PAPER.md §3, detection row): the paper fine-tunes the whole trunk in Fast R-CNN (Girshick 2015) on
selective-search proposals, trained and tested at several scales as in Krähenbühl et al.'s setup, and reports
VOC2007 test mAP at IoU 0.5 with the VOC2007 11-point AP (PAPER.md §5). The network here is torchvision's
``FasterRCNN`` assembled like Fast R-CNN's CaffeNet model (rbgirshick/fast-rcnn ``models/CaffeNet``):

* feature map: the encoder up to conv5 (stride 16, no pool5), 256 channels;
* RoI max pooling to 6×6 on conv5 (Fast R-CNN's ``ROIPooling``, spatial scale 1/16), so that fc6 sees
  the 256×6×6 = 9216 inputs it sees after pool5 in classification;
* fc6 → fc7 (ReLU, dropout 0.5), then a 21-way classifier (20 classes + background) and per-class box
  regression;
* ``detector: fast_rcnn`` (the paper's; the paper and mini recipes'): the RoIs are a ``proposals`` file —
  Fast R-CNN's selective-search boxes converted by ``bench data proposals`` (``data/proposals.py``) — or
  ``proposals: selective_search``: selective search run by the suite on the dataset's own images once,
  cached (``data/selective_search.py``, OpenCV's implementation; the mini recipe's, SynthVOC has no
  ``.mat`` files). Without proposals the run stops at its start (an error record, exit 2) and says how to
  get them or choose the RPN.
  ``detector: faster_rcnn``: an RPN trained jointly on the same conv5 makes them (Faster R-CNN,
  approximate joint training; NOTE below).
* scales (``min_size``, one or several shorter sides; ``max_size`` caps the longer): with several, each
  training image is resized to one drawn at random (Fast R-CNN ``roi_data_layer/minibatch.py``;
  torchvision's transform draws the same way) and testing runs Fast R-CNN's image pyramid, each RoI pooled
  at the scale where its area is closest to 224² (``detection_model.pyramid_detect``;
  ``lib/fast_rcnn/test.py::_project_im_rois``).

Sources of the paper recipe (``eval/paper/det.yaml``), all rbgirshick/fast-rcnn: scales 480/576/688/864/1200
and longest side ≤ 2000 from ``experiments/cfgs/multiscale.yml`` (TRAIN and TEST alike); 40k iterations
(``experiments/scripts/multiscale_caffenet.sh`` tests ``…_multiscale_iter_40000``; ``tools/train_net.py``
``--iters`` default 40000) with lr 1e-3 ×0.1 at 30k, momentum 0.9, weight decay 5e-4
(``models/CaffeNet/solver.prototxt``: ``stepsize: 30000``); 2 images and 128 RoIs per batch at 25%
foreground, flips, test NMS 0.3 (``lib/fast_rcnn/config.py``). py-faster-rcnn's ``fast_rcnn.sh`` uses the
same 40k / 30k for VOC (``ITERS=40000``; ``models/pascal_voc/VGG_CNN_M_1024/fast_rcnn/solver.prototxt``).

Coordinates: ground truth and detections reach :func:`~ssl_bench.metrics.voc_detection_ap` in VOC's 1-based
inclusive convention; the model sees torchvision's 0-based continuous one. The conversion, and the format of a
proposals file (``--set proposals=FILE``), are in :mod:`ssl_bench.data.detection`.

NOTE (deviations, each switchable in the recipe where it is a number):
* NOTE: the schedule Krähenbühl et al. (2016) used for the paper's detection column is unverified (their
  Fast R-CNN settings were not found in public code: philkr/magic_init holds only the init). The paper
  recipe takes Fast R-CNN's own multi-scale CaffeNet experiment (sources above).
* NOTE: ``detector: faster_rcnn`` (the smoke recipe's, for its 2-minute budget) takes proposals from an
  RPN on the trunk being evaluated, not from selective search: the trunk then also has to learn
  objectness, and the mAP is not the paper's Fast R-CNN number. It tests at ``min_size[-1]`` only
  (torchvision).
* NOTE: ``proposals: selective_search`` is OpenCV's selective search (``fast`` mode, Fast R-CNN's
  diversification), not the MATLAB code behind Fast R-CNN's files (``data/selective_search.py``).
* NOTE: every trunk layer is fine-tuned (PAPER.md §3: "all layers fine-tuned unless noted"). Fast
  R-CNN froze conv1 of its ImageNet CaffeNet; a self-supervised or random conv1 is not known to be generic.
* NOTE: fc6/fc7 are new layers (PyTorch's default init); the classifier and box regressor are drawn from
  N(0, 0.01²) and N(0, 0.001²), as in Fast R-CNN. Their width is 4096 in the paper recipe (CaffeNet)
  and smaller in the smoke recipe, for CPU time. ``head_init: data`` (the mini recipe's, as its cls and
  seg recipes) then rescales fc6 and fc7 to zero-mean, unit-variance pre-activations on the RoIs training
  samples from ``head_init_images`` training images (Krähenbühl et al.'s within-layer step, PAPER.md §2;
  ``engine.data_dependent_init_``): conv5 activations differ ~7× between a random and a supervised trunk,
  and the head's speed of learning should not depend on that scale.
* NOTE: torchvision's box head samples background RoIs at IoU in [0, 0.5); Fast R-CNN used [0.1, 0.5).
  Its box-regression loss is smooth-L1 with beta 1/9 (Fast R-CNN: beta 1). Ground-truth boxes join the
  RoIs in training, as in Fast R-CNN.
* NOTE: RPN anchors sit on the conv5 grid at stride 16, centred on each conv5 cell's receptive field
  (``16·m + 17.5`` px for CaffeNet's unpadded conv1 and pools). torchvision would infer the stride as
  padded image size // grid size (18 for a 227 px image padded to 256) and centre cell m at ``stride·m``,
  up to ~18 px off and drifting across the image. RoI pooling keeps Caffe's ``round(x / 16)`` mapping.
* NOTE: a batch-norm trunk (``caffenet_bn``) keeps its batch-norm layers in eval mode (frozen statistics):
  2 images per batch is too few for batch statistics, the usual practice in detection.
* NOTE: biases train at 2× lr without weight decay (Caffe's ``lr_mult: 2, decay_mult: 0``); the images are
  RGB with the suite's mean/std, not Caffe's BGR mean subtraction (README, deviations).
* NOTE: test keeps up to 100 detections per image with score > 0.05 after per-class NMS at IoU 0.3, as
  py-faster-rcnn's ``test_net`` (``thresh=0.05``, ``max_per_image=100``, ``TEST.NMS=0.3``). fast-rcnn's own
  ``test_net`` instead keeps up to 100 per class per image and raises each class's threshold so that the
  test set holds 40 per class per image on average, before NMS.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from tqdm import tqdm

from ssl_bench.data.batches import endless_batches
from ssl_bench.data.detection import (
    check_proposals_cover,
    collate_detection_samples,
    detection_batch_to,
    detections_to_voc,
    load_proposals,
    voc_detection_set,
)
from ssl_bench.data.selective_search import SELECTIVE_SEARCH, cached_selective_search
from ssl_bench.data.transforms import MEAN, STD
from ssl_bench.data.voc import (
    VOC_CLASSES,
    VOCDetection,
    load_detection_ground_truth,
    load_image,
    read_image_set,
    read_image_sizes,
)
from ssl_bench.encoders import alexnet_head
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext, Metrics, check_disjoint, register_evaluator
from ssl_bench.evaluators.detection_model import (
    FEATURE_STRIDE,
    FEATURE_TAP,
    NUM_CLASSES,
    ROI_SIZE,
    Conv5Backbone,
    ConvGridAnchorGenerator,
    RoIMaxPool,
    conv5_centre,
    detector_forward,
)
from ssl_bench.evaluators.detection_rois import CHANCE_LOSS, fast_rcnn_chance_loss, init_box_head_on_data
from ssl_bench.evaluators.engine import (
    TRAIN_LOSS_DEFINITION,
    FinetuneProtocol,
    finetune,
    loss_summary,
    make_loader,
    on_device,
    protocol_performance,
    sgd,
    training_loader,
)
from ssl_bench.evaluators.examples import boxes_image, save_grid
from ssl_bench.metrics import coco_style_detection_ap, constant_detector_ap, mean_ap, voc_detection_ap

AP_VARIANT = "voc07_11point"  # the paper's number (PAPER.md §5); "area" (VOC2010+) is reported beside it


@dataclass(frozen=True)
class Protocol(FinetuneProtocol):
    """``det`` recipe keys; defaults: Fast R-CNN's multi-scale CaffeNet experiment (module docstring)."""

    RENAMED: ClassVar[dict[str, str]] = {**FinetuneProtocol.RENAMED, "head_width": "fc_width",
                                         "head_dropout": "dropout", "flip": "hflip"}  # fmt: skip
    detector: Literal["fast_rcnn", "faster_rcnn"] = "fast_rcnn"  # fast_rcnn needs `proposals`
    proposals: str | None = None  # fast_rcnn: a file (bench data proposals), or selective_search
    iterations: int = 40_000  # fast-rcnn multiscale_caffenet.sh / train_net.py --iters (NOTE: unverified)
    batch_size: int = 2  # images per iteration (TRAIN.IMS_PER_BATCH)
    lr: float = 1e-3  # models/CaffeNet/solver.prototxt base_lr
    lr_steps: tuple[int, ...] = (30_000,)  # solver.prototxt stepsize
    lr_gamma: float = 0.1
    weight_decay: float = 5e-4
    bias_lr_mult: float = 2.0  # Caffe: lr_mult 2, decay_mult 0 on biases
    bias_decay_mult: float = 0.0
    train_split: str = "trainval"  # PAPER.md §3: VOC2007 trainval → test
    test_split: str = "test"
    min_size: int | tuple[int, ...] = (480, 576, 688, 864, 1200)  # cfgs/multiscale.yml TRAIN/TEST.SCALES
    max_size: int = 2000  # cfgs/multiscale.yml MAX_SIZE
    hflip: bool = True  # TRAIN.USE_FLIPPED
    fc_width: int = 4096  # fc6 / fc7 of CaffeNet
    dropout: float = 0.5
    roi_pool: Literal["max", "align"] = "max"  # Fast R-CNN RoI max pooling (or torchvision's RoIAlign)
    rois_per_image: int = 64  # TRAIN.BATCH_SIZE 128 per 2 images
    fg_fraction: float = 0.25  # TRAIN.FG_FRACTION
    anchor_sizes: tuple[int, ...] = (128, 256, 512)  # Faster R-CNN: scales 8, 16, 32 × stride 16
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_train: int = 12_000  # py-faster-rcnn TRAIN.RPN_PRE_NMS_TOP_N
    rpn_post_nms_train: int = 2_000
    rpn_pre_nms_test: int = 6_000  # py-faster-rcnn TEST.RPN_PRE_NMS_TOP_N
    rpn_post_nms_test: int = 300
    test_score_thresh: float = 0.05  # test_net thresh
    test_nms: float = 0.3  # TEST.NMS
    detections_per_image: int = 100  # max_per_image
    test_batch_size: int = 4
    figure_images: int = 4
    head_init: Literal["default", "data"] = "default"  # "data": fc6/fc7 rescaled on training RoIs (NOTE)
    head_init_images: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = (self.min_size,) if isinstance(self.min_size, int) else self.min_size
        if not sizes or min(sizes) < 1 or self.max_size < max(sizes):
            raise RecipeError("det: need min_size >= 1 (one size or a list) and max_size >= every min_size")
        if self.detector == "faster_rcnn" and self.proposals:
            raise RecipeError(
                f"det: proposals={self.proposals} with detector=faster_rcnn: the RPN makes its own "
                "proposals; use detector=fast_rcnn to train on the file"
            )

    @property
    def scales(self) -> tuple[int, ...]:
        """The shorter sides, as a tuple (``min_size`` may be one number)."""
        return (self.min_size,) if isinstance(self.min_size, int) else tuple(self.min_size)


MISSING_PROPOSALS = (
    "det: detector=fast_rcnn (the paper's) needs selective-search proposals and none are set. Get Fast "
    "R-CNN's (rbgirshick/fast-rcnn data/scripts/fetch_selective_search_data.sh → selective_search_data/"
    "voc_2007_trainval.mat, voc_2007_test.mat), convert them with `bench data proposals "
    "voc_2007_trainval.mat voc_2007_test.mat --out proposals.npz --data VOCdevkit/VOC2007`, then pass "
    "--set proposals=proposals.npz; or choose the RPN with --set detector=faster_rcnn (Faster R-CNN: "
    "not the paper's setting)"
)


# --- Network ---


def build_detector(encoder: nn.Module, p: Protocol) -> nn.Module:
    """torchvision ``FasterRCNN`` on the encoder's conv5 with RoI max pooling and an fc6/fc7 head.

    Its RPN is built for either detector; ``detector_forward`` skips it when proposals are given.
    """
    width = p.fc_width
    # fc6 / fc7 as in CaffeNet, on the pooled RoIs [R, 256, 6, 6]
    box_head = alexnet_head(encoder.out_channels * ROI_SIZE * ROI_SIZE, width, dropout=p.dropout,
                            dropout_at="output")  # fmt: skip
    predictor = FastRCNNPredictor(width, NUM_CLASSES)
    nn.init.normal_(predictor.cls_score.weight, std=0.01)
    nn.init.normal_(predictor.bbox_pred.weight, std=0.001)
    nn.init.zeros_(predictor.cls_score.bias)
    nn.init.zeros_(predictor.bbox_pred.bias)
    anchors = ConvGridAnchorGenerator(p.anchor_sizes, p.anchor_ratios, FEATURE_STRIDE, conv5_centre(encoder))
    model = FasterRCNN(
        Conv5Backbone(encoder),
        min_size=p.scales,
        max_size=p.max_size,
        image_mean=list(MEAN),  # the suite's one normalisation (data/transforms.py)
        image_std=list(STD),
        size_divisible=FEATURE_STRIDE,  # batch padding; torchvision's 32 would only add pixels
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=p.rpn_pre_nms_train,
        rpn_post_nms_top_n_train=p.rpn_post_nms_train,
        rpn_pre_nms_top_n_test=p.rpn_pre_nms_test,
        rpn_post_nms_top_n_test=p.rpn_post_nms_test,
        # torchvision checks the type; RoI max pooling replaces it below.
        box_roi_pool=MultiScaleRoIAlign(["0"], ROI_SIZE, sampling_ratio=2),
        box_head=box_head,
        box_predictor=predictor,
        box_score_thresh=p.test_score_thresh,
        box_nms_thresh=p.test_nms,
        box_detections_per_img=p.detections_per_image,
        box_batch_size_per_image=p.rois_per_image,
        box_positive_fraction=p.fg_fraction,
    )
    if p.roi_pool == "max":
        model.roi_heads.box_roi_pool = RoIMaxPool(ROI_SIZE, 1.0 / FEATURE_STRIDE)
    return model


# --- Training and detection ---


def training_step(
    model: nn.Module, batch: tuple[Sequence, Sequence], device: torch.device, use_proposals: bool
) -> tuple[torch.Tensor, int]:
    """The summed detector losses of one training batch (images, targets) and its number of images."""
    images, targets, proposals = detection_batch_to(batch, device, use_proposals)
    losses = detector_forward(model, images, targets, proposals)
    return sum(losses.values()), len(images)


@torch.no_grad()
def detect(model: nn.Module, loader: Iterable, ctx: EvalContext, use_proposals: bool) -> dict[str, dict]:
    """Detections on every image of ``loader``, in VOC coordinates (see :func:`detections_to_voc`)."""
    perf = protocol_performance(ctx.device, ctx.protocol)
    model.eval()
    detections: dict[str, dict] = {}
    for batch in tqdm(loader, desc="det test", unit="batch", disable=not ctx.progress):
        images, targets, proposals = detection_batch_to(batch, ctx.device, use_proposals)
        with perf.autocast(ctx.device):
            outputs = detector_forward(model, images, None, proposals)
        detections |= detections_to_voc(outputs, [t["image_id"] for t in targets])
        ctx.images_processed += len(images)
    return detections


def detection_metrics(ground_truth: Mapping[str, Mapping], detections: Mapping[str, Mapping]) -> Metrics:
    """VOC07 11-point mAP (primary), area mAP and per-class 11-point APs (classes with positives only)."""
    num = len(VOC_CLASSES)
    ap11 = voc_detection_ap(ground_truth, detections, num, variant=AP_VARIANT)
    area = voc_detection_ap(ground_truth, detections, num, variant="area")
    metrics = {"map_voc07_11point": mean_ap(ap11), "map_area": mean_ap(area)}
    metrics |= {
        f"ap_{name}": float(ap) for name, ap in zip(VOC_CLASSES, ap11, strict=True) if not np.isnan(ap)
    }
    return metrics


def trivial_detection_metrics(
    ground_truth: Mapping[str, Mapping], sizes: Mapping[str, tuple[int, int]]
) -> Metrics:
    """Issue #22: the constant detector's mAP (one whole-image box per image and class, one score for all:
    ``metrics.constant_detector_ap``) under both AP rules, the trivial level of the det column."""
    num = len(VOC_CLASSES)
    return {f"trivial_map_{v}": mean_ap(constant_detector_ap(ground_truth, sizes, num, v))
            for v in (AP_VARIANT, "area")}  # fmt: skip


# --- The evaluator ---


@register_evaluator("det", protocol=Protocol, label="detection", metric="map_voc07_11point", order=1,
                    trivial="one whole-image box per image and class with one score",
                    chance="the RoI class prior and median box offset (Fast R-CNN)")
def evaluate_detection(ctx: EvalContext) -> Metrics:
    """Fine-tune a Fast/Faster R-CNN on VOC ``trainval`` and report VOC07 11-point mAP on ``test``."""
    p: Protocol = ctx.protocol
    if p.detector == "fast_rcnn" and not p.proposals:
        raise RecipeError(MISSING_PROPOSALS)  # first thing: before any data or weights are read
    root = Path(ctx.voc_root)
    proposals, (train_set, train_ids), (test_set, test_ids) = _detection_sets(root, p, ctx.progress)

    perf = protocol_performance(ctx.device, p)
    model = on_device(build_detector(ctx.load_encoder(), p), ctx.device, perf)
    train_loader = training_loader(train_set, ctx, p, collate_fn=collate_detection_samples)
    test_loader = make_loader(test_set, ctx, p.test_batch_size, p.workers, persistent=True,
                              collate_fn=collate_detection_samples)  # fmt: skip
    use_proposals = proposals is not None

    chance = fast_rcnn_chance_loss(model, train_set, ctx.device) if use_proposals else None
    if p.head_init == "data":
        init_box_head_on_data(model, train_set, p.head_init_images, ctx.device, use_proposals)
    step = functools.partial(training_step, model, device=ctx.device, use_proposals=use_proposals)
    optimizer = sgd(model.backbone, (model.rpn, model.roi_heads), p)
    losses = finetune(ctx, model, optimizer, endless_batches(train_loader), step, p, perf, "det train")
    detections = detect(model, test_loader, ctx, use_proposals)
    ground_truth = load_detection_ground_truth(root, p.test_split)  # every test image, difficult flags kept
    metrics = _score(ctx, root, ground_truth, detections)
    metrics["train_loss"], curve = loss_summary(losses)
    if chance is not None:
        metrics["chance_loss"] = chance

    no_positives = [c for c in VOC_CLASSES if f"ap_{c}" not in metrics]
    empty = {"boxes": [], "labels": [], "scores": []}
    tiles = [boxes_image(load_image(root / "JPEGImages" / f"{i}.jpg"), ground_truth[i]["boxes"],
                         detections.get(i, empty)) for i in test_ids[: p.figure_images]]  # fmt: skip
    figure = save_grid([tiles], ctx.work_dir / "det_examples.png")
    ctx.extra |= {
        "ap_variants": {
            "map_voc07_11point": "VOC2007 devkit 11-point AP, IoU > 0.5, mean over classes (the paper's)",
            "map_area": "VOC2010+ area-under-envelope AP at IoU > 0.5, mean over classes",
            "ap_<class>": "VOC2007 11-point AP of one class",
            "coco_ap": "COCO protocol (pycocotools) AP@[.5:.95], difficult as crowd; not VOC",
            "coco_ap50": "COCO protocol (pycocotools) AP@.5; not the VOC number",
        },
        "detector": p.detector,
        "proposals": _proposals_label(p),
        "scales": {"train": list(p.scales), "test": list(p.scales) if use_proposals else [p.scales[-1]],
                   "max_size": p.max_size},
        "feature_layer": f"{FEATURE_TAP} (stride {FEATURE_STRIDE}), "
                         f"RoI {p.roi_pool} pool {ROI_SIZE}x{ROI_SIZE}",
        "head_width": p.fc_width,
        "train_split": p.train_split, "test_split": p.test_split,
        "num_train_images": len(train_ids), "num_test_images": len(test_ids),
        "num_detections": int(sum(len(d["scores"]) for d in detections.values())),
        "iterations": p.iterations, "final_train_loss": losses[-1],
        "train_loss_definition": TRAIN_LOSS_DEFINITION, "train_loss_curve": curve,
        "trivial_level": "trivial_map_<variant>: the constant detector (a whole-image box per test image "
                         "and class, one score for all) under the same AP rule",
        "chance_loss": CHANCE_LOSS if use_proposals else "none: the RPN's losses depend on its own "
                       "proposals, so no constant prediction defines one",
        "classes_without_test_positives": no_positives,
        "box_convention": "VOC 1-based inclusive for ground truth and detections",
        "figure": str(figure),
    }  # fmt: skip
    return metrics


def proposals_file(root: Path, p: Protocol, progress: bool = True) -> str | None:
    """The proposals file of a Fast R-CNN run (None for the RPN): the recipe's file, or, for
    ``proposals: selective_search``, the suite's own selective search over the train and test images,
    computed on first use and cached (``data/selective_search.py``)."""
    if p.detector != "fast_rcnn":
        return None
    if p.proposals == SELECTIVE_SEARCH:
        ids = read_image_set(root, p.train_split) + read_image_set(root, p.test_split)
        return str(cached_selective_search(root, ids, progress=progress))
    return p.proposals


def _proposals_label(p: Protocol) -> str:
    """Where the run's RoIs came from, for the record."""
    if p.detector != "fast_rcnn":
        return "RPN (Faster R-CNN, trained jointly)"
    if p.proposals == SELECTIVE_SEARCH:
        return "selective search by the suite (OpenCV, fast mode), cached"
    return str(p.proposals)


def _detection_sets(
    root: Path, p: Protocol, progress: bool = True
) -> tuple[dict[str, np.ndarray] | None, tuple[VOCDetection, list[str]], tuple[VOCDetection, list[str]]]:
    """The proposals (Fast R-CNN; None for the RPN), and the training and test sets with their image ids,
    checked disjoint and (with proposals) covered by the proposals file."""
    source = proposals_file(root, p, progress)
    proposals = load_proposals(source) if source is not None else None
    train_set, train_ids = voc_detection_set(root, p.train_split, p.hflip, proposals)
    test_set, test_ids = voc_detection_set(root, p.test_split, False, proposals)
    check_disjoint(train_ids, test_ids, f"detection {p.train_split} → {p.test_split}")
    if proposals is not None:
        check_proposals_cover(proposals, train_ids + test_ids, source)
    return proposals, (train_set, train_ids), (test_set, test_ids)


def _score(
    ctx: EvalContext, root: Path, ground_truth: dict[str, dict], detections: dict[str, dict]
) -> Metrics:
    """VOC APs of the detections, the constant detector's, and COCO AP where pycocotools is installed."""
    metrics = detection_metrics(ground_truth, detections)
    metrics |= trivial_detection_metrics(ground_truth, read_image_sizes(root, ground_truth))
    ctx.extra["primary_metric"] = "map_voc07_11point"
    try:
        coco = coco_style_detection_ap(ground_truth, detections, len(VOC_CLASSES))
        metrics |= {"coco_ap": coco["coco_ap"], "coco_ap50": coco["coco_ap50"]}
    except ImportError:
        ctx.extra["coco_ap_note"] = "coco_ap, coco_ap50 skipped: pycocotools is not installed"
    return metrics
