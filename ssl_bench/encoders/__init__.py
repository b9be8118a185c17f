"""Encoder architectures, registered by name.

``create_encoder(name)`` is the one public factory; it fails loudly on unknown names. Every encoder
exposes ``taps`` (named feature maps, ``forward(x, taps=(...))``), ``out_channels`` and ``conv_layers()``.
Non-AlexNet backbones come from timm as ``timm:<model_name>`` (features only, no pretrained weights).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ssl_bench.encoders.alexnet import CaffeNetEncoder, TorchvisionAlexNetEncoder, pool5_size
from ssl_bench.errors import CheckpointError, RecipeError

ENCODERS: dict[str, Callable[[], nn.Module]] = {
    "caffenet": lambda: CaffeNetEncoder(batch_norm=False),
    "caffenet_bn": lambda: CaffeNetEncoder(batch_norm=True),
    "torchvision_alexnet": TorchvisionAlexNetEncoder,
}


def create_encoder(name: str = "caffenet") -> nn.Module:
    """Build an encoder by registered name, or ``timm:<model>`` for a timm backbone."""
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False, num_classes=0, global_pool="")
    try:
        return ENCODERS[name]()
    except KeyError:
        raise RecipeError(f"unknown encoder '{name}'; registered: {', '.join(sorted(ENCODERS))}") from None


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module``, failing with the exact missing/unexpected/mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [f"weights in {source} do not fit {type(module).__name__}:"]
        if missing:
            parts.append(f"  missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys: {', '.join(unexpected)}")
        if shapes:
            parts.append(f"  shape mismatches: {'; '.join(shapes)}")
        raise CheckpointError("\n".join(parts))
    module.load_state_dict(state, strict=True)


def load_encoder(weights: str | Path, arch: str = "caffenet") -> nn.Module:
    """Build ``arch`` and load ``weights`` (an ``encoder.pt`` plain state dict) with strict key checks.

    ``weights == "random"`` returns the Gaussian-initialised encoder (the "Random Gaussian" row).
    A torchvision AlexNet state dict (``features.*`` and ``classifier.*`` keys) is accepted for
    ``arch='torchvision_alexnet'``; its classifier keys are dropped.
    """
    from ssl_bench.encoders.init import gaussian_init_

    encoder = create_encoder(arch)
    if str(weights) == "random":
        gaussian_init_(encoder)
        return encoder
    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"encoder weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"cannot read encoder weights {path}: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    if arch == "torchvision_alexnet":
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    load_state_dict_strict(encoder, state, str(path))
    return encoder


__all__ = [
    "ENCODERS",
    "CaffeNetEncoder",
    "TorchvisionAlexNetEncoder",
    "create_encoder",
    "load_encoder",
    "load_state_dict_strict",
    "pool5_size",
]
