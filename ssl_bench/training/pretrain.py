"""``bench pretrain``: turn a resolved recipe into a trained encoder in ``--out``.

Output folder::

    checkpoint.pt    resumable state (whole method, its optimisers, RNG, step, config, images skipped)
    encoder.pt       encoder weights only, a plain state dict (``torch.load(..., weights_only=True)``)
    config.yaml      the resolved recipe plus provenance (data, fill value, versions, commit)
    metrics.jsonl    one JSON row per logged step (loss, img/s, skipped so far) and per sample grid
    samples/         step_XXXXXX.png grids: masked input / output / original
    memorisation.json  pretext loss / accuracy on training and held-out pool images (training/memorisation.py)

Nothing is written before every value is checked (``training/recipe.py``), the device is found, the data
folder is listed and some of its images read, and the output folder is known to be free. A folder that
holds another run is refused unless ``overwrite`` (its files are deleted) or ``resume`` (which must ask for
the saved recipe; only the keys of ``RESUME_MAY_CHANGE`` may differ).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ssl_bench.atomic import atomic_write_text
from ssl_bench.data.batches import endless_batches
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.pretrain import (
    EpochSampler,
    PoolImages,
    PretrainDataset,
    collate,
    epoch_seed,
    make_loader,
)
from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool
from ssl_bench.data.transforms import normalize_uint8
from ssl_bench.errors import DataError, RecipeError
from ssl_bench.methods import PretrainMethod, create_method, method_class
from ssl_bench.methods.base import plans_epochs
from ssl_bench.provenance import git_commit, package_versions
from ssl_bench.training.checkpoint import (
    restore_rng,
    save_checkpoint,
    save_encoder,
)
from ssl_bench.training.distributed import (
    DistInfo,
    barrier,
    broadcast_state,
    cleanup_distributed,
    init_distributed,
)
from ssl_bench.training.loop import to_device, train_loop, training_batches
from ssl_bench.training.memorisation import measure_run
from ssl_bench.training.optimizers import Optimizers
from ssl_bench.training.performance import (
    maybe_compile,
    resolve_loader_thread,
    resolve_performance,
    resolve_workers,
)
from ssl_bench.training.recipe import (
    DATASET_MEAN,
    DataOptions,
    PretrainRecipe,
    TrainOptions,
    check_recipe,
)
from ssl_bench.training.resume import RESUME_MAY_CHANGE, RUN_FILES, claim_out, clear_run, truncate_metrics
from ssl_bench.training.run_folder import RunFolder
from ssl_bench.training.samples import write_sample_grid
from ssl_bench.training.schedules import pretrain_lr

__all__ = ["RESUME_MAY_CHANGE", "RUN_FILES", "run_pretraining"]

PROBE_IMAGES = 64  # images read before anything is written, spread over the folder


def resolve_data_root(data: DataOptions, info: DistInfo) -> Path:
    """``source: synthvoc`` → the cached SynthVOC pretraining pool (generated once, by rank 0)."""
    if data.source is None:
        raise RecipeError("this recipe has no data source: pass --data FOLDER (e.g. /data/imagenet/train)")
    if data.source != "synthvoc":
        path = Path(data.source)
        if path.is_file():
            raise RecipeError(f"--data {data.source}: this is a file; pass the folder that holds the images")
        if not path.is_dir():
            raise RecipeError(f"--data {data.source}: no such folder")
        return path
    root = ensure_synthvoc(num_images=data.synth_images) if info.is_main else None
    barrier(info)  # rank 0 generates it once; the others find it complete
    return synthvoc_pool(root or ensure_synthvoc(num_images=data.synth_images))


def _spread(n: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in [0, n)."""
    return torch.linspace(0, n - 1, min(count, n)).round().long().unique().tolist()


