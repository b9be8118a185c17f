"""The results table: stored result records → one row per pretraining method, one column per task.

Rendered only from records (``results/runs/*.json``, see ``ssl_bench/records.py``), never from live runs:

- a cell is the mean ± 95% Student-t interval over the evaluation seeds (``stats.mean_ci``) with its n;
  one seed is shown as ``(n=1, no CI)``; seeds whose record failed are counted beside it, not averaged;
- one metric per column, named in the header with its AP variant: the paper's metric for the task
  (``results/paper/*.csv``: cls = scikit-learn AP, det = VOC07 11-point AP, seg = mean IU) when the
  records report it, else the records' ``extra.primary_metric``;
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

When several records share (profile, method, task, seed), the newest (``started_at``) is used and the others
are listed as superseded: re-running an evaluation replaces its number instead of averaging it in.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.atomic import atomic_write_json, atomic_write_text
from ssl_bench.errors import BenchError
from ssl_bench.results.stats import CONFIDENCE, Summary, mean_ci
from ssl_bench.training.run_folder import RunFolder

PRETRAIN_TASK = "pretrain"  # records of pretraining stages (time, steps, images seen), not a column
FORMATS = ("markdown", "csv", "latex")
_PACKAGE = Path(__file__).resolve().parent.parent

# Column order: the paper's three tasks first, then the suite's extensions, then anything a plug-in adds.
TASK_ORDER = ("cls", "det", "seg", "cls-fc6-8", "cls-linear", "knn", "inpaint")
TASK_LABELS = {"cls": "classification", "det": "detection", "seg": "segmentation",
               "cls-fc6-8": "classification, fc6-8 (conv frozen)", "cls-linear": "linear probe",
               "knn": "kNN", "inpaint": "inpainting"}  # fmt: skip
# The metric a column shows when the records have it (the paper's, PAPER.md §3/§5); otherwise the
# records' own primary metric.
PREFERRED_METRIC = {"cls": "map_sklearn", "det": "map_voc07_11point", "seg": "miou",
                    "cls-fc6-8": "map_sklearn", "cls-linear": "map_area", "knn": "map_area",
                    "inpaint": "psnr_db"}  # fmt: skip
METRIC_LABELS = {
    "map_sklearn": "mAP, sklearn AP",
    "map_voc07_11point": "mAP, VOC07 11-point AP",
    "map_area": "mAP, VOC2010+ area AP",
    "miou": "mean IU",
    "psnr_db": "PSNR dB",
    "nn_psnr_db": "NN-inpainting PSNR dB",
    "l2_pct": "mean L2 %",
    "l1_pct": "mean L1 %",
}
# Marks of cells that measure nothing (issue #22), explained in the legend.
TRIVIAL_MARK = "°"
CHANCE_MARK = "‡"
# Metrics stored as fractions in [0, 1] and shown as percentages, like the paper's numbers.
_FRACTION = re.compile(r"^(map_|ap_|iou_|coco_ap|miou$|fwiou$|pixel_acc$|mean_acc$|top\d+$|acc)")

# Paper order (Table 2): ImageNet, random, autoencoder, …, context encoder; the suite's other methods after.
ROW_ORDER = ("supervised", "random", "autoencoder", "datainit", "context_encoder")
SUPERVISION = {"supervised": "image labels", "random": "initialisation", "autoencoder": "–",
               "datainit": "initialisation (data-dependent)", "context_encoder": "context"}  # fmt: skip


def is_fraction_metric(name: str) -> bool:
    return bool(_FRACTION.match(name))


def display_scale(metric: str) -> float:
    """100 for fractions (AP, IU, accuracy: shown in %), 1 for anything already in its unit (dB, %)."""
    return 100.0 if is_fraction_metric(metric) else 1.0


def metric_label(metric: str) -> str:
    label = METRIC_LABELS.get(metric, metric)
    return f"{label} (%)" if is_fraction_metric(metric) else label


def record_method(record: dict[str, Any]) -> str:
    """The pretraining method behind a record: ``pretrain.method``, else the weights' file stem."""
    method = (record.get("pretrain") or {}).get("method")
    if method:
        return str(method)
    weights = record.get("weights")
    return f"unknown ({Path(str(weights)).parent.name or weights})" if weights else "unknown"


