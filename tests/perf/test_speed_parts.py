"""The parts of ``bench speed`` added for issue #25: stable peak, per-layer table, per-core pipeline,
evaluation steps beside their references, and the evaluation speed keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.evaluators.engine import FinetuneProtocol, eval_performance, protocol_performance
from ssl_bench.perf import speed
from ssl_bench.perf.layers import layer_costs, layer_table
from ssl_bench.provenance import cpu_has_native_bf16
from ssl_bench.runtime.performance import Performance

CPU = torch.device("cpu")


def test_stable_peak_reports_every_round_and_their_spread():
    peak = speed.stable_peak(CPU, torch.float32, n=64, rounds=3, per_round=2)
    assert len(peak.rounds) == 3 and peak.best == max(peak.rounds) > 0 and peak.wall > 0
    assert 0 <= peak.spread < 1


def test_layer_table_times_and_counts_every_layer_and_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    x = torch.randn(2, 3, 8, 8)
    costs = layer_costs(model, lambda: model(x).sum(), Performance(False, False, False, False), CPU, tries=1)
    assert [c.name for c in costs] == ["0", "1", "2", "3"]
    conv_forward = 2 * 2 * 8 * 6 * 6 * 3 * 3 * 3
    assert costs[0].flops == conv_forward * 2  # + the weight gradient (the images need none)
    assert costs[3].flops == 2 * 2 * 288 * 4 * 3  # forward, input and weight gradients
    assert all(c.forward_s > 0 for c in costs) and model[1].inplace
    assert all(p.grad is None for p in model.parameters())
    lines = layer_table(costs, step_s=1.0, step_flops=sum(c.flops for c in costs), peak=1e12)
    assert lines[-2].strip().startswith("(rest") and "of the 1000 GFLOP/s peak" in lines[-1]


def test_pipeline_per_core_times_full_and_scaled_decoding(tmp_path: Path):
    index = ImageFolderIndex(speed.full_size_jpegs(tmp_path, 2), labels="none")
    rates = speed.pipeline_per_core(index, 64, images=2, block=1)
    assert set(rates) == {"full", "scaled"} and min(rates.values()) > 0


def test_evaluation_speed_keys_are_off_by_default_and_honoured_where_the_cpu_has_bf16():
    default = protocol_performance(CPU, FinetuneProtocol())
    assert default == eval_performance(CPU) and not default.amp and not default.channels_last
    fast = protocol_performance(CPU, FinetuneProtocol(cpu_amp=True, cpu_channels_last=True))
    assert fast.channels_last and fast.amp is cpu_has_native_bf16()
    assert protocol_performance(torch.device("cuda"), FinetuneProtocol(amp=False)).amp is False


def test_frozen_features_step_runs_beside_its_references(monkeypatch):
    from ssl_bench.perf import eval_steps

    recipe = eval_steps.resolve_protocol
    monkeypatch.setattr(eval_steps, "resolve_protocol",  # the smoke recipe on 2 small images: seconds
                        lambda *a: dataclasses.replace(recipe(*a), batch_size=2, image_size=67))  # fmt: skip
    rates = eval_steps.eval_side_by_side(("features",), "smoke", CPU, steps=1, block=1)["features"]
    assert set(rates) == set(eval_steps.VARIANTS) and min(rates.values()) > 0


@pytest.mark.parametrize("detector", ["fast_rcnn", "faster_rcnn"])
def test_the_det_step_is_the_recipes_detector(monkeypatch, detector):
    """``bench speed`` times Fast R-CNN on proposals where the recipe says so (mini), an RPN where it says
    faster_rcnn (smoke); each one step on small pictures."""
    from ssl_bench.evaluators import detection
    from ssl_bench.perf import eval_steps

    recipe = eval_steps.resolve_protocol
    monkeypatch.setattr(eval_steps, "resolve_protocol", lambda *a: dataclasses.replace(
        recipe(*a), detector=detector, proposals="p.npz" if detector == "fast_rcnn" else None, min_size=96,
        max_size=96, fc_width=16, rpn_pre_nms_train=100, rpn_post_nms_train=20))  # fmt: skip
    seen = []
    real = detection.detector_forward
    spy = lambda m, i, t=None, p=None: seen.append(p) or real(m, i, t, p)  # noqa: E731
    monkeypatch.setattr(detection, "detector_forward", spy)
    step = eval_steps.build_eval_step("det", "mini", CPU, "suite")
    step.step()
    assert (seen[0] is not None) == (detector == "fast_rcnn")
    if detector == "fast_rcnn":
        assert len(seen[0]) == 2 and seen[0][0].shape == (eval_steps.SYNTH_PROPOSALS, 4)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU with native bf16")
def test_a_bf16_channels_last_cls_step_learns_what_fp32_learns():
    """Three fine-tuning steps with the mini recipes' CPU speed keys move the loss as fp32 does."""
    from ssl_bench.encoders import create_encoder
    from ssl_bench.evaluators.classification import (
        FineTuneClassifier,
        feature_dim,
        masked_sigmoid_cross_entropy,
    )
    from ssl_bench.evaluators.engine import sgd, train_step

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, 67, 67, generator=g), torch.randint(-1, 2, (4, 20), generator=g)
    p = FinetuneProtocol(lr=0.01, iterations=3)

    def losses(cpu_amp: bool) -> list[float]:
        torch.manual_seed(0)
        encoder = create_encoder("caffenet")
        model = FineTuneClassifier(encoder, feature_dim(encoder, 67), 20, 64, 0.0)
        perf = protocol_performance(CPU, FinetuneProtocol(cpu_amp=cpu_amp, cpu_channels_last=cpu_amp))
        model = model.to(memory_format=torch.channels_last) if perf.channels_last else model
        opt = sgd(model.encoder, [model.head], p)
        batch = x.contiguous(memory_format=torch.channels_last) if perf.channels_last else x

        def step(b: torch.Tensor) -> tuple[torch.Tensor, int]:
            return masked_sigmoid_cross_entropy(model(b).float(), y), 4

        return [train_step(model, opt, batch, step, p, perf, CPU, i)[0] for i in range(3)]

    fp32, bf16 = losses(False), losses(True)
    assert bf16 == pytest.approx(fp32, rel=0.02)
    assert fp32[-1] < fp32[0] and bf16[-1] < bf16[0]
