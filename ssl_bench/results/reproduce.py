"""``bench reproduce``: pretrain every method, evaluate every task for every seed; table, figures, report.

Stages and their cache keys
---------------------------
Every stage's output is keyed on a SHA-256 of everything that determines it; a stage whose key is unchanged
and whose output exists is reused, anything else runs again::

    pretrain <method> s<seed>   key = resolved pretraining recipe (incl. seed, data source)
                                      + code version of training/pretrain.py and the method's module
                                      + manifest hash of the pretraining images
                                output  <out>/stages/pretrain/<method>-s<seed>/ (a bench-pretrain run folder)
                                        and a ``task: pretrain`` record in <out>/runs (time, steps, images
                                        seen for the table)
                                marker  stage.json in that folder
    eval <task> <method> s<seed> key = resolved evaluation recipe + code version of evaluators/runner.py
                                      + VOC manifest hash + the weights' SHA-256 + the
                                      pretraining stage's key + task, seed, arch
                                output  the result record in <out>/runs (the same code as bench eval)
                                marker  <out>/stages/eval/<task>-<method>-s<seed>.json
    figure <name>               key = the figure's inputs (pretraining keys or weights hashes, data manifest,
                                      table numbers, options) + code version of results/figures.py
                                output  <out>/figures/<name>.png; marker <out>/stages/figures/<name>.json
    table, report               always re-rendered from the records (cheap, deterministic)

Every marker has the one format of :mod:`ssl_bench.results.stages` (status, key, error, record id), written
last; a stage is done when its marker holds status ok and the same key, and its output exists.

"Code version" (``code_version.py``) is a hash of every package module a stage's entry module imports,
transitively, read from the source: not the git commit, so committing the results (or editing the table
code) does not invalidate an hour of pretraining, while editing anything a stage runs does.

Resumption: markers and records are written atomically and only after their stage finished, so an
interrupted reproduction (Ctrl-C, SIGKILL, a crash) re-runs exactly the stages without a marker. A
pretraining stage interrupted mid-run continues from its last checkpoint (``run_pretraining(resume=True)``)
when its key is unchanged. A stage that fails (an exception) is reported, leaves an error record (its cells
show as failed) and does not stop the others; it is tried again on the next run unless ``retry_failed`` is
off. When a stage runs again, the record it replaces is moved to <out>/stages/stale/, so <out>/runs holds one
current record per stage.

Seeds: by default each method is pretrained ONCE (seed 0) and evaluated with seeds 0…N−1, so the interval
measures evaluation (fine-tuning) variance, not pretraining variance. The smoke budget decides it: the
three trained methods take ~5 min each to pretrain on 2 CPU cores, so pretraining per seed would spend the
hour on pretraining. ``pretrain_per_seed=True`` pretrains seed s for evaluation seed s (the honest choice
when compute allows); the report says which was used.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.atomic import atomic_write_json, atomic_write_text
from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.runner import evaluate, resolve_eval_recipe
from ssl_bench.methods import method_class
from ssl_bench.provenance import device_description, git_commit, package_versions, sha256_file
from ssl_bench.recipes import config_hash, find_recipe, load_yaml, merge
from ssl_bench.records import load_records, manifest_hash, utc_now, write_record
from ssl_bench.results import figures as F
from ssl_bench.results.code_version import code_version
from ssl_bench.results.report import write_report
from ssl_bench.results.stages import ReproduceOptions, StageMarker, StageResult, read_json
from ssl_bench.results.table import build_table, render, write_table
from ssl_bench.training.distributed import resolve_device
from ssl_bench.training.pretrain import run_pretraining
from ssl_bench.training.run_folder import RunFolder

ARCH = "caffenet"

# Each kind of stage's entry module; its code version hashes every module it imports (code_version.py).
PRETRAIN_ENTRY = "ssl_bench.training.pretrain"
EVAL_ENTRY = "ssl_bench.evaluators.runner"
FIGURE_ENTRY = "ssl_bench.results.figures"

# Figure sizes: enough to read, small enough for the smoke budget (t-SNE of 300 points ≈ 10 s per encoder).
FIGURE_OPTIONS = {"inpaint_images": 6, "tsne_images": 300, "layer_images": 64, "layer_draws": 3,
                  "layer_output_images": 4, "seed": 0}  # fmt: skip

__all__ = ["ReproduceOptions", "Reproduction", "reproduce"]


@dataclass
class PretrainOutcome:
    method: str
    seed: int
    run: Path
    key: str | None = None
    weights: Path | None = None
    weights_sha256: str | None = None
    error: str | None = None


class Reproduction:
    """Runs the stages of one reproduction in order; see the module docstring for keys and layout."""

    def __init__(self, options: ReproduceOptions) -> None:
        self.o = options
        self.out = Path(options.out)
        self.runs_dir = self.out / "runs"
        self.stages_dir = self.out / "stages"
        self.figures_dir = self.out / "figures"
        self.results: list[StageResult] = []
        self._manifests: dict[str, str] = {}
        self._total = 0

    # --- helpers ------------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        if self.o.progress:
            print(f"reproduce: {text}", file=sys.stderr, flush=True)

    def _done(self, result: StageResult) -> StageResult:
        self.results.append(result)
        where = f"[{len(self.results):>3}/{self._total}]"
        extra = f" ({result.seconds:.0f} s)" if result.status == "ran" else ""
        extra += f": {result.error}" if result.error else ""
        self.log(f"{where} {result.kind} {result.name}: {result.status}{extra}")
        return result

    def _manifest(self, root: Path) -> str:
        """Manifest hash of a data folder, once per run (a stat walk; ImageNet takes a while)."""
        key = str(Path(root).resolve())
        if key not in self._manifests:
            self._manifests[key] = manifest_hash(Path(root))
        return self._manifests[key]

    def _record_file(self, record_id: str | None) -> Path | None:
        """Where a record of this reproduction lives (markers keep ids, not paths: the cwd may change)."""
        return self.runs_dir / f"{record_id}.json" if record_id else None

    def _has_record(self, record_id: str | None) -> bool:
        path = self._record_file(record_id)
        return path is not None and path.is_file()

    def _stale(self, record_id: str | None) -> None:
        """Move a replaced record out of ``runs/`` (kept for the curious, outside the table's input)."""
        if self._has_record(record_id):
            dest = self.stages_dir / "stale" / f"{record_id}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._record_file(record_id).replace(dest)  # type: ignore[union-attr]

    def voc_root(self, task: str) -> Path | None:
        """The task's VOC root, or None for the generated SynthVOC default."""
        root = self.o.data_voc.get(task) or self.o.data_voc.get("")
        return Path(root) if root else None

    def _voc_manifest(self, task: str) -> str:
        return self._manifest(self.voc_root(task) or ensure_synthvoc())

    # --- pretraining ------------------------------------------------------------------------------------
    def pretrain_config(self, method: str, seed: int) -> dict[str, Any]:
        """Recipe (the profile's, or ``pretrain_recipes[method]``), overrides, seed and data source."""
        path = self.o.pretrain_recipes.get(method) or find_recipe("pretrain", self.o.profile, method)
        config = merge(load_yaml(path), dict(self.o.pretrain_overrides.get(method, {})))
        config.setdefault("method", method)
        if config["method"] != method:
            raise RecipeError(f"pretraining recipe {path} names method '{config['method']}', not '{method}'")
        config["seed"] = seed
        if self.o.data_pretrain:
            config.setdefault("data", {})["source"] = self.o.data_pretrain
        return config

    def _pretrain_data_manifest(self, config: dict[str, Any]) -> str | None:
        if not method_class(config["method"]).needs_data:
            return None
        source = config.get("data", {}).get("source", "synthvoc")
        if source == "synthvoc":
            return self._manifest(
                synthvoc_pool(ensure_synthvoc(num_images=config["data"].get("synth_images", 2000)))
            )
        if source is None:
            raise RecipeError(
                f"the {self.o.profile} recipe for '{config['method']}' has no data source: "
                "pass --data-pretrain DIR"
            )
        return self._manifest(Path(source))

    def pretrain(self, method: str, seed: int) -> PretrainOutcome:
        run = RunFolder(self.stages_dir / "pretrain" / f"{method}-s{seed}")
        name = f"{method} s{seed}"
        outcome = PretrainOutcome(method, seed, run.path)
        marker, inputs_path = StageMarker(run.path / "stage.json"), run.path / "inputs.json"
        t0 = time.perf_counter()
        try:
            config = self.pretrain_config(method, seed)
            inputs = {
                "stage": "pretrain",
                "config": config,
                "code": code_version([PRETRAIN_ENTRY, method_class(method).__module__]),
                "data_manifest": self._pretrain_data_manifest(config),
            }
            key = config_hash(inputs)
        except Exception as e:  # noqa: BLE001 - a bad recipe fails this stage only
            outcome.error = f"{type(e).__name__}: {e}"
            self._stale(marker.record_id)
            record = self._pretrain_error_record(method, seed, None, outcome.error, 0.0)
            marker.write("error", None, outcome.error, record["id"])
            self._done(StageResult("pretrain", name, "failed", error=outcome.error, record_id=record["id"]))
            return outcome
        outcome.key = key
        if marker.done(key) and run.encoder_path.is_file():
            self._ensure_record(marker.previous.get("record"))
            outcome.weights, outcome.weights_sha256 = run.encoder_path, marker.previous["weights_sha256"]
            self._done(StageResult("pretrain", name, "cached", key=key, record_id=marker.record_id))
            return outcome
        if marker.failed(key) and not self.o.retry_failed:
            outcome.error = marker.previous.get("error")
            self._done(
                StageResult(
                    "pretrain", name, "failed", error=outcome.error, record_id=marker.record_id, key=key
                )
            )
            return outcome

        started = utc_now()
        last_attempt = read_json(inputs_path) or {}
        resume = last_attempt.get("key") == key and run.checkpoint_path.is_file()
        previous_s = float(last_attempt.get("elapsed_s", 0.0)) if resume else 0.0
        self._stale(marker.record_id)
        if not resume:
            shutil.rmtree(run.path, ignore_errors=True)
            run.path.mkdir(parents=True)
        atomic_write_json(inputs_path, {"key": key, "inputs": inputs, "elapsed_s": previous_s})
        self.log(f"pretrain {name}: {'resuming from checkpoint' if resume else 'running'}")
        try:
            summary = run_pretraining(
                copy.deepcopy(config), run.path, resume=resume, device=self.o.device, progress=self.o.progress
            )
        except BaseException as e:
            elapsed = previous_s + time.perf_counter() - t0
            atomic_write_json(inputs_path, {"key": key, "inputs": inputs, "elapsed_s": elapsed})
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            outcome.error = f"{type(e).__name__}: {e}"
            record = self._pretrain_error_record(
                method, seed, config, outcome.error, elapsed, traceback.format_exc(limit=8), started
            )
            marker.write("error", key, outcome.error, record["id"])
            self._done(
                StageResult(
                    "pretrain", name, "failed", time.perf_counter() - t0, outcome.error, record["id"], key
                )
            )
            return outcome
        wall_s = previous_s + time.perf_counter() - t0
        outcome.weights, outcome.weights_sha256 = run.encoder_path, sha256_file(run.encoder_path)
        record = self._pretrain_record(
            method, seed, run, summary, wall_s, outcome.weights_sha256, key, started
        )
        # The whole record rides in the marker: a cached stage whose record was deleted writes it back.
        marker.write(
            "ok",
            key,
            record_id=record["id"],
            weights_sha256=outcome.weights_sha256,
            summary=summary,
            wall_s=wall_s,
            record=record,
        )
        self._done(
            StageResult("pretrain", name, "ran", time.perf_counter() - t0, record_id=record["id"], key=key)
        )
        return outcome

    def _ensure_record(self, record: dict[str, Any] | None) -> None:
        """A cached pretraining stage whose summary record was deleted gets it back (same content)."""
        if record and record.get("id") and not self._has_record(record["id"]):
            write_record(dict(record), self.runs_dir)

    def _pretrain_record(
        self,
        method: str,
        seed: int,
        run: RunFolder,
        summary: dict[str, Any],
        wall_s: float,
        weights_sha: str,
        key: str,
        started: str,
    ) -> dict[str, Any]:
        """The ``task: pretrain`` record: what the table needs (time, steps, images seen) and provenance."""
        config = run.config
        train, prov = config.get("train") or {}, config.get("provenance") or {}
        steps = int(summary.get("steps", train.get("steps", 0)) or 0)
        world = int(prov.get("world_size", 1) or 1)
        images_seen = (
            steps * int(train.get("batch_size", 0) or 0) * world
            if steps
            else int((config.get("model") or {}).get("num_images", 0) or 0)
        )  # datainit: images used for the init
        evidence = run.learning_evidence()  # conv1 structure, final pretext loss / accuracy, img/s
        data = config.get("data") or {}
        root = data.get("resolved_root")
        record = {
            "task": "pretrain", "status": "ok", "seed": seed, "profile": self.o.profile,
            "metrics": {"wall_s": round(wall_s, 3), "steps": steps, "images_seen": images_seen,
                        **evidence},
            "extra": {"primary_metric": "wall_s", "world_size": world, "stage_key": key,
                      "pretrain_seed_policy": "per seed" if self.o.pretrain_per_seed else "once (seed 0)"},
            "recipe": config, "recipe_hash": config_hash(config),
            "pretrain": {"method": method, "steps": steps, "config_hash": config_hash(config),
                         "run": str(run.path),
                         "images": data.get("num_images")},
            "weights": str(run.encoder_path), "weights_sha256": weights_sha, "arch": ARCH,
            "data": {"root": root, "manifest_hash": self._manifest(Path(root)) if root else None,
                     "synthvoc": data.get("source", "synthvoc") == "synthvoc" if root else None},
            "git_commit": git_commit(), "versions": package_versions(),
            "device": device_description(resolve_device(prov.get("device") or self.o.device)),
            "wall_s": round(wall_s, 3), "started_at": started,
        }  # fmt: skip
        write_record(record, self.runs_dir)
        return record

    def _pretrain_error_record(
        self,
        method: str,
        seed: int,
        config: dict[str, Any] | None,
        error: str,
        wall_s: float,
        tb: str | None = None,
        started: str | None = None,
    ) -> dict[str, Any]:
        record = {
            "task": "pretrain",
            "status": "error",
            "error": error,
            "seed": seed,
            "profile": self.o.profile,
            "pretrain": {"method": method},
            "recipe": config,
            "git_commit": git_commit(),
            "versions": package_versions(),
            "wall_s": round(wall_s, 3),
            "started_at": started or utc_now(),
        }
        if tb:
            record["traceback"] = tb
        path = write_record(record, self.runs_dir)
        record["record_path"] = str(path)
        return record

    # --- evaluation ---------------------------------------------------------------------------------------
    def evaluate(self, task: str, pre: PretrainOutcome, seed: int) -> StageResult:
        name = f"{task} {pre.method} s{seed}"
        marker = StageMarker(self.stages_dir / "eval" / f"{task}-{pre.method}-s{seed}.json")
        t0 = time.perf_counter()
        if pre.error is not None or pre.weights is None:
            # Its cells must show as failed, not vanish: an error record that names the cause.
            error = f"pretraining failed: {pre.error}"
            last = marker.previous
            if (
                last.get("status") == "blocked"
                and last.get("error") == error
                and self._has_record(marker.record_id)
            ):
                return self._done(
                    StageResult("eval", name, "blocked", error=error, record_id=marker.record_id)
                )
            self._stale(marker.record_id)
            record = self._blocked_record(task, pre, seed)
            marker.write("blocked", None, record["error"], record["id"])
            return self._done(
                StageResult("eval", name, "blocked", error=record["error"], record_id=record["id"])
            )
        try:
            recipe = resolve_eval_recipe(
                task, self.o.profile, self.o.eval_recipes.get(task), self.o.eval_overrides.get(task)
            )
            inputs = {
                "stage": "eval",
                "task": task,
                "method": pre.method,
                "seed": seed,
                "arch": ARCH,
                "recipe": recipe,
                "code": code_version([EVAL_ENTRY]),
                "data_manifest": self._voc_manifest(task),
                "weights_sha256": pre.weights_sha256,
                "pretrain_key": pre.key,
            }
            key = config_hash(inputs)
        except Exception:  # noqa: BLE001 - e.g. no recipe: evaluate() below records the error, others go on
            key, inputs = None, None
        kept_failure = marker.failed(key) and not self.o.retry_failed
        if (marker.done(key) or kept_failure) and self._has_record(marker.record_id):
            return self._done(
                StageResult(
                    "eval",
                    name,
                    "failed" if kept_failure else "cached",
                    error=marker.previous.get("error"),
                    record_id=marker.record_id,
                    key=key,
                )
            )
        self._stale(marker.record_id)
        self.log(f"eval {name}: running")
        # Failures inside become error records (evaluate never raises, except KeyboardInterrupt).
        record = evaluate(
            task,
            str(pre.weights),
            ARCH,
            data=self.voc_root(task),
            profile=self.o.profile,
            seed=seed,
            out=self.runs_dir,
            recipe_overrides=self.o.eval_overrides.get(task),
            device=self.o.device,
            progress=self.o.progress,
            recipe=self.o.eval_recipes.get(task),
        )
        status = "ok" if record.get("status") == "ok" else "error"
        error = record.get("error") if status == "error" else None
        marker.write(status, key, error, record["id"], inputs=inputs)
        return self._done(
            StageResult(
                "eval",
                name,
                "ran" if status == "ok" else "failed",
                time.perf_counter() - t0,
                error,
                record["id"],
                key,
            )
        )

    def _blocked_record(self, task: str, pre: PretrainOutcome, seed: int) -> dict[str, Any]:
        record = {
            "task": task,
            "status": "error",
            "error": f"pretraining failed: {pre.error}",
            "seed": seed,
            "profile": self.o.profile,
            "pretrain": {"method": pre.method, "run": str(pre.run)},
            "weights": None,
            "started_at": utc_now(),
        }
        path = write_record(record, self.runs_dir)
        record["record_path"] = str(path)
        return record

    # --- figures ------------------------------------------------------------------------------------------
    def figure(self, name: str, inputs: dict[str, Any], draw: Callable[[Path], Any]) -> StageResult:
        """Draw ``figures/<name>.png`` unless its key (inputs + figure code) is unchanged and it exists."""
        path = self.figures_dir / f"{name}.png"
        marker = StageMarker(self.stages_dir / "figures" / f"{name}.json")
        key = config_hash({"figure": name, "inputs": inputs, "code": code_version([FIGURE_ENTRY])})
        if marker.done(key) and path.is_file():
            return self._done(StageResult("figure", name, "cached", key=key))
        t0 = time.perf_counter()
        self.log(f"figure {name}: drawing")
        try:
            draw(path)
        except Exception as e:  # noqa: BLE001 - one figure failing must not stop the report
            error = f"{type(e).__name__}: {e}"
            marker.write("error", key, error)
            return self._done(StageResult("figure", name, "failed", time.perf_counter() - t0, error, key=key))
        marker.write("ok", key, file=str(path))
        return self._done(StageResult("figure", name, "ran", time.perf_counter() - t0, key=key))

    def figures(
        self, pretrained: dict[str, PretrainOutcome], table_csv: str, metrics: dict[str, Any]
    ) -> None:
        ok = {m: p for m, p in pretrained.items() if p.error is None and p.weights is not None}
        runs = {m: p.run for m, p in ok.items()}
        weights = {m: p.weights for m, p in ok.items()}
        keys = {m: p.key for m, p in ok.items()}
        shas = {m: p.weights_sha256 for m, p in ok.items()}
        voc = self.voc_root("") or ensure_synthvoc()
        data = self._manifest(voc)
        opt, device, progress = FIGURE_OPTIONS, self.o.device or "cpu", self.o.progress
        self.figure(
            "results_bars",
            {"table": table_csv, "tasks": list(self.o.tasks)},
            lambda p: F.table_bars(_frame(table_csv), p, self.o.tasks, metrics),
        )
        self.figure("loss_curves", {"runs": keys}, lambda p: F.loss_curves(runs, p))
        self.figure("conv1_filters", {"weights": shas}, lambda p: F.conv1_filters(weights, p))
        baselines = list(F.GRID_BASELINES)
        self.figure(
            "inpainting_examples",
            {"runs": keys, "data": data, "n": opt["inpaint_images"], "baselines": baselines},
            lambda p: F.inpainting_examples(runs, voc, p, opt["inpaint_images"], device, baselines),
        )
        if any(not _dcgan_encoder(run) for run in runs.values()):  # pool5 needs a CaffeNet encoder
            self.figure(
                "tsne_pool5",
                {"weights": shas, "data": data, "n": opt["tsne_images"], "seed": opt["seed"]},
                lambda p: F.tsne_pool5(
                    weights, voc, p, opt["tsne_images"], seed=opt["seed"], device=device, progress=progress
                ),
            )
        coders = {m: r for m, r in runs.items() if hasattr(method_class(m), "encode")}
        if coders:  # the semantic-inpainting nets' bottleneck code
            self.figure(
                "tsne_code",
                {"runs": {m: keys[m] for m in coders}, "data": data, "n": opt["tsne_images"],
                 "seed": opt["seed"]},  # fmt: skip
                lambda p: F.tsne_code(coders, voc, p, opt["tsne_images"], opt["seed"], device, progress),
            )
        gans = {m: r for m, r in runs.items()
                if any("loss_discriminator" in x for x in RunFolder(r).metrics())}  # fmt: skip
        if gans:
            self.figure("gan_curves", {"runs": {m: keys[m] for m in gans}}, lambda p: F.gan_curves(gans, p))
        self.figure(
            "layer_randomisation",
            {"runs": keys, "data": data, "n": opt["layer_images"], "draws": opt["layer_draws"]},
            lambda p: F.layer_randomisation(
                runs, voc, p, opt["layer_images"], opt["layer_draws"], opt["seed"], device, progress
            ),
        )
        for method, run in runs.items():
            if RunFolder(run).has_decoder:
                self.figure(
                    f"layer_outputs_{method}",
                    {"run": keys[method], "data": data, "n": opt["layer_output_images"], "seed": opt["seed"]},
                    lambda p, run=run: F.layer_randomisation_outputs(
                        run, voc, p, opt["layer_output_images"], opt["seed"], device
                    ),
                )

    # --- the whole thing ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """All stages, then the table and the report. Returns a summary (stage counts, files)."""
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # Stage outputs (weights, checkpoints, stale records) and the evaluators' scratch folder never belong
        # in git; the records, table, figures and report do.
        for scratch in (self.stages_dir, self.out / "work"):
            scratch.mkdir(parents=True, exist_ok=True)
            atomic_write_text(scratch / ".gitignore", "*\n")
        started = time.perf_counter()
        seeds = list(range(self.o.seeds))
        self._total = (
            len(self.o.methods) * len(self.o.pretrain_seeds())
            + len(self.o.methods) * len(self.o.tasks) * len(seeds)
            + (6 if self.o.figures else 0)
        )
        pretrained: dict[tuple[str, int], PretrainOutcome] = {}
        try:
            for method in self.o.methods:
                for pseed in self.o.pretrain_seeds():
                    pretrained[(method, pseed)] = self.pretrain(method, pseed)
            for method in self.o.methods:
                for task in self.o.tasks:
                    for seed in seeds:
                        pre = pretrained[(method, seed if self.o.pretrain_per_seed else 0)]
                        self.evaluate(task, pre, seed)
            records = load_records(self.runs_dir)
            table = build_table(
                records,
                profile=self.o.profile,
                tasks=self.o.tasks,
                methods=self.o.methods,
                seeds=seeds,
                results_dir=str(self.runs_dir),
            )
            for fmt, suffix in (("markdown", "md"), ("csv", "csv"), ("latex", "tex")):
                write_table(table, self.out / f"table.{suffix}", fmt)
            if self.o.figures:
                self.figures(
                    {m: pretrained[(m, 0)] for m in self.o.methods}, render(table, "csv"), table.metrics
                )
            report = write_report(self.out, table, self.o, self.results, records)
        finally:
            atomic_write_json(
                self.stages_dir / "last_run.json",
                {
                    "options": _jsonable(asdict(self.o)),
                    "finished": False,
                    "seconds": round(time.perf_counter() - started, 1),
                    "stages": [asdict(r) for r in self.results],
                },
            )
        summary = {
            "stages": {
                s: sum(r.status == s for r in self.results) for s in ("cached", "ran", "failed", "blocked")
            },
            "seconds": round(time.perf_counter() - started, 1),
            "report": str(report),
            "table": str(self.out / "table.md"),
            "failed": [
                f"{r.kind} {r.name}: {r.error}" for r in self.results if r.status in ("failed", "blocked")
            ],
        }
        atomic_write_json(
            self.stages_dir / "last_run.json",
            {
                "options": _jsonable(asdict(self.o)),
                "finished": True,
                "summary": summary,
                "stages": [asdict(r) for r in self.results],
            },
        )
        return summary


def reproduce(options: ReproduceOptions) -> dict[str, Any]:
    """Run a reproduction (see the module docstring); returns the summary of :meth:`Reproduction.run`."""
    return Reproduction(options).run()


def _dcgan_encoder(run: Path) -> bool:
    """Whether a pretraining run's encoder is a DCGAN's (the semantic-inpainting net's default), not a
    CaffeNet with a pool5."""
    return RunFolder(run).config.get("model", {}).get("encoder") == "dcgan"


def _frame(csv_text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(csv_text))


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))
