"""Training-step throughput of the ``seg`` and ``det`` evaluators at their smoke settings, on in-memory data.

The step is the fine-tuning engine's own (``evaluators/engine.py::train_step``: schedule, autocast, gradient
clipping, SGD with the protocol's parameter groups) around each evaluator's ``training_step``, on the model
its constructor builds from the resolved ``eval/smoke/<task>.yaml``, so the numbers describe the step
``bench eval --profile smoke`` runs.
"""

from __future__ import annotations

import functools

import torch

from ssl_bench.encoders import create_encoder
from ssl_bench.evaluators import detection, segmentation
from ssl_bench.evaluators.engine import eval_performance, sgd, train_step
from ssl_bench.evaluators.runner import resolve_protocol
from ssl_bench.perf.speed import device_sync, median_seconds


def seg_step_throughput(device: torch.device, iters: int) -> float:
    p = resolve_protocol("seg", "smoke")
    model = segmentation.FCN32s(
        create_encoder("caffenet"), "caffenet", fc_width=p.fc_width, dropout=p.dropout, pad=p.input_pad
    ).to(device)
    perf = eval_performance(device, p.amp)
    if perf.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = sgd(model.encoder, (model.fc6, model.fc7, model.score), p)
    n, size = p.batch_size, p.crop_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)  # [N, 3, H, W]
    y = torch.randint(0, 21, (n, size, size), generator=g)  # [N, H, W]
    step = functools.partial(segmentation.training_step, model, device=device, perf=perf)
    model.train()
    return n / median_seconds(
        lambda: train_step(model, optimizer, (x, y), step, p, perf, device, 0),
        warmup=1,
        iters=iters,
        sync=device_sync(device),
    )


def det_step_throughput(device: torch.device, iters: int) -> float:
    p = resolve_protocol("det", "smoke")
    model = detection.build_detector(create_encoder("caffenet"), p).to(device)
    perf = eval_performance(device, p.amp)
    if perf.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = sgd(model.backbone, (model.rpn, model.roi_heads), p)
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 227, 227, generator=g) for _ in range(p.batch_size)]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 140.0], [100.0, 60.0, 200.0, 200.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([3, 15])} for _ in range(p.batch_size)]
    step = functools.partial(detection.training_step, model, device=device, use_proposals=False)
    model.train()
    return p.batch_size / median_seconds(
        lambda: train_step(model, optimizer, (images, targets), step, p, perf, device, 0),
        warmup=1,
        iters=iters,
        sync=device_sync(device),
    )


def eval_step_throughputs(device: torch.device, iters: int) -> dict[str, float]:
    return {"seg": seg_step_throughput(device, iters), "det": det_step_throughput(device, iters)}
