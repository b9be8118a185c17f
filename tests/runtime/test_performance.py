"""The speed switches compute what the plain step computes: torch.compile (and its fallback) on the CPU, and
the GPU paths where a CUDA device is present (skipped elsewhere, never faked)."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch._dynamo.utils import counters

from ssl_bench.perf import speed
from ssl_bench.runtime.performance import Performance, maybe_compile
from tests.perf.learning import check_learns_like_fp32

EAGER_FP32 = Performance(amp=False, channels_last=False, compile=False, fused_adam=True)


def _losses(perf: Performance, device: str = "cpu", steps: int = 3) -> list[float]:
    torch.manual_seed(0)
    _, step = speed.build_suite_step(perf, 99, torch.device(device), lr=1e-3)
    batch = speed.synthetic_batch(4, 99, torch.device(device), perf.channels_last)
    return [step(batch).item() for _ in range(steps)]


NO_CXX = shutil.which("c++") is None and shutil.which("g++") is None


@pytest.mark.skipif(NO_CXX, reason="inductor needs a C++ compiler")
def test_compiled_step_trains_like_the_eager_step():
    torch._dynamo.reset()
    counters.clear()
    compiled = _losses(Performance(amp=False, channels_last=False, compile=True, fused_adam=True))
    assert counters["frames"]["ok"] >= 1, "the step must really have been compiled, not fallen back"
    assert compiled == pytest.approx(_losses(EAGER_FP32), rel=1e-4)


def test_a_graph_that_fails_to_compile_runs_eagerly():
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler on this machine")

    torch._dynamo.reset()
    layer = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(maybe_compile(layer, True, backend=broken_backend)(x), layer(x))
    assert maybe_compile(layer, False) is layer


@pytest.mark.gpu
def test_gpu_bf16_channels_last_step_learns_what_fp32_learns():
    # The CPU test's check and tolerances (tests/perf/learning.py: derived from bf16's 8-bit significand).
    fast = Performance(amp=True, channels_last=True, compile=False, fused_adam=True)
    check_learns_like_fp32(fast, torch.device("cuda"))


@pytest.mark.gpu
def test_gpu_compiled_step_learns_what_eager_learns():
    torch._dynamo.reset()
    eager = Performance(amp=True, channels_last=True, compile=False, fused_adam=True)
    compiled = Performance(amp=True, channels_last=True, compile=True, fused_adam=True)
    # bf16 on both, the kernels fused differently: within the bf16 tolerances, against the eager bf16 step.
    check_learns_like_fp32(compiled, torch.device("cuda"), reference=eager)


@pytest.mark.gpu
def test_gpu_side_by_side_timing_with_worker_processes(synth_voc_root):
    from ssl_bench.data.folder import ImageFolderIndex
    from ssl_bench.data.synthvoc import synthvoc_pool
    from ssl_bench.runtime.performance import resolve_performance

    device = torch.device("cuda")
    index = ImageFolderIndex(synthvoc_pool(synth_voc_root), labels="none")
    rates = speed.side_by_side(resolve_performance({}, device), index, 99, 4, 2, device, steps=4)
    assert set(rates) == {"eager", "model", "e2e"} and all(r > 0 for r in rates.values())
