"""Result records: one JSON file per ``bench eval`` run, carrying its provenance. Tables render from these.

Record fields::

    id, status ("ok" | "error"), error, task, metrics {name: float}, extra {…}, seed, profile,
    recipe {…}, recipe_hash, weights, weights_sha256, arch, pretrain {method, steps, config_hash, …},
    data {root, manifest_hash, synthvoc}, git_commit, versions {…}, device, wall_s, peak_mem_mb,
    images_per_s, started_at (UTC ISO 8601)
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ssl_bench.atomic import atomic_write_json

RECORDS_DIR = Path("results") / "runs"
MANIFEST_SUFFIX = ".manifest.json"  # a results table's manifest beside it: not a record


def manifest_hash(root: Path) -> str:
    """SHA-256 over the sorted list of (relative path, size) of every file under ``root``.

    Cheap (stat only, no reads) and changes whenever a file is added, removed or resized.
    """
    h = hashlib.sha256()
    entries = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            entries.append(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}")
    for line in sorted(entries):
        h.update(line.encode() + b"\n")
    return h.hexdigest()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_id(record: dict[str, Any]) -> str:
    """Stable, readable id: task, weights' method, seed and a short hash of the whole record."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:10]
    method = (record.get("pretrain") or {}).get("method") or Path(str(record.get("weights"))).stem
    return f"{record['task']}-{method}-s{record.get('seed', 0)}-{digest}"


def write_record(record: dict[str, Any], out_dir: Path = RECORDS_DIR) -> Path:
    record.setdefault("id", record_id(record))
    path = Path(out_dir) / f"{record['id']}.json"
    atomic_write_json(path, record)
    return path


def load_records(folder: Path = RECORDS_DIR) -> list[dict[str, Any]]:
    """Every record under ``folder`` (recursively); unreadable files become error records, not crashes.

    A results table's manifest (``*.manifest.json``, written beside each table) is not a record: skipped.
    """
    out = []
    for path in sorted(Path(folder).rglob("*.json")):
        if path.name.endswith(MANIFEST_SUFFIX):
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            rec = {"id": path.stem, "status": "error", "error": f"unreadable record {path}: {e}"}
        rec["_path"] = str(path)
        out.append(rec)
    return out