def probe_images(index: ImageFolderIndex, skip_bad: bool) -> None:
    """Read up to PROBE_IMAGES images spread over the folder before anything is written.

    Raises:
        DataError: an unreadable image (without ``skip_bad``), or none readable (with it).
    """
    dataset = PretrainDataset(index, 64, augment=False, skip_bad=skip_bad)
    picks = _spread(len(index), PROBE_IMAGES)
    if any(dataset[i] is not None for i in picks):
        return
    first = index.path(picks[0])
    try:
        PretrainDataset(index, 64, augment=False)[picks[0]]
    except DataError as e:
        reason = str(e)
    else:  # pragma: no cover - it was just unreadable
        reason = f"cannot read {first}"
    checked = "every image" if len(picks) == len(index) else f"{len(picks)} images spread over it"
    raise DataError(
        f"--skip-bad-images: {checked} of {index.root} ({len(index)} image files) could not be read, "
        f"e.g. {reason}; nothing to train on"
    )


def estimate_fill(index: ImageFolderIndex, image_size: int, n: int, skip_bad: bool = False) -> list[float]:
    """The dataset mean pixel in normalised units, from ``n`` evenly spaced centre crops (the hole's fill)."""
    ds = PretrainDataset(index, image_size, augment=False, skip_bad=skip_bad)
    images = [item["image"] for item in map(ds.__getitem__, _spread(len(index), n)) if item is not None]
    if not images:
        raise DataError(f"no readable image among the {n} used for the mean fill in {index.root}")
    total = torch.stack([normalize_uint8(im).double().mean(dim=(1, 2)) for im in images]).mean(0)
    return [round(float(v), 6) for v in total]


def build_method(recipe: PretrainRecipe, num_classes: int) -> PretrainMethod:
    options = dict(recipe.model)
    options["image_size"] = recipe.data.image_size
    if method_class(recipe.method).needs_labels:
        options["num_classes"] = num_classes
    try:
        return create_method(recipe.method, **options)
    except ValueError as e:  # a constructor's own check of an option's value (mask kind, loss, …)
        raise RecipeError(f"model options of method '{recipe.method}': {e}") from None


def build_optimizer(params: Any, train: TrainOptions, fused: bool) -> torch.optim.Optimizer:
    if train.optimizer == "adam":
        return torch.optim.Adam(
            params,
            lr=train.lr,
            betas=tuple(train.betas),
            weight_decay=train.weight_decay,
            fused=fused or None,
        )
    return torch.optim.SGD(params, lr=train.lr, momentum=0.9, weight_decay=train.weight_decay)


# ------------------------------------------------------------------------------------------------------
# The run


def run_pretraining(
    config: dict[str, Any],
    out: Path,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    where: str = "the recipe",
) -> dict[str, Any]:
    """Pretrain ``config['method']``; returns a summary (method, steps, wall time, images skipped).

    Args:
        config: the recipe (``training/recipe.py``), flags merged in.
        out: the run folder.
        resume: continue the run in ``out`` from its checkpoint (same recipe, RESUME_MAY_CHANGE aside).
        device: cpu, cuda, cuda:N (default: cuda when there is one).
        progress: show a progress bar.
        overwrite: replace a run already in ``out`` (its files are deleted, once everything is checked).
        where: where ``config`` came from, for messages.

    Raises:
        BenchError: a bad value, device, data folder or output folder, before anything is written.
        TrainingStopped: SIGINT / SIGTERM, after the last completed step was saved.
    """
    recipe = check_recipe(config, where)
    out = Path(out)
    recipe, state, saved_config = claim_out(out, recipe, resume, overwrite)
    info = init_distributed(device)
    try:
        return _run(recipe, out, state, saved_config, overwrite, info, progress)
    finally:
        cleanup_distributed()


