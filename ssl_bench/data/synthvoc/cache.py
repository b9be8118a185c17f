"""The cached default SynthVOC: generated once per (size, count, seed) under a lock, reused after."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from ssl_bench.data.synthvoc.devkit import GENERATOR_VERSION, MARKER, generate_synthvoc


def synthvoc_pool(voc_root: str | os.PathLike) -> Path:
    """The pretraining pool folder (``pool``, with ``images/`` and ``labels.csv``) of a SynthVOC VOC root."""
    return Path(voc_root).parent.parent / "pool"


def _is_complete(folder: Path, num_images: int, size: int, seed: int) -> bool:
    try:
        meta = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    found = (meta.get("version"), meta.get("num_images"), meta.get("size"), meta.get("seed"))
    return found == (GENERATOR_VERSION, num_images, size, seed)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive lock, so that two processes (e.g. DDP ranks) do not generate into the same folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_cache_dir() -> Path:
    """``$SSL_BENCH_CACHE``, else ``~/.cache/ssl_bench``."""
    env = os.environ.get("SSL_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ssl_bench"


def ensure_synthvoc(
    cache_dir: str | os.PathLike | None = None,
    *,
    num_images: int = 2000,
    size: int = 227,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """VOC root of a complete cached SynthVOC, generating it first if missing or incomplete.

    Args:
        cache_dir: cache root (default :func:`default_cache_dir`); the dataset lives in its subfolder
            ``synthvoc-<num_images>-<size>-<seed>``.
        num_images, size, seed, workers, progress: as for :func:`generate_synthvoc`.

    Returns:
        ``<cache_dir>/synthvoc-<num_images>-<size>-<seed>/VOCdevkit/VOC2007``.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"synthvoc-{num_images}-{size}-{seed}"
    with _lock(root / f".{folder.name}.lock"):
        if _is_complete(folder, num_images, size, seed):
            print(f"ssl_bench: using the generated default dataset SynthVOC at {folder}", file=sys.stderr)
        else:
            print(
                f"ssl_bench: generating the default dataset SynthVOC ({num_images} images, {size} px, "
                f"seed {seed}) at {folder}",
                file=sys.stderr,
            )
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted or outdated cache entry
            generate_synthvoc(folder, num_images, size, seed, workers=workers, progress=progress)
    return folder / "VOCdevkit" / "VOC2007"
