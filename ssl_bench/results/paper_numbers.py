"""The paper's published numbers (``results/paper/*.csv``): what a table cell is compared with.

``table2.csv`` holds Pathak et al. 2016 Table 2; ``later_rows.csv`` later AlexNet rows of the same protocol.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_PACKAGE = Path(__file__).resolve().parent.parent


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

