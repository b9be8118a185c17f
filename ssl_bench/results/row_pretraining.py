"""A table row's pretraining: time, steps and images seen, from ``task: pretrain`` records (``bench
reproduce`` writes them), else estimated from the run folder an evaluation record names."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ssl_bench.errors import BenchError
from ssl_bench.results.cells import Row, record_method
from ssl_bench.runtime.run_folder import RunFolder


def newest_first(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (str(r.get("started_at") or ""), str(r.get("id"))), reverse=True)



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


def fill_pretraining(
    rows: list[Row], pretrains: list[dict[str, Any]], evals: dict[tuple[str, str, str, int], dict[str, Any]]
) -> None:
    """Pretraining time / steps / images seen per row: mean over the row's pretraining records."""
    by_row: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in newest_first(pretrains):
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

