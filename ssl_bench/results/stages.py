"""The stages of ``bench reproduce``: what to run, how each stage went, and when one can be skipped.

Every stage (pretrain, eval, figure) leaves one marker, a JSON file written atomically after the stage
finished, in one format::

    {"status": "ok" | "error" | "blocked",   how the stage's last attempt ended
     "key": "<sha256>" | null,                 hash of everything that determines its output (null: unknown)
     "error": "<message>" | null,
     "record_id": "<id>" | null,               its result record in <out>/runs, if it writes one
     ...}                                      fields of its own (e.g. a pretraining stage's weights hash)

A stage is done when its marker holds status ok and the same key as now (and its output still exists,
which the stage checks). The report and the stage table read only these fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_bench.atomic import atomic_write_json
from ssl_bench.results import DEFAULT_METHODS, DEFAULT_TASKS


@dataclass
class ReproduceOptions:
    """What to reproduce and where (``bench reproduce`` flags).

    Attributes:
        profile: recipe profile, ``smoke`` or ``paper``.
        seeds: evaluation seeds 0…seeds−1.
        only_seeds: run only these of them (None: all), so that one seed's stages can be a command of its own;
            ``bench table`` joins the commands' records.
        methods / tasks: table rows and columns.
        out: output folder (records in ``out/runs``, stage outputs in ``out/stages``).
        data_pretrain: pretraining image folder (default: each recipe's source, SynthVOC for smoke).
        data_voc: task → VOC root; key ``""`` is the default for every task (None: generated SynthVOC).
        device: ``cpu``, ``cuda`` … (default: cuda if available).
        pretrain_per_seed: pretrain once per evaluation seed instead of once (seed 0).
        retry_failed: re-run stages whose last attempt failed (else keep their error records).
        figures: draw the figures.
        progress: progress bars and per-stage lines.
        pretrain_recipes / eval_recipes: recipe files replacing the profile's (method / task → path).
        pretrain_overrides / eval_overrides: values merged on top of the recipes (method / task → mapping).
        command: the command line, written into the report.
    """

    profile: str = "smoke"
    seeds: int = 2
    only_seeds: Sequence[int] | None = None
    methods: Sequence[str] = DEFAULT_METHODS
    tasks: Sequence[str] = DEFAULT_TASKS
    out: Path = Path("results")
    data_pretrain: str | None = None
    data_voc: Mapping[str, Path] = field(default_factory=dict)
    device: str | None = None
    pretrain_per_seed: bool = False
    retry_failed: bool = True
    figures: bool = True
    progress: bool = True
    pretrain_recipes: Mapping[str, Path] = field(default_factory=dict)
    eval_recipes: Mapping[str, Path] = field(default_factory=dict)
    pretrain_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    eval_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    command: str = ""

    def seed_list(self) -> list[int]:
        """The evaluation seeds this run evaluates."""
        seeds = list(range(self.seeds))
        return seeds if self.only_seeds is None else [s for s in seeds if s in set(self.only_seeds)]

    def pretrain_seeds(self) -> list[int]:
        return self.seed_list() if self.pretrain_per_seed else [0]


@dataclass
class StageResult:
    """What happened to one stage in this run: ``cached``, ``ran``, ``failed`` or ``blocked``."""

    kind: str
    name: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    record_id: str | None = None
    key: str | None = None


@dataclass
class PretrainOutcome:
    """A pretraining stage's outcome, as the evaluation and figure stages of its method need it."""

    method: str
    seed: int
    run: Path
    key: str | None = None
    weights: Path | None = None
    weights_sha256: str | None = None
    error: str | None = None


class StageMarker:
    """One stage's marker file (the format in the module docstring): what the last attempt left, and the
    write that records this one.

    Attributes:
        path: the marker file.
        previous: the marker as the last attempt left it ({} when there is none or it is unreadable).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.previous = read_json(self.path) or {}

    @property
    def record_id(self) -> str | None:
        """The record the last attempt wrote."""
        return self.previous.get("record_id")

    def done(self, key: str | None) -> bool:
        """The last attempt succeeded with these inputs (the stage still checks that its output exists)."""
        return key is not None and self.previous.get("status") == "ok" and self.previous.get("key") == key

    def failed(self, key: str | None) -> bool:
        """The last attempt failed with these inputs (re-run it only when failures are retried)."""
        return key is not None and self.previous.get("status") == "error" and self.previous.get("key") == key

    def write(
        self,
        status: str,
        key: str | None,
        error: str | None = None,
        record_id: str | None = None,
        **fields: Any,
    ) -> None:
        """Record how this attempt ended; call it last, after the stage's outputs are written."""
        marker = {"status": status, "key": key, "error": error, "record_id": record_id, **fields}
        atomic_write_json(self.path, marker)
        self.previous = marker


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object, or None when it is missing or unreadable (a marker that was never finished)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
