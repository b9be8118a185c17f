"""VOC detection samples for torchvision detectors: box conventions, flips, proposals files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.data.detection import (
    DetectionSample,
    load_proposals,
    torchvision_to_voc,
    voc_to_torchvision,
)
from ssl_bench.errors import DataError, RecipeError


def test_voc_torchvision_round_trip_is_exact() -> None:
    rng = np.random.default_rng(1)
    x1y1 = rng.integers(1, 400, size=(1000, 2))
    voc = torch.from_numpy(np.concatenate([x1y1, x1y1 + rng.integers(0, 100, size=(1000, 2))], 1)).float()
    tv = voc_to_torchvision(voc)
    assert torch.equal(torchvision_to_voc(tv), voc)
    # A single pixel (1, 1, 1, 1) in VOC is the unit square [0, 1] × [0, 1]: widths agree (x2 - x1 + 1).
    assert voc_to_torchvision(torch.tensor([[1.0, 1.0, 1.0, 1.0]])).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    np.testing.assert_array_equal((tv[:, 2] - tv[:, 0]).numpy(), (voc[:, 2] - voc[:, 0] + 1).numpy())


def test_flip_mirrors_voc_pixel_columns() -> None:
    """Pixel column c (1-based) of a W-wide image lands on column W + 1 - c after a horizontal flip."""
    width = 50
    image = Image.new("RGB", (width, 30))
    target = {
        "boxes": torch.tensor([[3.0, 4.0, 10.0, 20.0], [5.0, 5.0, 6.0, 6.0]]),
        "labels": torch.tensor([2, 7]),
        "difficult": torch.tensor([False, True]),
        "truncated": torch.tensor([False, False]),
        "image_id": "x",
    }
    sample = DetectionSample(flip=True, proposals={"x": np.array([[1.0, 1.0, 50.0, 30.0]], np.float32)})
    torch.manual_seed(0)
    outs = [sample(image, target)[1] for _ in range(20)]
    flipped = [o for o in outs if o["boxes"][0, 0] != 2.0]
    assert flipped and len(flipped) < 20
    for out in (outs[0], flipped[0]):
        assert out["labels"].tolist() == [3]  # background is 0; the difficult box is no target
    back = torchvision_to_voc(flipped[0]["boxes"])
    assert back.tolist() == [[width + 1 - 10, 4.0, width + 1 - 3, 20.0]]
    assert torchvision_to_voc(flipped[0]["proposals"]).tolist() == [[1.0, 1.0, 50.0, 30.0]]


def test_proposals_file_reads_npz_and_pt_alike(tmp_path: Path) -> None:
    boxes = np.array([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 9.0, 9.0]], np.float32)
    np.savez(tmp_path / "p.npz", a=boxes, b=np.zeros((0,)))
    torch.save({"a": torch.from_numpy(boxes), "b": torch.zeros(0)}, tmp_path / "p.pt")
    for name in ("p.npz", "p.pt"):
        proposals = load_proposals(tmp_path / name)
        np.testing.assert_array_equal(proposals["a"], boxes)
        assert proposals["b"].shape == (0, 4) and proposals["a"].dtype == np.float32


def test_bad_proposals_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_proposals(tmp_path / "missing.npz")
    (tmp_path / "p.txt").write_text("1 2 3 4")
    with pytest.raises(RecipeError, match=".npz or .pt"):
        load_proposals(tmp_path / "p.txt")
    np.savez(tmp_path / "p.npz", a=np.array([[1.0, 2.0, np.nan, 4.0]]))
    with pytest.raises(DataError, match="'a' is not a finite"):
        load_proposals(tmp_path / "p.npz")
