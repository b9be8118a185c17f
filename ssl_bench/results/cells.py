"""A results-table cell: the records behind one (method, task), their statistics and their marks.

Values are in display units (:func:`display_scale`: percent for fractions). A cell's marks (issue #22):
``°`` where its 95% interval (one seed: its value) reaches the trivial level its records hold
(``trivial_<metric>`` of the column's metric), ``‡`` where a run's final training loss (``train_loss``) is
not below its chance loss (``chance_loss``); records without those fields give no mark.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_bench.results.paper_numbers import PaperNumber
from ssl_bench.results.stats import Summary, mean_ci

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



def short_error(text: str, limit: int = 80) -> str:
    line = " ".join(str(text or "error").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"



def mean_or_none(values: Iterable[float]) -> float | None:
    xs = list(values)
    return math.fsum(xs) / len(xs) if xs else None


def rounded(x: float | None, digits: int) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), digits)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "< 1 s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def pretraining_text(row: Row) -> str:
    if row.wall_s is None:
        return "failed" if row.failed else "–"
    text = ("≈ " if row.estimated else "") + format_duration(row.wall_s)
    if row.steps:
        text += f", {row.steps:,} steps"
    return text


def paper_text(c: Cell) -> str:
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
        return f"failed: {short_error(c.failed[0]['error'], 60)}" + (
            f" (+{len(c.failed) - 1} more)" if len(c.failed) > 1 else ""
        )
    s = c.summary
    digits = 1 if c.metric is None or display_scale(c.metric) == 100.0 or abs(s.mean) >= 10 else 2
    text = f"{s.mean:.{digits}f}"
    text += f" ± {s.half_width:.{digits}f} (n={s.n})" if s.half_width is not None else " (n=1, no CI)"
    if c.failed:
        text += f"; {len(c.failed)} failed"
    return text + (f" {c.marks}" if c.marks else "")



def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def collect_trivial(c: Cell, metrics: dict[str, Any]) -> None:
    """A used record's trivial level of the column's metric and its (train_loss, chance_loss), where it
    holds them (records older than issue #22 do not)."""
    trivial = metrics.get(f"trivial_{c.metric}")
    if _finite(trivial):
        c.trivial_values.append(float(trivial) * display_scale(str(c.metric)))
    train, chance = metrics.get("train_loss"), metrics.get("chance_loss")
    if _finite(train) and _finite(chance):
        c.losses.append((float(train), float(chance)))

