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


def test_check_opens_every_image_and_mask_and_names_each_bad_file(tmp_path, capsys):
    """A truncated JPEG and a malformed XML (both in the test split), a mask of the wrong size, a mask that
    is not a PNG and a missing JPEG: all named, in one list, exit 1."""
    from PIL import Image

    root = Path(_synth(tmp_path, capsys))
    test_ids = (root / "ImageSets/Main/test.txt").read_text().split()
    seg_ids = (root / "ImageSets/Segmentation/val.txt").read_text().split()
    truncated = root / f"JPEGImages/{test_ids[0]}.jpg"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (root / f"Annotations/{test_ids[1]}.xml").write_text("<annotation><size>")
    (root / f"JPEGImages/{test_ids[2]}.jpg").unlink()
    small = root / f"SegmentationClass/{seg_ids[0]}.png"
    with Image.open(small) as mask:
        mask.resize((mask.width // 2, mask.height // 2)).save(small)
    (root / f"SegmentationClass/{seg_ids[1]}.png").write_bytes(b"not a png")

    assert main(["data", "check", "--data", str(root), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("  - ")]
    assert f"{truncated}: unreadable or truncated image" in out
    assert f"{test_ids[1]}.xml: malformed XML" in out
    assert f"ids without JPEGImages/<id>.jpg: 1 ({test_ids[2]})" in out
    assert f"{small}: mask is 48×48 px but its image" in out
    assert f"{seg_ids[1]}.png" in out
    assert len(problems) == 5 and f"{len(problems)} problem(s)" in out
