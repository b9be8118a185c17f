"""VOC (+ SBD) semantic segmentation samples for FCN training and testing: joint transforms and datasets.

The protocol these serve, and its deviations from FCN (random crops instead of whole images, SBD images of the
test split dropped from training), is in :mod:`ssl_bench.evaluators.segmentation`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from ssl_bench.data.sbd import SBD_SPLITS, SBDSegmentation, sbd_training_ids
from ssl_bench.data.transforms import normalize, to_tensor
from ssl_bench.data.voc import VOCSegmentation


class TrainTransform:
    """Image + mask → (normalised [3, S, S], int64 [S, S]): random flip, then a random S×S crop.

    Images smaller than S are padded bottom/right with the mean pixel (0 after normalisation) and
    ``ignore_index`` (the label the loss ignores).
    """

    def __init__(self, crop_size: int, ignore_index: int, hflip: bool = True) -> None:
        self.crop_size, self.ignore_index, self.hflip = crop_size, ignore_index, hflip

    def __call__(self, image: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalize(to_tensor(image))  # [3, H, W]
        y = torch.from_numpy(np.array(mask, dtype=np.int64))  # [H, W]
        if self.hflip and torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        s = self.crop_size
        h, w = y.shape
        x = F.pad(x, (0, max(s - w, 0), 0, max(s - h, 0)))
        y = F.pad(y, (0, max(s - w, 0), 0, max(s - h, 0)), value=self.ignore_index)
        top = int(torch.randint(y.shape[0] - s + 1, ()))
        left = int(torch.randint(y.shape[1] - s + 1, ()))
        return x[:, top : top + s, left : left + s], y[top : top + s, left : left + s]


def test_transform(image: Image.Image, mask: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole image at its own size: (normalised [3, H, W], int64 [H, W])."""
    return normalize(to_tensor(image)), torch.from_numpy(np.array(mask, dtype=np.int64))


def segmentation_training_set(
    voc_root: str | os.PathLike,
    split: str,
    transform: TrainTransform,
    test_ids: list[str],
    sbd_root: str | os.PathLike | None = None,
    sbd_splits: Sequence[str] = SBD_SPLITS,
) -> tuple[Dataset, list[str], dict[str, Any]]:
    """VOC ``Segmentation/<split>``, plus SBD's ``sbd_splits`` lists when ``sbd_root`` is given.

    The SBD images added are those of ``sbd_training_ids``: not in VOC's split (VOC's masks win) and not in
    the test split.

    Returns:
        The dataset, its image ids in order, and notes for the run record: ``sbd`` (whether SBD was used) and,
        with SBD, ``sbd_training_ids``'s counts.

    Raises:
        DataError: ``sbd_root`` is given but is no SBD folder, or a listed SBD file is missing.
    """
    voc = VOCSegmentation(voc_root, split, transform=transform)
    voc_ids = [voc.image_id(i) for i in range(len(voc))]
    if sbd_root is None or str(sbd_root) == "":
        return voc, voc_ids, {"sbd": False, "sbd_images": 0}
    extra_ids, notes = sbd_training_ids(sbd_root, voc_ids, test_ids, sbd_splits)
    dataset = ConcatDataset([voc, SBDSegmentation(sbd_root, extra_ids, transform)])
    return dataset, voc_ids + extra_ids, {"sbd": True, **notes}
