"""``bench compare``: one method's margin over a baseline on one task, against the seed-to-seed spread.

``make demo`` ends with it: the demo's context encoder minus random on its one seed, beside the spread of
each over seeds measured by the committed mini table's runs (``results/mini/parts``, read recursively: the
same recipes, pretraining variance included), so a reader can tell a margin from noise.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ssl_bench.errors import BenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="a method's margin over a baseline on one task, beside the seed-to-seed spread",
        description="Reads result records (never live runs). The margin is the difference of the mean "
        "scores in --results; the spread is each method's standard deviation over seeds in --spread-from.",
    )
    p.add_argument("--results", type=Path, required=True, help="folder of result records to compare")
    p.add_argument("--task", required=True, help="task, e.g. seg")
    p.add_argument("--method", default="context_encoder", help="default: context_encoder")
    p.add_argument("--baseline", default="random", help="default: random")
    p.add_argument(
        "--spread-from", type=Path,
        help="records measured over several seeds, read recursively (results/mini/parts)",
    )
    p.set_defaults(func=run)


def _scores(
    records: list[dict[str, Any]], task: str, method: str, metric: str | None
) -> tuple[list[float], str]:
    from ssl_bench.results.registered import preferred_metric
    from ssl_bench.results.table import record_method

    ok = [r for r in records if r.get("task") == task and r.get("status") == "ok"]
    ok = [r for r in ok if record_method(r) == method]
    metric = metric or preferred_metric(task) or next(
        (str((r.get("extra") or {}).get("primary_metric")) for r in ok), ""
    )
    return [float(r["metrics"][metric]) for r in ok if metric in (r.get("metrics") or {})], metric


def _std(xs: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def compare(
    results: Path, task: str, method: str, baseline: str, spread_from: Path | None
) -> dict[str, Any]:
    """The numbers ``bench compare`` prints (in the metric's display unit: % for fractions)."""
    from ssl_bench.records import load_records
    from ssl_bench.results.table import display_scale, metric_label

    records = load_records(results)
    ours, metric = _scores(records, task, method, None)
    base, _ = _scores(records, task, baseline, metric)
    for name, xs in ((method, ours), (baseline, base)):
        if not xs:
            raise BenchError(f"--results {results}: no successful '{task}' record of method '{name}'")
    scale = display_scale(metric)
    out: dict[str, Any] = {
        "task": task, "metric": metric_label(metric), "method": method, "baseline": baseline,
        "method_score": scale * sum(ours) / len(ours), "baseline_score": scale * sum(base) / len(base),
        "n": (len(ours), len(base)),
    }  # fmt: skip
    out["margin"] = out["method_score"] - out["baseline_score"]
    if spread_from is not None:
        spread_records = load_records(spread_from)
        spreads = {}
        for name in (method, baseline):
            xs, _ = _scores(spread_records, task, name, metric)
            std = _std(xs)
            if std is None:
                raise BenchError(f"--spread-from {spread_from}: fewer than 2 seeds of '{task}' for '{name}'")
            spreads[name] = (scale * std, len(xs))
        out["spread"] = spreads
        out["largest_spread"] = max(s for s, _ in spreads.values())
    return out


def run(args: argparse.Namespace) -> int:
    c = compare(args.results, args.task, args.method, args.baseline, args.spread_from)
    print(
        f"{c['task']} ({c['metric']}): {c['method']} {c['method_score']:.2f} - {c['baseline']} "
        f"{c['baseline_score']:.2f} = margin {c['margin']:+.2f}  "
        f"(records in {args.results}; n = {c['n'][0]}, {c['n'][1]})"
    )
    if "spread" in c:
        parts = ", ".join(f"{m} {s:.2f} (n={n})" for m, (s, n) in c["spread"].items())
        print(f"seed-to-seed spread (std over the seeds) in {args.spread_from}: {parts}")
        verdict = "larger" if abs(c["margin"]) > c["largest_spread"] else "NOT larger"
        print(f"the margin is {verdict} than the largest spread ({c['largest_spread']:.2f})")
    return 0
