"""Encoder architectures, registered by name.

``create_encoder(name)`` is the one public factory; it fails loudly on unknown names. Every encoder
exposes ``taps`` (named feature maps, ``forward(x, taps=(...))``), ``out_channels`` and ``conv_layers()``.
Non-AlexNet backbones come from timm as ``timm:<model_name>`` (features only, no pretrained weights).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ssl_bench.encoders.alexnet import CaffeNetEncoder, TorchvisionAlexNetEncoder, fold_batch_norm, pool5_size
from ssl_bench.encoders.alexnet_head import AlexNetHead, alexnet_head
from ssl_bench.encoders.init import caffe_input_scale_, gaussian_init_
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


def exported_encoder_state(encoder: nn.Module, fold_bn: bool) -> dict[str, torch.Tensor]:
    """The state a pretraining run saves as ``encoder.pt``: the encoder's own, or, with ``fold_bn``, that of
    the plain CaffeNet with its batch norms folded in (``fold_batch_norm``), on the CPU.

    A weight that a method computes through a ``torch.nn.utils.parametrize`` parametrization (DeepCluster's
    Sobel conv1) is saved as the tensor it computes, under its plain name (``conv1.weight``).
    """
    if fold_bn:
        if not isinstance(encoder, CaffeNetEncoder) or not encoder.batch_norm:
            raise RecipeError("train.fold_batch_norm needs model.encoder: caffenet_bn")
        encoder = fold_batch_norm(encoder)  # reads each conv's weight as computed: a plain CaffeNet
    state = {k: v for k, v in encoder.state_dict().items() if ".parametrizations." not in f".{k}"}
    for name, module in encoder.named_modules():
        if parametrize.is_parametrized(module):
            for tensor_name in module.parametrizations:
                state[f"{name}.{tensor_name}" if name else tensor_name] = getattr(module, tensor_name)
    return {k: v.detach().cpu() for k, v in state.items()}


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module``, failing with the exact missing/unexpected/mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        # (a module's ``get_extra_state``, e.g. DeepCluster's pseudo-labels, need not be a tensor)
        if torch.is_tensor(own[k])
        and torch.is_tensor(state[k])
        and tuple(state[k].shape) != tuple(own[k].shape)
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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_MAGIC = b"\x80"  # the legacy format (and plain pickles) start with the pickle protocol opcode
# Keys of a training checkpoint (runtime/checkpoint.py) rather than of an encoder's state dict.
_CHECKPOINT_KEYS = {"format", "step", "model", "optimizer"}


def _refused_reason(message: str) -> str:
    """What torch's weights-only unpickler refused, without its advice to retry with weights_only off."""
    # torch says e.g. "Unsupported global: GLOBAL print was not an allowed global"
    found = re.search(r"[Uu]nsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", message)
    if found:
        return f"it would run or build the Python object {found.group(1)} when loaded"
    return "it holds Python objects beyond tensors and plain containers"


def read_weights_file(path: str | Path, what: str = "weights") -> Any:
    """``torch.load(path, weights_only=True)``, with errors that say what the file is.

    Args:
        path: a file written by ``torch.save``.
        what: how the message names the file ("encoder weights", "checkpoint").

    Raises:
        CheckpointError: one line naming the file and what is wrong with it: missing, a folder, empty,
            not a PyTorch file, a truncated file, or a pickle that a weights-only load refuses. The
            message never suggests turning the weights-only safety off.
    """
    path = Path(path)
    if path.is_dir():
        hint = f"; pass {path / 'encoder.pt'}" if (path / "encoder.pt").is_file() else ""
        raise CheckpointError(f"{what} {path} is a folder, not a file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    if size == 0:
        raise CheckpointError(f"{what} {path}: empty file (0 bytes)")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        raise CheckpointError(
            f"{what} {path}: not a PyTorch file (it starts with {head!r}, not a torch.save archive)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise CheckpointError(
                f"{what} {path}: refused, {_refused_reason(str(e))}; only plain state dicts of tensors "
                "are loaded (a benchmark never runs code from a weights file)"
            ) from None
        raise CheckpointError(f"{what} {path}: not a readable PyTorch file ({_first_line(e)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        text = str(e).lower()
        if isinstance(e, EOFError) or any(w in text for w in ("central directory", "eof", "truncat")):
            raise CheckpointError(
                f"{what} {path}: truncated file ({size:,} bytes): it was cut short while being written "
                "or copied; copy or write it again"
            ) from None
        raise CheckpointError(f"{what} {path}: not a readable PyTorch file ({_first_line(e)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def describe_weights(state: Any, path: Path) -> str | None:
    """What a loaded file is when it is not an encoder state dict (None when it looks like one)."""
    if not isinstance(state, dict):
        return f"{path} holds a {type(state).__name__}, not a state dict of the encoder's weights"
    if _CHECKPOINT_KEYS <= set(state):
        return f"{path} is a training checkpoint; pass {path.parent / 'encoder.pt'} (the encoder's weights)"
    if any(str(k).startswith("encoder.") for k in state):
        return f"{path} holds a whole model's weights (keys 'encoder.…'); pass the encoder.pt of its run"
    return None


def load_encoder(weights: str | Path, arch: str = "caffenet") -> nn.Module:
    """Build ``arch`` and load ``weights`` (an ``encoder.pt`` plain state dict) with strict key checks.

    ``weights == "random"`` returns the Gaussian-initialised encoder (the "Random Gaussian" row, drawn for
    Caffe's input as the ``random`` method's default: :func:`~ssl_bench.encoders.init.caffe_input_scale_`).
    A torchvision AlexNet state dict (``features.*`` and ``classifier.*`` keys) is accepted for
    ``arch='torchvision_alexnet'``; its classifier keys are dropped.
    """
    encoder = create_encoder(arch)
    if str(weights) == "random":
        return caffe_input_scale_(gaussian_init_(encoder))
    path = Path(weights)
    state = read_weights_file(path, "encoder weights")
    problem = describe_weights(state, path)
    if problem:
        raise CheckpointError(problem)
    if arch == "torchvision_alexnet":
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    load_state_dict_strict(encoder, state, str(path))
    return encoder


__all__ = [
    "ENCODERS",
    "AlexNetHead",
    "CaffeNetEncoder",
    "alexnet_head",
    "TorchvisionAlexNetEncoder",
    "create_encoder",
    "describe_weights",
    "exported_encoder_state",
    "fold_batch_norm",
    "load_encoder",
    "load_state_dict_strict",
    "pool5_size",
    "read_weights_file",
]
