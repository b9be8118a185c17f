"""Issue #22: the table marks cells that measure nothing, from synthetic records."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from ssl_bench.results.table import CHANCE_MARK, TRIVIAL_MARK, build_table, format_cell, render
from tests.results.test_table import record


def _table(*records: dict):
    return build_table(list(records), paper={})


def test_a_cell_whose_interval_reaches_its_trivial_level_is_marked():
    table = _table(
        # Two seeds 10 and 12 (%), trivial 11: the interval (± 12.7) reaches it.
        record("cls", "random", 0, 0.10, trivial_map_sklearn=0.11),
        record("cls", "random", 1, 0.12, trivial_map_sklearn=0.11),
        # Two seeds 50 and 50.2: the interval 50.1 ± 1.3 stays far above 11.
        record("cls", "context_encoder", 0, 0.50, trivial_map_sklearn=0.11),
        record("cls", "context_encoder", 1, 0.502, trivial_map_sklearn=0.11),
    )
    (ce, rnd) = sorted(table.rows, key=lambda r: r.method)
    random_cell, ce_cell = table.cell(rnd, "cls"), table.cell(ce, "cls")
    assert random_cell.trivial == pytest.approx(11.0) and random_cell.reaches_trivial
    assert format_cell(random_cell).endswith(TRIVIAL_MARK)
    assert ce_cell.reaches_trivial is False and TRIVIAL_MARK not in format_cell(ce_cell)


def test_one_seed_is_marked_when_its_value_is_at_the_trivial_level():
    at = _table(record("seg", "random", 0, 0.0385, trivial_miou=0.0385))
    above = _table(record("seg", "random", 0, 0.0386, trivial_miou=0.0385))
    assert at.cell(at.rows[0], "seg").marks == TRIVIAL_MARK
    assert above.cell(above.rows[0], "seg").marks == ""


def test_a_run_whose_training_loss_is_not_below_chance_is_marked():
    table = _table(
        record("cls", "random", 0, 0.5, train_loss=4.2, chance_loss=4.0),  # above chance: ‡
        record("cls", "random", 1, 0.5, train_loss=3.0, chance_loss=4.0),
        record("cls", "supervised", 0, 0.6, train_loss=3.0, chance_loss=4.0),
    )
    cells = {r.method: table.cell(r, "cls") for r in table.rows}
    assert cells["random"].not_below_chance == 1 and cells["random"].marks == CHANCE_MARK
    assert cells["supervised"].not_below_chance == 0 and cells["supervised"].marks == ""


def test_records_without_the_fields_render_without_marks_and_say_n_a():
    table = _table(record("cls", "random", 0, 0.5), record("cls", "random", 1, 0.52))
    c = table.cell(table.rows[0], "cls")
    assert c.trivial is None and c.reaches_trivial is None and c.not_below_chance is None
    text = render(table, "markdown")
    assert TRIVIAL_MARK not in text.split("\n\n")[0]  # no mark in the table itself
    assert "Trivial levels (same units as the cells): cls n/a." in text
    frame = pd.read_csv(io.StringIO(render(table, "csv")))
    assert frame["cls.trivial"].isna().all() and frame["cls.not_below_chance"].isna().all()


def test_csv_and_legend_carry_the_trivial_level_and_the_losses():
    table = _table(
        record("cls", "random", 0, 0.10, trivial_map_sklearn=0.11, train_loss=4.1, chance_loss=4.0),
        record("seg", "random", 0, 0.05, trivial_miou=0.0385),
    )
    frame = pd.read_csv(io.StringIO(render(table, "csv")))
    row = frame.iloc[0]
    assert row["cls.trivial"] == pytest.approx(11.0) and row["seg.trivial"] == pytest.approx(3.85)
    assert bool(row["cls.reaches_trivial"]) and not bool(row["seg.reaches_trivial"])
    assert row["cls.train_loss"] == pytest.approx(4.1) and row["cls.chance_loss"] == pytest.approx(4.0)
    assert row["cls.not_below_chance"] == 1
    text = render(table, "markdown")
    assert f"10.0 (n=1, no CI) {TRIVIAL_MARK}{CHANCE_MARK}" in text
    assert "cls 11.00; seg 3.85" in text
    assert r"$\ddagger$" in render(table, "latex")
    manifest_cell = next(c for c in table.manifest()["cells"] if c["task"] == "cls")
    assert manifest_cell["trivial"] == pytest.approx(11.0) and manifest_cell["not_below_chance"] == 1
