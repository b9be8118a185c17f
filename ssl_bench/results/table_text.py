"""The table as text: column headers, the legend's words for the marks, Markdown and LaTeX."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ssl_bench.results.cells import CHANCE_MARK, TRIVIAL_MARK, metric_label
from ssl_bench.results.registered import legend_groups, task_label


def column_header(task: str, metric: str | None) -> str:
    """``cls: classification, mAP, sklearn AP (%)``: the task, its registered label, the column's metric."""
    label = task_label(task)
    return f"{task}: {label}, {metric_label(metric)}" if metric else f"{task}: {label}"


def trivial_legend(confidence: float, levels: dict[str, list[float]]) -> list[str]:
    """The marks' explanation (issue #22), in the words the tasks registered, and each column's trivial
    level (``levels``: the distinct levels of the column's cells, sorted)."""
    shown = []
    for task, found in levels.items():
        text = "n/a" if not found else f"{found[0]:.2f}"
        if len(found) > 1:
            text += f" to {found[-1]:.2f}"
        shown.append(f"{task} {text}")
    predictors = ", ".join(f"{'/'.join(names)} {words}" for words, names in legend_groups("trivial").items())
    chance = legend_groups("chance")
    none = chance.pop("", [])
    priors = ", ".join(f"{words} for {'/'.join(names)}" for words, names in chance.items())
    priors = "; ".join(part for part in (priors, none and f"{'/'.join(none)} has none") if part)
    return [
        f"{TRIVIAL_MARK}: the cell's {int(round(confidence * 100))}% interval (one seed: its value) "
        "reaches its trivial level, the score of a predictor that looks at no pixel, computed from the "
        f"same test labels{': ' + predictors if predictors else ''}. "
        f"{CHANCE_MARK}: a run's final training loss is not below its chance loss (the loss of the best "
        f"constant prediction{': ' + priors if priors else ''}). "
        "Marked cells measure nothing; records made before these fields existed get no mark (n/a).",
        "Trivial levels (same units as the cells): " + "; ".join(shown) + ".",
    ]


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
