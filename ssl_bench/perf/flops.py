"""FLOPs of a training step, counted by ``torch.utils.flop_counter`` with one correction.

torch's formula for ``convolution_backward`` counts the weight gradient of a grouped convolution as if the
convolution had one group: ``groups`` times too many FLOPs (torch 2.14: AlexNet's conv2/4/5 have 2 groups,
the context encoder's channel-wise layer, as the authors wrote it, 256). Each part of a convolution's backward
(input gradient, weight gradient) costs what its forward costs, so the corrected count is the forward's times
the number of gradients asked for. Counts of ungrouped convolutions are unchanged.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count


def conv_backward_flops(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _output_padding,
    _groups, output_mask, out_shape=None, **kwargs
) -> int:
    """``aten.convolution_backward``'s FLOPs (shapes in, as torch's formula registry passes them)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` with the grouped-convolution correction."""
    return FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops}
    )