# ------------------------------------------------------------------------------------------------------
# Paper reference numbers (results/paper/*.csv)


def paper_dir() -> Path:
    """``results/paper`` of the source tree, else the copy packaged as ``ssl_bench/_paper``."""
    for candidate in (_PACKAGE.parent / "results" / "paper", _PACKAGE / "_paper"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / "results" / "paper"


@dataclass(frozen=True)
class PaperNumber:
    value: float
    metric: str
    method: str  # the paper's row name
    source: str  # file and row, e.g. "table2.csv: Context encoder"
    citation: str
    note: str


def load_paper_numbers(folder: Path | None = None) -> dict[tuple[str, str], PaperNumber]:
    """``{(method_key, task): PaperNumber}`` from ``table2.csv`` then ``later_rows.csv`` (first wins).

    A file's task columns are those with a ``<task>_metric`` column beside them (``cls``, ``det``, ``seg``;
    ``later_rows.csv`` also ``cls-fc6-8``). Rows without a ``method_key`` (methods the suite does not
    implement) are reference-only.
    """
    folder = Path(folder) if folder is not None else paper_dir()
    out: dict[tuple[str, str], PaperNumber] = {}
    for name in ("table2.csv", "later_rows.csv"):
        path = folder / name
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            tasks = [c.removesuffix("_metric") for c in reader.fieldnames or () if c.endswith("_metric")]
            for row in reader:
                key = (row.get("method_key") or "").strip()
                for task in tasks:
                    text = (row.get(task) or "").strip()
                    if not key or not text or (key, task) in out:
                        continue
                    out[(key, task)] = PaperNumber(
                        value=float(text), metric=row[f"{task}_metric"], method=row["method"],
                        source=f"{name}: {row['method']}", citation=row.get("citation", ""),
                        note=row.get("note", "") or "")  # fmt: skip
    return out


def read_paper_csv(name: str, folder: Path | None = None) -> pd.DataFrame:
    """One reference table as a DataFrame (for the report)."""
    folder = Path(folder) if folder is not None else paper_dir()
    return pd.read_csv(folder / name, keep_default_na=False)


# ------------------------------------------------------------------------------------------------------
# Cells and rows


@dataclass
class Cell:
    """One (row, task) cell and the records behind it.

    ``values`` are in display units (percent for fractions). ``status``: ``ok`` (all seeds succeeded),
    ``partial`` (some failed), ``failed`` (none succeeded), ``n/a`` (the evaluations succeeded but do not
    give the column's metric: the inpainting PSNR of an encoder without a decoder), ``missing`` (no record).
    """

    profile: str
    method: str
    task: str
    metric: str | None
    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {record_id, seed, error}
    not_applicable: list[str] = field(default_factory=list)  # ok records without the column's metric
    superseded: list[str] = field(default_factory=list)
    paper: PaperNumber | None = None
    trivial_values: list[float] = field(default_factory=list)  # display units, from the used records
    losses: list[tuple[float, float]] = field(default_factory=list)  # (train_loss, chance_loss) per run

    @property
    def summary(self) -> Summary:
        return mean_ci(self.values)

    @property
    def status(self) -> str:
        if self.values:
            return "partial" if self.failed else "ok"
        if self.failed:
            return "failed"
        return "n/a" if self.not_applicable else "missing"

    @property
    def comparable(self) -> bool:
        return self.paper is not None and self.paper.metric == self.metric

    @property
    def trivial(self) -> float | None:
        """The trivial level of the column's metric in its records (their mean), None where none holds it."""
        return math.fsum(self.trivial_values) / len(self.trivial_values) if self.trivial_values else None

    @property
    def reaches_trivial(self) -> bool | None:
        """Whether the cell's 95% interval (one seed: its value) reaches down to the trivial level (higher
        is better for every metric that has one); None where it cannot be told."""
        if not self.values or self.trivial is None:
            return None
        s = self.summary
        return (s.low if s.low is not None else s.mean) <= self.trivial

    @property
    def not_below_chance(self) -> int | None:
        """How many of its runs ended with a training loss not below their chance loss; None if no run
        records both."""
        return sum(train >= chance for train, chance in self.losses) if self.losses else None

    @property
    def marks(self) -> str:
        return (TRIVIAL_MARK if self.reaches_trivial else "") + (CHANCE_MARK if self.not_below_chance else "")

    @property
    def diff(self) -> float | None:
        if not self.values or not self.comparable:
            return None
        return self.summary.mean - self.paper.value  # type: ignore[union-attr]


@dataclass
class Row:
    """A pretraining method (within one profile) and how it was pretrained."""

    profile: str
    method: str
    wall_s: float | None = None
    steps: int | None = None
    images_seen: int | None = None
    estimated: bool = False  # time estimated from a run folder, not a pretraining record
    record_ids: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def _newest_first(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (str(r.get("started_at") or ""), str(r.get("id"))), reverse=True)


def _short_error(text: str, limit: int = 80) -> str:
    line = " ".join(str(text or "error").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _run_folder_pretraining(run: str) -> dict[str, Any]:
    """Steps, images seen and an estimated wall time from a ``bench pretrain`` folder (fallback only).

    The time is the training loop's, summed from metrics.jsonl (images per logged interval / img_s); set-up
    and data loading before the first step are not in it.
    """
    folder = RunFolder(run)
    try:
        config = folder.config
    except BenchError:  # no run there (any more), or an unreadable config: nothing to estimate from
        return {}
    train = config.get("train") or {}
    world = (config.get("provenance") or {}).get("world_size", 1) or 1
    steps = int(train.get("steps", 0) or 0)
    out: dict[str, Any] = {
        "steps": steps,
        "images_seen": steps * int(train.get("batch_size", 0) or 0) * world,
    }
    if folder.metrics_path.is_file():
        seconds, prev = 0.0, 0
        for row in folder.metrics():
            if "loss" in row and row.get("img_s"):
                seconds += (row["step"] - prev) * train.get("batch_size", 0) * world / row["img_s"]
                prev = row["step"]
        out["wall_s"] = seconds if seconds > 0 else None
    return out


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
                "profile": row.profile, "method": row.method, "supervision": SUPERVISION.get(row.method, ""),
                "pretrain_wall_s": _round(row.wall_s, 1), "pretrain_steps": row.steps,
                "images_seen": row.images_seen, "pretrain_time_estimated": row.estimated,
                "pretrain_records": ";".join(row.record_ids),
            }  # fmt: skip
            for task in self.tasks:
                c = self.cell(row, task)
                s = c.summary
                item |= {
                    f"{task}.metric": c.metric, f"{task}.status": c.status,
                    f"{task}.mean": _round(s.mean, 4) if c.values else None,
                    f"{task}.ci95": _round(s.half_width, 4), f"{task}.n": s.n,
                    f"{task}.failed": len(c.failed),
                    f"{task}.paper": c.paper.value if c.paper else None,
                    f"{task}.paper_metric": c.paper.metric if c.paper else None,
                    f"{task}.diff": _round(c.diff, 4),
                    f"{task}.trivial": _round(c.trivial, 4),
                    f"{task}.reaches_trivial": c.reaches_trivial,
                    f"{task}.train_loss": _round(_mean(t for t, _ in c.losses), 4),
                    f"{task}.chance_loss": _round(_mean(ch for _, ch in c.losses), 4),
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
            item["supervision"] = SUPERVISION.get(row.method, "")
            item["pretraining time"] = _pretraining_text(row)
            item["images seen"] = f"{row.images_seen:,}" if row.images_seen is not None else "–"
            for task in self.tasks:
                c = self.cell(row, task)
                header = self.column_header(task)
                item[header] = format_cell(c)
                if self.has_paper(task):
                    item[f"{task}: paper"] = _paper_text(c)
                    item[f"{task}: Δ"] = f"{c.diff:+.1f}" if c.diff is not None else ""
            out.append(item)
        return pd.DataFrame(out)

    def column_header(self, task: str) -> str:
        metric = self.metrics.get(task)
        label = TASK_LABELS.get(task, task)
        return f"{task}: {label}, {metric_label(metric)}" if metric else f"{task}: {label}"

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
                + "; ".join(_short_error(u["error"], 100) for u in self.unreadable[:3])
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
        levels = []
        for task in self.tasks:
            found = sorted({t for r in self.rows if (t := self.cell(r, task).trivial) is not None})
            text = "n/a" if not found else f"{found[0]:.2f}"
            if len(found) > 1:
                text += f" to {found[-1]:.2f}"
            levels.append(f"{task} {text}")
        lines = [
            f"{TRIVIAL_MARK}: the cell's {int(round(self.confidence * 100))}% interval (one seed: its value) "
            "reaches its trivial level, the score of a predictor that looks at no pixel, computed from the "
            "same test labels: cls/linear/kNN a constant scorer (same AP rule), seg all background, det one "
            "whole-image box per image and class with one score. "
            f"{CHANCE_MARK}: a run's final training loss is not below its chance loss (the loss of the best "
            "constant prediction: the label prior for cls, the pixel-class prior for seg; det has none). "
            "Marked cells measure nothing; records made before these fields existed get no mark (n/a).",
            "Trivial levels (same units as the cells): " + "; ".join(levels) + ".",
        ]
        return lines

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
                    "mean": _round(s.mean, 6) if c.values else None, "ci95": _round(s.half_width, 6),
                    "values": [{"seed": seed, "value": _round(v, 6), "record_id": rid}
                               for seed, v, rid in zip(c.seeds, c.values, c.record_ids, strict=True)],
                    "failed": c.failed, "superseded_record_ids": c.superseded,
                    "paper": None if c.paper is None else {
                        "value": c.paper.value, "metric": c.paper.metric, "source": c.paper.source,
                        "citation": c.paper.citation, "note": c.paper.note},
                    "diff": _round(c.diff, 6),
                    "trivial": _round(c.trivial, 6), "reaches_trivial": c.reaches_trivial,
                    "losses": [{"train_loss": t, "chance_loss": ch} for t, ch in c.losses],
                    "not_below_chance": c.not_below_chance,
                })  # fmt: skip
        rows = [{"profile": r.profile, "method": r.method, "pretrain_record_ids": r.record_ids,
                 "pretrain_failed": r.failed, "runs": r.runs, "wall_s": _round(r.wall_s, 3), "steps": r.steps,
                 "images_seen": r.images_seen, "time_estimated": r.estimated} for r in self.rows]  # fmt: skip
        return {
            "format": 1,
            "results": self.results_dir,
            "confidence": self.confidence,
            "columns": {t: self.metrics.get(t) for t in self.tasks},
            "rows": rows,
            "cells": cells,
            "unreadable": self.unreadable,
        }


