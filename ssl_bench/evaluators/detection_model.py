"""The parts of the ``det`` evaluator's network (``detection.py`` assembles them in ``build_detector``).

torchvision's ``FasterRCNN`` with py-faster-rcnn's CaffeNet layout: the encoder up to conv5 as backbone
(frozen batch-norm statistics), Fast R-CNN's RoI max pooling on conv5, RPN anchors centred on conv5's
receptive fields, and a forward pass that takes given proposals (Fast R-CNN) instead of the RPN's. The
NOTEs on each choice are in ``detection.py``'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import RoIPool

from ssl_bench.data.voc import VOC_CLASSES
from ssl_bench.errors import RecipeError

NUM_CLASSES = len(VOC_CLASSES) + 1  # 20 VOC classes + background (torchvision label 0)
FEATURE_TAP = "conv5"  # py-faster-rcnn CaffeNet: RoI pooling replaces pool5
FEATURE_STRIDE = 16  # conv1 (4) · pool1 (2) · pool2 (2)
ROI_SIZE = 6  # Fast R-CNN: RoI max pooling to pool5's 6×6
# Fast R-CNN's test pyramid sends each RoI to the scale where its area is closest to 224² pixels
# (rbgirshick/fast-rcnn lib/fast_rcnn/test.py::_project_im_rois).
PYRAMID_ROI_AREA = 224 * 224


class Conv5Backbone(nn.Module):
    """The encoder up to ``conv5`` as a torchvision detection backbone (``out_channels`` = 256)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        if FEATURE_TAP not in getattr(encoder, "taps", ()):
            raise RecipeError(f"detection needs an encoder with a '{FEATURE_TAP}' tap (AlexNet family)")
        self.encoder = encoder
        self.out_channels = encoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, taps=(FEATURE_TAP,))[FEATURE_TAP]  # [N, 256, ~H/16, ~W/16]

    def train(self, mode: bool = True) -> Conv5Backbone:
        super().train(mode)
        for m in self.modules():  # frozen batch-norm statistics (module docstring)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


class RoIMaxPool(nn.Module):
    """Fast R-CNN's RoI max pooling on the single conv5 map, with torchvision ``RoIHeads``' call signature."""

    def __init__(self, output_size: int, spatial_scale: float) -> None:
        super().__init__()
        self.pool = RoIPool(output_size, spatial_scale)

    def forward(
        self, features: Mapping[str, torch.Tensor], proposals: list[torch.Tensor], image_shapes: list
    ) -> torch.Tensor:
        # float(): torchvision's CPU RoI pool has no bf16 kernel (a no-op in fp32; max-pooling is exact).
        return self.pool(features["0"].float(), [p.float() for p in proposals])  # [R, 256, 6, 6]


class ConvGridAnchorGenerator(AnchorGenerator):
    """torchvision's ``AnchorGenerator`` on a conv grid of known stride, centred on the receptive fields.

    Args:
        sizes, ratios: anchor sides (px) and aspect ratios, as ``AnchorGenerator`` takes for one map.
        stride: feature stride in pixels (16 for conv5).
        centre: input x (= y) of the centre of cell 0 (see :func:`conv5_centre`).
    """

    def __init__(self, sizes: Sequence[int], ratios: Sequence[float], stride: int, centre: float) -> None:
        super().__init__((tuple(sizes),), (tuple(ratios),))
        self.stride, self.centre = stride, centre

    def grid_anchors(
        self, grid_sizes: list[list[int]], strides: list[list[torch.Tensor]]
    ) -> list[torch.Tensor]:
        fixed = [[torch.tensor(self.stride, device=s[0].device)] * 2 for s in strides]
        return [a + self.centre for a in super().grid_anchors(grid_sizes, fixed)]  # [cells · A, 4]


def conv5_centre(encoder: nn.Module) -> float:
    """Continuous x of the receptive-field centre of conv5 cell 0, for an AlexNet-shaped trunk.

    conv1 (11×11, stride 4, padding p) cell j is centred at ``4j - p + 5.5``; a 3/2 max-pool cell k at the
    centre of its input cell ``2k + 1``; conv2…conv5 keep the grid. So conv5 cell m is centred at
    ``16m + 17.5 - p``: 17.5 for CaffeNet (p = 0), 15.5 for torchvision's AlexNet (p = 2).
    """
    conv1 = encoder.conv_layers()[0]
    if conv1.kernel_size != (11, 11) or conv1.stride != (4, 4):
        raise RecipeError("detection's anchor grid assumes AlexNet's 11×11 stride-4 conv1")
    return 17.5 - conv1.padding[0]


