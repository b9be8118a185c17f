"""The steps a reproduction's evaluations run, each beside a plain eager fp32 reference of the same step.

``cls`` (fine-tuning every layer), ``seg`` (FCN-32s) and ``det`` (the recipe's detector) are the fine-tuning
engine's own step (``evaluators/engine.py::train_step``: schedule, autocast, clipping, SGD with the protocol's
groups) around each evaluator's loss, on the model its constructor builds from the resolved
``eval/<profile>/<task>.yaml``; ``features`` is the frozen-feature extraction of ``knn`` / ``cls-linear``
(``evaluators/features.py::tap_features`` under ``no_grad``). All on in-memory data, so the numbers describe
the step ``bench eval --profile <profile>`` runs.

The reference runs the same network and loss in fp32, contiguous NCHW memory, no autocast, with torch's own
``nn.LocalResponseNorm`` (the suite's encoder uses the equivalent, faster ``ChannelLRN``): what a first
hand-written script would do, as ``eager_reference.py`` is for pretraining.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_bench.encoders import create_encoder
from ssl_bench.evaluators import classification, detection, segmentation
from ssl_bench.evaluators.engine import protocol_performance, sgd, train_step
from ssl_bench.evaluators.features import tap_features
from ssl_bench.evaluators.runner import resolve_protocol
from ssl_bench.runtime.performance import Performance

EVAL_TASKS = ("cls", "seg", "det", "features")
FP32 = Performance(amp=False, channels_last=False, compile=False, fused_adam=False)


def _encoder(reference: bool) -> nn.Module:
    encoder = create_encoder("caffenet")
    if reference:
        encoder.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # same constants as ChannelLRN
    return encoder


@dataclass(frozen=True)
class EvalStep:
    """One evaluation step, ready to time: ``step()`` runs it (an SGD iteration, or one extraction)."""

    step: Callable[[], Any]
    images: int
    model: nn.Module
    forward: Callable[[], Any]  # the step's forward pass alone (what the per-layer table hooks)
    perf: Performance


@dataclass(frozen=True)
class _StepSetup:
    """What every evaluation step is built with: its protocol, device and speed settings, and its data."""

    p: Any  # the task's resolved protocol
    device: torch.device
    perf: Performance
    reference: bool  # the eager fp32 reference (torch's own LRN)
    fused: bool  # the suite's fused SGD
    generator: torch.Generator  # the in-memory data's

    def images(self, n: int, size: int) -> torch.Tensor:
        x = torch.randn(n, 3, size, size, generator=self.generator).to(self.device)  # [N, 3, S, S]
        return x.contiguous(memory_format=torch.channels_last) if self.perf.channels_last else x

    def layout(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.perf.channels_last else model


# A training step's parts: (model, optimizer, batch, loss(batch) → (loss, images)).
TrainingParts = tuple[nn.Module, torch.optim.Optimizer, Any, Callable[[Any], Any]]


def build_eval_step(task: str, profile: str, device: torch.device, variant: str = "suite") -> EvalStep:
    """One evaluation step on in-memory data, as the suite runs it (``suite``), as the engine ran it before
    the speed keys (``before``: the protocol's default speed settings, the for-loop SGD) or as the eager fp32
    reference (``eager``)."""
    protocol_task = {"features": "knn"}.get(task, task)
    p = resolve_protocol(protocol_task, profile)
    if variant == "suite":
        perf = protocol_performance(device, p)
    elif variant == "before":
        perf = protocol_performance(device, dataclasses.replace(p, cpu_amp=False, cpu_channels_last=False))
    else:
        perf = FP32
    s = _StepSetup(p, device, perf, variant == "eager", variant == "suite", torch.Generator().manual_seed(0))
    if task == "features":
        return _features_step(s)
    parts = {"cls": _cls_parts, "seg": _seg_parts, "det": _det_parts}
    if task not in parts:
        raise ValueError(f"unknown evaluation step {task!r}; choose from {', '.join(EVAL_TASKS)}")
    model, optimizer, batch, loss = parts[task](s)
    model.train()

    def forward() -> Any:
        with perf.autocast(device):
            return loss(batch)

    step = functools.partial(train_step, model, optimizer, batch, loss, p, perf, device, 0)
    return EvalStep(step, p.batch_size, model, forward, perf)


def _features_step(s: _StepSetup) -> EvalStep:
    """The frozen-feature extraction of ``knn`` / ``cls-linear``: one batch through the encoder."""
    p, perf = s.p, s.perf
    encoder = s.layout(_encoder(s.reference)).eval().requires_grad_(False)
    x = s.images(p.batch_size, p.image_size)

    @torch.no_grad()
    def extract() -> torch.Tensor:
        with perf.autocast(s.device):
            return tap_features(encoder, x, p.layer, p.max_dim)  # [N, D]

    return EvalStep(extract, p.batch_size, encoder, extract, perf)


def _cls_parts(s: _StepSetup) -> TrainingParts:
    """``cls``: the fine-tuned classifier, random crops and devkit labels."""
    p = s.p
    encoder = _encoder(s.reference)
    dim = classification.feature_dim(encoder, p.crop_size)
    model = s.layout(classification.FineTuneClassifier(encoder, dim, 20, p.fc_width, p.dropout))
    optimizer = sgd(model.encoder, [model.head], p, s.fused)
    x = s.images(p.batch_size, p.crop_size)
    labels = torch.randint(-1, 2, (p.batch_size, 20), generator=s.generator)  # [B, 20] in {1, -1, 0}
    labels = labels.to(s.device)

    def loss(batch: Any) -> tuple[torch.Tensor, int]:
        return classification.masked_sigmoid_cross_entropy(model(batch).float(), labels), batch.shape[0]

    return model, optimizer, x, loss


def _seg_parts(s: _StepSetup) -> TrainingParts:
    """``seg``: FCN-32s, random crops and label maps."""
    p = s.p
    model = s.layout(segmentation.FCN32s(_encoder(s.reference), "caffenet", fc_width=p.fc_width,
                                         dropout=p.dropout, pad=p.input_pad))  # fmt: skip
    optimizer = sgd(model.encoder, (model.fc6, model.fc7, model.score), p, s.fused)
    x = s.images(p.batch_size, p.crop_size)
    targets = torch.randint(0, 21, (p.batch_size, p.crop_size, p.crop_size), generator=s.generator)
    loss = functools.partial(segmentation.training_step, model, device=s.device, perf=s.perf)
    return model, optimizer, (x, targets), loss


SYNTH_PROPOSALS = 400  # about what selective search (fast) proposes on a 227 px SynthVOC image


def _det_parts(s: _StepSetup) -> TrainingParts:
    """``det``: the recipe's detector (Fast R-CNN on proposals, or Faster R-CNN's RPN), random pictures with
    two boxes each and, for Fast R-CNN, ``SYNTH_PROPOSALS`` random proposals."""
    p = s.p
    model = s.layout(detection.build_detector(_encoder(s.reference), p))
    optimizer = sgd(model.backbone, (model.rpn, model.roi_heads), p, s.fused)
    size = p.scales[0]
    pictures = [torch.rand(3, size, size, generator=s.generator) for _ in range(p.batch_size)]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 140.0], [100.0, 60.0, 200.0, 200.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([3, 15])} for _ in range(p.batch_size)]
    use_proposals = p.detector == "fast_rcnn"
    for t in targets if use_proposals else ():
        corner = torch.rand(SYNTH_PROPOSALS, 2, generator=s.generator) * size * 0.7
        extent = 8 + torch.rand(SYNTH_PROPOSALS, 2, generator=s.generator) * size * 0.3
        t["proposals"] = torch.cat([corner, (corner + extent).clamp(max=size)], dim=1)  # [P, 4]
    loss = functools.partial(detection.training_step, model, device=s.device, use_proposals=use_proposals)
    return model, optimizer, (pictures, targets), loss


VARIANTS = ("suite", "before", "eager")


def eval_side_by_side(
    tasks: tuple[str, ...], profile: str, device: torch.device, steps: int, block: int = 2
) -> dict[str, dict[str, float]]:
    """``{task: {variant: img/s}}`` for the three ``VARIANTS`` of each step, timed in alternating blocks in
    one process (``speed.alternating_blocks``), so their ratios compare like with like; on a CPU by the
    process's CPU time (``speed.cpu_clock``), which the neighbours of a shared machine do not advance."""
    from ssl_bench.perf.speed import alternating_blocks, cpu_clock, device_sync

    out = {}
    for task in tasks:
        steps_ = {v: build_eval_step(task, profile, device, v) for v in VARIANTS}
        clock = time.perf_counter if device.type == "cuda" else cpu_clock
        seconds = alternating_blocks({v: (s.step, 0) for v, s in steps_.items()}, steps, block,
                                     device_sync(device), warmup=1, clock=clock)  # fmt: skip
        out[task] = {v: steps_[v].images / seconds[v] for v in VARIANTS}
    return out