def _mean(values: Iterable[float]) -> float | None:
    xs = list(values)
    return math.fsum(xs) / len(xs) if xs else None


def _round(x: float | None, digits: int) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), digits)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "< 1 s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _pretraining_text(row: Row) -> str:
    if row.wall_s is None:
        return "failed" if row.failed else "–"
    text = ("≈ " if row.estimated else "") + format_duration(row.wall_s)
    if row.steps:
        text += f", {row.steps:,} steps"
    return text


def _paper_text(c: Cell) -> str:
    if c.paper is None:
        return ""
    return f"{c.paper.value:.1f}" if c.comparable else f"{c.paper.value:.1f} ({c.paper.metric})"


def format_cell(c: Cell) -> str:
    """``56.5 ± 1.2 (n=3)``, ``56.5 (n=1, no CI)``, ``… 1 failed``, ``failed: <error>``, ``missing``."""
    if c.status == "missing":
        return "missing"
    if c.status == "n/a":
        return f"n/a (no {c.metric} in its {len(c.not_applicable)} records)"
    if c.status == "failed":
        return f"failed: {_short_error(c.failed[0]['error'], 60)}" + (
            f" (+{len(c.failed) - 1} more)" if len(c.failed) > 1 else ""
        )
    s = c.summary
    digits = 1 if c.metric is None or display_scale(c.metric) == 100.0 or abs(s.mean) >= 10 else 2
    text = f"{s.mean:.{digits}f}"
    text += f" ± {s.half_width:.{digits}f} (n={s.n})" if s.half_width is not None else " (n=1, no CI)"
    if c.failed:
        text += f"; {len(c.failed)} failed"
    return text + (f" {c.marks}" if c.marks else "")


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
        tasks: columns to show, in this order (default: every task in the records, in ``TASK_ORDER``).
            A task named here with no record becomes a column of ``missing`` cells.
        methods: rows to show (default: every method in the records). A method named here with no record
            becomes a row of ``missing`` cells.
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

    task_list = (
        list(tasks)
        if tasks
        else sorted(
            {r["task"] for r in evals},
            key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t),
        )
    )
    row_keys = {(str(r.get("profile")), record_method(r)) for r in recs}
    if methods:
        profiles = sorted({p for p, _ in row_keys}) or [profile or "smoke"]
        row_keys = {(p, m) for p, m in row_keys if m in methods} | {(p, m) for p in profiles for m in methods}
    order = {
        m: i for i, m in enumerate(list(methods or ()) + [m for m in ROW_ORDER if m not in (methods or ())])
    }
    row_list = [
        Row(p, m) for p, m in sorted(row_keys, key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
    ]

    # One record per (profile, method, task, seed): the newest; the rest are superseded.
    chosen: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    superseded: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for r in _newest_first(evals):
        key = (str(r.get("profile")), record_method(r), r["task"], int(r.get("seed", 0) or 0))
        if key in chosen:
            superseded[key[:3]].append(str(r.get("id")))
        else:
            chosen[key] = r

    metrics = {
        task: _column_metric(task, [r for k, r in chosen.items() if k[2] == task]) for task in task_list
    }
    cells: dict[tuple[str, str, str], Cell] = {}
    for row in row_list:
        for task in task_list:
            c = Cell(
                row.profile,
                row.method,
                task,
                metrics[task],
                superseded=superseded.get((row.profile, row.method, task), []),
                paper=paper.get((row.method, task)),
            )
            picked = sorted((k[3], r) for k, r in chosen.items() if k[:3] == (row.profile, row.method, task))
            for seed, r in picked:
                value = (r.get("metrics") or {}).get(c.metric) if c.metric else None
                if r.get("status") != "ok":
                    c.failed.append(
                        {"record_id": r.get("id"), "seed": seed, "error": r.get("error") or "error"}
                    )
                elif value is None:  # it ran but does not give this number (no decoder: no inpainting PSNR)
                    c.not_applicable.append(str(r.get("id")))
                elif isinstance(value, float) and math.isnan(value):
                    c.failed.append(
                        {
                            "record_id": r.get("id"),
                            "seed": seed,
                            "error": f"{c.metric} is NaN",
                        }
                    )
                else:
                    c.values.append(float(value) * display_scale(c.metric))
                    c.seeds.append(seed)
                    c.record_ids.append(str(r.get("id")))
                    _collect_trivial(c, r.get("metrics") or {})
            cells[(row.profile, row.method, task)] = c
    _fill_pretraining(row_list, pretrains, chosen)
    unreadable = [
        {"id": r.get("id"), "error": r.get("error", "no task")} for r in records if not r.get("task")
    ]
    return ResultsTable(row_list, task_list, metrics, cells, results_dir=results_dir, unreadable=unreadable)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _collect_trivial(c: Cell, metrics: dict[str, Any]) -> None:
    """A used record's trivial level of the column's metric and its (train_loss, chance_loss), where it
    holds them (records older than issue #22 do not)."""
    trivial = metrics.get(f"trivial_{c.metric}")
    if _finite(trivial):
        c.trivial_values.append(float(trivial) * display_scale(str(c.metric)))
    train, chance = metrics.get("train_loss"), metrics.get("chance_loss")
    if _finite(train) and _finite(chance):
        c.losses.append((float(train), float(chance)))


def _column_metric(task: str, records: list[dict[str, Any]]) -> str | None:
    """The paper's / preferred metric if any record has it, else the most common primary metric."""
    ok = [r for r in records if r.get("status") == "ok"]
    preferred = PREFERRED_METRIC.get(task)
    if preferred and any(preferred in (r.get("metrics") or {}) for r in ok):
        return preferred
    primaries = Counter((r.get("extra") or {}).get("primary_metric") for r in ok)
    primaries.pop(None, None)
    if primaries:
        return sorted(primaries.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return preferred


def _fill_pretraining(
    rows: list[Row], pretrains: list[dict[str, Any]], evals: dict[tuple[str, str, str, int], dict[str, Any]]
) -> None:
    """Pretraining time / steps / images seen per row: mean over the row's pretraining records."""
    by_row: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in _newest_first(pretrains):
        latest.setdefault((str(r.get("profile")), record_method(r), int(r.get("seed", 0) or 0)), r)
    for (p, m, _seed), r in latest.items():
        by_row[(p, m)].append(r)
    for row in rows:
        recs = sorted(by_row.get((row.profile, row.method), []), key=lambda r: int(r.get("seed", 0) or 0))
        ok = [r for r in recs if r.get("status") == "ok"]
        row.record_ids = [str(r.get("id")) for r in ok]
        row.failed = [{"record_id": r.get("id"), "seed": r.get("seed"), "error": r.get("error")}
                      for r in recs if r.get("status") != "ok"]  # fmt: skip
        row.runs = sorted(
            {str((r.get("pretrain") or {}).get("run")) for r in recs if (r.get("pretrain") or {}).get("run")}
        )
        if ok:
            m = [r.get("metrics") or {} for r in ok]
            row.wall_s = sum(x.get("wall_s", 0.0) for x in m) / len(m)
            row.steps = int(m[0].get("steps", 0))
            row.images_seen = int(m[0].get("images_seen", 0))
            continue
        # No pretraining record: fall back to the run folder the evaluation records name.
        named = [
            (r.get("pretrain") or {}).get("run")
            for k, r in evals.items()
            if k[:2] == (row.profile, row.method)
        ]
        runs = sorted({str(run) for run in named if run})
        row.runs = row.runs or runs
        for run in runs:
            info = _run_folder_pretraining(run)
            if info:
                row.steps, row.images_seen = info.get("steps"), info.get("images_seen")
                row.wall_s, row.estimated = info.get("wall_s"), info.get("wall_s") is not None
                break
        if row.method == "random" and row.wall_s is None and not row.failed:
            row.steps, row.images_seen = 0, 0


# ------------------------------------------------------------------------------------------------------
# Rendering


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the optional ``tabulate`` package)."""

    def esc(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    cols = [esc(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(esc(v) for v in row.tolist()) + " |")
    return "\n".join(lines)


_LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "≈": r"$\approx$", "−": "-", "–": "--", "…": r"\ldots{}",
                  "°": r"$^{\circ}$", "‡": r"$\ddagger$"}  # fmt: skip


def to_latex(frame: pd.DataFrame, caption: str | None = None) -> str:
    text = frame.to_latex(index=False, escape=True, caption=caption, column_format="l" * len(frame.columns))
    for symbol, latex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, latex)
    return text


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
    return table_path.with_name(f"{table_path.stem}.manifest.json")


def write_table(table: ResultsTable, path: Path, fmt: str) -> Path:
    """Write one rendering plus the manifest beside it; both atomically. Returns the manifest path."""
    atomic_write_text(path, render(table, fmt))
    mpath = manifest_path(path)
    atomic_write_json(mpath, table.manifest())
    return mpath
