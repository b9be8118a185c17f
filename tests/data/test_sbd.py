"""SBD in its release format: the class-map reader, the lists, bad files named, the VOC + SBD training set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from ssl_bench.data import sbd as sbd_module
from ssl_bench.data.sbd import SBDSegmentation, read_sbd_mask, resolve_sbd_root, sbd_training_ids
from ssl_bench.data.segmentation import TrainTransform, segmentation_training_set
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import read_image_set
from ssl_bench.errors import DataError
from tests.data.sbd_fixture import fixture_mask, write_sbd


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Segmentation train 8 / val 8 images.
    return generate_synthvoc(
        tmp_path_factory.mktemp("synthvoc"), seed=0, workers=1, progress=False, num_images=64, size=64
    )


def test_reads_the_release_layout_as_fcn_does(tmp_path: Path) -> None:
    root = write_sbd(tmp_path / "benchmark_RELEASE" / "dataset",
                     {"train": ["2008_000002", "2008_000003"], "val": ["2008_000008"]})
    path = root / "cls" / "2008_000003.mat"
    fcn_label = loadmat(path)["GTcls"][0]["Segmentation"][0]  # FCN voc_layers.py SBDDSegDataLayer.load_label
    mask = read_sbd_mask(path)
    assert mask.dtype == np.uint8 and mask.shape == (40, 60)
    assert np.array_equal(mask, fcn_label) and np.array_equal(mask, fixture_mask("2008_000003"))
    assert set(np.unique(mask).tolist()) == {0, int(mask.max())} and 1 <= mask.max() <= 20
    assert resolve_sbd_root(tmp_path / "benchmark_RELEASE") == root  # the release's parent folder works too
    assert sbd_module.read_sbd_ids(root, "train") == ["2008_000002", "2008_000003"]

    image, label = SBDSegmentation(root, ["2008_000003"])[0]
    assert image.size == (60, 40) and np.array_equal(np.array(label), mask)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is missing"),
        (b"not a MATLAB file", "cannot read SBD mask"),
        ({"other": np.zeros((4, 4), np.uint8)}, "GTcls"),
        ({"GTcls": {"Boundaries": np.zeros((4, 4), np.uint8)}}, "Segmentation"),
        ({"GTcls": {"Segmentation": np.full((4, 4), 30, np.uint8)}}, "class 30"),
        ({"GTcls": {"Segmentation": np.zeros((4, 4, 3), np.uint8)}}, "not a 2-D class map"),
    ],
    ids=["missing", "garbage", "no-GTcls", "no-Segmentation", "class-30", "3-d"],
)
def test_a_bad_mask_file_is_named(tmp_path: Path, content: object, expected: str) -> None:
    path = tmp_path / "2008_000002.mat"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        savemat(path, content)
    with pytest.raises(DataError, match=expected) as error:
        read_sbd_mask(path)
    assert str(path) in str(error.value)


def test_mask_and_image_of_different_sizes_are_named(tmp_path: Path) -> None:
    root = write_sbd(tmp_path / "dataset", {"train": ["2008_000002"]})
    savemat(root / "cls" / "2008_000002.mat", {"GTcls": {"Segmentation": np.zeros((41, 60), np.uint8)}})
    with pytest.raises(DataError, match=r"2008_000002\.mat: size \(60, 41\)"):
        SBDSegmentation(root, ["2008_000002"])[0]


def test_not_an_sbd_folder_and_a_missing_listed_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no cls/ and img/"):
        resolve_sbd_root(tmp_path)
    root = write_sbd(tmp_path / "dataset", {"train": ["2008_000002", "2008_000003"], "val": []})
    (root / "img" / "2008_000003.jpg").unlink()
    with pytest.raises(DataError, match=r"1 listed file\(s\) missing, e\.g\. .*img/2008_000003\.jpg"):
        sbd_training_ids(root, [], [])
    (root / "val.txt").unlink()
    with pytest.raises(DataError, match="val.txt"):
        sbd_training_ids(root, [], [], ["val"])
    with pytest.raises(DataError, match="choose one or more of"):
        sbd_training_ids(root, [], [], ["trainval"])


def test_training_set_is_voc_train_plus_both_sbd_lists_minus_every_test_image(
    voc_root: Path, tmp_path: Path
) -> None:
    """FCN data/pascal/README.md: SBD and VOC's segmentation splits intersect; no test image is trained on."""
    train_ids = read_image_set(voc_root, "train", "Segmentation")
    test_ids = read_image_set(voc_root, "val", "Segmentation")
    sbd_train = ["2008_000002", train_ids[0], test_ids[0], "2008_000003"]
    sbd_val = ["2008_000008", test_ids[1], "2008_000003"]  # one id in both lists, one VOC test image
    sbd = write_sbd(tmp_path / "dataset", {"train": sbd_train, "val": sbd_val}, size=(48, 64))

    transform = TrainTransform(64, 255, hflip=False)
    dataset, ids, notes = segmentation_training_set(voc_root, "train", transform, test_ids, sbd)
    assert ids == train_ids + ["2008_000002", "2008_000003", "2008_000008"]
    assert not set(ids) & set(test_ids) and len(dataset) == len(ids)
    assert notes == {"sbd": True, "sbd_root": str(sbd), "sbd_splits": ["train", "val"], "sbd_listed": 6,
                     "sbd_images": 3, "sbd_in_voc_train": 1, "sbd_dropped_test_overlap": 2}
    for k, image_id in enumerate(ids[len(train_ids):]):  # SBD samples carry their own .mat's classes
        _, label = dataset[len(train_ids) + k]
        expected = fixture_mask(image_id, (48, 64))
        assert label.shape == (64, 64) and np.array_equal(label[:48].numpy(), expected)
        assert (label[48:] == 255).all()  # padding below the image is ignored

    _, ids, notes = segmentation_training_set(voc_root, "train", transform, test_ids, sbd, ["train"])
    assert ids == train_ids + ["2008_000002", "2008_000003"] and notes["sbd_splits"] == ["train"]

    _, ids, notes = segmentation_training_set(voc_root, "train", transform, test_ids)
    assert ids == train_ids and notes == {"sbd": False, "sbd_images": 0}
    with pytest.raises(DataError, match="no cls/ and img/"):  # a named SBD folder that is not there fails
        segmentation_training_set(voc_root, "train", transform, test_ids, tmp_path / "nowhere")


def test_bench_data_check_reads_the_sbd_lists_and_a_mask(tmp_path: Path) -> None:
    from ssl_bench.cli.data import check_sbd

    root = write_sbd(tmp_path / "dataset", {"train": ["2008_000002", "2008_000003"], "val": ["2008_000008"]})
    problems = check_sbd(root)
    assert problems == [f"{root / 'train.txt'}: 2 ids, expected 8498",
                        f"{root / 'val.txt'}: 1 ids, expected 2857"]
    (root / "img" / "2008_000003.jpg").unlink()
    (root / "cls" / "2008_000008.mat").write_bytes(b"not a MATLAB file")
    problems = check_sbd(root)
    assert any("1 ids without img/<id>.jpg, e.g. 2008_000003" in p for p in problems)
    assert any("cannot read SBD mask" in p and "2008_000008.mat" in p for p in problems)
