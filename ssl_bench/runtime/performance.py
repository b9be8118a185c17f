"""Speed settings resolved in one place, so training and ``bench speed`` run the same step.

Recipe keys under ``train:`` (each ``auto`` by default):
    amp            bf16 autocast: on CUDA, and on CPUs with native bf16 (AVX-512 BF16 / AMX), where it pays:
                   on the 2-core AVX-512 BF16 development box the context-encoder step runs 1.6× faster than
                   in fp32 (``bench speed``; docs/performance.md). Elsewhere fp32.
    channels_last  NHWC memory format: on CUDA and on CPUs (oneDNN convolutions prefer it)
    compile        torch.compile the method: off unless true (falls back to eager if compilation fails)
    fused_adam     the fused Adam kernel: on (CUDA and CPU both have one)
    workers        data-loading processes (``resolve_workers``): none when the model trains on the CPU,
                   most of the cores when it trains on a GPU
    loader_thread  load the next batches in a background thread of the training process
                   (``data.prefetch.ThreadPrefetcher``): on when ``workers`` is 0
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ssl_bench.errors import RecipeError
from ssl_bench.provenance import cpu_has_native_bf16


@dataclass(frozen=True)
class Performance:
    amp: bool
    channels_last: bool
    compile: bool
    fused_adam: bool

    def autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp)


def _choice(value: Any, auto: bool, key: str) -> bool:
    if value in (None, "auto"):
        return auto
    if isinstance(value, bool):
        return value
    raise RecipeError(f"train.{key} must be auto, true or false, not {value!r}")


def resolve_performance(train: dict[str, Any], device: torch.device) -> Performance:
    cuda = device.type == "cuda"
    return Performance(
        amp=_choice(train.get("amp"), cuda or (device.type == "cpu" and cpu_has_native_bf16()), "amp"),
        channels_last=_choice(train.get("channels_last"), True, "channels_last"),
        compile=_choice(train.get("compile"), False, "compile"),
        fused_adam=_choice(train.get("fused_adam"), True, "fused_adam"),
    )


def maybe_compile(module: torch.nn.Module, enabled: bool, backend: Any = "inductor") -> torch.nn.Module:
    """``torch.compile`` when asked. Compilation happens lazily at the first call; with dynamo's
    ``suppress_errors`` a graph that fails to compile (no C++ compiler, an unsupported op) runs eagerly,
    with a logged warning, instead of stopping the run."""
    if not enabled:
        return module
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    return torch.compile(module, backend=backend)


def resolve_loader_thread(value: Any, workers: int) -> bool:
    """``train.loader_thread``: auto is on exactly when there are no worker processes to load ahead."""
    return _choice(value, workers == 0, "loader_thread")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_workers(value: Any, device: torch.device) -> int:
    """DataLoader worker processes for ``train.workers`` (an int, or ``auto``/None).

    ``auto`` on a GPU: the cores shared by the processes of this node (``LOCAL_WORLD_SIZE`` under
    torchrun), one kept for each training process, at most 16 per process. On a CPU: 0, the batches are
    loaded by a thread of the training process (``train.loader_thread``). The model already keeps every
    core busy there; worker processes preempt the training threads, and a preempted OpenMP thread stalls
    its partner at the next barrier. Measured on the 2-core development box in one run: end to end /
    model-only 0.91 with the thread, 0.89 with 2 workers, 0.81 loading serially (docs/performance.md).
    """
    if value not in (None, "auto"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RecipeError(f"train.workers must be auto or a whole number >= 0, not {value!r}")
        return value
    if device.type == "cpu":
        return 0
    per_process = available_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, per_process - 1))
