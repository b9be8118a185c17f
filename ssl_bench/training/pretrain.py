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

``run_pretraining`` reads top to bottom: claim the output folder (``training/resume.py``), prepare the data
and build the run (method, optimisers, DDP: ``training/pretrain_setup.py``), write the folder, train
(``training/loop.py``), finish (last checkpoint, encoder.pt, memorisation.json).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ssl_bench.atomic import atomic_write_text
from ssl_bench.methods import PretrainMethod
from ssl_bench.runtime.checkpoint import save_checkpoint, save_encoder
from ssl_bench.runtime.distributed import barrier, cleanup_distributed, init_distributed
from ssl_bench.runtime.performance import resolve_loader_thread
from ssl_bench.runtime.run_folder import RunFolder
from ssl_bench.runtime.schedules import pretrain_lr
from ssl_bench.training.loop import train_loop, training_batches
from ssl_bench.training.memorisation import measure_run
from ssl_bench.training.pretrain_setup import (
    PretrainRun,
    build_run,
    epoch_planner,
    prepare_data,
    run_loader,
    untrained_batches,
)
from ssl_bench.training.recipe import check_recipe
from ssl_bench.training.resume import RESUME_MAY_CHANGE, RUN_FILES, claim_out, clear_run, truncate_metrics
from ssl_bench.training.samples import write_sample_grid

__all__ = ["RESUME_MAY_CHANGE", "RUN_FILES", "run_pretraining"]


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
        started = time.perf_counter()
        torch.manual_seed(recipe.seed)  # identical initial weights on every rank
        data = prepare_data(recipe, saved_config, info, progress)
        run = build_run(recipe, data, state, out, info)
        _start_run_folder(run, overwrite)
        if run.method.trains:
            steps, skipped = recipe.train.steps, _train(run, progress)
            _finish(run, skipped)
        else:
            steps, skipped = 0, 0
            _save_untrained(run)
        return {
            "method": recipe.method,
            "steps": steps,
            "wall_s": time.perf_counter() - started,
            "skipped_images": skipped,
        }
    finally:
        cleanup_distributed()


def _start_run_folder(run: PretrainRun, overwrite: bool) -> None:
    """Everything is checked: from here on the run folder is written (by rank 0)."""
    barrier(run.info)  # every rank has looked at the folder before rank 0 changes it
    if run.info.is_main:
        if overwrite:
            clear_run(run.out)
        run.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.out / RunFolder.CONFIG, yaml.safe_dump(run.config, sort_keys=False))


def _save_untrained(run: PretrainRun) -> None:
    """A method that does not train: its weights, prepared from the data if it reads any (``datainit``)."""
    if run.index is not None:
        run.method.prepare(untrained_batches(run))
    if run.info.is_main:
        save_checkpoint(run.checkpoint_path, 0, run.method, None, run.config)
        save_encoder(run.out / RunFolder.ENCODER, run.method.encoder, run.recipe.train.fold_batch_norm)


def _train(run: PretrainRun, progress: bool) -> int:
    """The loop (``training/loop.py``) from the run's start step to ``train.steps``; returns the number of
    images skipped in all."""
    train, info = run.recipe.train, run.info
    if info.is_main:
        if run.resumed:
            truncate_metrics(run.out / RunFolder.METRICS, run.start_step)
        else:
            (run.out / RunFolder.METRICS).unlink(missing_ok=True)
    loader, sampler = run_loader(run)
    thread = resolve_loader_thread(train.loader_thread, loader.num_workers)
    plan_epoch = epoch_planner(run, loader.num_workers)
    with contextlib.closing(
        training_batches(
            loader, sampler, run.start_step, info.device, run.perf.channels_last, thread, plan_epoch
        )
    ) as batches:
        result = train_loop(
            run.model,
            run.optimizers,
            batches,
            start_step=run.start_step,
            steps=train.steps,
            info=info,
            out=run.out,
            perf=run.perf,
            log_every=train.log_every,
            on_checkpoint=functools.partial(_checkpoint, run),
            checkpoint_every=train.checkpoint_every,
            on_sample=functools.partial(_sample_grid, run),
            sample_every=train.sample_every,
            skipped=run.skipped,
            progress=progress,
            lr_at=lambda step: pretrain_lr(train.lr, step, train.steps, train.schedule, train.warmup_steps),
        )
    return result.skipped


def _checkpoint(run: PretrainRun, step: int, skipped: int) -> None:
    if run.info.is_main:
        save_checkpoint(run.checkpoint_path, step, run.method, run.optimizers, run.config, skipped)
    barrier(run.info)


def _sample_grid(run: PretrainRun, step: int) -> dict[str, float] | None:
    return write_sample_grid(
        run.method, run.sample_batch, run.out / RunFolder.SAMPLES / f"step_{step:06d}.png"
    )


def _finish(run: PretrainRun, skipped: int) -> None:
    """The last checkpoint (unless the loop just wrote it), encoder.pt, the last sample grid, memorisation."""
    train, steps = run.recipe.train, run.recipe.train.steps
    if run.info.is_main:
        if run.start_step < steps and (not train.checkpoint_every or steps % train.checkpoint_every):
            save_checkpoint(run.checkpoint_path, steps, run.method, run.optimizers, run.config, skipped)
        save_encoder(run.out / RunFolder.ENCODER, run.method.encoder, train.fold_batch_norm)
        if train.sample_every and steps % train.sample_every:
            _sample_grid(run, steps)  # the final state, when the last periodic grid came earlier
        _measure_memorisation(RunFolder(run.out), run.method, run.info.device)
    barrier(run.info)


def _measure_memorisation(run: RunFolder, method: PretrainMethod, device: torch.device) -> None:
    """memorisation.json of the finished run (issue #22). A failure there is written into the file and
    warned about: the trained weights are saved and stay good."""
    try:
        measure_run(run, method, device)
    except Exception as e:  # noqa: BLE001 - a measurement after training must not fail the run
        error = f"{type(e).__name__}: {e}"
        atomic_write_text(run.memorisation_path, json.dumps({"format": 1, "error": error}))
        print(f"bench pretrain: warning: the memorisation measure failed: {error}", file=sys.stderr)
