"""Where a result came from: code version, package versions, file hashes, machine."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

_PACKAGES = ("ssl_bench", "torch", "torchvision", "timm", "numpy", "scikit-learn", "faiss-cpu", "pandas")
# What a record's numbers depend on, relative to the repository root (the "+dirty" check).
_SOURCE_PATHS = ("ssl_bench", "pretrain", "eval", "pyproject.toml", "constraints.txt")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the source tree (with ``+dirty`` when its code or recipes have uncommitted changes), or
    ``unknown``. Only what determines a result counts: result files being rewritten (``results/``, run
    folders) do not make a run dirty."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", *_SOURCE_PATHS],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags from ``/proc/cpuinfo`` (Linux); elsewhere ``platform``'s
    processor name and no flags."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return platform.processor() or platform.machine(), frozenset()


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The first processor's ``model name`` and ``flags`` of a ``/proc/cpuinfo`` text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine()
    return model, frozenset(fields.get("flags", "").split())


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: the CPU kinds whose bf16 kernels run natively (elsewhere bf16 is emulated)."""
    flags = cpu_info()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def device_description(device: torch.device) -> str:
    """The device a record was made on. A CPU's names its model, the vector instructions torch dispatches
    to and whether bf16 is native, since timings (and bf16 rounding) are comparable only within one kind."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    isa = torch.backends.cpu.get_cpu_capability()
    bf16 = ", native bf16" if cpu_has_native_bf16() else ""
    return f"cpu ({cpu_info()[0]}, {isa}{bf16}, {torch.get_num_threads()} threads)"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
