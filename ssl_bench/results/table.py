"""The results table: stored result records → one row per pretraining method, one column per task.

Rendered only from records (``results/runs/*.json``, see ``ssl_bench/records.py``), never from live runs:

- a cell is the mean ± 95% Student-t interval over the evaluation seeds (``stats.mean_ci``) with its n;
  one seed is shown as ``(n=1, no CI)``; seeds whose record failed are counted beside it, not averaged;
- one metric per column, named in the header with its AP variant: the metric the task's evaluator
  registered, the paper's (``results/paper/*.csv``: cls = scikit-learn AP, det = VOC07 11-point AP, seg =
  mean IU), when the records report it, else the records' ``extra.primary_metric``;
- the paper's number and the difference (ours − paper) beside the cell, only where the method has a
  published row and the metric is the same;
- missing cells (no record) and failed cells (only error records) are shown as such, not dropped;
- pretraining time and images seen come from ``task: pretrain`` records (written by ``bench reproduce``),
  else from the run folder an evaluation record names;
- a cell that measures nothing is marked (issue #22): ``°`` where its 95% interval (one seed: its value)
  reaches the trivial level its records hold (``trivial_<metric>``: a constant scorer, all background, a
  constant detector, computed from the test labels), ``‡`` where a run's final training loss
  (``train_loss``) is not below its chance loss (``chance_loss``); records without those fields get no mark;
- every cell is traceable: :meth:`ResultsTable.manifest` lists the record ids behind it (used, failed and
  superseded), and the CSV carries them too.

Its parts: ``cells.py`` (a cell's statistics, marks and text), ``paper_numbers.py`` (the published numbers),
``row_pretraining.py`` (a row's time and images), ``table_text.py`` (headers, legend, Markdown, LaTeX);
``registered.py`` reads what the evaluators and methods registered (a column's label, metric and order, a
row's supervision and order): this module holds no per-task or per-method constant.

When several records share (profile, method, task, seed), the newest (``started_at``) is used and the others
are listed as superseded: re-running an evaluation replaces its number instead of averaging it in.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.atomic import atomic_write_json, atomic_write_text
from ssl_bench.records import MANIFEST_SUFFIX
from ssl_bench.results.cells import (
    CHANCE_MARK,
    TRIVIAL_MARK,
    Cell,
    Row,
    collect_trivial,
    display_scale,
    format_cell,
    format_duration,
    mean_or_none,
    metric_label,
    paper_text,
    pretraining_text,
    record_method,
    rounded,
    short_error,
)
from ssl_bench.results.paper_numbers import PaperNumber, load_paper_numbers, read_paper_csv
from ssl_bench.results.registered import method_sort_key, method_supervision, preferred_metric, task_sort_key
from ssl_bench.results.row_pretraining import fill_pretraining, newest_first
from ssl_bench.results.stats import CONFIDENCE
from ssl_bench.results.table_text import column_header, to_latex, to_markdown, trivial_legend

# Importers of the table find these here (report, bench compare, tests).
__all__ = ["CHANCE_MARK", "TRIVIAL_MARK", "PaperNumber", "ResultsTable", "build_table", "display_scale",
           "format_cell", "format_duration", "load_paper_numbers", "manifest_path", "metric_label",
           "read_paper_csv", "record_method", "render", "to_markdown", "write_table"]  # fmt: skip

PRETRAIN_TASK = "pretrain"  # records of pretraining stages (time, steps, images seen), not a column
FORMATS = ("markdown", "csv", "latex")


@dataclass
class ResultsTable:
    """Rows × tasks, built by :func:`build_table`."""

    rows: list[Row]
    tasks: list[str]
    metrics: dict[str, str | None]  # task → the column's metric
    cells: dict[tuple[str, str, str], Cell]  # (profile, method, task)
    results_dir: str = ""
    confidence: float = CONFIDENCE
    unreadable: list[dict[str, Any]] = field(default_factory=list)  # records without a task: {id, error}

    @property
    def profiles(self) -> list[str]:
        return sorted({r.profile for r in self.rows})

    def cell(self, row: Row, task: str) -> Cell:
        return self.cells[(row.profile, row.method, task)]

    def has_paper(self, task: str) -> bool:
        return any(self.cell(r, task).paper is not None for r in self.rows)

    # --- machine-readable: one number per column ---------------------------------------------------
    def numeric_frame(self) -> pd.DataFrame:
        """Wide numeric table (the CSV): ``<task>.mean``, ``.ci95``, ``.n``, ``.paper``, ``.records`` …"""
        out = []
        for row in self.rows:
            item: dict[str, Any] = {
                "profile": row.profile, "method": row.method, "supervision": method_supervision(row.method),
                "pretrain_wall_s": rounded(row.wall_s, 1), "pretrain_steps": row.steps,
                "images_seen": row.images_seen, "pretrain_time_estimated": row.estimated,
                "pretrain_records": ";".join(row.record_ids),
            }  # fmt: skip
            for task in self.tasks:
                c = self.cell(row, task)
                s = c.summary
                item |= {
                    f"{task}.metric": c.metric, f"{task}.status": c.status,
                    f"{task}.mean": rounded(s.mean, 4) if c.values else None,
                    f"{task}.ci95": rounded(s.half_width, 4), f"{task}.n": s.n,
                    f"{task}.failed": len(c.failed),
                    f"{task}.paper": c.paper.value if c.paper else None,
                    f"{task}.paper_metric": c.paper.metric if c.paper else None,
                    f"{task}.diff": rounded(c.diff, 4),
                    f"{task}.trivial": rounded(c.trivial, 4),
                    f"{task}.reaches_trivial": c.reaches_trivial,
                    f"{task}.train_loss": rounded(mean_or_none(t for t, _ in c.losses), 4),
                    f"{task}.chance_loss": rounded(mean_or_none(ch for _, ch in c.losses), 4),
                    f"{task}.not_below_chance": c.not_below_chance,
                    f"{task}.records": ";".join(c.record_ids),
                    f"{task}.failed_records": ";".join(str(f["record_id"]) for f in c.failed),
                }  # fmt: skip
            out.append(item)
        return pd.DataFrame(out)

    # --- human-readable: formatted strings ------------------------------------------------------------
    def display_frame(self) -> pd.DataFrame:
        """The table as strings: method, supervision, pretraining, then per task ours / paper / Δ."""
        multi = len(self.profiles) > 1
        out = []
        for row in self.rows:
            item: dict[str, str] = {"method": row.method}
            if multi:
                item["profile"] = row.profile
            item["supervision"] = method_supervision(row.method)
            item["pretraining time"] = pretraining_text(row)
            item["images seen"] = f"{row.images_seen:,}" if row.images_seen is not None else "–"
            for task in self.tasks:
                c = self.cell(row, task)
                header = self.column_header(task)
                item[header] = format_cell(c)
                if self.has_paper(task):
                    item[f"{task}: paper"] = paper_text(c)
                    item[f"{task}: Δ"] = f"{c.diff:+.1f}" if c.diff is not None else ""
            out.append(item)
        return pd.DataFrame(out)

    def column_header(self, task: str) -> str:
        return column_header(task, self.metrics.get(task))

    def legend(self) -> list[str]:
        """Lines explaining the table (printed under the Markdown table)."""
        pct = int(round(self.confidence * 100))
        lines = [
            f"Cells: mean ± {pct}% confidence interval (Student t, n−1 degrees of freedom) over n evaluation "
            "seeds; `n=1, no CI` where one seed ran. `failed` / `k failed`: runs whose record holds an error "
            "(not averaged in); `missing`: no record.",
            "Paper: Pathak et al. 2016 Table 2 or later AlexNet rows (`results/paper/`); Δ = ours − paper, "
            "given only where the metric and AP variant are the same.",
        ]
        lines += self._trivial_legend()
        notes = sorted({f"{c.paper.method}: {c.paper.note}" for c in self.cells.values()
                        if c.paper is not None and c.paper.note})  # fmt: skip
        lines += [f"Note — {n}" for n in notes]
        if self.unreadable:
            lines.append(
                f"{len(self.unreadable)} record file(s) could not be read and are in no cell: "
                + "; ".join(short_error(u["error"], 100) for u in self.unreadable[:3])
            )
        if any(r.estimated for r in self.rows):
            lines.append(
                "≈: pretraining time estimated from the run's metrics.jsonl (no pretraining record)."
            )
        lines.append(
            "Every cell's record ids: the table's manifest (`*.manifest.json`) and the CSV's `.records` "
            "columns."
        )
        return lines

    def _trivial_legend(self) -> list[str]:
        """The marks' explanation and each column's trivial level (issue #22)."""
        levels = {task: sorted({t for r in self.rows if (t := self.cell(r, task).trivial) is not None})
                  for task in self.tasks}  # fmt: skip
        return trivial_legend(self.confidence, levels)

    def manifest(self) -> dict[str, Any]:
        """Which records every number came from (written beside the rendered table)."""
        cells = []
        for row in self.rows:
            for task in self.tasks:
                c = self.cell(row, task)
                s = c.summary
                cells.append({
                    "profile": c.profile, "method": c.method, "task": task, "metric": c.metric,
                    "status": c.status, "n": s.n,
                    "mean": rounded(s.mean, 6) if c.values else None, "ci95": rounded(s.half_width, 6),
                    "values": [{"seed": seed, "value": rounded(v, 6), "record_id": rid}
                               for seed, v, rid in zip(c.seeds, c.values, c.record_ids, strict=True)],
                    "failed": c.failed, "superseded_record_ids": c.superseded,
                    "paper": None if c.paper is None else {
                        "value": c.paper.value, "metric": c.paper.metric, "source": c.paper.source,
                        "citation": c.paper.citation, "note": c.paper.note},
                    "diff": rounded(c.diff, 6),
                    "trivial": rounded(c.trivial, 6), "reaches_trivial": c.reaches_trivial,
                    "losses": [{"train_loss": t, "chance_loss": ch} for t, ch in c.losses],
                    "not_below_chance": c.not_below_chance,
                })  # fmt: skip
        rows = [{"profile": r.profile, "method": r.method, "pretrain_record_ids": r.record_ids,
                 "pretrain_failed": r.failed, "runs": r.runs, "wall_s": rounded(r.wall_s, 3),
                 "steps": r.steps, "images_seen": r.images_seen, "time_estimated": r.estimated}
                for r in self.rows]  # fmt: skip
        return {
            "format": 1,
            "results": self.results_dir,
            "confidence": self.confidence,
            "columns": {t: self.metrics.get(t) for t in self.tasks},
            "rows": rows,
            "cells": cells,
            "unreadable": self.unreadable,
        }



def build_table(
    records: Sequence[dict[str, Any]],
    paper: dict[tuple[str, str], PaperNumber] | None = None,
    profile: str | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    results_dir: str = "",
) -> ResultsTable:
    """Group records into rows (profile, method) × task columns and summarise each cell.

    Args:
        records: result records (``load_records``); unreadable ones (no task) are listed, in no cell.
        paper: reference numbers (default: :func:`load_paper_numbers`).
        profile: keep only records of this profile.
        tasks: columns to show, in this order (default: every task in the records, in the order the
            evaluators registered). A task named here with no record becomes a column of ``missing`` cells.
        methods: rows to show (default: every method in the records, in the order the methods declare).
            A method named here with no record becomes a row of ``missing`` cells.
        seeds: evaluation seeds to keep (default: all).
        results_dir: where the records came from (written into the manifest).

    Returns:
        A :class:`ResultsTable`.
    """
    paper = load_paper_numbers() if paper is None else paper
    recs = [r for r in records if r.get("task") and (profile is None or r.get("profile") == profile)]
    evals = [
        r
        for r in recs
        if r["task"] != PRETRAIN_TASK and (seeds is None or int(r.get("seed", 0) or 0) in set(seeds))
    ]
    pretrains = [r for r in recs if r["task"] == PRETRAIN_TASK]
    task_list = list(tasks) if tasks else sorted({r["task"] for r in evals}, key=task_sort_key)
    row_list = _rows(recs, profile, methods)
    chosen, superseded = _newest_per_seed(evals)
    metrics = {
        task: _column_metric(task, [r for k, r in chosen.items() if k[2] == task]) for task in task_list
    }
    cells: dict[tuple[str, str, str], Cell] = {}
    for row in row_list:
        for task in task_list:
            key = (row.profile, row.method, task)
            c = Cell(*key, metrics[task], superseded=superseded.get(key, []), paper=paper.get(key[1:]))
            _fill_cell(c, sorted((k[3], r) for k, r in chosen.items() if k[:3] == key))
            cells[key] = c
    fill_pretraining(row_list, pretrains, chosen)
    unreadable = [
        {"id": r.get("id"), "error": r.get("error", "no task")} for r in records if not r.get("task")
    ]
    return ResultsTable(row_list, task_list, metrics, cells, results_dir=results_dir, unreadable=unreadable)


def _rows(recs: list[dict[str, Any]], profile: str | None, methods: Sequence[str] | None) -> list[Row]:
    """One row per (profile, method): ``methods`` in their order, then the others in their declared order."""
    row_keys = {(str(r.get("profile")), record_method(r)) for r in recs}
    named = list(methods or ())
    if named:
        profiles = sorted({p for p, _ in row_keys}) or [profile or "smoke"]
        row_keys = {(p, m) for p, m in row_keys if m in named} | {(p, m) for p in profiles for m in named}

    def order(key: tuple[str, str]) -> tuple[str, int, tuple[int, str]]:
        p, m = key
        return p, named.index(m) if m in named else len(named), method_sort_key(m)

    return [Row(p, m) for p, m in sorted(row_keys, key=order)]


def _newest_per_seed(
    evals: list[dict[str, Any]],
) -> tuple[dict[tuple[str, str, str, int], dict[str, Any]], dict[tuple[str, str, str], list[str]]]:
    """One record per (profile, method, task, seed): the newest; the ids of the rest, superseded."""
    chosen: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    superseded: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in newest_first(evals):
        key = (str(r.get("profile")), record_method(r), r["task"], int(r.get("seed", 0) or 0))
        if key in chosen:
            superseded[key[:3]].append(str(r.get("id")))
        else:
            chosen[key] = r
    return chosen, superseded


def _fill_cell(c: Cell, picked: list[tuple[int, dict[str, Any]]]) -> None:
    """A cell's values (display units), failures and n/a records from its (seed, record) pairs."""
    for seed, r in picked:
        value = (r.get("metrics") or {}).get(c.metric) if c.metric else None
        if r.get("status") != "ok":
            c.failed.append({"record_id": r.get("id"), "seed": seed, "error": r.get("error") or "error"})
        elif value is None:  # it ran but does not give this number (no decoder: no inpainting PSNR)
            c.not_applicable.append(str(r.get("id")))
        elif isinstance(value, float) and math.isnan(value):
            c.failed.append({"record_id": r.get("id"), "seed": seed, "error": f"{c.metric} is NaN"})
        else:
            c.values.append(float(value) * display_scale(str(c.metric)))
            c.seeds.append(seed)
            c.record_ids.append(str(r.get("id")))
            collect_trivial(c, r.get("metrics") or {})


def _column_metric(task: str, records: list[dict[str, Any]]) -> str | None:
    """The paper's / preferred metric if any record has it, else the most common primary metric."""
    ok = [r for r in records if r.get("status") == "ok"]
    preferred = preferred_metric(task)
    if preferred and any(preferred in (r.get("metrics") or {}) for r in ok):
        return preferred
    primaries = Counter((r.get("extra") or {}).get("primary_metric") for r in ok)
    primaries.pop(None, None)
    if primaries:
        return sorted(primaries.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return preferred


def render(table: ResultsTable, fmt: str = "markdown") -> str:
    """The table as Markdown (with its legend), CSV (numeric, with record ids) or LaTeX."""
    if fmt == "markdown":
        if not table.rows:
            return f"No result records{' in ' + table.results_dir if table.results_dir else ''}.\n"
        body = to_markdown(table.display_frame())
        return body + "\n\n" + "\n".join(f"- {line}" for line in table.legend()) + "\n"
    if fmt == "csv":
        return table.numeric_frame().to_csv(index=False, lineterminator="\n")
    if fmt == "latex":
        pct = int(round(table.confidence * 100))
        return to_latex(
            table.display_frame(), caption=f"Transfer results: mean ± {pct}\\% CI over seeds (n)."
        )
    raise ValueError(f"unknown format '{fmt}'; choose from {', '.join(FORMATS)}")


def manifest_path(table_path: Path) -> Path:
    """``results/table.md`` → ``results/table.manifest.json`` (shared by the .md/.csv/.tex of one table)."""
    return table_path.with_name(table_path.stem + MANIFEST_SUFFIX)


def write_table(table: ResultsTable, path: Path, fmt: str) -> Path:
    """Write one rendering plus the manifest beside it; both atomically. Returns the manifest path."""
    atomic_write_text(path, render(table, fmt))
    mpath = manifest_path(path)
    atomic_write_json(mpath, table.manifest())
    return mpath
