"""Run one evaluation and store its result record: what ``bench eval`` and ``bench reproduce`` call.

Two phases:

* :func:`prepare` checks everything a user can get wrong before anything runs: the task (with the closest
  registered name), the recipe against the evaluator's typed protocol (an unknown, renamed or mistyped key
  is named, with the valid keys), the weights (read once, strictly, as the evaluator will load them:
  :func:`check_weights`), the data folder and the device. A problem raises a ``BenchError`` and nothing
  is written (``bench eval`` exits 2).
* :func:`run_prepared` runs it and always writes a record: a run that started and failed becomes a record
  with ``status: error`` (a failed cell in a table). Every file the record points to lies in the run's own
  work folder, ``<records>/../work/<task>/<record id>/``, which no other run writes to.
"""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ssl_bench.data.synthvoc import ensure_synthvoc
from ssl_bench.encoders import load_encoder
from ssl_bench.errors import BenchError, CheckpointError, DataError, RecipeError
from ssl_bench.evaluators.base import EvalContext, Evaluator, evaluator_protocol, get_evaluator
from ssl_bench.options import options_dict, options_from
from ssl_bench.provenance import device_description, git_commit, package_versions, sha256_file
from ssl_bench.recipes import config_hash, find_recipe, load_yaml, merge, parse_value
from ssl_bench.records import RECORDS_DIR, manifest_hash, peak_memory_mb, record_id, utc_now, write_record
from ssl_bench.runtime.distributed import resolve_device
from ssl_bench.runtime.run_folder import RunFolder

Overrides = Mapping[str, Any] | Sequence[str] | None


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["iterations=200", "lr=1e-4"]`` (``--set`` values) → ``{"iterations": 200, "lr": 0.0001}``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set expects KEY=VALUE, got '{item}'")
        overrides[key] = parse_value(value)
    return overrides


def resolve_protocol(
    task: str, profile: str = "smoke", recipe: Path | None = None, overrides: Overrides = None
) -> Any:
    """The evaluator's protocol from the recipe file (default ``eval/<profile>/<task>.yaml``) and overrides.

    Args:
        overrides: a mapping, or ``KEY=VALUE`` strings as given to ``--set``.

    Raises:
        RecipeError: unknown task, no recipe, or a key that is unknown, renamed or of the wrong type; the
            message names the key, where it came from, and the valid keys.
    """
    protocol = evaluator_protocol(task)
    path = Path(recipe) if recipe is not None else find_recipe("eval", profile, task)
    base = load_yaml(path)
    from_file = options_from(protocol, base, str(path))  # a bad key of the file is named as the file's
    if not overrides:
        return from_file
    where = "recipe_overrides"
    if not isinstance(overrides, Mapping):
        overrides, where = parse_overrides(overrides), "--set"
    return options_from(protocol, merge(base, dict(overrides)), where)


def resolve_eval_recipe(
    task: str, profile: str = "smoke", recipe: Path | None = None, overrides: Overrides = None
) -> dict[str, Any]:
    """The resolved protocol as plain values (every key, defaults included): what a record stores."""
    return options_dict(resolve_protocol(task, profile, recipe, overrides))


