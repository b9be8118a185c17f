"""``bench data proposals``: Fast R-CNN's selective-search ``.mat`` files → the det proposals file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ssl_bench.cli import main
from ssl_bench.data.detection import load_proposals
from ssl_bench.data.proposals import convert_selective_search, read_selective_search_mat
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import read_image_set
from ssl_bench.errors import DataError
from tests.data.proposals_fixture import voc_selective_search_mats, write_selective_search_mat

BOXES = {
    "000005": np.array([[1.0, 2.0, 30.0, 40.0], [5.0, 7.0, 5.0, 9.0]]),  # x1, y1, x2, y2, VOC 1-based
    "000007": np.zeros((0, 4)),
    "000009": np.array([[10.0, 20.0, 100.0, 80.0]]),
}


def test_boxes_come_back_x_first_and_one_based(tmp_path: Path) -> None:
    path = write_selective_search_mat(tmp_path / "voc_2007_test.mat", BOXES)
    raw = scipy.io.loadmat(path)["boxes"].ravel()
    got = read_selective_search_mat(path)
    assert list(got) == list(BOXES)
    for i, (name, want) in enumerate(BOXES.items()):
        np.testing.assert_array_equal(got[name], want.reshape(-1, 4))
        assert got[name].dtype == np.float32
        # Fast R-CNN (pascal_voc.py _load_selective_search_roidb): raw[:, (1, 0, 3, 2)] - 1, 0-based.
        fast_rcnn = raw[i].reshape(-1, 4)[:, (1, 0, 3, 2)] - 1
        np.testing.assert_array_equal(got[name] - 1, fast_rcnn)


def test_image_names_may_be_a_char_matrix(tmp_path: Path) -> None:
    boxes = np.empty((2,), dtype=object)
    boxes[0], boxes[1] = np.array([[2.0, 1.0, 9.0, 8.0]]), np.array([[1.0, 1.0, 3.0, 3.0]])
    scipy.io.savemat(tmp_path / "m.mat", {"boxes": boxes, "images": np.array(["000001", "000002"])})
    got = read_selective_search_mat(tmp_path / "m.mat")
    assert got["000001"].tolist() == [[1.0, 2.0, 8.0, 9.0]]


def _mat(path: Path, boxes: list, images: list | None) -> Path:
    cells = np.empty((len(boxes),), dtype=object)
    for i, b in enumerate(boxes):
        cells[i] = b
    data = {"boxes": cells}
    if images is not None:
        names = np.empty((len(images),), dtype=object)
        names[:] = images
        data["images"] = names
    scipy.io.savemat(path, data)
    return path


@pytest.mark.parametrize(
    ("boxes", "images", "message"),
    [
        ([np.ones((2, 4))], None, "no images field"),
        ([np.ones((2, 4)), np.ones((1, 4))], ["a"], "2 box arrays but 1 image names"),
        ([np.ones((2, 3))], ["a"], r"image 'a' have shape \(2, 3\), not \(K, 4\)"),
        ([np.array([[0.0, 0.0, 5.0, 5.0]])], ["a"], "is the file 0-based"),  # Fast R-CNN's files are 1-based
        ([np.array([[9.0, 9.0, 5.0, 5.0]])], ["a"], "y1 <= y2 and x1 <= x2"),
        ([np.array([[1.0, 1.0, np.inf, 5.0]])], ["a"], "not all finite"),
        ([np.ones((1, 4)), np.ones((1, 4))], ["a", "a"], "image 'a' is listed twice"),
    ],
)
def test_bad_mat_contents_are_named(tmp_path: Path, boxes: list, images: list | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_selective_search_mat(_mat(tmp_path / "bad.mat", boxes, images))


def test_files_that_are_not_mat_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_selective_search_mat(tmp_path / "missing.mat")
    (tmp_path / "text.mat").write_text("boxes = [1 2 3 4]\n" * 20)
    with pytest.raises(DataError, match="not a readable MATLAB .mat file"):
        read_selective_search_mat(tmp_path / "text.mat")
    (tmp_path / "cut.mat").write_bytes(
        write_selective_search_mat(tmp_path / "whole.mat", BOXES).read_bytes()[:300]
    )
    with pytest.raises(DataError, match="cut.mat"):
        read_selective_search_mat(tmp_path / "cut.mat")


def test_convert_merges_files_and_refuses_overlaps(tmp_path: Path) -> None:
    a = write_selective_search_mat(tmp_path / "a.mat", {k: BOXES[k] for k in ("000005", "000007")})
    b = write_selective_search_mat(tmp_path / "b.mat", {"000009": BOXES["000009"]})
    assert convert_selective_search([a, b], tmp_path / "p.npz") == {"images": 3, "boxes": 3}
    loaded = load_proposals(tmp_path / "p.npz")
    assert sorted(loaded) == sorted(BOXES) and loaded["000007"].shape == (0, 4)
    with pytest.raises(DataError, match="also has proposals in an earlier file"):
        convert_selective_search([a, a], tmp_path / "q.npz")
    with pytest.raises(DataError, match=r"b.mat lacks 1 image\(s\), e.g. \['000011'\]"):
        convert_selective_search([a, b], tmp_path / "q.npz", ["000005", "000011"])
    assert not (tmp_path / "q.npz").exists()  # nothing written on an error


def test_bench_data_proposals_on_a_voc_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    voc = generate_synthvoc(tmp_path / "synth", num_images=24, size=96, seed=0, workers=1, progress=False)
    mats = voc_selective_search_mats(voc, tmp_path / "selective_search_data")
    out = tmp_path / "proposals.npz"
    assert main(["data", "proposals", *map(str, mats), "--out", str(out), "--data", str(voc)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ids = read_image_set(voc, "trainval") + read_image_set(voc, "test")
    assert summary["images"] == len(ids) and sorted(load_proposals(out)) == sorted(ids)
    # Only the test file: the trainval images are named as missing (exit 2, one line, nothing written).
    assert (
        main(["data", "proposals", str(mats[1]), "--out", str(tmp_path / "x.npz"), "--data", str(voc)]) == 2
    )
    assert "lacks" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()
