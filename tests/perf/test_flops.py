import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ssl_bench.perf.eager_reference import build_reference
from ssl_bench.perf.flops import flop_counter


def _count(counter, layer, x):
    with counter as c:
        layer(x).sum().backward()
    return c.get_total_flops()


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_conv_forward_and_backward_flops_by_hand(groups):
    """2·N·C_out·(C_in/groups)·k²·H_out·W_out for the forward, the same again for each of the input and weight
    gradients: 3× in all, whatever the groups."""
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=groups)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    forward = 2 * 2 * 16 * (8 // groups) * 9 * 5 * 5
    assert _count(flop_counter(), conv, x) == 3 * forward


def test_transposed_conv_flops_by_hand():
    up = torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    forward = 2 * 2 * 8 * 4 * 16 * 6 * 6  # every input pixel meets the whole kernel
    assert _count(flop_counter(), up, x) == 3 * forward


def test_ungrouped_counts_are_torchs():
    conv = torch.nn.Conv2d(4, 6, 3)
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    assert _count(flop_counter(), conv, x) == _count(FlopCounterMode(display=False), conv, x)


def test_eager_reference_keeps_the_plain_grouped_convolution():
    model, _ = build_reference(image_size=99)
    assert type(model.channel_fc.fc) is torch.nn.Conv2d and model.channel_fc.fc.groups == 256
    assert type(model.encoder.lrn) is torch.nn.LocalResponseNorm
