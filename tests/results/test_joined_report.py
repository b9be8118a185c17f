"""The report of a table joined from several reproduction runs (`bench table --report`), on hand-made
records whose intervals, orderings and probe gap are computed by hand here."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_bench.cli import main
from ssl_bench.records import load_records, write_record

T975_2 = 4.30265273  # t_{0.975, 2}
HW = T975_2 * 2.0 / 3**0.5  # the half-width of three values 2 points apart (sd 2): 4.97


def rec(task: str, method: str, seed: int, metrics: dict[str, float], wall_s: float = 60.0) -> dict:
    metric = {"cls": "map_sklearn", "det": "map_voc07_11point", "seg": "miou", "cls-linear": "map_area"}[task]
    return {
        "task": task, "seed": seed, "profile": "mini", "status": "ok",
        "started_at": f"2026-01-01T00:0{seed}:00+00:00", "weights": f"runs/{method}/encoder.pt",
        "pretrain": {"method": method, "run": f"runs/{method}"}, "metrics": metrics,
        "extra": {"primary_metric": metric}, "wall_s": wall_s, "images_per_s": 10.0,
        "git_commit": "abcdef0123", "device": "cpu (test)",
    }  # fmt: skip


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    """Two parts, as `results/mini/make_table.sh` leaves them: supervised in one, the others in another."""
    a, b = tmp_path / "parts" / "supervised" / "runs", tmp_path / "parts" / "others" / "runs"
    for seed, (hi, lo, ce) in enumerate([(0.60, 0.30, 0.30), (0.62, 0.31, 0.32), (0.64, 0.32, 0.34)]):
        trivial = {"trivial_map_sklearn": 0.10, "train_loss": 4.0, "chance_loss": 6.0}
        write_record(rec("cls", "supervised", seed, {"map_sklearn": hi, **trivial}, wall_s=120.0), a)
        write_record(rec("cls", "random", seed, {"map_sklearn": lo, **trivial}), b)
        write_record(rec("cls", "context_encoder", seed, {"map_sklearn": ce, **trivial}), b)
        # the linear probe's column is area AP; its sklearn AP (2 points apart, mean 68) is the one compared
        probe = {"map_area": 0.90, "map_sklearn": 0.66 + 0.02 * seed}
        write_record(rec("cls-linear", "supervised", seed, probe), a)
        # det: supervised's interval (45 ± 12.4) reaches random's (36 ± 2.5); random's loss above chance once
        det = {"trivial_map_voc07_11point": 0.001, "chance_loss": 1.9}
        write_record(rec("det", "supervised", seed, {"map_voc07_11point": 0.40 + 0.05 * seed, **det,
                                                     "train_loss": 0.7}), a)  # fmt: skip
        write_record(rec("det", "random", seed, {"map_voc07_11point": 0.35 + 0.01 * seed, **det,
                                                 "train_loss": 2.0 if seed == 0 else 1.1}), b)  # fmt: skip
    (a.parent / "REPORT.md").write_text("# part\n")
    (a.parent / "table.manifest.json").write_text('{"cells": []}')  # a part's own table: not a record
    return tmp_path / "parts"


def report_of(parts: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    out = tmp_path / "REPORT.md"
    assert main(["table", "--results", str(parts), "--profile", "mini", "--report", str(out)]) == 0
    assert capsys.readouterr().out == ""  # the report replaces the table on stdout
    return out.read_text()


def line_of(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_a_tables_manifest_is_not_read_as_a_record(parts):
    assert all(r.get("task") for r in load_records(parts))


def test_supervised_against_random_and_the_trivial_level(parts, tmp_path, capsys):
    text = report_of(parts, tmp_path, capsys)
    cls = [c.strip() for c in line_of(text, "| cls | mAP, sklearn AP").split("|")[1:-1]]
    assert cls[2:] == [f"62.0 ± {HW:.1f} (n=3)", f"31.0 ± {HW / 2:.1f} (n=3)", "yes", "10.00", "yes",
                       "supervised 0/3; random 0/3"]  # fmt: skip
    det = [c.strip() for c in line_of(text, "| det | mAP, VOC07").split("|")[1:-1]]
    assert det[4:] == ["no", "0.10", "yes", "supervised 0/3; random 1/3"]
    assert "could not be read" not in text


def test_fine_tuning_is_compared_with_the_probe_in_the_fine_tuning_columns_variant(parts, tmp_path, capsys):
    text = report_of(parts, tmp_path, capsys)
    probe = line_of(text, "`supervised`, mAP, sklearn AP")
    assert f"fine-tuned (cls) 62.0 ± {HW:.1f} (n=3)" in probe
    assert f"linear probe on the frozen trunk (cls-linear) 68.0 ± {HW:.1f} (n=3)" in probe  # not area AP's 90
    assert "difference -6.0" in probe and probe.endswith("fails.")


def test_orderings_with_intervals_beside_the_published_order(parts, tmp_path, capsys):
    text = report_of(parts, tmp_path, capsys)
    cls = [c.strip() for c in line_of(text, "| cls | supervised").split("|")[1:-1]]
    ce, lo = f"context_encoder 32.0 ± {HW:.1f}", f"random 31.0 ± {HW / 2:.1f}"
    assert cls[1] == f"supervised 62.0 ± {HW:.1f} > {ce} ≈ {lo}"
    assert cls[2] == "supervised 78.2 > context_encoder 56.5 > random 53.3"  # results/paper/table2.csv
    assert cls[3] == "3 of 3 (2 with intervals apart)"
    det = [c.strip() for c in line_of(text, "| det | supervised").split("|")[1:-1]]
    assert det[1].startswith("supervised 45.0 ± 12.4 ≈ random 36.0")


def test_parts_with_their_time_and_links_relative_to_the_report(parts, tmp_path, capsys):
    text = report_of(parts, tmp_path, capsys)
    assert text.startswith("# Results table — `mini` profile, joined from 2 reproduction run(s)")
    made_by = f"bench table --results {parts} --profile mini --report {tmp_path / 'REPORT.md'}"
    assert f"Made by: `{made_by}`" in text
    sup = [c.strip() for c in line_of(text, "| parts/supervised |").split("|")[1:-1]]
    link = "[REPORT.md](parts/supervised/REPORT.md)"
    assert sup == ["parts/supervised", "9", "12.0 min", "abcdef0", "cpu (test)", link]
    others = [c.strip() for c in line_of(text, "| parts/others |").split("|")[1:-1]]
    assert others[1:3] == ["9", "9.0 min"] and others[-1] == ""
    assert "| supervised | cls supervised s0 |" in text


def pretrain_rec(method: str, seed: int, pool: int | None, train_acc: float, heldout_acc: float) -> dict:
    return {
        "task": "pretrain", "seed": seed, "profile": "mini", "status": "ok", "pretrain": {"method": method},
        "started_at": "2026-01-01T00:00:00+00:00", "recipe": {"data": {"synth_pool": pool}},
        "metrics": {"wall_s": 600.0, "memorisation_train_accuracy": train_acc,
                    "memorisation_heldout_accuracy": heldout_acc},
    }  # fmt: skip


def test_memorisation_on_the_tables_pool_and_on_another(parts, tmp_path, capsys):
    """The table's own pretraining records give "Did pretraining learn?"; --evidence-from adds the same
    methods' runs on another pool, named by its size, without putting them in the table."""
    for seed, acc in enumerate([0.90, 0.91, 0.92]):
        write_record(pretrain_rec("supervised", seed, 12800, acc, acc - 0.02), parts / "supervised" / "runs")
    write_record(rec("cls", "deepcluster", 0, {"map_sklearn": 0.2}), parts / "others" / "runs")
    old = tmp_path / "pool-1000" / "runs"
    write_record(pretrain_rec("supervised", 0, None, 0.98, 0.81), old)
    out = tmp_path / "REPORT.md"
    args = ["table", "--results", str(parts), "--profile", "mini", "--report", str(out)]
    assert main([*args, "--evidence-from", str(old.parent)]) == 0
    text = out.read_text()
    own, other = text.split("### The same measures for the pretraining runs of")
    assert f"| supervised | 0.910 ± {T975_2 * 0.01 / 3**0.5:.3f} (n=3) | 0.890 ±" in own
    assert other.startswith(f" `{old.parent}` (pool: the dataset's own pool)")
    assert "| supervised | 0.980 (n=1) | 0.810 (n=1) |" in other
    assert "No memorisation measure for deepcluster" in own  # its class says heldout_pretext = False
    assert "under Figures" not in text  # a joined report has no Figures section to point at
    assert "| supervised | image labels | 10.0 min | 0 |" in text  # from the table's own three runs
    assert main(["table", "--results", str(parts), "--evidence-from", str(old)]) == 2  # needs --report
