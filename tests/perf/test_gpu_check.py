"""The GPU check's CPU-runnable parts: the no-GPU stop, the schedules it projects and the projection."""

from __future__ import annotations

import pytest

from ssl_bench.cli import main
from ssl_bench.perf.gpu_check import NO_GPU, project_hours, projection_table, schedules


def test_without_a_gpu_the_check_stops_with_a_clear_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["speed", "--gpu-report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "make gpu-check" in err
    assert not list(tmp_path.iterdir())  # nothing measured, no record
    assert NO_GPU.startswith("no CUDA GPU")


def test_the_projected_schedules_are_the_paper_recipes():
    plan = schedules("paper")
    assert plan["pretrain"] == (100_000, 64)  # pretrain/paper/context_encoder.yaml
    assert plan["cls"] == (80_000, 16) and plan["seg"] == (150_000, 20)
    assert plan["det"] == (40_000, 2)  # eval/paper/det.yaml: fast-rcnn's CaffeNet solver


def test_hours_are_images_over_rate():
    plan = {"pretrain": (3_600, 64), "seg": (1_800, 20), "det": (10, 2)}
    hours = project_hours(plan, {"pretrain": 64.0, "seg": 5.0})
    assert hours == pytest.approx({"pretrain": 1.0, "seg": 2.0})  # det: no rate, left out
    table = projection_table(plan, {"pretrain": 64.0, "seg": 5.0}, hours)
    assert "n/a" in table[3] and table[-1].split()[-1] == "3.00"
