"""Semantic Boundaries Dataset (SBD; Hariharan et al., ICCV 2011): masks, lists, the VOC + SBD train set.

The release's ``benchmark_RELEASE/dataset`` folder holds ``img/<id>.jpg``, ``cls/<id>.mat`` and the lists
``train.txt`` (8,498 ids) and ``val.txt`` (2,857 ids). A ``cls`` file is a MATLAB struct ``GTcls`` whose field
``Segmentation`` is the class map (uint8, 0 background, 1…20 the VOC classes in VOC order; SBD marks no 255
boundary). FCN reads it the same way: ``loadmat(...)['GTcls'][0]['Segmentation'][0]``
(shelhamer/fcn.berkeleyvision.org ``voc_layers.py``, ``SBDDSegDataLayer.load_label``).

The training set (``sbd_training_ids``): VOC ``Segmentation/train``, plus every image of SBD's ``train`` and
``val`` lists, minus every image of the test split. FCN's ``data/pascal/README.md``: "The train/val/test
splits of PASCAL VOC segmentation challenge and SBD diverge. Most notably VOC 2011 segval intersects with SBD
train. Care must be taken for proper evaluation by excluding images from the train or val splits."
NOTE: FCN (and its ``voc-fcn-alexnet``, ``net.py``: ``sbdd_dir`` for ``train``, ``seg11valid`` for testing)
trains on SBD ``train`` alone (8,498 images) and excludes the overlap from the test side (``seg11valid``,
VOC2011 val minus SBD train, 736 images). The suite's test split is fixed (VOC2012 ``val``, 1,449 images),
so the overlap is excluded from the training side instead; with SBD's two lists and VOC2012's train this is
the 10,582-image set later VOC2012-val results train on. ``sbd_splits: [train]`` keeps SBD ``train`` only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ssl_bench.data.folder import load_image
from ssl_bench.errors import DataError

SBD_SPLITS = ("train", "val")
SBD_SPLIT_SIZES = {"train": 8498, "val": 2857}  # the release's lists (FCN data/pascal/README.md: "8,498")
SBD_NUM_CLASSES = 21  # background + the 20 VOC classes
SBD_IGNORE = 255  # not in SBD's masks; accepted so that a converted release (VOC-style PNG labels) reads too


def resolve_sbd_root(root: str | os.PathLike) -> Path:
    """The SBD ``dataset`` folder: ``root``, or ``root/dataset`` when ``root`` is ``benchmark_RELEASE``.

    Raises:
        DataError: neither is a folder holding ``cls/`` and ``img/``.
    """
    root = Path(root)
    for candidate in (root, root / "dataset"):
        if (candidate / "cls").is_dir() and (candidate / "img").is_dir():
            return candidate
    raise DataError(f"SBD folder {root}: no cls/ and img/ in it or in {root / 'dataset'} "
                    "(expected benchmark_RELEASE/dataset of the SBD release)")


def read_sbd_ids(root: str | os.PathLike, split: str) -> list[str]:
    """The image ids of ``<root>/<split>.txt``, one a line, blank lines skipped.

    Raises:
        DataError: the list is missing or unreadable.
    """
    path = Path(root) / f"{split}.txt"
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read SBD image list {path}: {e}") from e


def read_sbd_mask(path: str | os.PathLike) -> np.ndarray:
    """The class map of one ``cls/<id>.mat``: uint8 ``[H, W]``, 0 background, 1…20 classes.

    Raises:
        DataError: the file is missing, not a MATLAB file, has no ``GTcls.Segmentation``, or its map is not a
            2-D array of class indices.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not Path(path).is_file():  # scipy's own message would not say so
        raise DataError(f"SBD mask {path} is missing")
    try:
        # squeeze_me + struct_as_record=False: GTcls reads as an object, its 1×1 struct dimensions dropped.
        struct = loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
        segmentation = np.asarray(struct.Segmentation)
    except (OSError, MatReadError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise DataError(f"cannot read SBD mask {path}: {type(e).__name__}: {e}") from e
    if segmentation.ndim != 2 or segmentation.size == 0 or not np.issubdtype(segmentation.dtype, np.number):
        raise DataError(f"SBD mask {path}: GTcls.Segmentation is {segmentation.dtype} of shape "
                        f"{segmentation.shape}, not a 2-D class map")
    outside = (segmentation < 0) | (segmentation >= SBD_NUM_CLASSES)
    bad = segmentation[outside & (segmentation != SBD_IGNORE)]
    if bad.size or not np.array_equal(segmentation, np.round(segmentation)):
        value = bad.flat[0] if bad.size else "non-integer values"
        raise DataError(f"SBD mask {path}: class {value} outside 0…{SBD_NUM_CLASSES - 1} (and {SBD_IGNORE})")
    return segmentation.astype(np.uint8)


class SBDSegmentation(Dataset):
    """SBD images with their class masks, as ``VOCSegmentation`` serves VOC's.

    Args:
        root: the SBD ``dataset`` folder (or ``benchmark_RELEASE`` above it).
        ids: the image ids to serve.
        transform: joint transform ``(image, mask) -> (image, mask)``, or None.

    Items: ``(image, mask)``: PIL RGB image and PIL ``L`` mask of class indices.
    """

    def __init__(self, root: str | os.PathLike, ids: Sequence[str], transform: Any = None) -> None:
        self.root, self.ids, self.transform = resolve_sbd_root(root), list(ids), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        image_id = self.ids[i]
        mask_path = self.root / "cls" / f"{image_id}.mat"
        image = load_image(self.root / "img" / f"{image_id}.jpg")
        mask = Image.fromarray(read_sbd_mask(mask_path))
        if mask.size != image.size:
            raise DataError(f"SBD mask {mask_path}: size {mask.size}, its image's is {image.size}")
        if self.transform is not None:
            return self.transform(image, mask)
        return image, mask


def sbd_training_ids(
    root: str | os.PathLike,
    voc_train_ids: Sequence[str],
    test_ids: Sequence[str],
    splits: Sequence[str] = SBD_SPLITS,
) -> tuple[list[str], dict[str, Any]]:
    """The SBD images that join VOC's training split: SBD's ``splits`` lists minus VOC's train and test ids.

    An image in both VOC's train split and SBD is served once, from VOC (its official mask, boundaries 255).
    An image of the test split is dropped whichever list names it, so the test set stays unseen.

    Returns:
        The added ids (list order, ``splits`` in turn, each once) and notes for the run record: ``sbd_root``,
        ``sbd_splits``, ``sbd_listed`` (distinct ids in the lists), ``sbd_images`` (added),
        ``sbd_in_voc_train`` and ``sbd_dropped_test_overlap``.

    Raises:
        DataError: a list is missing or an id in it has no ``cls/<id>.mat`` or ``img/<id>.jpg`` (the first
            such file named, with how many are missing).
    """
    root = resolve_sbd_root(root)
    unknown = [s for s in splits if s not in SBD_SPLITS]
    if unknown or not splits:
        raise DataError(f"SBD splits {list(splits)}: choose one or more of {list(SBD_SPLITS)}")
    listed = list(dict.fromkeys(i for split in splits for i in read_sbd_ids(root, split)))
    missing = [root / sub / f"{i}{ext}" for i in listed for sub, ext in (("cls", ".mat"), ("img", ".jpg"))
               if not (root / sub / f"{i}{ext}").is_file()]
    if missing:
        raise DataError(f"SBD {root}: {len(missing)} listed file(s) missing, e.g. {missing[0]}")
    voc, test = set(voc_train_ids), set(test_ids)
    added = [i for i in listed if i not in voc and i not in test]
    notes = {
        "sbd_root": str(root),
        "sbd_splits": list(splits),
        "sbd_listed": len(listed),
        "sbd_images": len(added),
        "sbd_in_voc_train": sum(i in voc for i in listed),
        "sbd_dropped_test_overlap": sum(i in test for i in listed),
    }
    return added, notes