def resolve_eval_device(name: str | None) -> torch.device:
    """``--device`` (default: cuda if available); CUDA asked for where there is none is a RecipeError."""
    if name not in (None, "auto"):
        try:
            device = torch.device(name)
        except RuntimeError:
            raise RecipeError(f"--device {name}: not a device (cpu, cuda, cuda:1 …)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RecipeError(f"--device {name}: no CUDA device is available here; use --device cpu")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise RecipeError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return resolve_device(name)


def pretrain_info(weights: str) -> dict[str, Any] | None:
    """What produced the weights: the method, steps and config hash of the run folder they came from."""
    if weights == "random":
        return {"method": "random"}
    run = RunFolder.of_weights(weights)
    if run is None:
        return None
    config = run.config
    return {"method": config.get("method"), "steps": config.get("train", {}).get("steps", 0),
            "config_hash": config_hash(config), "run": str(run.path),
            "images": config.get("data", {}).get("num_images")}  # fmt: skip


@dataclass
class PreparedEvaluation:
    """A checked request: everything :func:`run_prepared` needs, nothing left that a user can get wrong."""

    task: str
    evaluator: Evaluator
    protocol: Any
    weights: str
    arch: str
    data: Path | None
    profile: str
    seed: int
    out: Path
    device: torch.device
    progress: bool
    pretrain: dict[str, Any] | None


def check_weights(evaluator: Evaluator, weights: str, arch: str) -> None:
    """Load ``weights`` strictly, the way ``evaluator`` will: unreadable or unfitting weights fail here,
    before any record is written, with a ``BenchError`` that names the problem.

    That is the encoder loaded into ``arch``; for an evaluator registered with ``own_model`` (``inpaint``)
    and weights from a run whose method has a decoder, the run's whole method from its checkpoint.pt.
    """
    run = RunFolder.of_weights(weights)
    own = getattr(evaluator, "own_model", False) and run is not None and run.has_decoder
    try:
        if own:
            run.load_method()
        else:
            load_encoder(weights, arch)
    except BenchError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a bad file raises, it is the file's fault
        into = f"the method of the run {run.path}" if own else arch
        raise CheckpointError(f"--weights {weights}: cannot load into {into}: {e}") from None


def prepare(
    task: str,
    weights: str,
    arch: str = "caffenet",
    data: Path | None = None,
    profile: str = "smoke",
    seed: int = 0,
    out: Path | None = None,
    recipe_overrides: Overrides = None,
    device: str | None = None,
    progress: bool = True,
    recipe: Path | None = None,
) -> PreparedEvaluation:
    """Check a request (module docstring); raises a ``BenchError`` naming the first problem."""
    evaluator = get_evaluator(task)
    protocol = resolve_protocol(task, profile, recipe, recipe_overrides)
    weights = str(weights)
    check_weights(evaluator, weights, arch)
    if data is not None and not Path(data).is_dir():
        raise DataError(f"--data {data}: no such folder")
    return PreparedEvaluation(
        task, evaluator, protocol, weights, arch, None if data is None else Path(data), profile, seed,
        Path(out or RECORDS_DIR), resolve_eval_device(device), progress, pretrain_info(weights),
    )  # fmt: skip


def _claim_work_dir(record: dict[str, Any], out: Path) -> Path:
    """Set the record's id and create its work folder; an id already taken (same start second) is varied."""
    for attempt in itertools.count():
        record.pop("id", None)
        record["id"] = record_id(record | {"attempt": attempt} if attempt else record)
        work = out.parent / "work" / record["task"] / record["id"]
        if (out / f"{record['id']}.json").exists():
            continue
        try:
            work.mkdir(parents=True)
            return work
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def run_prepared(prep: PreparedEvaluation) -> tuple[dict[str, Any], int]:
    """Run a prepared evaluation and write its record; returns it and the exit code (0 ok, 2 a BenchError,
    1 anything else). ``KeyboardInterrupt`` propagates."""
    t0 = time.perf_counter()
    protocol = options_dict(prep.protocol)
    record: dict[str, Any] = {
        "task": prep.task, "seed": prep.seed, "profile": prep.profile, "weights": prep.weights,
        "arch": prep.arch, "started_at": utc_now(), "git_commit": git_commit(),
        "versions": package_versions(), "device": device_description(prep.device), "recipe": protocol,
        "recipe_hash": config_hash(protocol),
    }  # fmt: skip
    if prep.weights != "random":
        record["weights_sha256"] = sha256_file(prep.weights)
    record["pretrain"] = prep.pretrain
    work = _claim_work_dir(record, prep.out)
    try:
        voc_root, synth = (ensure_synthvoc(), True) if prep.data is None else (prep.data, False)
        record["data"] = {"root": str(voc_root), "manifest_hash": manifest_hash(voc_root), "synthvoc": synth}
        torch.manual_seed(prep.seed)
        ctx = EvalContext(weights=prep.weights, arch=prep.arch, voc_root=Path(voc_root),
                          protocol=prep.protocol, seed=prep.seed, device=prep.device,
                          progress=prep.progress, work_dir=work)  # fmt: skip
        metrics = prep.evaluator(ctx)
        wall = time.perf_counter() - t0
        record |= {"status": "ok", "metrics": {k: float(v) for k, v in metrics.items()}, "extra": ctx.extra,
                   "images_per_s": ctx.images_processed / wall if ctx.images_processed else None}  # fmt: skip
        code = 0
    except Exception as e:  # noqa: BLE001 - a failed run still leaves a record
        record |= {"status": "error", "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc(limit=8)}  # fmt: skip
        code = 2 if isinstance(e, BenchError) else 1
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()  # the evaluator wrote no files
    else:
        record["work_dir"] = str(work)
    record["wall_s"] = round(time.perf_counter() - t0, 3)
    record["peak_mem_mb"] = round(peak_memory_mb(prep.device), 1)
    record["record_path"] = str(write_record(record, prep.out))
    return record, code


def evaluate(
    task: str,
    weights: str,
    arch: str = "caffenet",
    data: Path | None = None,
    profile: str = "smoke",
    seed: int = 0,
    out: Path | None = None,
    recipe_overrides: Overrides = None,
    device: str | None = None,
    progress: bool = True,
    recipe: Path | None = None,
) -> dict[str, Any]:
    """Run one evaluation and store its result record; what ``bench eval`` does, callable from Python.

    It does not raise (``KeyboardInterrupt`` aside): a failed run, and also a request :func:`prepare`
    refuses, becomes a record with ``status: error``, so that a table shows a failed cell. (``bench eval``
    writes nothing for a refused request: it calls :func:`prepare` and :func:`run_prepared` itself.)

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
    try:
        prep = prepare(
            task, weights, arch, data, profile, seed, out, recipe_overrides, device, progress, recipe
        )
    except BenchError as e:
        record = {"task": task, "seed": seed, "profile": profile, "weights": str(weights), "arch": arch,
                  "started_at": utc_now(), "git_commit": git_commit(), "versions": package_versions(),
                  "status": "error", "error": f"{type(e).__name__}: {e}", "wall_s": 0.0}  # fmt: skip
        record["record_path"] = str(write_record(record, Path(out or RECORDS_DIR)))
        return record
    return run_prepared(prep)[0]
