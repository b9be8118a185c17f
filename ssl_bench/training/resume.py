"""The output folder of a pretraining run: never silently replaced, resumed only with the same recipe.

``claim_out`` checks, before anything is written, that ``--out`` may receive the run: a folder holding another
run is refused unless ``overwrite`` (``clear_run`` deletes its files once everything is checked) or
``resume``, which must ask for the saved recipe; only the keys of ``RESUME_MAY_CHANGE`` may differ.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from ssl_bench.atomic import atomic_write_text
from ssl_bench.errors import BenchError, CheckpointError, RecipeError
from ssl_bench.runtime.checkpoint import checkpoint_step, load_checkpoint
from ssl_bench.runtime.run_folder import RunFolder
from ssl_bench.training.recipe import DATASET_MEAN, FLAGS, PretrainRecipe, check_recipe, model_defaults

RUN_FILES = (RunFolder.CONFIG, RunFolder.CHECKPOINT, RunFolder.ENCODER, RunFolder.METRICS, RunFolder.SAMPLES,
             RunFolder.MEMORISATION)  # fmt: skip
# What a resumed run may change: how fast it runs and what it records, never what it learns. ``train.steps``
# may not go below the checkpoint's step; ``data.source`` may name another folder only when that folder
# lists the same files (a data set copied to a node's local disk).
RESUME_MAY_CHANGE = (
    "train.steps",
    "train.workers",
    "train.loader_thread",
    "train.compile",
    "train.log_every",
    "train.checkpoint_every",
    "train.sample_every",
    "data.skip_bad",
    "data.source",
)


def run_files(out: Path) -> list[str]:
    """The files of a pretraining run present in ``out``."""
    return [name for name in RUN_FILES if (out / name).exists()]


def describe_run(out: Path) -> str:
    """``a context_encoder run (step 300 of 300, last written 2025-06-01 14:03)``, from what is there."""
    found = run_files(out)
    when = max((out / name).stat().st_mtime for name in found)
    stamp = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")
    run = RunFolder(out)
    try:
        method, total = run.method_name, (run.config.get("train") or {}).get("steps")
    except CheckpointError:
        return f"files of another run ({', '.join(found)}; last written {stamp})"
    step = checkpoint_step(run.checkpoint_path) if run.checkpoint_path.is_file() else None
    progress = "no checkpoint" if step is None else f"step {step}" + (f" of {total}" if total else "")
    return f"a {method} run ({progress}, last written {stamp})"


def clear_run(out: Path) -> None:
    """Delete a run's files from ``out`` (samples included, and temporary files of interrupted writes)."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict):
        out: dict[str, Any] = {}
        for k, v in values.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: list(values) if isinstance(values, tuple) else values}


def _comparable(recipe: PretrainRecipe) -> dict[str, Any]:
    config = recipe.to_config()
    config["model"] = {**model_defaults(recipe.method), **config["model"]}
    return _flatten(config)


def _label(key: str) -> str:
    return f"{key} ({FLAGS[key]})" if key in FLAGS else key


def resume_recipe(
    requested: PretrainRecipe, state: dict[str, Any], out: Path
) -> tuple[PretrainRecipe, dict[str, Any]]:
    """The recipe a resumed run continues with: the saved one, with the changes RESUME_MAY_CHANGE allows.

    Returns:
        The recipe, and the saved config (for the values the run resolved: fill, data listing).

    Raises:
        RecipeError: listing each other key whose requested value differs from the saved one.
    """
    saved_config = state["config"]
    saved = check_recipe(saved_config, f"{out / RunFolder.CHECKPOINT}")
    if saved.method != requested.method:
        raise RecipeError(
            f"--resume: {out} holds a '{saved.method}' run, not '{requested.method}'; resume it with "
            f"--method {saved.method}, or start a new run: another --out, or --overwrite"
        )
    fill_from = (saved_config.get("provenance") or {}).get("fill_from", DATASET_MEAN)
    a, b = _comparable(saved), _comparable(requested)
    differing = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key), b.get(key)
        if old == new or (key in RESUME_MAY_CHANGE and key != "train.steps"):
            continue
        if key == "model.fill" and new == DATASET_MEAN and fill_from == DATASET_MEAN:
            continue  # resolved to the numbers saved
        if key == "train.steps" and new >= state["step"]:
            continue
        note = f" (below the checkpoint's step {state['step']})" if key == "train.steps" else ""
        differing.append(f"{_label(key)}: saved {old!r}, requested {new!r}{note}")
    if differing:
        raise RecipeError(
            f"--resume: the run in {out} was made with other values: {'; '.join(differing)}. Resume with the "
            "saved values (only steps, workers, loader_thread, compile, log/checkpoint/sample cadence, "
            "skip_bad and the data folder's location may change), or start a new run: another --out, "
            "or --overwrite"
        )
    train = dataclasses.replace(
        saved.train, **{k.split(".")[1]: getattr(requested.train, k.split(".")[1])
                        for k in RESUME_MAY_CHANGE if k.startswith("train.")}
    )  # fmt: skip
    data = dataclasses.replace(saved.data, skip_bad=requested.data.skip_bad, source=requested.data.source)
    return dataclasses.replace(saved, train=train, data=data), saved_config


def claim_out(
    out: Path, recipe: PretrainRecipe, resume: bool, overwrite: bool
) -> tuple[PretrainRecipe, dict[str, Any] | None, dict[str, Any] | None]:
    """Check that ``out`` may receive this run; returns (recipe, checkpoint state, saved config)."""
    if resume and overwrite:
        raise RecipeError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    if out.exists() and not out.is_dir():
        raise RecipeError(f"--out {out}: this is a file; pass a folder for the run")
    if resume:
        if not (out / RunFolder.CHECKPOINT).is_file():
            there = f"; it holds {describe_run(out)}: start again with --overwrite" if run_files(out) else ""
            raise CheckpointError(f"--resume: no checkpoint to resume from in {out}{there}")
        state = load_checkpoint(out / RunFolder.CHECKPOINT)
        recipe, saved_config = resume_recipe(recipe, state, out)
        return recipe, state, saved_config
    if run_files(out) and not overwrite:
        raise BenchError(
            f"--out {out} already holds {describe_run(out)}: pass --resume to continue it, or --overwrite "
            "to replace it (its checkpoint, weights, config, metrics and samples are deleted)"
        )
    return recipe, None, None


def truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint: those steps are run again."""
    if not path.is_file():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            if line.strip() and json.loads(line)["step"] <= step:
                rows.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a row torn by a kill mid-write
    atomic_write_text(path, "".join(r + "\n" for r in rows))