def _run(
    recipe: PretrainRecipe,
    out: Path,
    state: dict[str, Any] | None,
    saved_config: dict[str, Any] | None,
    overwrite: bool,
    info: DistInfo,
    progress: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    ckpt_path = out / RunFolder.CHECKPOINT
    torch.manual_seed(recipe.seed)  # identical initial weights on every rank
    cls = method_class(recipe.method)
    data, train = recipe.data, recipe.train
    config = recipe.to_config()
    saved_provenance = (saved_config or {}).get("provenance") or {}
    # A resumed run's fill is the saved numbers; where they came from is kept for the next resume.
    provenance = {k: v for k, v in saved_provenance.items() if k == "fill_from"}
    index = None
    if cls.needs_data:
        root = resolve_data_root(data, info)
        index = ImageFolderIndex(root, labels="auto" if cls.needs_labels else "none")
        listing = index.listing_hash()
        saved_data = (saved_config or {}).get("data") or {}
        if saved_config is not None and data.source != saved_data.get("source"):
            if saved_data.get("listing_sha256") != listing:
                raise RecipeError(
                    f"--resume: --data {data.source} does not list the files of the saved run's folder "
                    f"{saved_data.get('resolved_root') or saved_data.get('source')}; resume with that folder"
                )
        probe_images(index, data.skip_bad)
        config["data"].update(
            resolved_root=str(root),
            num_images=len(index),
            num_classes=index.num_classes,
            listing_sha256=listing,
        )
        if recipe.model.get("fill") == DATASET_MEAN:
            config["model"]["fill"] = estimate_fill(index, data.image_size, data.stats_images, data.skip_bad)
            provenance["fill_from"] = DATASET_MEAN
    num_classes = config["data"].get("num_classes", 0)
    method = build_method(dataclasses.replace(recipe, model=config["model"]), num_classes)
    method.to(info.device)
    cuda = info.device.type == "cuda"
    perf = resolve_performance(config["train"], info.device)
    if perf.channels_last:
        method.to(memory_format=torch.channels_last)
    sample_batch = _sample_batch(method, index, recipe, info) if method.trains and index is not None else None
    provenance.update(
        {
            "git_commit": git_commit(),
            "versions": package_versions(),
            "world_size": info.world_size,
            "device": str(info.device),
            "performance": dataclasses.asdict(perf),
        }
    )
    config["provenance"] = provenance

    # Everything is checked: from here on the run folder is written.
    barrier(info)  # every rank has looked at the folder before rank 0 changes it
    if info.is_main:
        if overwrite:
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / RunFolder.CONFIG, yaml.safe_dump(config, sort_keys=False))

    if not method.trains:
        if index is not None:
            loader, sampler = _loader(method, index, recipe, info)
            method.prepare(
                to_device(b, info.device, perf.channels_last) for b in endless_batches(loader, sampler, 0)
            )
        if info.is_main:
            save_checkpoint(ckpt_path, 0, method, None, config)
            save_encoder(out / RunFolder.ENCODER, method.encoder, train.fold_batch_norm)
        wall_s = time.perf_counter() - started
        return {"method": recipe.method, "steps": 0, "wall_s": wall_s, "skipped_images": 0}

    # One optimiser per group of the method (methods/base.py). A method with one group is wrapped in DDP; one
    # with several averages each group's gradients after that group's backward (training/optimizers.py).
    several = len(method.optimizer_groups()) > 1
    optimizers = Optimizers(
        method,
        functools.partial(build_optimizer, train=train, fused=perf.fused_adam),
        average_gradients=info.enabled and several,
    )
    start_step, skipped = 0, 0
    if state is not None:
        method.load_state_dict(state["model"], strict=True)
        optimizers.load_state_dict(state["optimizer"], str(ckpt_path))
        restore_rng(state)
        start_step, skipped = state["step"], int(state.get("skipped", 0))
        if info.is_main:
            truncate_metrics(out / RunFolder.METRICS, start_step)
    elif info.is_main:
        (out / RunFolder.METRICS).unlink(missing_ok=True)
    if info.enabled and several:
        broadcast_state(method)  # what DDP's wrapper does for the others
    model = (
        DistributedDataParallel(method, device_ids=[info.device.index] if cuda else None)
        if info.enabled and not several
        else method
    )
    model = maybe_compile(model, perf.compile)
    loader, sampler = _loader(method, index, recipe, info)

    def on_checkpoint(step: int, skipped_so_far: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, step, method, optimizers, config, skipped_so_far)
        barrier(info)

    def on_sample(step: int) -> dict[str, float] | None:
        return write_sample_grid(method, sample_batch, out / RunFolder.SAMPLES / f"step_{step:06d}.png")

    steps = train.steps
    thread = resolve_loader_thread(train.loader_thread, loader.num_workers)
    plan_epoch = None
    if plans_epochs(method):
        pool = _pool_images(index, recipe, loader.num_workers, info.device, perf.channels_last)

        def plan_epoch(epoch: int) -> torch.Tensor | None:
            return method.on_epoch_start(epoch, pool, epoch_seed(recipe.seed, epoch))

    with contextlib.closing(
        training_batches(loader, sampler, start_step, info.device, perf.channels_last, thread, plan_epoch)
    ) as batches:
        result = train_loop(
            model,
            optimizers,
            batches,
            start_step=start_step,
            steps=steps,
            info=info,
            out=out,
            perf=perf,
            log_every=train.log_every,
            on_checkpoint=on_checkpoint,
            checkpoint_every=train.checkpoint_every,
            on_sample=on_sample,
            sample_every=train.sample_every,
            skipped=skipped,
            progress=progress,
            lr_at=lambda step: pretrain_lr(train.lr, step, steps, train.schedule, train.warmup_steps),
        )
    if info.is_main:
        if start_step < steps and (not train.checkpoint_every or steps % train.checkpoint_every):
            save_checkpoint(ckpt_path, steps, method, optimizers, config, result.skipped)
        save_encoder(out / RunFolder.ENCODER, method.encoder, train.fold_batch_norm)
        if train.sample_every and steps % train.sample_every:
            on_sample(steps)  # the final state, when the last periodic grid came earlier
        _measure_memorisation(RunFolder(out), method, info.device)
    barrier(info)
    return {
        "method": recipe.method,
        "steps": steps,
        "wall_s": time.perf_counter() - started,
        "skipped_images": result.skipped,
    }


