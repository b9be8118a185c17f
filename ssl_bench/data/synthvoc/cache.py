"""The cached default SynthVOC: generated once per (size, count, seed) under a lock, reused after."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from PIL import Image

from ssl_bench.atomic import atomic_write_json, exclusive_lock
from ssl_bench.data.synthvoc.devkit import (
    GENERATOR_VERSION,
    JPEG_QUALITY,
    MARKER,
    draw_images,
    generate_synthvoc,
    image_id_of,
    write_pool_labels,
)
from ssl_bench.data.synthvoc.scene import render_image
from ssl_bench.errors import DataError


def synthvoc_pool(voc_root: str | os.PathLike, pool_images: int | None = None, progress: bool = True) -> Path:
    """The pretraining pool folder (``images/`` and ``labels.csv``) of a SynthVOC VOC root.

    Args:
        voc_root: ``<dataset>/VOCdevkit/VOC2007`` of a complete SynthVOC.
        pool_images: None: the dataset's own ``pool`` (half its images); a larger count: the enlarged pool of
            that many images (:func:`ensure_enlarged_pool`, drawn on first use).
        progress: a progress bar while the enlarged pool is drawn.
    """
    dataset = Path(voc_root).parent.parent
    if pool_images is None:
        return dataset / "pool"
    return ensure_enlarged_pool(dataset, pool_images, progress=progress)


def _is_complete(folder: Path, num_images: int, size: int, seed: int) -> bool:
    try:
        meta = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    found = (meta.get("version"), meta.get("num_images"), meta.get("size"), meta.get("seed"))
    return found == (GENERATOR_VERSION, num_images, size, seed)


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
    with exclusive_lock(root / f".{folder.name}.lock"):
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
# The held-out slice takes indices num_images … num_images + HELDOUT_RESERVE - 1; an enlarged pool's extra
# images start after them, so the two never share an image whatever their sizes.
HELDOUT_RESERVE = 10_000
ENLARGED_POOL = "pool-{count}"
_POOL_MARKER = "POOL.json"


def _read_marker(dataset: Path) -> dict | None:
    try:
        return json.loads((dataset / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _render_into(folder: Path, indices: list[int], seed: int, size: int) -> dict[int, list]:
    """Draw images ``indices`` as the pool's JPEGs into ``folder/images``; each image's objects."""
    objects: dict[int, list] = {}
    for index in indices:
        rendered = render_image(index, seed, size)
        jpeg = Image.fromarray(rendered.image)
        jpeg.save(folder / "images" / f"{image_id_of(index)}.jpg", quality=JPEG_QUALITY)
        objects[index] = [(o.cls, o.difficult, o.truncated) for o in rendered.objects]
    return objects


def _render_task(task: tuple[str, int, int, int]) -> tuple[int, list]:
    folder, index, seed, size = task
    return index, _render_into(Path(folder), [index], seed, size)[index]


def ensure_enlarged_pool(
    dataset: str | os.PathLike, count: int, workers: int = 2, progress: bool = True
) -> Path:
    """A SynthVOC pretraining pool of ``count`` images: the dataset's own pool plus images drawn beyond it.

    The VOC splits and the dataset's ``pool`` stay as they are (evaluation data and earlier runs unchanged):
    the enlarged pool copies the dataset's pool and adds ``count - len(pool)`` images of the same generator,
    seed and size at indices ``num_images + HELDOUT_RESERVE`` on, past the held-out slice
    (:func:`ensure_heldout_pool`), so no evaluation or held-out image is in it. Written once into
    ``<dataset>/pool-<count>`` (``images/``, ``labels.csv``; a ``POOL.json`` marker written last), under a
    lock.

    Args:
        dataset: a complete SynthVOC folder (``SYNTHVOC.json`` in it).
        count: images in the pool; at least the dataset's own pool.
        workers: processes drawing images.
        progress: show a progress bar on stderr.

    Raises:
        DataError: ``dataset`` is not a SynthVOC, or ``count`` is below its own pool's size.
    """
    dataset = Path(dataset)
    meta = _read_marker(dataset)
    if meta is None:
        raise DataError(f"{dataset} is not a complete SynthVOC (no {MARKER}): cannot enlarge its pool")
    base = sorted(p.name for p in (dataset / "pool" / "images").iterdir())
    if count < len(base):
        raise DataError(f"data.synth_pool {count} is below the dataset's own pool of {len(base)} images")
    if count == len(base):
        return dataset / "pool"
    num_images, size, seed = int(meta["num_images"]), int(meta["size"]), int(meta["seed"])
    folder = dataset / ENLARGED_POOL.format(count=count)
    first = num_images + HELDOUT_RESERVE
    with exclusive_lock(dataset.parent / f".{dataset.name}.{folder.name}.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads((folder / _POOL_MARKER).read_text()).get("version") == GENERATOR_VERSION:
                return folder
        print(f"ssl_bench: drawing a SynthVOC pool of {count} images at {folder}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "images").mkdir(parents=True)
        for name in base:
            shutil.copyfile(dataset / "pool" / "images" / name, folder / "images" / name)
        extra = list(range(first, first + count - len(base)))
        objects = _pool_objects(dataset / "pool")
        tasks = [(str(folder), i, seed, size) for i in extra]
        objects |= draw_images(_render_task, tasks, workers, progress, desc="SynthVOC pool")
        write_pool_labels(folder, sorted(objects), objects)
        atomic_write_json(
            folder / _POOL_MARKER,
            {"count": count, "own_pool": len(base), "first_extra_index": first, "seed": seed, "size": size,
             "version": GENERATOR_VERSION},  # fmt: skip
        )
    return folder


def _pool_objects(pool: Path) -> dict[int, list]:
    """The dataset pool's image classes from its ``labels.csv`` (index → [(class, False, False)…]), enough
    for ``write_pool_labels`` (which keeps only the classes present)."""
    lines = (pool / "labels.csv").read_text().splitlines()[1:]
    objects: dict[int, list] = {}
    for line in lines:
        name, *flags = line.split(",")
        index = int(Path(name).stem) - 1  # image_id_of(index) = index + 1, zero-padded
        objects[index] = [(c, False, False) for c, flag in enumerate(flags) if flag == "1"]
    return objects


def ensure_heldout_pool(pool_root: str | os.PathLike, count: int) -> Path | None:
    """A held-out slice of a SynthVOC pretraining pool: ``count`` images no run has seen (issue #22).

    Pretraining uses every image of ``pool`` and the VOC splits hold the evaluation images, so the held-out
    images are drawn by the same generator beyond the dataset: indices ``num_images … num_images + count - 1``
    of ``render_image`` with the dataset's seed and size, written as the pool is (JPEG of the same quality,
    ``labels.csv`` multi-hot) into ``<dataset>/pool_heldout``, once (a ``HELDOUT.json`` marker records the
    count; a smaller request reuses a larger slice's first images, listed in index order).

    Args:
        pool_root: the ``pool`` folder of a cached SynthVOC, or an enlarged pool of it (``synthvoc_pool``).
        count: images wanted, at most ``HELDOUT_RESERVE``.

    Returns:
        The held-out folder (``images/`` and ``labels.csv``, as the pool), or None when ``pool_root`` is not a
        SynthVOC pool (no ``SYNTHVOC.json`` beside it): a folder given with ``--data`` has no held-out slice.
    """
    dataset = Path(pool_root).parent
    meta = _read_marker(dataset)
    if meta is None:
        return None
    name = Path(pool_root).name
    if name != "pool" and not (name.startswith("pool-") and (Path(pool_root) / _POOL_MARKER).is_file()):
        return None
    if count > HELDOUT_RESERVE:
        raise DataError(f"a held-out slice of {count} images is more than the {HELDOUT_RESERVE} reserved")
    folder = dataset / HELDOUT_POOL
    num_images, size, seed = int(meta["num_images"]), int(meta["size"]), int(meta["seed"])
    with exclusive_lock(dataset.parent / f".{dataset.name}.heldout.lock"):
        try:
            have = json.loads((folder / _HELDOUT_MARKER).read_text())["count"]
        except (OSError, ValueError, KeyError):
            have = 0
        if have >= count:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "images").mkdir(parents=True)
        indices = list(range(num_images, num_images + count))
        objects = _render_into(folder, indices, seed, size)
        write_pool_labels(folder, indices, objects)
        atomic_write_json(
            folder / _HELDOUT_MARKER,
            {"count": count, "first_index": num_images, "seed": seed, "size": size,
             "version": GENERATOR_VERSION},  # fmt: skip
        )
    return folder
