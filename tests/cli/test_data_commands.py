"""``bench data synth`` and ``bench data check`` as a user runs them."""

import json
from pathlib import Path

from ssl_bench.cli import main


def _synth(tmp_path: Path, capsys) -> str:
    """``bench data synth`` of a small SynthVOC; returns the VOC root it printed."""
    args = ["data", "synth", "--out", str(tmp_path / "sv"), "--images", "40", "--size", "96",
            "--workers", "1"]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["voc_root"]


def test_synth_then_check_passes_and_a_deleted_image_is_named(tmp_path, capsys):
    root = _synth(tmp_path, capsys)
    assert main(["data", "check", "--data", root]) == 0
    assert "looks complete" in capsys.readouterr().out

    test_ids = (Path(root) / "ImageSets/Main/test.txt").read_text().split()
    (Path(root) / f"JPEGImages/{test_ids[0]}.jpg").unlink()
    assert main(["data", "check", "--data", root]) == 1
    assert test_ids[0] in capsys.readouterr().out


def test_check_against_official_sizes_reports_each_split(tmp_path, capsys):
    root = _synth(tmp_path, capsys)
    assert main(["data", "check", "--data", root, "--year", "VOC2007"]) == 1
    out = capsys.readouterr().out
    assert "expected 4952" in out and "expected 5011" in out


def test_check_sbd_names_missing_pieces(tmp_path, capsys):
    root = _synth(tmp_path, capsys)
    (tmp_path / "sbd").mkdir()
    assert main(["data", "check", "--data", root, "--sbd", str(tmp_path / "sbd")]) == 1
    out = capsys.readouterr().out
    assert "cls" in out and "train.txt" in out
