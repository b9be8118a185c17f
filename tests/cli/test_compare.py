"""``bench compare``: the margin of a method over a baseline, beside the seed-to-seed spread."""

from __future__ import annotations

import json
from pathlib import Path

from ssl_bench.cli import main


def _write(folder: Path, method: str, seed: int, miou: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"id": f"seg-{method}-s{seed}", "task": "seg", "status": "ok", "seed": seed,
           "pretrain": {"method": method}, "metrics": {"miou": miou}, "extra": {"primary_metric": "miou"}}
    (folder / f"{rec['id']}.json").write_text(json.dumps(rec))  # fmt: skip


def test_margin_and_spread_in_display_units(tmp_path, capsys) -> None:
    demo, mini = tmp_path / "demo", tmp_path / "mini"
    _write(demo, "context_encoder", 0, 0.08)
    _write(demo, "random", 0, 0.04)
    for seed, (ce, rnd) in enumerate([(0.07, 0.04), (0.08, 0.04), (0.09, 0.04)]):
        _write(mini, "context_encoder", seed, ce)
        _write(mini, "random", seed, rnd)
    assert main(["compare", "--results", str(demo), "--task", "seg", "--spread-from", str(mini)]) == 0
    out = capsys.readouterr().out
    assert "margin +4.00" in out and "context_encoder 1.00 (n=3)" in out and "random 0.00 (n=3)" in out
    assert "is larger than the largest spread (1.00)" in out


def test_missing_records_are_named(tmp_path, capsys) -> None:
    _write(tmp_path, "random", 0, 0.04)
    assert main(["compare", "--results", str(tmp_path), "--task", "seg"]) == 2
    assert "no successful 'seg' record of method 'context_encoder'" in capsys.readouterr().err


def test_the_demo_spread_folder_holds_three_seeds_of_both_rows() -> None:
    """``make demo`` ends with ``bench compare --spread-from F``: F must hold seg over seeds for both rows."""
    import re

    from ssl_bench.cli.compare import compare

    root = Path(__file__).resolve().parents[2]
    (folder,) = re.findall(r"--spread-from (\S+)", (root / "Makefile").read_text())
    c = compare(root / folder, "seg", "context_encoder", "random", root / folder)
    assert {name: n for name, (_, n) in c["spread"].items()} == {"context_encoder": 3, "random": 3}
    assert c["largest_spread"] > 0
