"""Learning-rate schedules: pure functions of the step, shared by pretraining and the evaluation engine.

Being pure, they need no state in a checkpoint: a resumed run recomputes the lr of its next step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def step_lr(base_lr: float, iteration: int, steps: Sequence[int], gamma: float) -> float:
    """Caffe's "multistep": ``base_lr · gamma^k``, k the number of ``steps`` already reached."""
    return base_lr * gamma ** sum(iteration >= s for s in steps)


def poly_lr(base_lr: float, iteration: int, iterations: int, power: float) -> float:
    """Caffe's "poly": ``base_lr · (1 - iteration / iterations)^power``."""
    return base_lr * (1 - iteration / iterations) ** power


def cosine_lr(base_lr: float, iteration: int, iterations: int) -> float:
    """Half a cosine from ``base_lr`` at iteration 0 to 0 at ``iterations`` (SGDR without restarts)."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * iteration / iterations))


def warmup_cosine_lr(base_lr: float, iteration: int, iterations: int, warmup: int) -> float:
    """A linear warm-up over the first ``warmup`` iterations (from ``base_lr / warmup``), then half a
    cosine from ``base_lr`` to 0 over the rest (Goyal et al. 2017's warm-up; Loshchilov & Hutter's cosine)."""
    if iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    return cosine_lr(base_lr, iteration - warmup, max(1, iterations - warmup))


def pretrain_lr(base_lr: float, step: int, steps: int, schedule: str, warmup: int) -> float:
    """The lr of pretraining step ``step`` (1-based, as the loop counts): ``constant`` or ``cosine``
    (after ``warmup`` linear steps); a constant schedule warms up too when ``warmup`` > 0."""
    i = step - 1
    if schedule == "cosine":
        return warmup_cosine_lr(base_lr, i, steps, warmup)
    return base_lr * min(1.0, (i + 1) / warmup) if warmup else base_lr


__all__ = ["cosine_lr", "poly_lr", "pretrain_lr", "step_lr", "warmup_cosine_lr"]
