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

Where: :mod:`~ssl_bench.results.stage_plan` gathers each stage's recipe, key inputs and paths (it runs
nothing); :mod:`~ssl_bench.results.stage_records` writes the records other than the evaluators' (pretraining,
failed, blocked), moves replaced ones aside and writes ``stages/last_run.json``;
:mod:`~ssl_bench.results.figure_stages` says which figures a reproduction draws, from what; this module runs
the stages.

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
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssl_bench.atomic import atomic_write_json, atomic_write_text
from ssl_bench.evaluators.runner import evaluate
from ssl_bench.provenance import sha256_file
from ssl_bench.records import load_records, utc_now
from ssl_bench.results.figure_stages import FigureStages
from ssl_bench.results.report import write_report
from ssl_bench.results.stage_plan import (
    ARCH,
    EVAL_ENTRY,
    FIGURE_ENTRY,
    PRETRAIN_ENTRY,
    StagePlanner,
    stage_key,
)
from ssl_bench.results.stage_records import StageRecords
from ssl_bench.results.stages import PretrainOutcome, ReproduceOptions, StageMarker, StageResult, read_json
from ssl_bench.results.table import build_table, render, write_table
from ssl_bench.runtime.run_folder import RunFolder
from ssl_bench.training.pretrain import run_pretraining

# The entry modules stay importable from here (the stage keys' code versions; tests/results).
__all__ = ["EVAL_ENTRY", "FIGURE_ENTRY", "PRETRAIN_ENTRY", "ReproduceOptions", "Reproduction", "reproduce"]


