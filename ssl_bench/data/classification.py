"""VOC classification training crops as Krähenbühl et al.'s ``voc-classification`` draws them (the ``cls``
evaluator's augmentation, PAPER.md §3): random scale, random crop padded with the mean pixel, random mirror;
one reproducible generator per (epoch, image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ssl_bench.data.pretrain import sample_generator
from ssl_bench.data.transforms import normalize, to_tensor
from ssl_bench.data.voc import VOCClassification


def random_scale_crop(
    image: Image.Image,
    crop: int,
    min_scale: float,
    max_scale: float,
    g: torch.Generator,
    resize: int | None = None,
) -> torch.Tensor:
    """Random scale, random ``crop``×``crop`` crop (mean-padded where the image is smaller), random mirror.

    Args:
        image: RGB image.
        crop: crop side in pixels.
        min_scale, max_scale: the scale factor is uniform in this range.
        g: the sample's generator (all random choices come from it).
        resize: resize the shorter side to this before scaling (None: use the image as stored).

    Returns:
        Normalised image [3, crop, crop].
    """
    w, h = image.size
    base = resize / min(w, h) if resize else 1.0
    scale = base * (min_scale + (max_scale - min_scale) * float(torch.rand((), generator=g)))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    x = normalize(to_tensor(image.resize((sw, sh), resample=Image.BILINEAR)))  # [3, sh, sw]
    if sw < crop or sh < crop:
        # Place the small image at a random offset inside a mean-valued (zero) canvas of at least crop².
        cw, ch = max(sw, crop), max(sh, crop)
        px = int(torch.randint(0, cw - sw + 1, (1,), generator=g))
        py = int(torch.randint(0, ch - sh + 1, (1,), generator=g))
        x = F.pad(x, (px, cw - sw - px, py, ch - sh - py))  # [3, ch, cw]
    _, ch, cw = x.shape
    x0 = int(torch.randint(0, cw - crop + 1, (1,), generator=g))
    y0 = int(torch.randint(0, ch - crop + 1, (1,), generator=g))
    x = x[:, y0 : y0 + crop, x0 : x0 + crop]  # [3, crop, crop]
    if bool(torch.rand((), generator=g) < 0.5):
        x = x.flip(-1)
    return x.contiguous()


class AugmentedVOCClassification(Dataset):
    """VOC classification images under :func:`random_scale_crop`; keys are ``(epoch, index)`` pairs.

    The crop of image ``i`` in epoch ``e`` depends only on ``(seed, e, i)``, not on the number of workers.
    Items: ``{"image": [3, crop, crop], "label": int8 [20]}`` (the suite's batch convention).
    """

    def __init__(
        self,
        voc: VOCClassification,
        crop_size: int,
        min_scale: float,
        max_scale: float,
        resize: int | None,
        seed: int,
    ) -> None:
        self.voc, self.seed = voc, seed
        self.crop_size, self.min_scale, self.max_scale, self.resize = crop_size, min_scale, max_scale, resize

    def __len__(self) -> int:
        return len(self.voc)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key
        image, labels = self.voc[i]
        g = sample_generator(self.seed, epoch, i)
        crop = random_scale_crop(image, self.crop_size, self.min_scale, self.max_scale, g, self.resize)
        return {"image": crop, "label": labels}
