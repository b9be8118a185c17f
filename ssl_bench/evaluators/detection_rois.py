"""What the detector's box head learns from: the RoIs that training samples (ground truth joined to the
proposals, ``rois_per_image`` per image at the foreground fraction: torchvision's
``select_training_samples``).

On them the ``det`` evaluator

- rescales the new fc6/fc7 before fine-tuning (``head_init: data``, :func:`init_box_head_on_data`), as the cls
  and seg evaluators rescale theirs on training images;
- defines its chance loss (issue #22, :func:`fast_rcnn_chance_loss`): the box-head loss of the best constant
  prediction, what a detector that learnt nothing from the pixels pays; the table marks runs not below it.

Both draw flips and RoIs from a forked generator, so the training stream does not move.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ssl_bench.data.detection import collate_detection_samples, detection_batch_to
from ssl_bench.data.voc import VOCDetection
from ssl_bench.evaluators.detection_model import NUM_CLASSES, transformed_inputs
from ssl_bench.evaluators.engine import data_dependent_init_


def sampled_roi_targets(
    model: nn.Module, images: list[torch.Tensor], targets: list[dict[str, Any]], proposals: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The class labels ``[R]`` and encoded box-regression targets ``[R, 4]`` of the RoIs that training
    samples from these images and proposals (torchvision's ``select_training_samples``, as in training; no
    network is run). Draws from torch's global generator (the RoI sampling)."""
    _, targets, proposals = transformed_inputs(model, images, targets, proposals)
    _, _, labels, regression_targets = model.roi_heads.select_training_samples(proposals, targets)
    return torch.cat(labels), torch.cat(regression_targets)


def constant_detector_loss(labels: torch.Tensor, regression_targets: torch.Tensor) -> float:
    """Fast R-CNN's box-head loss (torchvision ``fastrcnn_loss``: cross-entropy over every sampled RoI plus
    smooth-L1, beta 1/9, over the foreground RoIs' targets, summed and divided by the number of RoIs) of the
    best constant prediction: the logits of the sampled RoIs' class frequencies (their entropy) and, for every
    foreground RoI, the per-coordinate median of the regression targets (L1's optimum; smooth L1's to within
    its small quadratic zone)."""
    counts = torch.bincount(labels, minlength=NUM_CLASSES).double()
    prior = counts[counts > 0] / counts.sum()
    entropy = float(-(prior * prior.log()).sum())
    foreground = regression_targets[labels > 0].double()  # [P, 4]
    if foreground.numel() == 0:
        return entropy
    centre = foreground.median(dim=0).values.expand_as(foreground)
    box = F.smooth_l1_loss(foreground, centre, beta=1 / 9, reduction="sum") / labels.numel()
    return entropy + float(box)


def sampled_roi_features(
    model: nn.Module,
    images: list[torch.Tensor],
    targets: list[dict[str, Any]],
    proposals: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The box head's input on these training images: the pooled conv5 ``[R, C, 6, 6]`` of the RoIs that
    training samples from them (ground truth joined to the proposals, ``rois_per_image`` per image at the
    foreground fraction: torchvision's ``select_training_samples``). Proposals from the RPN where none are
    given. Draws from torch's global generator (the RoI sampling)."""
    if proposals is None:
        batch, targets = model.transform(images, targets)
        features = {"0": model.backbone(batch.tensors)}
        proposals, _ = model.rpn(batch, features, targets)
    else:
        batch, targets, proposals = transformed_inputs(model, images, targets, proposals)
        features = {"0": model.backbone(batch.tensors)}
    rois = model.roi_heads.select_training_samples(proposals, targets)[0]
    return model.roi_heads.box_roi_pool(features, rois, batch.image_sizes)


CHANCE_IMAGES = 256  # training images whose sampled RoIs define det's chance loss
CHANCE_LOSS = (f"chance_loss: the box-head loss of the best constant prediction (the class frequencies of "
               f"the RoIs training samples from {CHANCE_IMAGES} training images, the median box offset) on "
               "those RoIs: what a detector that learnt nothing from the pixels pays")  # fmt: skip


@torch.no_grad()
def fast_rcnn_chance_loss(
    model: nn.Module, train_set: VOCDetection, device: torch.device, images: int = CHANCE_IMAGES
) -> float:
    """Issue #22: det's chance loss (:data:`CHANCE_LOSS`, :func:`constant_detector_loss`) on the
    RoIs that training samples from the first ``images`` training images (flips and sampling drawn from a
    forked generator: the training stream stays as it was)."""
    labels, targets = [], []
    with torch.random.fork_rng(devices=[]):
        for start in range(0, min(images, len(train_set)), 8):
            stop = min(images, len(train_set), start + 8)
            batch = collate_detection_samples([train_set[i] for i in range(start, stop)])
            roi_labels, roi_targets = sampled_roi_targets(model, *detection_batch_to(batch, device, True))
            labels.append(roi_labels)
            targets.append(roi_targets)
    return constant_detector_loss(torch.cat(labels), torch.cat(targets))


@torch.no_grad()
def init_box_head_on_data(
    model: nn.Module, train_set: VOCDetection, images: int, device: torch.device, use_proposals: bool
) -> None:
    """``head_init: data``: fc6 and fc7 of the box head rescaled (``data_dependent_init_``) on the RoIs that
    training samples from the first ``images`` training images (flips and RoI sampling drawn from a forked
    generator: the training stream stays as it was)."""
    count = min(images, len(train_set))
    with torch.random.fork_rng(devices=[]):
        batch = collate_detection_samples([train_set[i] for i in range(count)])
        images_, targets, proposals = detection_batch_to(batch, device, use_proposals)
        pooled = sampled_roi_features(model, images_, targets, proposals)  # [R, 256, 6, 6]
    head = model.roi_heads.box_head
    data_dependent_init_(model, (head.fc6, head.fc7), lambda x: x.flatten(1), pooled)
