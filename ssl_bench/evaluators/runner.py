"""Run one evaluation and store its result record: what ``bench eval`` and ``bench reproduce`` call."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ssl_bench.data.synthvoc import ensure_synthvoc
from ssl_bench.errors import BenchError, RecipeError
from ssl_bench.evaluators.base import EvalContext, get_evaluator
from ssl_bench.provenance import device_description, git_commit, package_versions, sha256_file
from ssl_bench.recipes import config_hash, find_recipe, load_yaml, merge, parse_value
from ssl_bench.records import RECORDS_DIR, manifest_hash, peak_memory_mb, utc_now, write_record
from ssl_bench.training.distributed import resolve_device


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["iterations=200", "lr=1e-4"]`` (``--set`` values) → ``{"iterations": 200, "lr": 0.0001}``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise RecipeError(f"--set expects KEY=VALUE, got '{item}'")
        overrides[key] = parse_value(value)
    return overrides


def resolve_eval_recipe(task: str, profile: str, recipe: Path | None = None,
                        overrides: Mapping[str, Any] | Sequence[str] | None = None) -> dict[str, Any]:
    """The recipe file (default ``eval/<profile>/<task>.yaml``) with overrides merged on top.

    Args:
        overrides: a mapping, or ``KEY=VALUE`` strings as given to ``--set``.
    """
    base = load_yaml(recipe or find_recipe("eval", profile, task))
    if overrides is None:
        return base
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    return merge(base, dict(overrides))


def _pretrain_info(weights: str) -> dict[str, Any] | None:
    """What produced the weights: the method, steps and config hash from the run's config.yaml."""
    if weights == "random":
        return {"method": "random"}
    config_path = Path(weights).parent / "config.yaml"
    if not config_path.is_file():
        return None
    config = yaml.safe_load(config_path.read_text())
    return {"method": config.get("method"), "steps": config.get("train", {}).get("steps", 0),
            "config_hash": config_hash(config), "run": str(Path(weights).parent),
            "images": config.get("data", {}).get("num_images")}


def evaluate(
    task: str,
    weights: str,
    arch: str = "caffenet",
    data: Path | None = None,
    profile: str = "smoke",
    seed: int = 0,
    out: Path | None = None,
    recipe_overrides: Mapping[str, Any] | Sequence[str] | None = None,
    device: str | None = None,
    progress: bool = True,
    recipe: Path | None = None,
) -> dict[str, Any]:
    """Run one evaluation and store its result record; what ``bench eval`` does, callable from Python.

    A failure does not raise: it becomes a record with ``status: error`` (a results table shows it as a
    failed cell). ``KeyboardInterrupt`` still propagates.

    Args:
        task: registered evaluator name (cls, cls-linear, knn, det, seg, inpaint, or a plug-in's).
        weights: an ``encoder.pt`` path, or ``"random"``.
        arch: encoder the weights load into.
        data: VOC year folder; None → the generated SynthVOC default.
        profile: recipe profile (``eval/<profile>/<task>.yaml``).
        seed: evaluation seed.
        out: folder for the record (default ``results/runs``).
        recipe_overrides: recipe values on top of the recipe file (a mapping, or ``KEY=VALUE`` strings).
        device: ``cpu``, ``cuda`` … (default: cuda if available).
        progress: show progress bars.
        recipe: a recipe file instead of the profile's.

    Returns:
        The record as written, plus ``record_path``.
    """
    record, _code = run_evaluation(task, weights, arch, data, profile, seed, out, recipe_overrides, device,
                              progress, recipe)
    return record


def run_evaluation(task: str, weights: str, arch: str, data: Path | None, profile: str, seed: int,
                   out: Path | None, recipe_overrides: Mapping[str, Any] | Sequence[str] | None,
                   device_name: str | None, progress: bool,
                   recipe_path: Path | None) -> tuple[dict[str, Any], int]:
    """``evaluate`` plus the exit code ``bench eval`` returns (0 ok, 2 a BenchError, 1 anything else)."""
    started, t0 = utc_now(), time.perf_counter()
    record: dict[str, Any] = {"task": task, "seed": seed, "profile": profile,
                              "weights": weights, "arch": arch, "started_at": started,
                              "git_commit": git_commit(), "versions": package_versions()}
    device = resolve_device(device_name)
    record["device"] = device_description(device)
    try:
        evaluator = get_evaluator(task)
        recipe = resolve_eval_recipe(task, profile, recipe_path, recipe_overrides)
        record |= {"recipe": recipe, "recipe_hash": config_hash(recipe)}
        if weights != "random":
            if not Path(weights).is_file():
                raise BenchError(f"--weights {weights}: no such file")
            record["weights_sha256"] = sha256_file(weights)
        record["pretrain"] = _pretrain_info(weights)
        if data is None:
            voc_root, synth = ensure_synthvoc(), True
        else:
            voc_root, synth = data, False
        record["data"] = {"root": str(voc_root), "manifest_hash": manifest_hash(voc_root), "synthvoc": synth}
        torch.manual_seed(seed)
        ctx = EvalContext(weights=weights, arch=arch, voc_root=Path(voc_root), recipe=recipe,
                          seed=seed, device=device, progress=progress,
                          work_dir=(out or RECORDS_DIR).parent / "work" / task)
        metrics = evaluator(ctx)
        wall = time.perf_counter() - t0
        record |= {"status": "ok", "metrics": {k: float(v) for k, v in metrics.items()}, "extra": ctx.extra,
                   "images_per_s": ctx.images_processed / wall if ctx.images_processed else None}
        code = 0
    except (BenchError, Exception) as e:  # noqa: BLE001 - a failed run still leaves a record
        record |= {"status": "error", "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc(limit=8)}
        code = 2 if isinstance(e, BenchError) else 1
    record["wall_s"] = round(time.perf_counter() - t0, 3)
    record["peak_mem_mb"] = round(peak_memory_mb(device), 1)
    path = write_record(record, out or RECORDS_DIR)
    record["record_path"] = str(path)
    return record, code
