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


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
