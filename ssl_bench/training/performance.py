"""Speed settings resolved in one place, so training and ``bench speed`` run the same step.

Recipe keys under ``train:`` (each ``auto`` by default):
    amp            bf16 autocast: on CUDA, and on CPUs with native bf16 (AVX-512 BF16 / AMX), where it pays:
                   on the 2-core AVX-512 BF16 development box the context-encoder step runs 1.6× faster than
                   in fp32 (``bench speed``; README, Performance). Elsewhere fp32.
    channels_last  NHWC memory format: on CUDA and on CPUs (oneDNN convolutions prefer it)
    compile        torch.compile the method: off unless true (falls back to eager if compilation fails)
    fused_adam     the fused Adam kernel: on (CUDA and CPU both have one)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
    from ssl_bench.errors import RecipeError

    raise RecipeError(f"train.{key} must be auto, true or false, not {value!r}")


def resolve_performance(train: dict[str, Any], device: torch.device) -> Performance:
    cuda = device.type == "cuda"
    return Performance(
        amp=_choice(train.get("amp"), cuda or (device.type == "cpu" and cpu_has_native_bf16()), "amp"),
        channels_last=_choice(train.get("channels_last"), True, "channels_last"),
        compile=_choice(train.get("compile"), False, "compile"),
        fused_adam=_choice(train.get("fused_adam"), True, "fused_adam"),
    )


def maybe_compile(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile`` when asked. Compilation happens lazily at the first call; with dynamo's
    ``suppress_errors`` a graph that fails to compile runs eagerly (with a logged warning) instead of
    stopping the run."""
    if not enabled:
        return module
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    return torch.compile(module)
