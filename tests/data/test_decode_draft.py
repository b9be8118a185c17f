"""Large JPEGs decoded at the size the reader uses (DCT-domain scaling) give what full decoding gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ssl_bench.data.folder import ImageFolderIndex, load_image, load_scaled_uint8
from ssl_bench.data.pretrain import PretrainDataset
from ssl_bench.perf.speed import full_size_jpegs

# Mean absolute difference, in 8-bit levels, allowed between a crop of a scaled decode and the same crop of
# the full decode (measured: up to ~1.8 on these photographs-like images at 128 px).
CROP_TOL = 3.0


def test_a_large_jpeg_decodes_at_the_smallest_scale_that_keeps_the_side_asked(tmp_path: Path) -> None:
    path = full_size_jpegs(tmp_path, n=1) / "0000.jpg"
    assert load_image(path).size == (500, 375)
    assert load_image(path, min_short_side=144).size == (250, 188)  # 1/2: 188 >= 144, 1/4 (94) is not
    assert load_image(path, min_short_side=40).size == (63, 47)  # 1/8
    assert load_image(path, min_short_side=256).size == (500, 375)  # 1/2 would be too small
    pixels, stored = load_scaled_uint8(path, 144)
    assert pixels.shape == (3, 188, 250) and pixels.dtype == torch.uint8 and stored == (500, 375)
    Image.open(path).save(tmp_path / "same.png")  # other formats decode in full
    assert load_image(tmp_path / "same.png", min_short_side=40).size == (500, 375)


@pytest.mark.parametrize("augment", [True, False])
def test_pretraining_crops_of_a_scaled_decode_match_full_decoding(tmp_path: Path, augment: bool) -> None:
    index = ImageFolderIndex(full_size_jpegs(tmp_path / "photos", 4), labels="none")
    full = PretrainDataset(index, 128, "random_region", seed=3, augment=augment, draft=False)
    scaled = PretrainDataset(index, 128, "random_region", seed=3, augment=augment, draft=True)
    for i in range(len(index)):
        a, b = full[(1, i)], scaled[(1, i)]
        assert torch.equal(a["mask"], b["mask"]) and a["sample_seed"] == b["sample_seed"]
        assert a["image"].shape == b["image"].shape == (3, 128, 128)
        diff = (a["image"].float() - b["image"].float()).abs()
        assert diff.mean() < CROP_TOL, (i, float(diff.mean()))
        # the same region: a crop shifted by one pixel differs far more than the tolerance
        shifted = (a["image"][:, :, 1:].float() - b["image"][:, :, :-1].float()).abs().mean()
        assert shifted > diff.mean()
