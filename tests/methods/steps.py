"""A few optimiser steps of a method, for the methods' "the loss falls" and "same seed, same steps" tests."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def take_steps(
    method: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[dict[str, torch.Tensor]]
) -> list[dict[str, float]]:
    """One step per batch (``itertools.repeat(batch, n)`` for a fixed batch); returns, per step, the scalars
    the method's forward returned (``loss``, ``accuracy`` …), as measured before that step's update."""
    logged = []
    for batch in batches:
        output = method(batch)
        optimizer.zero_grad()
        output["loss"].backward()
        optimizer.step()
        logged.append({k: v.item() for k, v in output.items() if torch.is_tensor(v) and v.numel() == 1})
    return logged
