"""The two record tables of ``REPORT.md``: did pretraining learn (per method), and the paper's Table 1.

Both are computed from the result records alone (mean ± 95% CI) and rendered as Markdown; "" when no record
holds their numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ssl_bench.results.stats import mean_ci
from ssl_bench.results.table import read_paper_csv, record_method, to_markdown
from ssl_bench.runtime.run_folder import RunFolder, memorisation_evidence

# (record key, column, digits) of the learning-evidence table; pretraining records hold the first ones
# (``RunFolder.learning_evidence``), the ``inpaint`` evaluator's records the held-out hole PSNR.
_EVIDENCE = (
    ("conv1_structure", "conv1 structure", 3),
    ("final_loss", "final pretext loss", 3),
    ("final_accuracy", "pretext accuracy", 3),
    ("img_s", "pretraining img/s", 0),
    ("sample_psnr_db", "training grid hole PSNR (dB)", 2),
    ("fill_psnr_db", "  mean fill (dB)", 2),
    ("psnr_db", "held-out centre hole PSNR (dB)", 2),
    ("fill_psnr_db_heldout", "  mean fill (dB) ", 2),
    # Issue #22 (``training/memorisation.py``): the pretext on pool images trained on vs held-out ones.
    ("memorisation_train_loss", "memorisation: train loss", 3),
    ("memorisation_heldout_loss", "memorisation: held-out loss", 3),
    ("memorisation_train_accuracy", "memorisation: train accuracy", 3),
    ("memorisation_heldout_accuracy", "memorisation: held-out accuracy", 3),
)


def _evidence_cell(values: Sequence[float], digits: int) -> str:
    if not values:
        return ""
    s = mean_ci(values)
    text = f"{s.mean:.{digits}f}"
    if s.half_width is not None:
        text += f" ± {s.half_width:.{digits}f}"
    return f"{text} (n={s.n})"


def _run_memorisation(record: dict[str, Any]) -> dict[str, float]:
    """The memorisation numbers of a pretraining record made before runs wrote them: from the run's own
    memorisation.json where ``bench memorisation`` has since measured it ({} otherwise)."""
    run = (record.get("pretrain") or {}).get("run")
    return memorisation_evidence(RunFolder(run).memorisation()) if run else {}


def learning_evidence(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Markdown table, one row per method: mean ± 95% CI over seeds of each number that says whether
    pretraining learnt (conv1 structure of encoder.pt, the pretext's final loss / accuracy, its img/s,
    the training grids' and the held-out centre hole's PSNR against the mean fill). "" if none."""
    values: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for r in records:
        method = record_method(r)
        if method not in values or r.get("status") != "ok":
            continue
        metrics = dict(r.get("metrics") or {})
        if r.get("task") == "inpaint":
            if "psnr_db" not in metrics:  # no decoder: the record holds the NN and fill baselines only
                continue
            metrics = {"psnr_db": metrics["psnr_db"], "fill_psnr_db_heldout": metrics.get("fill_psnr_db")}
        elif r.get("task") != "pretrain":
            continue
        elif not any(key.startswith("memorisation_") for key in metrics):
            metrics |= _run_memorisation(r)
        for key, *_ in _EVIDENCE:
            if isinstance(metrics.get(key), (int, float)):
                values[method].setdefault(key, []).append(float(metrics[key]))
    rows = [
        {"method": m, **{col: _evidence_cell(v.get(key, []), d) for key, col, d in _EVIDENCE}}
        for m, v in values.items()
        if v
    ]
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    frame = frame.loc[:, [c for c in frame.columns if c == "method" or frame[c].astype(bool).any()]]
    return to_markdown(frame)


# Pathak et al. 2016, Table 1: the ``inpaint`` evaluator's rows, as (metric prefix, row name). The network
# and NN on its features belong to the pretraining method; the others are baselines of the images alone.
_TABLE1_ROWS = (
    ("", "network"),
    ("nn_", "NN-inpainting, network features"),
    ("nn_hog_", "NN-inpainting, HOG features"),
    ("telea_", "Telea (OpenCV)"),
    ("ns_", "Navier–Stokes (OpenCV)"),
    ("biharmonic_", "biharmonic (scikit-image)"),
    ("fill_", "mean fill"),
)
_TABLE1_METRICS = (("l1_pct", "mean L1 %"), ("l2_pct", "mean L2 %"), ("psnr_db", "PSNR dB"))
# Not in the paper (issue #15): detail of the fills, 1 = the originals' (``ssl_bench.metrics.sharpness``);
# optional, records older than the metric have none.
_SHARPNESS = ("sharpness", "sharpness (fill / original)")
_TABLE1_PAPER = "Pathak et al. 2016, Paris StreetView: L1 % / L2 % / PSNR dB"


