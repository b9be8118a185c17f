"""``bench data synth`` and ``bench data check`` as a user runs them."""

import json

from ssl_bench.cli import main


def test_synth_then_check_passes_and_a_deleted_image_is_named(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "sv"),
                "--images",
                "40",
                "--size",
                "96",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    root = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["voc_root"]
    assert main(["data", "check", "--data", root]) == 0
    assert "looks complete" in capsys.readouterr().out

    test_ids = (tmp_path / "sv/VOCdevkit/VOC2007/ImageSets/Main/test.txt").read_text().split()
    (tmp_path / f"sv/VOCdevkit/VOC2007/JPEGImages/{test_ids[0]}.jpg").unlink()
    assert main(["data", "check", "--data", root]) == 1
    assert test_ids[0] in capsys.readouterr().out


def test_check_against_official_sizes_reports_each_split(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "sv"),
                "--images",
                "40",
                "--size",
                "96",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    root = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["voc_root"]
    assert main(["data", "check", "--data", root, "--year", "VOC2007"]) == 1
    out = capsys.readouterr().out
    assert "expected 4952" in out and "expected 5011" in out


def test_check_sbd_names_missing_pieces(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "sv"),
                "--images",
                "40",
                "--size",
                "96",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    root = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["voc_root"]
    (tmp_path / "sbd").mkdir()
    assert main(["data", "check", "--data", root, "--sbd", str(tmp_path / "sbd")]) == 1
    out = capsys.readouterr().out
    assert "cls" in out and "train.txt" in out
