"""VOC segmentation samples: the training crop (SBD and the VOC + SBD training set: test_sbd.py)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ssl_bench.data.segmentation import TrainTransform


def test_train_transform_pads_with_ignore_and_crops() -> None:
    torch.manual_seed(0)
    image = Image.fromarray(np.full((50, 70, 3), 200, dtype=np.uint8))
    mask = Image.fromarray(np.full((50, 70), 7, dtype=np.uint8))
    x, y = TrainTransform(64, 255, hflip=True)(image, mask)
    assert x.shape == (3, 64, 64) and y.shape == (64, 64) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == {7, 255}
    assert (y == 7).sum() == 50 * 64  # 50 rows of the image, cropped to 64 of its 70 columns
