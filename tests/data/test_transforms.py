"""Normalisation: one convention, the same values whatever the memory layout."""

from __future__ import annotations

import torch

from ssl_bench.data.transforms import normalize_uint8


def test_channels_last_normalisation_equals_the_plain_layout_bit_for_bit():
    x = torch.randint(0, 256, (3, 3, 17, 23), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    plain = normalize_uint8(x)
    fast = normalize_uint8(x.contiguous(memory_format=torch.channels_last))
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, fast)
    assert torch.equal(normalize_uint8(x[0]), plain[0])  # a single image [3, H, W]
