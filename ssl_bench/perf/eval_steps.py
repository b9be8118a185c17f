"""Training-step throughput of the ``seg`` and ``det`` evaluators at their smoke settings, on in-memory data.

The models are built by the evaluators' own constructors (``FCN32s``, ``build_detector``) with the values of
``eval/smoke/<task>.yaml``, so the numbers describe the step ``bench eval --profile smoke`` runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ssl_bench.encoders import create_encoder
from ssl_bench.evaluators.base import EvalContext
from ssl_bench.perf.speed import device_sync, median_seconds
from ssl_bench.recipes import find_recipe, load_yaml


def _smoke_recipe(task: str) -> dict:
    return load_yaml(find_recipe("eval", "smoke", task))


def seg_step_throughput(device: torch.device, iters: int) -> float:
    from ssl_bench.evaluators.segmentation import FCN32s, segmentation_loss

    recipe = _smoke_recipe("seg")
    model = FCN32s(create_encoder("caffenet"), "caffenet", fc_width=recipe["fc_width"]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    n, size = recipe["batch_size"], recipe["crop_size"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g).to(device)  # [N, 3, H, W]
    y = torch.randint(0, 21, (n, size, size), generator=g).to(device)  # [N, H, W]

    def step() -> None:
        loss = segmentation_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return n / median_seconds(step, warmup=1, iters=iters, sync=device_sync(device))


def det_step_throughput(device: torch.device, iters: int) -> float:
    from ssl_bench.evaluators.detection import build_detector

    recipe = _smoke_recipe("det")
    ctx = EvalContext(weights="random", arch="caffenet", voc_root=Path("."), recipe=recipe, device=device)
    model = build_detector(create_encoder("caffenet"), ctx).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    n = recipe["batch_size"]
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 227, 227, generator=g).to(device) for _ in range(n)]
    boxes = [[20.0, 30.0, 120.0, 140.0], [100.0, 60.0, 200.0, 200.0]]
    targets = [{"boxes": torch.tensor(boxes, device=device),
                "labels": torch.tensor([3, 15], device=device)} for _ in range(n)]

    def step() -> None:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return n / median_seconds(step, warmup=1, iters=iters, sync=device_sync(device))


def eval_step_throughputs(device: torch.device, iters: int) -> dict[str, float]:
    return {"seg": seg_step_throughput(device, iters), "det": det_step_throughput(device, iters)}
