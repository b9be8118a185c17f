"""Issue #24: a new task or method is one module; the CLI and the table show what it registered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.evaluators import EvalContext, base, register_evaluator
from ssl_bench.methods import PretrainMethod, register_method, registry
from ssl_bench.results.table import build_table, render
from tests.results.test_table import record


@pytest.fixture
def throwaway() -> Iterator[None]:
    """A task and a method registered as a new module would register them, gone after the test."""
    saved_evaluators, saved_methods = dict(base._EVALUATORS), dict(registry._METHODS)

    @register_evaluator("throwaway-task", label="throwaway probe", metric="hit_rate", order=-1,
                        short="throwaway", trivial="a coin toss", chance="the throwaway prior")  # fmt: skip
    def evaluate_throwaway(ctx: EvalContext) -> dict[str, float]:
        return {"hit_rate": 0.5}

    @register_method("throwaway_method")
    class ThrowawayMethod(PretrainMethod):
        supervision = "throwaway signal"
        table_order = -1

        def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            raise NotImplementedError

    yield
    for registered, saved in ((base._EVALUATORS, saved_evaluators), (registry._METHODS, saved_methods)):
        registered.clear()
        registered.update(saved)


def test_eval_help_lists_a_newly_registered_task(throwaway: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "throwaway-task, cls, det, seg, cls-fc6-8, cls-linear, knn, inpaint" in text  # its order first


def test_the_table_shows_what_a_new_task_and_method_registered(throwaway: None) -> None:
    records = [
        record("throwaway-task", "throwaway_method", 0, 0.75, metric="hit_rate", trivial_hit_rate=0.75),
        record("throwaway-task", "context_encoder", 0, 0.9, metric="hit_rate", trivial_hit_rate=0.75),
        record("cls", "context_encoder", 0, 0.5),
    ]
    table = build_table(records, paper={})
    assert table.tasks == ["throwaway-task", "cls"]  # the registered order, not the records' order
    assert [r.method for r in table.rows] == ["throwaway_method", "context_encoder"]
    frame = table.display_frame().set_index("method")
    header = "throwaway-task: throwaway probe, hit_rate"
    assert frame.loc["throwaway_method", "supervision"] == "throwaway signal"
    assert frame.loc["context_encoder", "supervision"] == "context"
    assert frame.loc["throwaway_method", header] == "0.75 (n=1, no CI) °"  # at its trivial level
    assert frame.loc["context_encoder", header] == "0.90 (n=1, no CI)"
    legend = render(table).split("\n\n")[1]
    assert "throwaway a coin toss" in legend and "the throwaway prior for throwaway" in legend


def test_bench_table_keeps_the_records_of_a_new_task_and_method(
    throwaway: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    rec = record("throwaway-task", "throwaway_method", 0, 0.75, metric="hit_rate") | {"id": "r0"}
    (runs / "r0.json").write_text(json.dumps(rec))
    assert main(["table", "--results", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err
    assert "throwaway-task: throwaway probe, hit_rate" in out
    assert "| throwaway_method | throwaway signal |" in out
