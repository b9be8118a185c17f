"""The results table rendered from hand-made records: cells, CI, paper column, failures, traceability."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ssl_bench.cli import main
from ssl_bench.records import load_records, write_record
from ssl_bench.results.table import build_table, format_cell, load_paper_numbers, manifest_path, render

T975_1 = 12.7062047  # t_{0.975, 1}


def record(
    task: str,
    method: str,
    seed: int,
    value: float | None = None,
    *,
    status: str = "ok",
    metric: str | None = None,
    profile: str = "smoke",
    started: str = "2026-01-01T00:00:00+00:00",
    error: str = "RuntimeError: boom",
    **metrics: float,
) -> dict:
    metric = metric or {"cls": "map_sklearn", "det": "map_voc07_11point", "seg": "miou"}.get(task, "score")
    rec = {
        "task": task,
        "seed": seed,
        "profile": profile,
        "status": status,
        "started_at": started,
        "weights": f"runs/{method}/encoder.pt",
        "pretrain": {"method": method, "run": f"runs/{method}"},
    }
    if status == "ok":
        rec |= {"metrics": {metric: value, **metrics}, "extra": {"primary_metric": metric}}
    else:
        rec["error"] = error
    return rec


def pretrain_record(method: str, wall_s: float, steps: int, images: int, seed: int = 0) -> dict:
    return {
        "task": "pretrain",
        "seed": seed,
        "profile": "smoke",
        "status": "ok",
        "pretrain": {"method": method},
        "metrics": {"wall_s": wall_s, "steps": steps, "images_seen": images},
        "started_at": "2026-01-01T00:00:00+00:00",
    }


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    for rec in [
        record("cls", "context_encoder", 0, 0.50),
        record("cls", "context_encoder", 1, 0.52),
        record("det", "context_encoder", 0, 0.40),  # one seed: no CI
        record("seg", "context_encoder", 0, status="error"),  # failed cell
        record("seg", "context_encoder", 1, status="error", error="ValueError: x"),
        record("cls", "random", 0, 0.45),
        record("cls", "random", 1, status="error"),  # partial
        # det / seg of random: missing
        pretrain_record("context_encoder", 240.0, 300, 4800),
    ]:
        write_record(rec, folder)
    return folder


def test_cells_mean_ci_paper_difference_missing_and_failed(runs):
    table = build_table(load_records(runs), results_dir=str(runs))
    assert [r.method for r in table.rows] == ["random", "context_encoder"]  # paper order
    assert table.tasks == ["cls", "det", "seg"]
    ce = table.rows[1]

    cls = table.cell(ce, "cls")
    assert cls.values == pytest.approx([50.0, 52.0])  # fractions shown as percent
    assert cls.summary.mean == pytest.approx(51.0)
    assert cls.summary.half_width == pytest.approx(T975_1 * math.sqrt(2) / math.sqrt(2), rel=1e-6)
    assert format_cell(cls) == "51.0 ± 12.7 (n=2)"
    assert cls.paper.value == 56.5 and cls.paper.metric == "map_sklearn"
    assert cls.diff == pytest.approx(-5.5)

    assert format_cell(table.cell(ce, "det")) == "40.0 (n=1, no CI)"
    assert table.cell(ce, "det").diff == pytest.approx(40.0 - 44.5)
    seg = table.cell(ce, "seg")
    assert seg.status == "failed" and format_cell(seg) == "failed: RuntimeError: boom (+1 more)"
    assert seg.diff is None

    rnd = table.rows[0]
    assert table.cell(rnd, "cls").status == "partial"
    assert format_cell(table.cell(rnd, "cls")) == "45.0 (n=1, no CI); 1 failed"
    assert table.cell(rnd, "det").status == "missing" and format_cell(table.cell(rnd, "det")) == "missing"

    frame = table.display_frame()
    header = "cls: classification, mAP, sklearn AP (%)"
    assert header in frame.columns and "det: detection, mAP, VOC07 11-point AP (%)" in frame.columns
    assert "seg: segmentation, mean IU (%)" in frame.columns
    row = frame.set_index("method").loc["context_encoder"]
    assert (row[header], row["cls: paper"], row["cls: Δ"]) == ("51.0 ± 12.7 (n=2)", "56.5", "-5.5")
    assert row["pretraining time"] == "4.0 min, 300 steps" and row["images seen"] == "4,800"
    assert frame.set_index("method").loc["random", "det: paper"] == "43.4"


def test_paper_numbers_come_from_the_csv_files_with_their_variant():
    paper = load_paper_numbers()
    assert paper[("context_encoder", "seg")].value == 30.0
    assert "29.7" in paper[("context_encoder", "seg")].note
    assert paper[("supervised", "cls")].value == 78.2 and paper[("random", "seg")].value == 19.8
    assert paper[("datainit", "det")].value == 45.6  # later rows: Krähenbühl init
    assert {p.metric for (m, t), p in paper.items() if t == "cls"} == {"map_sklearn"}
    assert {p.metric for (m, t), p in paper.items() if t == "det"} == {"map_voc07_11point"}


def test_other_ap_variant_shows_paper_number_without_a_difference(tmp_path):
    recs = [record("cls", "context_encoder", 0, 0.6, metric="map_area")]
    table = build_table(recs)
    assert table.metrics["cls"] == "map_area"
    cell = table.cell(table.rows[0], "cls")
    assert cell.diff is None
    row = table.display_frame().iloc[0]
    assert row["cls: paper"] == "56.5 (map_sklearn)" and row["cls: Δ"] == ""
    assert "cls: classification, mAP, VOC2010+ area AP (%)" in table.display_frame().columns


def test_manifest_cites_every_record_and_newest_record_supersedes(runs):
    newer = record("cls", "context_encoder", 1, 0.60, started="2026-02-01T00:00:00+00:00")
    write_record(newer, runs)
    recs = load_records(runs)
    old_id = next(
        r["id"]
        for r in recs
        if r["task"] == "cls"
        and r["seed"] == 1
        and r["pretrain"]["method"] == "context_encoder"
        and r["metrics"]["map_sklearn"] == 0.52
    )
    table = build_table(recs)
    manifest = table.manifest()
    cell = next(c for c in manifest["cells"] if (c["method"], c["task"]) == ("context_encoder", "cls"))
    assert [v["record_id"] for v in cell["values"]] == [
        next(
            r["id"]
            for r in recs
            if r["task"] == "cls" and r["seed"] == 0 and r["pretrain"]["method"] == "context_encoder"
        ),
        newer["id"],
    ]
    assert cell["superseded_record_ids"] == [old_id]
    assert cell["mean"] == pytest.approx(55.0)
    failed = next(c for c in manifest["cells"] if (c["method"], c["task"]) == ("context_encoder", "seg"))
    assert {f["seed"] for f in failed["failed"]} == {0, 1} and failed["status"] == "failed"
    assert manifest["rows"][1]["pretrain_record_ids"]  # the pretraining time is traceable too
    used = {v["record_id"] for c in manifest["cells"] for v in c["values"]}
    used |= {f["record_id"] for c in manifest["cells"] for f in c["failed"]}
    used |= {i for c in manifest["cells"] for i in c["superseded_record_ids"]}
    used |= {i for r in manifest["rows"] for i in r["pretrain_record_ids"]}
    assert used == {r["id"] for r in recs}  # every record is accounted for


def test_deleting_a_record_changes_the_rendered_table(runs, tmp_path, capsys):
    out = tmp_path / "table.md"
    assert main(["table", "--results", str(runs), "--out", str(out)]) == 0
    before = out.read_text()
    manifest = json.loads(manifest_path(out).read_text())
    cell = next(c for c in manifest["cells"] if (c["method"], c["task"]) == ("context_encoder", "cls"))
    assert cell["n"] == 2 and "51.0 ± 12.7 (n=2)" in before

    victim = cell["values"][1]["record_id"]
    (runs / f"{victim}.json").unlink()
    assert main(["table", "--results", str(runs), "--out", str(out)]) == 0
    after = out.read_text()
    assert "50.0 (n=1, no CI)" in after and "51.0 ± 12.7" not in after
    manifest = json.loads(manifest_path(out).read_text())
    cell = next(c for c in manifest["cells"] if (c["method"], c["task"]) == ("context_encoder", "cls"))
    assert cell["n"] == 1 and victim not in json.dumps(manifest)


def test_two_results_folders_make_one_table(runs, tmp_path, capsys):
    """A separate `bench reproduce --methods …` run beside the main one: --results twice, one table."""
    other = tmp_path / "other"
    other.mkdir()
    moved = sorted(runs.glob("*.json"))[0]
    moved.rename(other / moved.name)
    assert main(["table", "--results", str(runs), "--format", "csv"]) == 0
    alone = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert main(["table", "--results", str(runs), "--results", str(other), "--format", "csv"]) == 0
    both = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert not both.equals(alone)
    moved_back = other / moved.name
    moved_back.rename(runs / moved.name)
    assert main(["table", "--results", str(runs), "--format", "csv"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out)).equals(both)
    assert main(["table", "--results", str(runs), "--results", str(tmp_path / "nope")]) == 2


def test_csv_and_latex_and_stdout(runs, tmp_path, capsys):
    assert main(["table", "--results", str(runs), "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    ce = frame.set_index("method").loc["context_encoder"]
    assert ce["cls.mean"] == pytest.approx(51.0) and ce["cls.n"] == 2 and ce["cls.paper"] == 56.5
    assert len(ce["cls.records"].split(";")) == 2 and ce["seg.status"] == "failed" and ce["seg.failed"] == 2
    assert ce["pretrain_wall_s"] == 240.0 and ce["images_seen"] == 4800

    tex = tmp_path / "table.tex"
    assert main(["table", "--results", str(runs), "--out", str(tex)]) == 0  # format from the suffix
    text = tex.read_text()
    assert "\\begin{tabular}" in text and "$\\pm$" in text and "$\\Delta$" in text and "\\%" in text
    assert manifest_path(tex).is_file()

    md = render(build_table(load_records(runs)), "markdown")
    assert md.startswith("| method | supervision |") and "Student t" in md
    assert "Pathak et al. 2016" in md and "29.7" in md  # legend carries the paper's notes


def test_unreadable_record_and_profiles_and_filters(runs):
    (runs / "broken.json").write_text("{not json")
    write_record(record("cls", "context_encoder", 0, 0.9, profile="paper"), runs)
    table = build_table(load_records(runs))
    assert len(table.unreadable) == 1 and "could not be read" in "\n".join(table.legend())
    assert {(r.profile, r.method) for r in table.rows} >= {("paper", "context_encoder"), ("smoke", "random")}
    assert "profile" in table.display_frame().columns  # rows of two profiles are told apart

    only = build_table(
        load_records(runs),
        profile="smoke",
        tasks=["cls", "knn"],
        methods=["context_encoder", "autoencoder"],
        seeds=[0],
    )
    assert [r.method for r in only.rows] == ["context_encoder", "autoencoder"]
    assert only.cell(only.rows[0], "cls").values == pytest.approx([50.0])
    assert only.cell(only.rows[0], "knn").status == "missing"
    assert only.cell(only.rows[1], "cls").status == "missing"


def test_bench_table_reports_a_missing_folder(tmp_path, capsys):
    assert main(["table", "--results", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_pretraining_time_falls_back_to_the_run_folder(tmp_path):
    run = tmp_path / "ce_run"
    run.mkdir()
    (run / "config.yaml").write_text(
        "method: context_encoder\ntrain: {steps: 20, batch_size: 8}\nprovenance: {world_size: 2}\n"
    )
    rows = [{"step": 10, "loss": 1.0, "img_s": 16.0}, {"step": 20, "loss": 0.5, "img_s": 32.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rec = record("cls", "context_encoder", 0, 0.5)
    rec["pretrain"]["run"] = str(run)
    table = build_table([rec])
    row = table.rows[0]
    # 10 steps × 8 × 2 images at 16 img/s + 10 × 8 × 2 at 32 img/s = 10 s + 5 s
    assert (row.steps, row.images_seen, row.wall_s, row.estimated) == (20, 320, 15.0, True)
    assert table.display_frame().iloc[0]["pretraining time"] == "≈ 15 s, 20 steps"
    assert any("estimated" in line for line in table.legend())


def test_an_ok_record_without_the_columns_metric_is_not_applicable_not_failed():
    recs = [
        record("inpaint", "context_encoder", 0, 17.0, metric="psnr_db", fill_psnr_db=15.0),
        {**record("inpaint", "random", 0, metric="nn_psnr_db", value=13.0), "metrics": {"nn_psnr_db": 13.0}},
        record("inpaint", "datainit", 0, float("nan"), metric="psnr_db"),
    ]
    table = build_table(recs, paper={}, tasks=["inpaint"])
    cells = {m: table.cells[("smoke", m, "inpaint")] for m in ("context_encoder", "random", "datainit")}
    assert cells["context_encoder"].status == "ok"
    assert cells["random"].status == "n/a"
    assert format_cell(cells["random"]) == "n/a (no psnr_db in its 1 records)"
    assert cells["datainit"].status == "failed" and "psnr_db is NaN" in format_cell(cells["datainit"])