def _paper_table1() -> dict[tuple[str, str], str]:
    """``{(metric prefix, method_key): "L1 / L2 / PSNR"}`` from ``results/paper/table1.csv``; an empty
    ``method_key`` is a baseline's (any record's). {} when the file cannot be read."""
    try:
        frame = read_paper_csv("table1.csv")
    except (OSError, KeyError):
        return {}
    return {
        (str(row["suite_metric_prefix"]), str(row["method_key"])):
            f"{float(row['l1_pct']):.2f} / {float(row['l2_pct']):.2f} / {float(row['psnr_db']):.2f}"
        for _, row in frame.iterrows()
    }  # fmt: skip


def _table1_row(prefix: str, name: str, method: str, extra: dict[str, Any]) -> tuple[str, str]:
    """(row name, the method that made the row, "" for a baseline of the images alone)."""
    if prefix == "":
        return f"network: {method}", method
    if prefix == "nn_":
        feature = str(extra.get("nn_feature", ""))
        if not feature or feature.startswith("pixels"):  # runs without a decoder: raw pixels of the context
            return "NN-inpainting, raw pixels", ""
        return f"NN-inpainting, {method} features ({feature.split(' ')[0]})", method
    return name, ""


def inpainting_table(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Markdown Table 1 from the ``inpaint`` records: one row per network and per baseline (held-out images
    and image size in a column), mean ± 95% CI of mean L1 %, mean L2 % and PSNR dB, and the paper's numbers
    where Table 1 has the row. "" if there are no inpaint records.

    A network's row averages its method's records (one per seed; a re-run replaces the older record of its
    seed). A baseline's row counts each evaluation of the same images once: every record of those images
    holds the same baseline numbers, whatever its method or seed.
    """
    paper = _paper_table1()
    # (row position, method position, row name, images) → (paper key, {evaluation: {metric: value}})
    rows: dict[tuple[int, int, str, str], tuple[tuple[str, str], dict[Any, dict[str, float]]]] = {}
    for r in sorted(records, key=lambda r: str(r.get("started_at", ""))):  # newest last: it replaces
        method = record_method(r)
        if r.get("task") != "inpaint" or r.get("status") != "ok" or method not in methods:
            continue
        metrics, extra = r.get("metrics") or {}, r.get("extra") or {}
        test_data = extra.get("test_data") or f"{extra.get('test_images', '?')} test images"
        images = f"{test_data}, {extra.get('image_size', '?')} px"
        for position, (prefix, name) in enumerate(_TABLE1_ROWS):
            values = {m: metrics.get(prefix + m) for m, _ in _TABLE1_METRICS}
            if not all(isinstance(v, (int, float)) for v in values.values()):
                continue
            sharpness = metrics.get(prefix + _SHARPNESS[0])
            if isinstance(sharpness, (int, float)) and math.isfinite(sharpness):
                values[_SHARPNESS[0]] = sharpness
            row, owner = _table1_row(prefix, name, method, extra)
            if owner:
                evaluation: Any = (r.get("profile"), r.get("seed"))
            else:
                evaluation = ((r.get("data") or {}).get("manifest_hash"), extra.get("nn_database"), images)
            key = (position, list(methods).index(owner) if owner else len(methods), row, images)
            rows.setdefault(key, ((prefix, owner), {}))[1][evaluation] = values
    if not rows:
        return ""
    table = []
    for key in sorted(rows):
        paper_key, evaluations = rows[key]
        cells = {col: _evidence_cell([v[m] for v in evaluations.values()], 2) for m, col in _TABLE1_METRICS}
        m, col = _SHARPNESS
        cells[col] = _evidence_cell([v[m] for v in evaluations.values() if m in v], 2)
        table.append(
            {"row": key[2], "held-out images": key[3], **cells, _TABLE1_PAPER: paper.get(paper_key, "")}
        )
    frame = pd.DataFrame(table)
    if not frame[_SHARPNESS[1]].astype(bool).any():
        frame = frame.drop(columns=_SHARPNESS[1])
    return to_markdown(frame)
