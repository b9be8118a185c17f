"""VOC (+ SBD) semantic segmentation samples for FCN training and testing: joint transforms and datasets.

The protocol these serve, and its deviations from FCN (random crops instead of whole images, SBD images of the
test split dropped from training), is in :mod:`ssl_bench.evaluators.segmentation`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from ssl_bench.data.folder import load_image
from ssl_bench.data.transforms import normalize, to_tensor
from ssl_bench.data.voc import VOCSegmentation
from ssl_bench.errors import DataError


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


class SBDSegmentation(Dataset):
    """Semantic Boundaries Dataset (Hariharan et al. 2011) class masks: ``img/<id>.jpg``, ``cls/<id>.mat``.

    Args:
        root: the SBD ``dataset`` folder (holding ``img``, ``cls``, ``train.txt``).
        ids: the image ids to serve.
        transform: joint transform, as for ``VOCSegmentation``.
    """

    def __init__(self, root: str | Path, ids: list[str], transform: Any) -> None:
        self.root, self.ids, self.transform = Path(root), list(ids), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        from scipy.io import loadmat

        image_id = self.ids[i]
        path = self.root / "cls" / f"{image_id}.mat"
        try:
            mask = loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
        except (OSError, KeyError, AttributeError, ValueError) as e:
            raise DataError(f"cannot read SBD mask {path}: {e}") from e
        image = load_image(self.root / "img" / f"{image_id}.jpg")
        return self.transform(image, Image.fromarray(np.asarray(mask, dtype=np.uint8)))


def segmentation_training_set(
    voc_root: str | os.PathLike,
    split: str,
    transform: TrainTransform,
    test_ids: list[str],
    sbd_root: str | None = None,
) -> tuple[Dataset, list[str], dict[str, Any]]:
    """VOC ``Segmentation/<split>``, plus SBD ``train`` when ``sbd_root`` names an existing folder.

    SBD images that VOC's own split already holds keep VOC's masks (they mark boundaries 255); SBD images
    of the test split are dropped, so the test set stays unseen (FCN's seg11valid removes them from the
    test side instead; here the test split is fixed).

    Returns:
        The dataset, its image ids in order, and notes for the run record: ``sbd_images`` (SBD images
        added), with ``sbd_note`` when ``sbd_root`` is not found, or ``sbd_dropped_test_overlap`` and
        ``sbd_root`` when it is.
    """
    voc = VOCSegmentation(voc_root, split, transform=transform)
    voc_ids = [voc.image_id(i) for i in range(len(voc))]
    notes: dict[str, Any] = {"sbd_images": 0}
    if not sbd_root or not Path(sbd_root).is_dir():
        if sbd_root:
            notes["sbd_note"] = f"sbd_root {sbd_root} not found; trained on VOC only"
        return voc, voc_ids, notes
    sbd_ids = read_sbd_ids(Path(sbd_root) / "train.txt")
    known = set(voc_ids)
    dropped = set(sbd_ids) & set(test_ids)
    extra_ids = [i for i in sbd_ids if i not in known and i not in dropped]
    notes |= {
        "sbd_images": len(extra_ids),
        "sbd_dropped_test_overlap": len(dropped),
        "sbd_root": str(sbd_root),
    }
    return ConcatDataset([voc, SBDSegmentation(sbd_root, extra_ids, transform)]), voc_ids + extra_ids, notes


def read_sbd_ids(path: Path) -> list[str]:
    """The image ids listed one a line in an SBD list file (``train.txt``), blank lines skipped."""
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as e:
        raise DataError(f"cannot read SBD image list {path}: {e}") from e
