"""Image folders for pretraining: listing, the three label sources, flat memory, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ssl_bench.data.folder import (
    ImageFolderDataset,
    ImageFolderIndex,
    collate_skip_none,
    load_image,
    load_image_uint8,
)
from ssl_bench.errors import DataError


def image(path: Path, colour: tuple[int, int, int] = (10, 20, 30), size: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def test_flat_folder_is_listed_sorted_without_labels(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPEG", "c.jpg", "sub/d.bmp"):
        image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    image(tmp_path / ".hidden" / "x.jpg")
    image(tmp_path / ".x.jpg")
    index = ImageFolderIndex(tmp_path)
    assert len(index) == 4
    assert [index.path(i).relative_to(tmp_path).as_posix() for i in range(4)] == [
        "a.JPEG", "b.png", "c.jpg", "sub/d.bmp",
    ]  # fmt: skip
    assert index.label(0) is None and index.num_classes == 0 and index.class_names == ()
    item = ImageFolderDataset(index)[1]
    assert set(item) == {"image", "index"} and item["index"] == 1 and item["image"].shape == (3, 12, 12)


def test_class_subfolders_give_class_indices(tmp_path: Path) -> None:
    for wnid, n in (("n02", 2), ("n01", 3)):
        for k in range(n):
            image(tmp_path / "train" / wnid / f"{k}.JPEG")
    index = ImageFolderIndex(tmp_path / "train")
    assert index.class_names == ("n01", "n02") and index.num_classes == 2 and not index.multi_label
    assert [index.label(i) for i in range(len(index))] == [0, 0, 0, 1, 1]
    batch = next(iter(DataLoader(ImageFolderDataset(index), batch_size=5)))
    assert batch["label"].dtype == torch.int64 and batch["label"].tolist() == [0, 0, 0, 1, 1]
    assert ImageFolderIndex(tmp_path / "train", labels="none").label(0) is None
    # One subfolder is a layout, not a class.
    assert ImageFolderIndex(tmp_path / "train" / "n01").num_classes == 0


def test_labels_csv_gives_multi_hot(tmp_path: Path) -> None:
    for name in ("images/000002.jpg", "images/000001.jpg"):
        image(tmp_path / name)
    (tmp_path / "labels.csv").write_text("image,cat,dog\nimages/000002.jpg,1,1\nimages/000001.jpg,0,1\n")
    index = ImageFolderIndex(tmp_path)
    assert index.class_names == ("cat", "dog") and index.multi_label
    assert index.label(0).dtype == np.float32
    assert [index.label(i).tolist() for i in range(2)] == [[0, 1], [1, 1]]
    batch = next(iter(DataLoader(ImageFolderDataset(index), batch_size=2)))
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (2, 2)


def test_labels_csv_must_match_the_files(tmp_path: Path) -> None:
    image(tmp_path / "images" / "1.jpg")
    csv = tmp_path / "labels.csv"
    csv.write_text("image,cat\nimages/1.jpg,1\nimages/2.jpg,0\n")
    with pytest.raises(DataError, match=r"names 'images/2.jpg'.*not an image file") as err:
        ImageFolderIndex(tmp_path)
    assert str(csv) in str(err.value)
    csv.write_text("image,cat\n")
    with pytest.raises(DataError, match="no row for 1 image"):
        ImageFolderIndex(tmp_path)
    csv.write_text("image,cat\nimages/1.jpg,1,0\n")
    with pytest.raises(DataError, match="line 2"):
        ImageFolderIndex(tmp_path)
    assert ImageFolderIndex(tmp_path, labels="none").num_classes == 0


def test_empty_or_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match=str(tmp_path / "empty")):
        ImageFolderIndex(tmp_path / "empty")
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        ImageFolderIndex(tmp_path / "missing")
    with pytest.raises(DataError, match="is a file, not a folder"):
        ImageFolderIndex(image(tmp_path / "one.jpg"))


def test_listing_hash_is_the_same_for_the_same_files_elsewhere(tmp_path: Path) -> None:
    for name in ("a/1.jpg", "a/2.png", "b/3.jpg"):
        image(tmp_path / "here" / name)
        image(tmp_path / "copy" / name, colour=(0, 0, 0))  # the listing, not the pixels
    here = ImageFolderIndex(tmp_path / "here").listing_hash()
    assert ImageFolderIndex(tmp_path / "copy").listing_hash() == here
    image(tmp_path / "copy" / "b" / "4.jpg")
    assert ImageFolderIndex(tmp_path / "copy").listing_hash() != here


def test_listing_is_one_numpy_array_not_a_list_of_strings(tmp_path: Path) -> None:
    for k in range(30):
        image(tmp_path / f"{k:03d}.png", size=4)
    os.symlink(tmp_path, tmp_path / "loop")  # a symlink cycle is walked once
    index = ImageFolderIndex(tmp_path)
    assert len(index) == 30
    assert isinstance(index._paths, np.ndarray) and index._paths.dtype.kind == "S"
    for value in vars(index).values():
        assert not (isinstance(value, (list, tuple)) and len(value) == len(index))


def test_corrupt_image_raises_or_is_skipped_and_counted(tmp_path: Path) -> None:
    for k in range(5):
        image(tmp_path / f"{k}.jpg", colour=(k * 40, 0, 0))
    bad = tmp_path / "2.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    index = ImageFolderIndex(tmp_path)
    with pytest.raises(DataError, match=str(bad)):
        ImageFolderDataset(index)[2]
    with pytest.raises(DataError, match=str(bad)):
        load_image(bad)
    ds = ImageFolderDataset(
        index, transform=lambda im: torch.from_numpy(np.asarray(im).copy()), skip_bad=True
    )
    with pytest.warns(UserWarning, match=str(bad)):
        batches = list(DataLoader(ds, batch_size=3, collate_fn=collate_skip_none))
    assert [b["skipped"] for b in batches] == [1, 0]
    assert batches[0]["index"].tolist() == [0, 1] and batches[0]["image"].shape == (2, 12, 12, 3)
    assert collate_skip_none([None, None]) == {"skipped": 2}


@pytest.mark.parametrize("name", ["a.jpg", "a.png", "a.bmp", "a.webp", "grey.png", "cmyk.jpg"])
def test_load_image_uint8_matches_pil_for_every_format(tmp_path: Path, name: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if name.startswith(("grey", "cmyk")):
        img = img.convert("L" if name.startswith("grey") else "CMYK")
    img.save(tmp_path / name)
    tensor = load_image_uint8(tmp_path / name)
    expected = np.asarray(load_image(tmp_path / name))
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 20, 30)
    tolerance = 2 if name.endswith(".jpg") else 0
    assert np.abs(tensor.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).max() <= tolerance


def test_load_image_uint8_names_a_truncated_or_missing_file(tmp_path: Path) -> None:
    bad = image(tmp_path / "bad.jpg", size=64)
    bad.write_bytes(bad.read_bytes()[:200])
    for path in (bad, tmp_path / "missing.png", tmp_path / "notes.jpg"):
        if path.name == "notes.jpg":
            path.write_text("not an image")
        with pytest.raises(DataError, match=str(path)):
            load_image_uint8(path)
