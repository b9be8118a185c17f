"""``bench reproduce --dry-run``: stages with recipes, the data each needs, time estimates; writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_bench.cli import main
from tests.paper_fixtures import PaperData, write_paper_data


@pytest.fixture(scope="module")
def paper_data(tmp_path_factory: pytest.TempPathFactory) -> PaperData:
    return write_paper_data(tmp_path_factory.mktemp("paper_data"))


def _data_flags(d: PaperData, seg: bool = True) -> list[str]:
    flags = ["--data-pretrain", str(d.imagenet_train), "--data-voc", str(d.voc2007),
             "--set", f"det.proposals={d.proposals}"]  # fmt: skip
    return flags + ["--data-voc", f"seg={d.voc2012}", "--set", f"seg.sbd_root={d.sbd}"] if seg else flags


def _dry_run(tmp_path: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "results"
    code = main(["reproduce", "--profile", "paper", "--dry-run", "--no-progress", "--out", str(out), *args])
    text = capsys.readouterr().out
    assert not out.exists()  # a dry run writes nothing of the reproduction
    return code, json.loads(text.strip().splitlines()[-1]), text


def test_missing_data_is_named_with_how_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, summary, text = _dry_run(tmp_path, capsys, "--no-timing")
    assert code == 1
    assert set(summary["missing"]) == {"ImageNet train folder", "VOC2007", "VOC2012", "SBD",
                                       "proposals (selective search)"}  # fmt: skip
    for hint in ("--data-pretrain", "--data-voc VOCdevkit/VOC2007", "seg=VOCdevkit/VOC2012",
                 "seg.sbd_root=", "bench data proposals", "det.detector=faster_rcnn"):  # fmt: skip
        assert hint in text
    # Every stage of the default reproduction, with its recipe: 5 pretrainings, 5 × 3 tasks × 2 seeds.
    stages = summary["stages"]
    assert len(stages) == 5 + 5 * 3 * 2
    assert {Path(s["recipe"]).relative_to(Path(s["recipe"]).parents[2]).as_posix() for s in stages
            if s["task"] == "det"} == {"eval/paper/det.yaml"}  # fmt: skip


def test_a_complete_tree_exits_0_with_warnings_for_unofficial_sizes(
    paper_data: PaperData, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, summary, text = _dry_run(tmp_path, capsys, "--no-timing", *_data_flags(paper_data))
    assert code == 0, text
    assert summary["missing"] == [] and summary["recipe_errors"] == []
    data = {d["name"]: d for d in summary["data"]}
    assert set(data) == {"ImageNet train folder", "VOC2007", "VOC2012", "SBD", "proposals (selective search)"}
    assert any("official VOC2007 has 4952" in w for w in data["VOC2007"]["warnings"])
    assert len(data["VOC2007"]["needed_by"]) == 5 * 2 * 2  # cls and det, 5 methods, 2 seeds


def test_a_broken_file_is_a_problem(
    paper_data: PaperData, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "proposals.npz"
    bad.write_bytes(b"not a zip")
    flags = [*_data_flags(paper_data), "--set", f"det.proposals={bad}"]
    code, summary, text = _dry_run(tmp_path, capsys, "--no-timing", *flags)
    assert code == 1 and summary["missing"] == ["proposals (selective search)"]
    assert "cannot read proposals file" in text


def test_estimates_come_from_probes(
    paper_data: PaperData, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    small = ["--set", "det.min_size=[96,128]", "--set", "det.max_size=160", "--set", "det.fc_width=32"]
    code, summary, text = _dry_run(tmp_path, capsys, "--methods", "random", "--tasks", "det", "--seeds", "1",
                                   *_data_flags(paper_data, seg=False), *small)  # fmt: skip
    assert code == 0, text
    pretrain, det = summary["stages"]
    assert pretrain["estimate_s"] > 0 and "no training steps" in pretrain["estimate_note"]
    assert det["estimate_s"] > 0 and det["estimate_note"].startswith("estimate: 40000 iterations")
    assert summary["estimate_s"] == pytest.approx(pretrain["estimate_s"] + det["estimate_s"], abs=0.2)
    assert "total (estimate)" in text


def test_a_probe_past_its_time_limit_is_stopped(
    paper_data: PaperData, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssl_bench.results import plan

    monkeypatch.setattr(plan, "PROBE_TIMEOUT_S", 0.05)
    code, summary, _ = _dry_run(tmp_path, capsys, "--methods", "context_encoder", "--tasks", "det", "--seeds",
                                "1", *_data_flags(paper_data, seg=False))  # fmt: skip
    assert code == 0  # the data is complete: a stage without an estimate is no failure
    for stage in summary["stages"]:
        assert stage["estimate_s"] is None and "ran past 0.05 s" in stage["estimate_note"]


def test_the_pretraining_probe_runs_at_the_recipe_batch_up_to_a_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A probe at 2 images per step read 3x too long on a 2-core CPU: it now runs at the recipe's batch size.
    from ssl_bench.results import plan

    seen: list[int] = []
    monkeypatch.setattr(plan, "_bounded", lambda fn, cfg, *_: seen.append(cfg["train"]["batch_size"]))
    for batch in (8, 4 * plan.PROBE_PRETRAIN_BATCH_MAX):
        config = {"method": "context_encoder", "train": {"steps": 10, "batch_size": batch}}
        plan._pretrain_estimate(config, tmp_path, tmp_path, None)
        assert config["train"]["batch_size"] == batch  # the stage's own recipe is left as it was
    assert seen == [8, plan.PROBE_PRETRAIN_BATCH_MAX]
    assert plan.PROBE_FOLDER_IMAGES >= plan.PROBE_PRETRAIN_BATCH_MAX  # one whole batch of generated images


@pytest.mark.parametrize(
    ("walls", "expected"),
    [
        ((9.0, 4.0, 2.0), (4.0 - 2.0) / 5 * 2 * 600),  # the first 1-iteration run paid a one-time cost
        ((2.0, 1.5, 2.5), None),  # 5 more iterations took no time: noise, not an estimate of 0 s
    ],
)
def test_a_fine_tuning_estimate_uses_the_faster_one_iteration_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walls: tuple[float, ...], expected: float | None
) -> None:
    # A dry run once printed "600 iterations x 0.00 s" for seg: its first probe paid a one-time cost.
    from ssl_bench.results import plan

    runs = iter(walls)
    iterations: list[int] = []

    def probe(task: str, config: dict, overrides: dict, *_: object) -> float:
        iterations.append(overrides["iterations"])
        return next(runs)

    monkeypatch.setattr(plan, "_probe_eval", probe)
    monkeypatch.setattr(plan, "PROBE_EXTRA_ITERATIONS", 5)
    monkeypatch.setattr(plan, "PROBE_BATCH", 2)
    recipe = {"iterations": 600, "batch_size": 4}
    seconds, note = plan._eval_estimate("seg", recipe, tmp_path, None, tmp_path, None)
    assert iterations == [1, 6, 1]
    if expected is None:
        assert seconds is None and note.startswith("not measured")
    else:
        assert seconds == pytest.approx(expected) and "600 iterations × 0.80 s" in note
