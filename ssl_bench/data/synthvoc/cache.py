"""The cached default SynthVOC: generated once per (size, count, seed) under a lock, reused after."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ssl_bench.atomic import atomic_write_json
from ssl_bench.data.synthvoc.devkit import (
    GENERATOR_VERSION,
    JPEG_QUALITY,
    MARKER,
    generate_synthvoc,
    image_id_of,
    write_pool_labels,
)
from ssl_bench.data.synthvoc.scene import render_image


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


HELDOUT_POOL = "pool_heldout"
_HELDOUT_MARKER = "HELDOUT.json"


def ensure_heldout_pool(pool_root: str | os.PathLike, count: int) -> Path | None:
    """A held-out slice of a SynthVOC pretraining pool: ``count`` images no run has seen (issue #22).

    Pretraining uses every image of ``pool`` and the VOC splits hold the evaluation images, so the held-out
    images are drawn by the same generator beyond the dataset: indices ``num_images … num_images + count - 1``
    of ``render_image`` with the dataset's seed and size, written as the pool is (JPEG of the same quality,
    ``labels.csv`` multi-hot) into ``<dataset>/pool_heldout``, once (a ``HELDOUT.json`` marker records the
    count; a smaller request reuses a larger slice's first images, listed in index order).

    Args:
        pool_root: the ``pool`` folder of a cached SynthVOC (``synthvoc_pool``).
        count: images wanted.

    Returns:
        The held-out folder (``images/`` and ``labels.csv``, as the pool), or None when ``pool_root`` is not a
        SynthVOC pool (no ``SYNTHVOC.json`` beside it): a folder given with ``--data`` has no held-out slice.
    """
    dataset = Path(pool_root).parent
    try:
        meta = json.loads((dataset / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if Path(pool_root).name != "pool":
        return None
    folder = dataset / HELDOUT_POOL
    num_images, size, seed = int(meta["num_images"]), int(meta["size"]), int(meta["seed"])
    with _lock(dataset.parent / f".{dataset.name}.heldout.lock"):
        try:
            have = json.loads((folder / _HELDOUT_MARKER).read_text())["count"]
        except (OSError, ValueError, KeyError):
            have = 0
        if have >= count:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "images").mkdir(parents=True)
        indices = list(range(num_images, num_images + count))
        objects: dict[int, list] = {}
        for index in indices:
            rendered = render_image(index, seed, size)
            jpeg = Image.fromarray(rendered.image)
            jpeg.save(folder / "images" / f"{image_id_of(index)}.jpg", quality=JPEG_QUALITY)
            objects[index] = [(o.cls, o.difficult, o.truncated) for o in rendered.objects]
        write_pool_labels(folder, indices, objects)
        atomic_write_json(
            folder / _HELDOUT_MARKER,
            {"count": count, "first_index": num_images, "seed": seed, "size": size,
             "version": GENERATOR_VERSION},  # fmt: skip
        )
    return folder
