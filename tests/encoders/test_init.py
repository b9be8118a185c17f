"""The "Random Gaussian" trunk drawn for Caffe's 0–255 input and expressed in the suite's normalised input."""

from __future__ import annotations

import copy

import pytest
import torch

from ssl_bench.data.transforms import MEAN, STD
from ssl_bench.encoders import create_encoder, load_encoder
from ssl_bench.encoders.init import caffe_input_scale_, gaussian_init_
from ssl_bench.methods.random_init import RandomInit


def test_the_scaled_trunk_on_normalised_input_is_the_caffe_trunk_on_0_255_input() -> None:
    torch.manual_seed(0)
    caffe = gaussian_init_(create_encoder("caffenet")).eval()
    suite = caffe_input_scale_(copy.deepcopy(caffe))
    torch.manual_seed(1)
    pixels = torch.rand(2, 3, 227, 227) * 255  # 0–255 RGB
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) * 255 for v in (MEAN, STD))
    with torch.no_grad():
        expected = caffe(pixels - mean)  # Caffe: mean-subtracted 0–255 input
        got = suite((pixels - mean) / std)  # the suite: normalised input (data/transforms.py)
    # conv1's outputs agree up to rounding, so does everything after it (LRN included)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_caffe_input_scale_multiplies_conv1_by_255_std_per_input_channel() -> None:
    torch.manual_seed(0)
    drawn = gaussian_init_(create_encoder("caffenet"))
    before = {k: v.clone() for k, v in drawn.state_dict().items()}
    caffe_input_scale_(drawn)
    after = drawn.state_dict()
    for c, s in enumerate(STD):
        torch.testing.assert_close(after["conv1.weight"][:, c], before["conv1.weight"][:, c] * (255 * s))
    assert all(torch.equal(after[k], before[k]) for k in before if k != "conv1.weight")


def test_the_random_method_and_weights_random_draw_the_same_caffe_scaled_trunk() -> None:
    torch.manual_seed(0)
    method = RandomInit().encoder.state_dict()
    torch.manual_seed(0)
    loaded = load_encoder("random").state_dict()
    assert method.keys() == loaded.keys() and all(torch.equal(method[k], loaded[k]) for k in method)
    assert float(method["conv1.weight"].std()) == pytest.approx(0.01 * 255 * 0.226, rel=0.05)
    torch.manual_seed(0)
    plain = RandomInit(caffe_input=False).encoder.state_dict()
    assert float(plain["conv1.weight"].std()) == pytest.approx(0.01, rel=0.05)
