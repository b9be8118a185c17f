"""AlexNet's fully connected head on pool5: fc6 → fc7 (→ fc8), as the methods and evaluators build it.

One builder for its five users; where their sources differ, a parameter says how:

* ``supervised``: dropout before fc6 and before fc7, fc8 over the classes (torchvision's AlexNet classifier);
* ``deepcluster``: dropout before fc6 and fc7, no fc8 and no ReLU after fc7 (the authors' code clusters fc7
  before its ReLU and puts its own top layer on it);
* ``rotation``: no dropout, batch norm optional (the authors' AlexNet), fc8 over the four rotations;
* ``cls``: no flatten (the model flattens pool5), dropout after fc6's and fc7's ReLU (CaffeNet's ``drop6``,
  ``drop7``, as voc-classification), fc8 over the 20 classes;
* ``det``: dropout after the ReLUs as CaffeNet, no fc8 (torchvision's box predictor follows).

The builder only makes the layers; each user initialises them as its protocol says. PyTorch's default init
draws from the global generator as each ``nn.Linear`` is made, so the order in which the layers are made is
part of a seeded run's result, and so are the layer indices (the state-dict keys ``<index>.weight``):
``tests/encoders/test_alexnet_head.py`` pins both for every user.
"""

from __future__ import annotations

from typing import Literal

from torch import nn


class AlexNetHead(nn.Sequential):
    """An ``nn.Sequential`` (state-dict keys ``<index>.weight``) that names its fully connected layers."""

    def _linear(self, index: int) -> nn.Linear | None:
        linears = [m for m in self if isinstance(m, nn.Linear)]
        return linears[index] if index < len(linears) else None

    @property
    def fc6(self) -> nn.Linear:
        return self._linear(0)  # type: ignore[return-value]  # always made

    @property
    def fc7(self) -> nn.Linear:
        return self._linear(1)  # type: ignore[return-value]  # always made

    @property
    def fc8(self) -> nn.Linear | None:
        """The output layer; None for a head built without ``num_outputs``."""
        return self._linear(2)


def alexnet_head(
    in_features: int,
    width: int,
    num_outputs: int | None = None,
    *,
    dropout: float | None = None,
    dropout_at: Literal["input", "output"] = "output",
    batch_norm: bool = False,
    fc7_relu: bool = True,
    flatten: bool = True,
) -> AlexNetHead:
    """fc6 and fc7 (``width`` outputs each, ReLU after each), then fc8 when ``num_outputs`` is given.

    Args:
        in_features: values per image of the map the head reads (9216 for CaffeNet's pool5 at 227 px).
        width: fc6 and fc7 outputs (4096 in AlexNet).
        num_outputs: fc8's outputs; None: no fc8 (the user puts its own layer on top).
        dropout: the dropout probability of fc6 and fc7; None: no dropout layer at all (0.0 still makes
            the layers, which keeps the layer indices of a recipe that turns dropout off).
        dropout_at: ``"input"``: dropout before fc6 and before fc7 (torchvision's AlexNet);
            ``"output"``: after fc6's and fc7's ReLU (CaffeNet's ``drop6``, ``drop7``).
        batch_norm: ``BatchNorm1d`` between fc6 (and fc7) and its ReLU.
        fc7_relu: False: fc7's output is the head's output, before any ReLU.
        flatten: start with ``nn.Flatten()`` (the input is a map ``[N, C, H, W]``, not ``[N, in_features]``).

    Returns:
        The layers in this order: [Flatten], then for fc6 and fc7 [Dropout] Linear [BatchNorm1d] ReLU
        [Dropout], then [fc8].
    """
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    for layer_in, relu in ((in_features, True), (width, fc7_relu)):  # fc6, fc7
        if dropout is not None and dropout_at == "input":
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(layer_in, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        if dropout is not None and dropout_at == "output":
            layers.append(nn.Dropout(dropout))
    if num_outputs is not None:
        layers.append(nn.Linear(width, num_outputs))  # fc8
    return AlexNetHead(*layers)
