"""The Paris StreetView reader: both folder namings, and a clear error for anything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_bench.data.paris import find_paris_streetview, paris_streetview
from ssl_bench.errors import DataError


def write_paris_folder(root: Path, train: str, test: str, n_train: int = 5, n_test: int = 3) -> Path:
    """A tiny Paris-StreetView-like folder: ``n_train`` wide JPEGs under ``train`` (in a subfolder, as the
    public archive nests them), ``n_test`` square PNGs under ``test`` named like ``paris_eval_gt``'s."""
    rng = np.random.default_rng(0)
    (root / train / "images").mkdir(parents=True)
    (root / test).mkdir(parents=True)
    for i in range(n_train):
        pixels = rng.integers(0, 256, (54, 94, 3), dtype=np.uint8)  # the 936×537 aspect, scaled down
        Image.fromarray(pixels).save(root / train / "images" / f"{i:02d}.JPG", quality=95)
    for i in range(n_test):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            root / test / f"{i + 1:03d}_im.png"
        )
    return root


@pytest.mark.parametrize(("train", "test"), [("paris_train_original", "paris_eval_gt"), ("train", "test")])
def test_both_layouts_are_read(tmp_path: Path, train: str, test: str) -> None:
    root = write_paris_folder(tmp_path / "paris", train, test)
    paris = paris_streetview(root)
    assert (paris.train, paris.test) == (root / train, root / test)
    assert len(paris.train_index()) == 5 and len(paris.test_index()) == 3
    assert paris.test_index().path(0).name == "001_im.png"


def test_the_public_names_win_over_train_and_test(tmp_path: Path) -> None:
    root = write_paris_folder(tmp_path / "paris", "paris_train_original", "paris_eval_gt")
    write_paris_folder(root, "train", "test")
    assert paris_streetview(root).test == root / "paris_eval_gt"


def test_a_folder_without_either_layout_is_refused_with_the_expected_names(tmp_path: Path) -> None:
    root = write_paris_folder(tmp_path / "paris", "paris_train_original", "eval")  # no paris_eval_gt/
    assert find_paris_streetview(root) is None
    with pytest.raises(DataError) as info:
        paris_streetview(root)
    message = str(info.value)
    for name in ("paris_train_original/", "paris_eval_gt/", "train/", "test/"):
        assert name in message
    assert "found eval/, paris_train_original/" in message
    with pytest.raises(DataError, match="found no folder"):
        paris_streetview(tmp_path / "missing")
