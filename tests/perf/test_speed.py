"""``bench speed`` produces the documented record, and the suite's fast step computes what fp32 computes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.perf import speed
from ssl_bench.provenance import cpu_has_native_bf16
from ssl_bench.runtime.performance import Performance, resolve_performance, resolve_workers
from tests.perf.learning import LEARNT_TOL, check_learns_like_fp32, fp32_loss, train_steps

REQUIRED = {"model_img_s", "e2e_img_s", "e2e_over_model", "eager_img_s", "speedup_vs_eager",
            "flop_fraction_of_peak", "peak_mem_mb"}


def test_bench_speed_writes_a_record_with_the_documented_metrics(synth_cache, tmp_path, capsys):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    code = main(["speed", "--image-size", "99", "--batch-size", "4", "--iters", "1", "--workers", "1",
                 "--no-eval", "--no-memory", "--out", str(tmp_path)])
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert REQUIRED <= set(record["metrics"])
    assert all(record["metrics"][k] > 0 for k in REQUIRED)
    assert record["metrics"]["speedup_vs_eager"] == pytest.approx(
        record["metrics"]["model_img_s"] / record["metrics"]["eager_img_s"])
    assert (tmp_path / f"{record['id']}.json").is_file()
    started = datetime.fromisoformat(record["started_at"])  # when it began, not when it wrote the record
    assert started - before < timedelta(seconds=max(2.0, record["wall_s"] / 2))


def test_batch_size_sweep_reports_rate_and_peak_memory_per_batch_size(synth_cache, tmp_path, capsys):
    code = main(["speed", "--image-size", "99", "--batch-sizes", "2,8", "--iters", "1", "--no-eval",
                 "--no-memory", "--out", str(tmp_path)])
    assert code == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metrics"]
    assert m["model_img_s_bs2"] > 0 and m["model_img_s_bs8"] > 0
    if _peak_rss_can_be_reset():
        assert m["peak_mem_mb_bs8"] > m["peak_mem_mb_bs2"] > 0  # activations grow with the batch
    else:  # each figure is then the process's peak so far (macOS, some containers)
        assert m["peak_mem_mb_bs8"] >= m["peak_mem_mb_bs2"] > 0
    with pytest.raises(SystemExit) as exit_:
        main(["speed", "--batch-sizes", "8,x"])
    assert exit_.value.code == 2 and "--batch-sizes" in capsys.readouterr().err


def _peak_rss_can_be_reset() -> bool:
    """Whether this process may reset its peak RSS (Linux ``/proc/self/clear_refs``), as the sweep does."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def test_flop_count_matches_the_conv_arithmetic():
    # conv1 alone: 96 outputs × 55² positions × 3·11·11 MACs = 105.4 MMAC = 210.8 MFLOP forward.
    flops = speed.flops_per_image(Performance(False, False, False, False), 227, torch.device("cpu"))
    conv1_forward = 2 * 96 * 55 * 55 * 3 * 11 * 11
    assert 10 * conv1_forward < flops < 60 * conv1_forward  # whole network, forward + backward


def test_performance_settings_are_validated():
    from ssl_bench.errors import RecipeError

    assert resolve_performance({"amp": False, "channels_last": False}, torch.device("cpu")).amp is False
    cpu_default = resolve_performance({}, torch.device("cpu")).amp
    assert cpu_default is cpu_has_native_bf16()  # bf16 by default only where the CPU computes it natively
    assert resolve_performance({}, torch.device("cuda")).amp is True
    with pytest.raises(RecipeError, match="train.amp"):
        resolve_performance({"amp": "yes"}, torch.device("cpu"))


def test_worker_count_is_zero_on_a_cpu_and_most_cores_per_gpu_process(monkeypatch):
    from ssl_bench.errors import RecipeError

    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert resolve_workers(None, torch.device("cpu")) == 0
    assert resolve_workers(3, torch.device("cpu")) == 3
    monkeypatch.setattr("ssl_bench.runtime.performance.available_cores", lambda: 16)
    assert resolve_workers("auto", torch.device("cuda")) == 15
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four torchrun processes share the node's cores
    assert resolve_workers("auto", torch.device("cuda")) == 3
    monkeypatch.setattr("ssl_bench.runtime.performance.available_cores", lambda: 64)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert resolve_workers("auto", torch.device("cuda")) == 16
    for bad in (-1, 1.5, "two", True):
        with pytest.raises(RecipeError, match="train.workers"):
            resolve_workers(bad, torch.device("cpu"))


def test_bf16_and_channels_last_learn_what_fp32_learns():
    """The fast step (bf16 autocast, channels_last, fused Adam) computes the fp32 loss to within bf16's
    rounding, and a few of its steps learn what as many fp32 steps learn: the drop of the loss, both models
    measured in fp32, agrees within LEARNT_TOL. A step trained on other images must fail that check."""
    cpu, fast = torch.device("cpu"), Performance(True, True, False, True)
    start, learnt = check_learns_like_fp32(fast, cpu)
    # …and the same check fails a step that learns something else: the fast step, trained on other images.
    _, elsewhere = train_steps(fast, cpu, batch_seed=1)
    learnt_elsewhere = start - fp32_loss(elsewhere, cpu)
    assert abs(learnt_elsewhere - learnt) > LEARNT_TOL * learnt, (learnt, learnt_elsewhere)
