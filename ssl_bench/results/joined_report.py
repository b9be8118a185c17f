"""The report of one table joined from several reproduction runs (``bench table --report``; issue #22).

``bench reproduce`` writes a ``REPORT.md`` for its own stages. When one table is made by several commands
(``results/mini/make_table.sh``: one ``bench reproduce`` per method or seed group, each with its own
``--out``), this report covers the joined table, from the records alone:

- how it was made: each part (the folder holding a ``runs/``), its code, device and summed stage time;
- the table;
- the checks a reader needs before trusting an ordering: supervised against random with their 95%
  intervals, random against the task's trivial level, every run's training loss against its chance loss,
  and the supervised trunk fine-tuned against its own linear probe in one AP variant;
- each task's ordering as measured, with the intervals, beside the published order of the same methods;
- "Did pretraining learn?" (memorisation included) and Table 1, as ``bench reproduce`` writes them;
- every stage's wall time and img/s.

Deterministic like ``report.py``: the same records give the same file.
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.atomic import atomic_write_text
from ssl_bench.results.cells import Cell
from ssl_bench.results.report import (
    evidence_section,
    profile_note,
    provenance_lines,
    reference_tables,
    stage_rate,
    table1_section,
)
from ssl_bench.results.report_tables import learning_evidence
from ssl_bench.results.stats import Summary, mean_ci
from ssl_bench.results.table import (
    ResultsTable,
    display_scale,
    format_cell,
    format_duration,
    metric_label,
    record_method,
    render,
    to_markdown,
)

# The contrast the bar is written in: a trunk trained with labels against one that never trained.
HIGH, LOW = "supervised", "random"
FINE_TUNED, PROBED = "cls", "cls-linear"
PROBE_MARGIN = 5.0  # points: fine-tuning must not lose more than this of what the linear probe finds


def part_of(record: dict[str, Any]) -> str:
    """The part a record belongs to: the folder holding its ``runs/`` (else the record's own folder)."""
    path = Path(str(record.get("_path", "")))
    for parent in path.parents:
        if parent.name == "runs":
            return str(parent.parent)
    return str(path.parent)


def _apart(high: Summary, low: Summary) -> str:
    """``yes`` where ``high``'s 95% interval lies wholly above ``low``'s, ``no`` otherwise, ``n < 2`` where
    either has no interval."""
    if high.low is None or low.high is None:
        return "n < 2"
    return "yes" if high.low > low.high else "no"


def _summary_text(s: Summary, digits: int = 1) -> str:
    if s.n == 0:
        return "–"
    ci = f" ± {s.half_width:.{digits}f}" if s.half_width is not None else " (n=1)"
    return f"{s.mean:.{digits}f}{ci}"


def _row_methods(table: ResultsTable) -> list[str]:
    return [r.method for r in table.rows]


def _cell(table: ResultsTable, method: str, task: str) -> Cell | None:
    row = next((r for r in table.rows if r.method == method), None)
    return None if row is None or task not in table.tasks else table.cell(row, task)


def contrast_section(table: ResultsTable, tasks: Sequence[str]) -> list[str]:
    """Supervised against random per task: their cells, whether the intervals are apart, random against
    the trivial level, and how many runs ended above their chance loss."""
    rows = []
    for task in tasks:
        high, low = _cell(table, HIGH, task), _cell(table, LOW, task)
        if high is None or low is None or not high.values or not low.values:
            continue
        trivial = low.trivial
        above_chance = [
            f"{m} {c.not_below_chance}/{len(c.losses)}"
            for m, c in ((HIGH, high), (LOW, low))
            if c.losses
        ]
        rows.append(
            {
                "task": task,
                "metric": metric_label(str(high.metric)),
                HIGH: format_cell(high),
                LOW: format_cell(low),
                f"{HIGH} above {LOW}, intervals apart": _apart(high.summary, low.summary),
                "trivial level": f"{trivial:.2f}" if trivial is not None else "n/a",
                f"{LOW} clear of it": "n/a" if low.reaches_trivial is None else
                ("no" if low.reaches_trivial else "yes"),  # fmt: skip
                "runs not below chance loss": "; ".join(above_chance) or "n/a",
            }
        )
    if not rows:
        return []
    return [
        "## Checks before reading an ordering",
        "",
        f"Each column must separate a trunk trained with labels (`{HIGH}`) from one that never trained "
        f"(`{LOW}`), and `{LOW}` must itself learn: its interval clear of the trivial level (a predictor "
        "that looks at no pixel, from the same test labels) and its runs' final training loss below their "
        "chance loss (the best constant prediction's). A column that fails these measures the optimiser, "
        "not the features.",
        "",
        to_markdown(pd.DataFrame(rows)),
        "",
    ]


def _variant_values(by_id: dict[str, dict[str, Any]], ids: Sequence[str], metric: str) -> list[float]:
    values = [(by_id.get(i, {}).get("metrics") or {}).get(metric) for i in ids]
    return [float(v) * display_scale(metric) for v in values if isinstance(v, int | float)]


def probe_section(table: ResultsTable, records: Sequence[dict[str, Any]]) -> list[str]:
    """The supervised trunk fine-tuned (cls) against its linear probe (cls-linear), in the fine-tuning
    column's AP variant (both evaluators record every variant)."""
    tuned, probed = _cell(table, HIGH, FINE_TUNED), _cell(table, HIGH, PROBED)
    if tuned is None or probed is None or not tuned.values or not probed.values or not tuned.metric:
        return []
    by_id = {str(r.get("id")): r for r in records}
    variant = tuned.metric
    t = mean_ci(_variant_values(by_id, tuned.record_ids, variant))
    p = mean_ci(_variant_values(by_id, probed.record_ids, variant))
    if t.n == 0 or p.n == 0:
        return []
    verdict = "holds" if t.mean >= p.mean - PROBE_MARGIN else "fails"
    return [
        "## Fine-tuning against the linear probe",
        "",
        f"`{HIGH}`, {metric_label(variant)}, both from their records: fine-tuned ({FINE_TUNED}) "
        f"{_summary_text(t)} (n={t.n}) against the linear probe on the frozen trunk ({PROBED}) "
        f"{_summary_text(p)} (n={p.n}); difference {t.mean - p.mean:+.1f}. Fine-tuning must not lose more "
        f"than {PROBE_MARGIN:.0f} points of what the probe finds: {verdict}.",
        "",
    ]


def _ordering(table: ResultsTable, task: str) -> tuple[str, str, str]:
    """(measured order, the published order of the same methods, agreement of the pairs)."""
    cells = [c for m in _row_methods(table) if (c := _cell(table, m, task)) is not None and c.values]
    cells.sort(key=lambda c: -c.summary.mean)
    measured = ""
    for i, c in enumerate(cells):
        if i:
            measured += " > " if _apart(cells[i - 1].summary, c.summary) == "yes" else " ≈ "
        measured += f"{c.method} {_summary_text(c.summary)}"
    published = sorted((c for c in cells if c.comparable), key=lambda c: -c.paper.value)  # type: ignore[union-attr]
    paper = " > ".join(f"{c.method} {c.paper.value:.1f}" for c in published)  # type: ignore[union-attr]
    pairs = list(itertools.combinations(published, 2))  # each pair (higher, lower) in the paper
    same = [(a, b) for a, b in pairs if a.summary.mean > b.summary.mean]
    apart = [(a, b) for a, b in same if _apart(a.summary, b.summary) == "yes"]
    agreement = f"{len(same)} of {len(pairs)} ({len(apart)} with intervals apart)" if pairs else ""
    return measured, paper, agreement


def ordering_section(table: ResultsTable, tasks: Sequence[str]) -> list[str]:
    """Per task, the methods by their mean as measured, beside the published order of the same methods."""
    rows = []
    for task in tasks:
        measured, paper, agreement = _ordering(table, task)
        if measured:
            rows.append({"task": task, "measured (mean ± 95% CI)": measured, "published": paper,
                         "pairs in the published order": agreement})  # fmt: skip
    if not rows:
        return []
    return [
        "## Orderings as measured",
        "",
        "Methods by their mean; `>` where the two neighbours' 95% intervals are apart, `≈` where they "
        "overlap (the data cannot order them). Published: the same methods' numbers in Pathak et al.'s "
        "Table 2 and the later AlexNet rows (`results/paper/`), only where the metric and AP variant are the "
        "table's; pairs: how many pairs of them the measurement orders as published.",
        "",
        to_markdown(pd.DataFrame(rows)),
        "",
    ]


def parts_section(records: Sequence[dict[str, Any]], report_dir: Path) -> list[str]:
    """Each part's records, code, device and summed stage time; then every stage's time and img/s (the
    parts' paths and links relative to ``report_dir``, where the report is written)."""
    by_part: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("task"):
            by_part[part_of(r)].append(r)
    parts, stages = [], []
    for part, recs in sorted(by_part.items()):
        wall = sum(float(r.get("wall_s") or 0.0) for r in recs)
        report = Path(part) / "REPORT.md"
        link = f"[REPORT.md]({os.path.relpath(report, report_dir)})" if report.is_file() else ""
        parts.append(
            {
                "part": os.path.relpath(part, report_dir),
                "records": len(recs),
                "stage time": format_duration(wall) if wall else "",
                "code": ", ".join(sorted({str(r.get("git_commit", ""))[:7] for r in recs} - {""})),
                "device": "; ".join(sorted({str(r.get("device")) for r in recs if r.get("device")})),
                "its report": link,
            }
        )
        for r in sorted(recs, key=lambda r: str(r.get("started_at", ""))):
            stages.append(
                {
                    "part": Path(part).name,
                    "stage": f"{r.get('task')} {record_method(r)} s{r.get('seed', 0)}",
                    "record": r.get("id", ""),
                    "wall time": format_duration(float(r["wall_s"])) if r.get("wall_s") else "",
                    "img/s": stage_rate(r),
                }
            )
    if not parts:
        return []
    return [
        "## Parts and stages",
        "",
        "Each part is one `bench reproduce` run (its REPORT.md gives the command); stage time is the sum of "
        "its records' wall times (pretraining and evaluations; figures and tables are not timed). img/s: an "
        "evaluation's training images per second, a pretraining run's median logged rate.",
        "",
        to_markdown(pd.DataFrame(parts)),
        "",
        to_markdown(pd.DataFrame(stages)),
        "",
    ]


def _header(table: ResultsTable, records: Sequence[dict[str, Any]], command: str) -> list[str]:
    used = [r for r in records if r.get("task") and r.get("status") == "ok"]
    parts = sorted({part_of(r) for r in used})
    profile = ", ".join(table.profiles) or "unknown"
    seeds: dict[str, set[int]] = defaultdict(set)
    for r in used:
        seeds[record_method(r)].add(int(r.get("seed", 0) or 0))
    seed_text = "; ".join(f"{m} {sorted(seeds[m])}" for m in _row_methods(table) if m in seeds)
    return [
        f"# Results table — `{profile}` profile, joined from {len(parts)} reproduction run(s)",
        "",
        f"Made by: `{command}`, over the records of the parts listed at the end (each made by one "
        "`bench reproduce`, whose own REPORT.md gives its command).",
        "",
        f"- Seeds with records: {seed_text or 'none'}.",
        *provenance_lines(used),
        "",
    ]


def _pool_text(records: Sequence[dict[str, Any]]) -> str:
    """The SynthVOC pretraining pools of ``records`` in words (``data.synth_pool`` of their recipes)."""
    pools = {((r.get("recipe") or {}).get("data") or {}).get("synth_pool") for r in records}
    return ", ".join(
        "the dataset's own pool" if p is None else f"{int(p):,} images" for p in sorted(pools, key=str)
    )


def other_evidence_section(
    records: Sequence[dict[str, Any]], methods: Sequence[str], source: str
) -> list[str]:
    """"Did pretraining learn?" of pretraining records outside the table (the same methods on another
    pool: issue #22 asks for memorisation on the old pool and the new one)."""
    pretrains = [r for r in records if r.get("task") == "pretrain" and r.get("status") == "ok"]
    evidence = learning_evidence(pretrains, methods)
    if not evidence:
        return []
    return [
        f"### The same measures for the pretraining runs of `{source}` (pool: {_pool_text(pretrains)})",
        "",
        "Not in the table above: runs that only show how the pool changes memorisation.",
        "",
        evidence,
        "",
    ]


def write_joined_report(
    path: Path,
    table: ResultsTable,
    records: Sequence[dict[str, Any]],
    command: Sequence[str],
    evidence_from: tuple[str, Sequence[dict[str, Any]]] | None = None,
) -> Path:
    """Write the joined table's report to ``path`` (see the module docstring); returns ``path``.

    Args:
        evidence_from: (folder, its records): pretraining runs outside the table whose "Did pretraining
            learn?" numbers are shown after the table's own (e.g. the same methods on another pool).
    """
    methods = _row_methods(table)
    profile = table.profiles[0] if len(table.profiles) == 1 else ""
    lines = [
        *_header(table, records, shlex.join(command)),
        *profile_note(profile),
        "## Results",
        "",
        render(table, "markdown"),
        *contrast_section(table, table.tasks),
        *probe_section(table, records),
        *ordering_section(table, table.tasks),
        *evidence_section(records, methods, figures=False),  # this report has no Figures section
        *(other_evidence_section(evidence_from[1], methods, evidence_from[0]) if evidence_from else []),
        *table1_section(records, methods),
        "## The paper's numbers",
        "",
        reference_tables(),
        *parts_section(records, Path(path).parent),
    ]
    atomic_write_text(Path(path), "\n".join(lines))
    return Path(path)