class Reproduction:
    """Runs the stages of one reproduction in order; see the module docstring for keys and layout.

    Attributes:
        options: what to reproduce and where.
        plan: each stage's folder, recipe and key inputs (:mod:`~ssl_bench.results.stage_plan`).
        records: the records in ``<out>/runs`` (:mod:`~ssl_bench.results.stage_records`).
        results: how each stage went in this run, in order.
    """

    def __init__(self, options: ReproduceOptions) -> None:
        self.options = options
        self.out = Path(options.out)
        self.runs_dir = self.out / "runs"
        self.stages_dir = self.out / "stages"
        self.figures_dir = self.out / "figures"
        self.plan = StagePlanner(options)
        self.records = StageRecords(options, self.plan.manifest)
        self.results: list[StageResult] = []
        self._total = 0

    def log(self, text: str) -> None:
        if self.options.progress:
            print(f"reproduce: {text}", file=sys.stderr, flush=True)

    def _done(self, result: StageResult) -> StageResult:
        self.results.append(result)
        where = f"[{len(self.results):>3}/{self._total}]"
        extra = f" ({result.seconds:.0f} s)" if result.status == "ran" else ""
        extra += f": {result.error}" if result.error else ""
        self.log(f"{where} {result.kind} {result.name}: {result.status}{extra}")
        return result

    # --- pretraining ------------------------------------------------------------------------------------
    def pretrain(self, method: str, seed: int) -> PretrainOutcome:
        """Pretrain ``method`` with ``seed`` unless its stage is done with the same key; never raises on
        a failure of the stage (the outcome holds the error)."""
        run = RunFolder(self.plan.pretrain_dir(method, seed))
        name = f"{method} s{seed}"
        outcome = PretrainOutcome(method, seed, run.path)
        marker = StageMarker(run.path / "stage.json")
        t0 = time.perf_counter()  # the stage's time includes resolving its recipe and hashing its data
        try:
            inputs = self.plan.pretrain_inputs(method, seed)
            key = stage_key(inputs)
        except Exception as e:  # noqa: BLE001 - a bad recipe fails this stage only
            outcome.error = f"{type(e).__name__}: {e}"
            self.records.stale(marker.record_id)
            record = self.records.write_pretrain_error(method, seed, None, outcome.error, 0.0)
            marker.write("error", None, outcome.error, record["id"])
            self._done(StageResult("pretrain", name, "failed", error=outcome.error, record_id=record["id"]))
            return outcome
        outcome.key = key
        if marker.done(key) and run.encoder_path.is_file():
            self.records.ensure(marker.previous.get("record"))
            outcome.weights, outcome.weights_sha256 = run.encoder_path, marker.previous["weights_sha256"]
            self._done(StageResult("pretrain", name, "cached", key=key, record_id=marker.record_id))
            return outcome
        if marker.failed(key) and not self.options.retry_failed:
            outcome.error = marker.previous.get("error")
            self._done(StageResult("pretrain", name, "failed", 0.0, outcome.error, marker.record_id, key))
            return outcome
        self._run_pretraining(run, marker, inputs, outcome, t0)
        return outcome

    def _run_pretraining(
        self, run: RunFolder, marker: StageMarker, inputs: dict[str, Any], outcome: PretrainOutcome, t0: float
    ) -> None:
        """Run a pretraining stage (from its checkpoint when an attempt with its key was interrupted);
        fills in ``outcome`` and writes the record, then the marker. ``t0``: when the stage began."""
        method, seed, key, config = outcome.method, outcome.seed, outcome.key, inputs["config"]
        name, inputs_path, started = f"{method} s{seed}", run.path / "inputs.json", utc_now()
        last_attempt = read_json(inputs_path) or {}
        resume = last_attempt.get("key") == key and run.checkpoint_path.is_file()
        previous_s = float(last_attempt.get("elapsed_s", 0.0)) if resume else 0.0
        self.records.stale(marker.record_id)
        if not resume:
            shutil.rmtree(run.path, ignore_errors=True)
            run.path.mkdir(parents=True)
        atomic_write_json(inputs_path, {"key": key, "inputs": inputs, "elapsed_s": previous_s})
        self.log(f"pretrain {name}: {'resuming from checkpoint' if resume else 'running'}")
        try:
            summary = run_pretraining(
                copy.deepcopy(config),
                run.path,
                resume=resume,
                device=self.options.device,
                progress=self.options.progress,
            )
        except BaseException as e:
            elapsed = previous_s + time.perf_counter() - t0
            atomic_write_json(inputs_path, {"key": key, "inputs": inputs, "elapsed_s": elapsed})
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            outcome.error = f"{type(e).__name__}: {e}"
            record = self.records.write_pretrain_error(
                method, seed, config, outcome.error, elapsed, traceback.format_exc(limit=8), started
            )
            marker.write("error", key, outcome.error, record["id"])
            seconds = time.perf_counter() - t0
            self._done(StageResult("pretrain", name, "failed", seconds, outcome.error, record["id"], key))
            return
        wall_s = previous_s + time.perf_counter() - t0
        outcome.weights, outcome.weights_sha256 = run.encoder_path, sha256_file(run.encoder_path)
        record = self.records.write_pretrain(
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

    # --- evaluation ---------------------------------------------------------------------------------------
    def evaluate(self, task: str, pre: PretrainOutcome, seed: int) -> StageResult:
        """Evaluate ``pre``'s weights on ``task`` with ``seed`` unless its stage is done with the same key."""
        name = f"{task} {pre.method} s{seed}"
        marker = StageMarker(self.plan.eval_marker(task, pre.method, seed))
        t0 = time.perf_counter()
        if pre.error is not None or pre.weights is None:
            return self._blocked(task, pre, seed, marker)
        try:
            inputs = self.plan.eval_inputs(task, pre.method, seed, pre.weights_sha256, pre.key)
            key = stage_key(inputs)
        except Exception:  # noqa: BLE001 - e.g. no recipe: evaluate() below records the error, others go on
            key, inputs = None, None
        kept_failure = marker.failed(key) and not self.options.retry_failed
        if (marker.done(key) or kept_failure) and self.records.has(marker.record_id):
            status, error = "failed" if kept_failure else "cached", marker.previous.get("error")
            return self._done(StageResult("eval", name, status, 0.0, error, marker.record_id, key))
        self.records.stale(marker.record_id)
        self.log(f"eval {name}: running")
        # Failures inside become error records (evaluate never raises, except KeyboardInterrupt).
        record = evaluate(
            task,
            str(pre.weights),
            ARCH,
            data=self.plan.voc_root(task),
            profile=self.options.profile,
            seed=seed,
            out=self.runs_dir,
            recipe_overrides=self.options.eval_overrides.get(task),
            device=self.options.device,
            progress=self.options.progress,
            recipe=self.options.eval_recipes.get(task),
        )
        status = "ok" if record.get("status") == "ok" else "error"
        error = record.get("error") if status == "error" else None
        marker.write(status, key, error, record["id"], inputs=inputs)
        ran = "ran" if status == "ok" else "failed"
        return self._done(StageResult("eval", name, ran, time.perf_counter() - t0, error, record["id"], key))

    def _blocked(self, task: str, pre: PretrainOutcome, seed: int, marker: StageMarker) -> StageResult:
        """An evaluation whose pretraining failed: its cells must show as failed, not vanish, so it leaves
        an error record that names the cause (kept while the cause is the same)."""
        name, error = f"{task} {pre.method} s{seed}", f"pretraining failed: {pre.error}"
        last = marker.previous
        kept = last.get("status") == "blocked" and last.get("error") == error
        if kept and self.records.has(marker.record_id):
            return self._done(StageResult("eval", name, "blocked", error=error, record_id=marker.record_id))
        self.records.stale(marker.record_id)
        record = self.records.write_blocked(task, pre.method, pre.run, seed, error)
        marker.write("blocked", None, record["error"], record["id"])
        return self._done(StageResult("eval", name, "blocked", error=record["error"], record_id=record["id"]))

    # --- figures ------------------------------------------------------------------------------------------
    def figure(self, name: str, inputs: dict[str, Any], draw: Callable[[Path], Any]) -> StageResult:
        """Draw ``figures/<name>.png`` unless its key (inputs + figure code) is unchanged and it exists."""
        path = self.figures_dir / f"{name}.png"
        marker = StageMarker(self.plan.figure_marker(name))
        key = stage_key(self.plan.figure_inputs(name, inputs))
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

    # --- the whole thing ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """All stages, then the table and the report. Returns a summary (stage counts, files)."""
        self._make_folders()
        started = time.perf_counter()
        seeds = self.options.seed_list()
        self._total = (
            len(self.options.methods) * len(self.options.pretrain_seeds())
            + len(self.options.methods) * len(self.options.tasks) * len(seeds)
            + (6 if self.options.figures else 0)
        )
        try:
            pretrained = self._pretrain_and_evaluate(seeds)
            records = load_records(self.runs_dir)
            table = build_table(
                records,
                profile=self.options.profile,
                tasks=self.options.tasks,
                methods=self.options.methods,
                seeds=seeds,
                results_dir=str(self.runs_dir),
            )
            for fmt, suffix in (("markdown", "md"), ("csv", "csv"), ("latex", "tex")):
                write_table(table, self.out / f"table.{suffix}", fmt)
            if self.options.figures:
                FigureStages(self.figure, self.plan, self.options).draw(
                    {m: pretrained[(m, 0)] for m in self.options.methods}, render(table, "csv"), table.metrics
                )
            report = write_report(self.out, table, self.options, self.results, records)
        finally:
            seconds = round(time.perf_counter() - started, 1)
            self.records.write_last_run(self.results, finished=False, seconds=seconds)
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
        self.records.write_last_run(self.results, finished=True, summary=summary)
        return summary

    def _make_folders(self) -> None:
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # Stage outputs (weights, checkpoints, stale records) and the evaluators' scratch folder never belong
        # in git; the records, table, figures and report do.
        for scratch in (self.stages_dir, self.out / "work"):
            scratch.mkdir(parents=True, exist_ok=True)
            atomic_write_text(scratch / ".gitignore", "*\n")

    def _pretrain_and_evaluate(self, seeds: list[int]) -> dict[tuple[str, int], PretrainOutcome]:
        """Every pretraining stage, then every evaluation stage; returns the pretraining outcomes."""
        pretrained: dict[tuple[str, int], PretrainOutcome] = {}
        for method in self.options.methods:
            for pseed in self.options.pretrain_seeds():
                pretrained[(method, pseed)] = self.pretrain(method, pseed)
        for method in self.options.methods:
            for task in self.options.tasks:
                for seed in seeds:
                    pre = pretrained[(method, seed if self.options.pretrain_per_seed else 0)]
                    self.evaluate(task, pre, seed)
        return pretrained


def reproduce(options: ReproduceOptions) -> dict[str, Any]:
    """Run a reproduction (see the module docstring); returns the summary of :meth:`Reproduction.run`."""
    return Reproduction(options).run()