def detector_forward(
    model: nn.Module,
    images: list[torch.Tensor],
    targets: list[dict[str, Any]] | None = None,
    proposals: list[torch.Tensor] | None = None,
) -> Any:
    """Losses (training) or detections (eval) of the detector, from the RPN or from given proposals.

    With ``proposals`` (per image, torchvision coordinates of the original image) this is Fast R-CNN:
    the RPN is skipped and the proposals are resized with the image, then fed to the box head. Training
    resizes each image to one of ``model.transform.min_size`` drawn at random (torchvision; Fast R-CNN's
    ``roi_data_layer/minibatch.py`` draws a scale per image the same way); testing with several sizes runs
    :func:`pyramid_detect`. Detections come back in the original image's torchvision coordinates.
    """
    if proposals is None:
        return model(images, targets)  # NOTE: torchvision tests an RPN at min_size[-1] only
    if not model.training and len(model.transform.min_size) > 1:
        return pyramid_detect(model, images, proposals)
    original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    batch, targets, proposals = transformed_inputs(model, images, targets, proposals)
    features = {"0": model.backbone(batch.tensors)}  # conv5: [N, 256, H/16, W/16]
    detections, losses = model.roi_heads(features, proposals, batch.image_sizes, targets)
    if model.training:
        return losses
    return model.transform.postprocess(detections, batch.image_sizes, original_sizes)


def transformed_inputs(
    model: nn.Module,
    images: list[torch.Tensor],
    targets: list[dict[str, Any]] | None,
    proposals: list[torch.Tensor],
) -> tuple[Any, list[dict[str, Any]] | None, list[torch.Tensor]]:
    """The detector's input batch (normalised, resized, padded), its targets, and the proposals resized with
    each image."""
    original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    batch, targets = model.transform(images, targets)
    proposals = [
        resize_boxes(p, o, s) for p, o, s in zip(proposals, original_sizes, batch.image_sizes, strict=True)
    ]
    return batch, targets, proposals


def pyramid_scale(height: int, width: int, shorter: int, max_size: int) -> float:
    """The resize factor that brings the shorter side to ``shorter`` unless the longer then exceeds
    ``max_size`` (Fast R-CNN's ``_get_image_blob``; torchvision's ``GeneralizedRCNNTransform`` the same)."""
    return min(shorter / min(height, width), max_size / max(height, width))


def pyramid_levels(boxes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Per box, the pyramid level whose scaled box area is closest to 224² (Fast R-CNN ``_project_im_rois``).

    Args:
        boxes: ``[R, 4]`` torchvision coordinates of the original image; ``x2 - x1`` is VOC's
            ``x2 - x1 + 1``, the width Fast R-CNN measures.
        factors: ``[L]`` resize factor of each level.

    Returns:
        ``[R]`` level indices.
    """
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # [R]
    scaled = areas[:, None] * factors[None, :].to(areas) ** 2  # [R, L]
    return (scaled - PYRAMID_ROI_AREA).abs().argmin(dim=1)


@torch.no_grad()
def pyramid_detect(
    model: nn.Module, images: list[torch.Tensor], proposals: list[torch.Tensor]
) -> list[dict[str, torch.Tensor]]:
    """Fast R-CNN's multi-scale test: conv5 at every size of ``model.transform.min_size`` (longer side
    capped at ``max_size``), each proposal RoI-pooled at the level where its area is closest to 224², then the
    box head and torchvision's per-class NMS.

    Built here because torchvision's detectors test at one size only (``min_size[-1]``) and no well-kept
    library implements Fast R-CNN's per-RoI level choice. The box deltas are decoded against the proposals
    in original-image coordinates: torchvision's box coding is scale-equivariant, so this equals decoding at
    the level and scaling back.

    Returns:
        Per image ``{"boxes", "labels", "scores"}`` in the original image's torchvision coordinates.
    """
    t, heads = model.transform, model.roi_heads
    results = []
    for image, boxes in zip(images, proposals, strict=True):
        height, width = int(image.shape[-2]), int(image.shape[-1])
        normalised = t.normalize(image)  # [3, H, W]
        factors = torch.tensor([pyramid_scale(height, width, s, t.max_size) for s in t.min_size])
        levels = pyramid_levels(boxes, factors)  # [R]
        pooled, order = [], []
        for level, factor in enumerate(factors.tolist()):
            keep = torch.nonzero(levels == level).flatten()
            if not len(keep):
                continue
            scaled = F.interpolate(normalised[None], scale_factor=factor, mode="bilinear",
                                   recompute_scale_factor=True, align_corners=False)[0]  # fmt: skip
            size = (int(scaled.shape[-2]), int(scaled.shape[-1]))
            conv5 = model.backbone(t.batch_images([scaled], t.size_divisible))  # [1, 256, ~h/16, ~w/16]
            rois = resize_boxes(boxes[keep], (height, width), size)
            pooled.append(heads.box_roi_pool({"0": conv5}, [rois], [size]))  # [r, 256, 6, 6]
            order.append(keep)
        if pooled:
            inverse = torch.argsort(torch.cat(order))
            features = torch.cat(pooled)[inverse]  # [R, 256, 6, 6], in the proposals' order
        else:
            features = normalised.new_zeros((0, model.backbone.out_channels, ROI_SIZE, ROI_SIZE))
        class_logits, box_regression = heads.box_predictor(heads.box_head(features))
        out_boxes, scores, labels = heads.postprocess_detections(
            class_logits, box_regression, [boxes], [(height, width)]
        )
        results.append({"boxes": out_boxes[0], "scores": scores[0], "labels": labels[0]})
    return results
