"""VOC (+ SBD) segmentation samples: the training crop, the SBD training images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.data.segmentation import TrainTransform, segmentation_training_set
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import read_image_set


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Segmentation train 8 / val 8 images.
    return generate_synthvoc(
        tmp_path_factory.mktemp("synthvoc"), seed=0, workers=1, progress=False, num_images=64, size=64
    )


def test_train_transform_pads_with_ignore_and_crops() -> None:
    torch.manual_seed(0)
    image = Image.fromarray(np.full((50, 70, 3), 200, dtype=np.uint8))
    mask = Image.fromarray(np.full((50, 70), 7, dtype=np.uint8))
    x, y = TrainTransform(64, 255, hflip=True)(image, mask)
    assert x.shape == (3, 64, 64) and y.shape == (64, 64) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == {7, 255}
    assert (y == 7).sum() == 50 * 64  # 50 rows of the image, cropped to 64 of its 70 columns


def test_sbd_train_images_are_added_without_test_images(voc_root: Path, tmp_path: Path) -> None:
    from scipy.io import savemat

    train_ids = read_image_set(voc_root, "train", "Segmentation")
    test_ids = read_image_set(voc_root, "val", "Segmentation")
    sbd = tmp_path / "sbd"
    (sbd / "img").mkdir(parents=True)
    (sbd / "cls").mkdir()
    ids = ["2008_000001", "2008_000002", train_ids[0], test_ids[0]]
    for image_id in ids:
        Image.fromarray(np.zeros((40, 60, 3), dtype=np.uint8)).save(sbd / "img" / f"{image_id}.jpg")
        mask = np.zeros((40, 60), dtype=np.uint8)
        mask[10:20, 10:30] = 5
        savemat(sbd / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": mask}})
    (sbd / "train.txt").write_text("\n".join(ids) + "\n")

    transform = TrainTransform(40, 255, hflip=False)
    dataset, all_ids, notes = segmentation_training_set(voc_root, "train", transform, test_ids, str(sbd))
    assert all_ids == train_ids + ["2008_000001", "2008_000002"]
    assert len(dataset) == len(all_ids)
    assert (notes["sbd_images"], notes["sbd_dropped_test_overlap"]) == (2, 1)
    _, mask = dataset[len(train_ids)]
    assert set(mask.unique().tolist()) == {0, 5}

    nowhere = str(tmp_path / "nowhere")
    dataset, all_ids, notes = segmentation_training_set(
        voc_root, "train", TrainTransform(64, 255), test_ids, nowhere
    )
    assert all_ids == train_ids and notes["sbd_images"] == 0 and "not found" in notes["sbd_note"]
    _, all_ids, notes = segmentation_training_set(voc_root, "train", TrainTransform(64, 255), test_ids)
    assert all_ids == train_ids and notes == {"sbd_images": 0}
