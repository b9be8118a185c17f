"""Resumable checkpoints and encoder weights, written atomically, read back with ``weights_only=True``.

``checkpoint.pt`` = {"format": 1, "step", "model" (whole method), "optimizer", "torch_rng", "cuda_rng",
"config", "skipped"}. ``encoder.pt`` = the encoder's plain state dict (layout in
``ssl_bench/encoders/alexnet.py``). ``skipped`` (unreadable images skipped so far) is absent from
checkpoints written before it was added, and reads as 0 there.

``optimizer`` holds each optimiser's state under its name (``training/optimizers.py``: ``{"main": …}`` for
a method with one optimiser, ``{"generator": …, "discriminator": …}`` for a GAN), or {} for a method that
does not train. Checkpoints written before methods could own several optimisers hold that one optimiser's
state dict itself there; ``Optimizers.load_state_dict`` reads both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from ssl_bench.atomic import atomic_torch_save
from ssl_bench.encoders import exported_encoder_state, read_weights_file
from ssl_bench.errors import CheckpointError


class Optimizers(Protocol):
    """What a checkpoint needs of the training's optimisers (``training/optimizers.py``): their state."""

    def state_dict(self) -> dict[str, Any]: ...


FORMAT = 1


def save_checkpoint(
    path: Path,
    step: int,
    model: torch.nn.Module,
    optimizers: Optimizers | None,
    config: dict[str, Any],
    skipped: int = 0,
) -> None:
    state = {
        "format": FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizers.state_dict() if optimizers is not None else {},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "config": config,
        "skipped": skipped,
    }
    atomic_torch_save(state, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """checkpoint.pt, its format checked; CheckpointError (one line naming the file) otherwise."""
    if not path.is_file() and not path.is_dir():
        raise CheckpointError(f"no checkpoint to resume from: {path}")
    state = read_weights_file(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ssl_bench checkpoint (format {FORMAT})")
    return state


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint holds, read without loading its tensors into memory (None if unreadable)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - only for describing a folder; an unreadable file has no step
        return None
    return int(state["step"]) if isinstance(state, dict) and "step" in state else None


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def save_encoder(path: Path, encoder: torch.nn.Module, fold_bn: bool = False) -> None:
    """``encoder.pt``: the encoder's weights (``fold_bn``: as a plain CaffeNet, batch norms folded in)."""
    atomic_torch_save(exported_encoder_state(encoder, fold_bn), path)