def _measure_memorisation(run: RunFolder, method: PretrainMethod, device: torch.device) -> None:
    """memorisation.json of the finished run (issue #22). A failure there is written into the file and
    warned about: the trained weights are saved and stay good."""
    try:
        measure_run(run, method, device)
    except Exception as e:  # noqa: BLE001 - a measurement after training must not fail the run
        error = f"{type(e).__name__}: {e}"
        atomic_write_text(run.memorisation_path, json.dumps({"format": 1, "error": error}))
        print(f"bench pretrain: warning: the memorisation measure failed: {error}", file=sys.stderr)


def _loader(
    method: PretrainMethod, index: ImageFolderIndex, recipe: PretrainRecipe, info: DistInfo
) -> tuple[DataLoader, EpochSampler]:
    data, train = recipe.data, recipe.train
    dataset = PretrainDataset(
        index,
        data.image_size,
        method.mask_type,
        method.mask_options,
        seed=recipe.seed,
        with_labels=method.needs_labels,
        skip_bad=data.skip_bad,
    )
    sampler = EpochSampler(
        len(dataset), train.batch_size, seed=recipe.seed, rank=info.rank, world_size=info.world_size
    )
    workers = resolve_workers(train.workers, info.device)
    loader = make_loader(dataset, sampler, workers, pin_memory=info.device.type == "cuda")
    return loader, sampler


def _pool_images(
    index: ImageFolderIndex, recipe: PretrainRecipe, workers: int, device: torch.device, channels_last: bool
) -> PoolImages:
    """Every pool image once, centre-cropped at the training size, for a method's ``on_epoch_start``."""
    dataset = PretrainDataset(index, recipe.data.image_size, augment=False, skip_bad=recipe.data.skip_bad)
    transform = functools.partial(to_device, device=device, channels_last=channels_last)
    return PoolImages(dataset, recipe.train.batch_size, workers, transform)


def _sample_batch(
    method: PretrainMethod, index: ImageFolderIndex, recipe: PretrainRecipe, info: DistInfo
) -> dict[str, Any]:
    """A fixed set of centre-cropped images and masks, the same at every step (and across resumes).

    Unreadable images (``--skip-bad-images``) are passed over for the next readable ones.
    """
    n = min(recipe.train.sample_images, len(index))
    ds = PretrainDataset(
        index,
        recipe.data.image_size,
        method.mask_type,
        method.mask_options,
        seed=recipe.seed + 1,
        augment=False,
        skip_bad=recipe.data.skip_bad,
    )
    items = []
    for i in torch.linspace(0, len(index) - 1, n).round().long().tolist():
        item, j = ds[i], i
        while item is None and j + 1 < len(index) and j < i + 16:  # an unreadable one: the next readable
            j += 1
            item = ds[j]
        if item is not None:
            items.append(item)
    if not items:
        raise DataError(f"no readable image for the sample grids in {index.root}")
    return to_device(collate(items), info.device, False)
