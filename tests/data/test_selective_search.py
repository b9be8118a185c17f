"""Selective search computed by the suite (``data/selective_search.py``) and ``bench data proposals
--selective-search``: boxes in the VOC convention, objects found, cached once per dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ssl_bench.cli import main
from ssl_bench.data import selective_search as ss
from ssl_bench.data.detection import load_proposals
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import load_detection_ground_truth, read_image_set
from ssl_bench.errors import DataError


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of VOC 1-based inclusive boxes, ``[len(a), len(b)]``."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo + 1, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 48 images → Main trainval 12, test 12.
    return generate_synthvoc(tmp_path_factory.mktemp("ss_voc"), num_images=48, size=128, seed=1, workers=1,
                             progress=False)  # fmt: skip


def test_a_plain_rectangle_is_proposed_in_voc_coordinates() -> None:
    image = np.full((96, 128, 3), 40, np.uint8)
    image[30:70, 50:110] = (230, 60, 20)  # rows 30..69, columns 50..109 (0-based) = VOC x 51..110, y 31..70
    boxes = ss.selective_search(image)
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert (boxes[:, :2] >= 1).all() and (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 96).all()
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)  # no duplicates
    best = _iou(np.array([[51.0, 31.0, 110.0, 70.0]]), boxes).max()
    assert best > 0.95, best


def test_min_side_drops_thin_boxes() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    every = ss.selective_search(image, min_side=0)
    kept = ss.selective_search(image, min_side=30)
    sides = np.minimum(kept[:, 2] - kept[:, 0] + 1, kept[:, 3] - kept[:, 1] + 1)
    assert (sides >= 30).all() and 0 < len(kept) < len(every)


def test_the_same_boxes_on_every_call() -> None:
    """OpenCV ranks with a random factor; the suite's file must not depend on it."""
    image = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ss.selective_search(image), ss.selective_search(image))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        ss.selective_search(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="mode 'best'"):
        ss.selective_search(np.zeros((8, 8, 3), np.uint8), mode="best")  # type: ignore[arg-type]


def test_synthvoc_objects_are_found(voc_root: Path, tmp_path: Path) -> None:
    """The file covers every trainval and test image, and nearly every object has a proposal at IoU 0.5
    (Fast R-CNN's foreground threshold)."""
    ids = read_image_set(voc_root, "trainval") + read_image_set(voc_root, "test")
    out = tmp_path / "ss.npz"
    summary = ss.compute_selective_search(voc_root, ids, out, workers=2, progress=False)
    proposals = load_proposals(out)
    assert sorted(proposals) == sorted(ids) and summary["images"] == len(ids)
    assert summary["boxes"] == sum(len(b) for b in proposals.values())
    found = []
    for split in ("trainval", "test"):
        for image_id, truth in load_detection_ground_truth(voc_root, split).items():
            if len(truth["boxes"]):
                found += list(_iou(truth["boxes"].astype(np.float64), proposals[image_id]).max(1) >= 0.5)
    assert len(found) > 20 and np.mean(found) >= 0.9, np.mean(found)


def test_a_missing_image_is_named(voc_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.*999999"):
        ss.compute_selective_search(voc_root, ["999999"], tmp_path / "x.npz", progress=False)


def test_computed_once_then_cached_and_recomputed_when_an_image_changes(
    voc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    ids = read_image_set(voc_root, "test")[:3]
    calls = []
    real = ss.compute_selective_search
    monkeypatch.setattr(ss, "compute_selective_search",
                        lambda *a, **k: calls.append(a) or real(*a, **k))  # fmt: skip
    first = ss.cached_selective_search(voc_root, ids, progress=False)
    again = ss.cached_selective_search(voc_root, ids, progress=False)
    assert first == again and len(calls) == 1 and first.parent == tmp_path / "cache" / "proposals"
    image = voc_root / "JPEGImages" / f"{ids[0]}.jpg"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        changed = ss.cached_selective_search(voc_root, ids, progress=False)
    finally:
        os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changed != first and len(calls) == 2


def test_bench_data_proposals_selective_search(
    voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "p.npz"
    args = ["--selective-search", "fast", "--data", str(voc_root), "--out", str(out), "--workers", "1"]
    assert main(["data", "proposals", *args, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ids = read_image_set(voc_root, "trainval") + read_image_set(voc_root, "test")
    assert summary["images"] == len(ids)
    assert len(load_proposals(out)) == summary["images"]


def test_bench_data_proposals_takes_one_source(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "p.npz")
    assert main(["data", "proposals", "a.mat", "--selective-search", "fast", "--out", out]) == 2
    assert "either .mat files or --selective-search MODE, not both" in capsys.readouterr().err
    assert main(["data", "proposals", "--selective-search", "fast", "--out", out]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert not Path(out).exists()


def test_two_processes_asking_at_once_compute_the_proposals_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache file is made under an exclusive lock: the second caller waits, then finds the first's file.
    import threading
    import time

    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []

    def compute(voc_root, image_ids, out, mode, progress=True):  # noqa: ANN001, ANN202 - a stand-in
        calls.append(str(out))
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        Path(out).write_bytes(b"proposals")

    monkeypatch.setattr(ss, "compute_selective_search", compute)
    voc = tmp_path / "voc"
    (voc / "JPEGImages").mkdir(parents=True)
    for i in ("a", "b"):
        (voc / "JPEGImages" / f"{i}.jpg").write_bytes(b"jpeg")  # the cache key reads sizes and times
    paths: list[Path] = []

    def ask() -> None:
        paths.append(ss.cached_selective_search(voc, ["a", "b"], progress=False))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and paths[0] == paths[1] and paths[0].read_bytes() == b"proposals"
