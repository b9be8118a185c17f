"""The DCGAN parts of the semantic-inpainting net: the code's layer widths and the shapes they give."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.methods.dcgan import DCGANEncoder, Discriminator, dcgan_decoder, dcgan_widths, doublings


def test_widths_follow_the_public_code():
    assert dcgan_widths(5, 64) == [64, 64, 128, 256, 512]  # train.lua's 128-px encoder
    assert dcgan_widths(4, 64) == [64, 128, 256, 512]  # its 64-px discriminator


def test_encoder_taps_discriminator_and_decoder_shapes():
    encoder = DCGANEncoder(64, 4).eval()
    x = torch.randn(2, 3, 64, 64)
    assert encoder(x).shape == (2, 32, 4, 4)
    taps = encoder(x, taps=("conv1", "conv4"))
    assert {k: tuple(v.shape[1:]) for k, v in taps.items()} == {"conv1": (4, 32, 32), "conv4": (32, 4, 4)}
    assert Discriminator(32, 4)(torch.randn(3, 3, 32, 32)).shape == (3,)
    assert dcgan_decoder(32, 4, 64, 4)(torch.randn(2, 32, 4, 4)).shape == (2, 3, 64, 64)


def test_sizes_must_be_a_power_of_two_apart():
    assert doublings(4, 128) == 5
    with pytest.raises(ValueError, match="not 4 px times a power of two"):
        DCGANEncoder(100, 4)
