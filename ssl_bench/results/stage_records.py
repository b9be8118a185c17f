"""The result records a ``bench reproduce`` writes into ``<out>/runs``, besides the evaluators' own.

The table and the report read only these records, so a stage that failed still leaves one (its cells show
as failed): a pretraining stage leaves a ``task: pretrain`` record (time, steps, images seen) or an error
record, and an evaluation whose pretraining failed leaves a blocked error record. A record that a stage
replaces moves to ``<out>/stages/stale/``, so ``runs/`` holds one current record per stage. Each run also
leaves ``<out>/stages/last_run.json``: its options and how each stage went, finished or not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ssl_bench.atomic import atomic_write_json
from ssl_bench.provenance import device_description, git_commit, package_versions
from ssl_bench.recipes import config_hash
from ssl_bench.records import utc_now, write_record
from ssl_bench.results.stage_plan import ARCH
from ssl_bench.results.stages import ReproduceOptions, StageResult
from ssl_bench.runtime.distributed import resolve_device
from ssl_bench.runtime.run_folder import RunFolder

__all__ = ["StageRecords"]


class StageRecords:
    """One reproduction's records: looked up by id, moved aside when replaced, written for its stages.

    Args:
        options: the reproduction's options (its folder; profile, seed policy and device go into records).
        manifest: manifest hash of a data folder (the planner's, computed once per folder).
    """

    def __init__(self, options: ReproduceOptions, manifest: Callable[[Path], str]) -> None:
        self.options = options
        self.runs_dir = Path(options.out) / "runs"
        self.stages_dir = Path(options.out) / "stages"
        self.manifest = manifest

    def file(self, record_id: str | None) -> Path | None:
        """Where a record of this reproduction lives (markers keep ids, not paths: the cwd may change)."""
        return self.runs_dir / f"{record_id}.json" if record_id else None

    def has(self, record_id: str | None) -> bool:
        path = self.file(record_id)
        return path is not None and path.is_file()

    def stale(self, record_id: str | None) -> None:
        """Move a replaced record out of ``runs/`` (kept for the curious, outside the table's input)."""
        if self.has(record_id):
            dest = self.stages_dir / "stale" / f"{record_id}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.file(record_id).replace(dest)  # type: ignore[union-attr]

    def ensure(self, record: dict[str, Any] | None) -> None:
        """A cached pretraining stage whose summary record was deleted gets it back (same content)."""
        if record and record.get("id") and not self.has(record["id"]):
            write_record(dict(record), self.runs_dir)

    def write_pretrain(
        self,
        method: str,
        seed: int,
        run: RunFolder,
        summary: dict[str, Any],
        wall_s: float,
        weights_sha: str,
        key: str,
        started: str,
    ) -> dict[str, Any]:
        """The ``task: pretrain`` record: what the table needs (time, steps, images seen) and provenance."""
        config, options = run.config, self.options
        train, prov = config.get("train") or {}, config.get("provenance") or {}
        steps = int(summary.get("steps", train.get("steps", 0)) or 0)
        world = int(prov.get("world_size", 1) or 1)
        images_seen = (
            steps * int(train.get("batch_size", 0) or 0) * world
            if steps
            else int((config.get("model") or {}).get("num_images", 0) or 0)
        )  # datainit: images used for the init
        evidence = run.learning_evidence()  # conv1 structure, final pretext loss / accuracy, img/s
        data = config.get("data") or {}
        root = data.get("resolved_root")
        record = {
            "task": "pretrain", "status": "ok", "seed": seed, "profile": options.profile,
            "metrics": {"wall_s": round(wall_s, 3), "steps": steps, "images_seen": images_seen,
                        **evidence},
            "extra": {"primary_metric": "wall_s", "world_size": world, "stage_key": key,
                      "pretrain_seed_policy": "per seed" if options.pretrain_per_seed else "once (seed 0)"},
            "recipe": config, "recipe_hash": config_hash(config),
            "pretrain": {"method": method, "steps": steps, "config_hash": config_hash(config),
                         "run": str(run.path),
                         "images": data.get("num_images")},
            "weights": str(run.encoder_path), "weights_sha256": weights_sha, "arch": ARCH,
            "data": {"root": root, "manifest_hash": self.manifest(Path(root)) if root else None,
                     "synthvoc": data.get("source", "synthvoc") == "synthvoc" if root else None},
            "git_commit": git_commit(), "versions": package_versions(),
            "device": device_description(resolve_device(prov.get("device") or options.device)),
            "wall_s": round(wall_s, 3), "started_at": started,
        }  # fmt: skip
        write_record(record, self.runs_dir)
        return record

    def write_pretrain_error(
        self,
        method: str,
        seed: int,
        config: dict[str, Any] | None,
        error: str,
        wall_s: float,
        tb: str | None = None,
        started: str | None = None,
    ) -> dict[str, Any]:
        """A failed pretraining stage's record (config None when its recipe could not be resolved)."""
        record = {
            "task": "pretrain",
            "status": "error",
            "error": error,
            "seed": seed,
            "profile": self.options.profile,
            "pretrain": {"method": method},
            "recipe": config,
            "git_commit": git_commit(),
            "versions": package_versions(),
            "wall_s": round(wall_s, 3),
            "started_at": started or utc_now(),
        }
        if tb:
            record["traceback"] = tb
        return self._write(record)

    def write_blocked(self, task: str, method: str, run: Path, seed: int, error: str) -> dict[str, Any]:
        """An evaluation that could not run because its pretraining failed: ``error`` names the cause."""
        record = {
            "task": task,
            "status": "error",
            "error": error,
            "seed": seed,
            "profile": self.options.profile,
            "pretrain": {"method": method, "run": str(run)},
            "weights": None,
            "started_at": utc_now(),
        }
        return self._write(record)

    def write_last_run(self, results: list[StageResult], **status: Any) -> None:
        """``stages/last_run.json``: the options, whether the run finished, and how each stage went."""
        atomic_write_json(
            self.stages_dir / "last_run.json",
            {
                "options": _jsonable(asdict(self.options)),
                **status,
                "stages": [asdict(r) for r in results],
            },
        )

    def _write(self, record: dict[str, Any]) -> dict[str, Any]:
        path = write_record(record, self.runs_dir)
        record["record_path"] = str(path)
        return record


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))
