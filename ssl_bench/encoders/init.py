"""Weight initialisation of encoders and of the methods built on them: the paper's "Random Gaussian" baseline.

Here, below ``methods``, because ``load_encoder('random')`` needs the Gaussian init too.
"""

from __future__ import annotations

import torch
from torch import nn

from ssl_bench.data.transforms import STD

# NOTE: PAPER.md §2 says only "Random Gaussian"; std 0.01 with bias 0 is the Caffe/AlexNet convention
# (Krizhevsky et al. 2012). Deep nets at std 0.01 start with tiny activations, which is why the
# data-dependent init (methods/datainit.py) exists.
GAUSSIAN_STD = 0.01


def gaussian_init_(module: nn.Module, std: float = GAUSSIAN_STD) -> nn.Module:
    """Re-initialise every conv / linear weight to N(0, std²) and every bias to 0, in place."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def caffe_input_scale_(encoder: nn.Module) -> nn.Module:
    """Express a Gaussian trunk drawn for Caffe's input in the suite's input: scale the first conv's weights
    of input channel ``c`` by ``255 * STD[c]``, in place.

    Caffe's CaffeNet takes mean-subtracted 0–255 pixels; the suite divides them by ``255 * STD`` as well
    (data/transforms.py). A filler of std 0.01 on Caffe's input is therefore the same function as a filler
    of std ``0.01 * 255 * STD[c]`` (~0.57) on the suite's. With zero biases the trunk is positively
    homogeneous, so the two differ only by a factor ~57 on every activation, but fine-tuning sees the
    difference: a bias step of a given size is ~57× larger against the suite's activations, and a
    random trunk's units die within its first hundred steps (results/mini/EXPERIMENTS.md, seventh round).
    """
    first = next(m for m in encoder.modules() if isinstance(m, nn.Conv2d))
    if first.in_channels != len(STD):
        raise ValueError(f"the first conv takes {first.in_channels} channels, not RGB; no Caffe input scale")
    scale = torch.tensor(STD, dtype=first.weight.dtype) * 255.0
    with torch.no_grad():
        first.weight.mul_(scale.view(1, -1, 1, 1))
    return encoder


def kaiming_init_(module: nn.Module) -> nn.Module:
    """He-normal (fan-in, ReLU) weights and zero biases for every conv / transposed conv / linear layer.

    NOTE: the paper trains the context encoder from scratch without naming its init. PyTorch's default
    (uniform, variance 1/(3·fan_in)) shrinks the signal through the 10 conv layers of encoder + decoder
    and stalls the first hundreds of steps; He init keeps activations at unit scale.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
