"""The fine-tuning engine shared by cls, seg and det: schedules, parameter groups, the head init, the loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ssl_bench.evaluators.base import EvalContext
from ssl_bench.evaluators.engine import (
    FinetuneProtocol,
    data_dependent_init_,
    eval_performance,
    finetune,
    loss_summary,
    lr_at,
    param_groups,
    sgd,
)
from ssl_bench.runtime.schedules import cosine_lr, poly_lr, step_lr


def test_step_schedule_multiplies_by_gamma_at_each_step() -> None:
    steps = (50_000, 100_000)
    assert [step_lr(1e-4, i, steps, 0.1) for i in (0, 49_999, 50_000, 100_000)] == pytest.approx(
        [1e-4, 1e-4, 1e-5, 1e-6]
    )
    # voc-classification's "halve every 10k" written as its drops
    p = FinetuneProtocol(
        iterations=80_000, lr=1e-3, lr_steps=tuple(range(10_000, 80_000, 10_000)), lr_gamma=0.5
    )
    assert [lr_at(p, it) for it in (0, 9_999, 10_000, 25_000, 79_999)] == pytest.approx(
        [1e-3, 1e-3, 5e-4, 2.5e-4, 1e-3 * 0.5**7]
    )
    assert lr_at(FinetuneProtocol(lr=0.02, lr_steps=()), 10**6) == 0.02  # no steps: constant


def test_poly_and_cosine_schedules() -> None:
    assert poly_lr(0.01, 0, 100, 0.9) == 0.01
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100, 0.9) == 0.0
    assert cosine_lr(0.01, 0, 100) == 0.01
    assert cosine_lr(0.01, 50, 100) == pytest.approx(0.005)
    assert cosine_lr(0.01, 100, 100) == pytest.approx(0.0, abs=1e-15)
    p = FinetuneProtocol(iterations=100, lr=0.01, lr_schedule="poly", lr_power=1.0)
    assert lr_at(p, 25) == pytest.approx(0.0075)
    assert lr_at(FinetuneProtocol(iterations=100, lr=0.01, lr_schedule="cosine"), 25) == pytest.approx(
        0.005 * (1 + math.cos(math.pi / 4))
    )


def _net() -> tuple[nn.Module, nn.Module, nn.Module]:
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    head = nn.Linear(4, 2)
    return nn.Sequential(trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head), trunk, head


def test_param_groups_cover_every_parameter_once_in_a_fixed_order() -> None:
    _, trunk, head = _net()
    groups = param_groups(
        trunk, [head], head_lr_mult=10.0, bias_lr_mult=2.0, weight_decay=5e-4, bias_decay_mult=0
    )
    expected = [  # trunk weights, trunk biases, head weights, head biases
        ([trunk[0].weight, trunk[2].weight], 1.0, 5e-4),
        ([trunk[0].bias, trunk[2].bias], 2.0, 0.0),
        ([head.weight], 10.0, 5e-4),
        ([head.bias], 20.0, 0.0),
    ]
    assert len(groups) == len(expected)
    for group, (params, mult, decay) in zip(groups, expected, strict=True):
        assert [id(p) for p in group["params"]] == [id(p) for p in params]
        assert group["lr_mult"] == mult and group["weight_decay"] == decay


def test_data_dependent_init_gives_unit_variance_pre_activations() -> None:
    torch.manual_seed(0)
    trunk = nn.Conv2d(3, 8, 3)
    fc6, fc7 = nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 1)
    model = nn.Sequential(trunk, fc6, nn.ReLU(), fc7).train()
    x = torch.randn(6, 3, 12, 12) * 1e-3  # a tiny-activation trunk, as the Gaussian std-0.01 one
    data_dependent_init_(model, (fc6, fc7), trunk, x)
    assert model.training  # the mode is restored
    with torch.no_grad():
        pre6 = fc6(trunk(x))
        pre7 = fc7(torch.relu(pre6))
    for pre in (pre6, pre7):
        torch.testing.assert_close(pre.mean(dim=(0, 2, 3)), torch.zeros(16), atol=1e-4, rtol=0)
        torch.testing.assert_close(pre.std(dim=(0, 2, 3)), torch.ones(16), atol=1e-3, rtol=0)


def test_finetune_follows_the_schedule_clips_and_counts_images(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, trunk, head = _net()
    p = FinetuneProtocol(iterations=5, batch_size=4, lr=0.1, lr_steps=(3,), lr_gamma=0.1, grad_clip=1e-6)
    optimizer = sgd(trunk, [head], p)
    ctx = EvalContext(weights="random", arch="caffenet", voc_root=tmp_path, progress=False)
    seen_lrs = []

    def step(batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        seen_lrs.append(optimizer.param_groups[0]["lr"])
        return model(batch).pow(2).sum() * 1e6, batch.shape[0]

    before = head.weight.detach().clone()
    batches = iter(lambda: torch.randn(4, 3, 8, 8), None)
    losses = finetune(ctx, model, optimizer, batches, step, p, eval_performance(ctx.device), "test")
    assert len(losses) == 5 and ctx.images_processed == 20
    assert seen_lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01])
    # a huge loss, clipped to a gradient norm of 1e-6: the weights barely move
    assert (head.weight - before).abs().max() < 1e-5


def test_finetune_stops_on_a_diverging_loss(tmp_path: Path) -> None:
    model, trunk, head = _net()
    p = FinetuneProtocol(iterations=3, batch_size=1)
    ctx = EvalContext(weights="random", arch="caffenet", voc_root=tmp_path, progress=False)
    batches = iter(lambda: torch.randn(1, 3, 8, 8), None)

    def step(batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        return model(batch).sum() * float("nan"), 1

    with pytest.raises(FloatingPointError, match="at iteration 0; lower the lr"):
        finetune(ctx, model, sgd(trunk, [head], p), batches, step, p, eval_performance(ctx.device), "test")


def test_loss_summary_is_the_last_tenth_mean_and_a_twenty_point_curve() -> None:
    losses = [float(i) for i in range(100, 0, -1)]  # 100 … 1
    tail, curve = loss_summary(losses)
    assert tail == pytest.approx(5.5)  # mean of the last 10 losses, 10 … 1
    assert len(curve) == 20 and curve[0] == pytest.approx(98.0) and curve[-1] == pytest.approx(3.0)
    assert curve == sorted(curve, reverse=True)
    tail, curve = loss_summary([2.0, 4.0])  # shorter than the curve: one point per iteration
    assert tail == 4.0 and curve == [2.0, 4.0]
