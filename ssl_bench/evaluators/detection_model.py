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
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import RoIPool

from ssl_bench.data.voc import VOC_CLASSES
from ssl_bench.errors import RecipeError

NUM_CLASSES = len(VOC_CLASSES) + 1  # 20 VOC classes + background (torchvision label 0)
FEATURE_TAP = "conv5"  # py-faster-rcnn CaffeNet: RoI pooling replaces pool5
FEATURE_STRIDE = 16  # conv1 (4) · pool1 (2) · pool2 (2)
ROI_SIZE = 6  # Fast R-CNN: RoI max pooling to pool5's 6×6


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
    the RPN is skipped and the proposals are resized with the image, then fed to the box head.
    Detections come back in the original image's torchvision coordinates.
    """
    if proposals is None:
        return model(images, targets)
    original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    batch, targets = model.transform(images, targets)
    proposals = [
        resize_boxes(p, o, s) for p, o, s in zip(proposals, original_sizes, batch.image_sizes, strict=True)
    ]
    features = {"0": model.backbone(batch.tensors)}  # conv5: [N, 256, H/16, W/16]
    detections, losses = model.roi_heads(features, proposals, batch.image_sizes, targets)
    if model.training:
        return losses
    return model.transform.postprocess(detections, batch.image_sizes, original_sizes)
