"""Pretraining learning-rate schedules: constant, warm-up, cosine; pure functions of the step."""

from __future__ import annotations

import math

import pytest

from ssl_bench.runtime.schedules import pretrain_lr, warmup_cosine_lr


def test_warmup_rises_linearly_then_cosine_falls_to_zero() -> None:
    lrs = [warmup_cosine_lr(1.0, i, 110, 10) for i in range(110)]
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lrs[10] == 1.0  # the cosine starts at the base lr
    assert lrs[60] == pytest.approx(0.5)  # half-way through the 100 cosine steps
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert warmup_cosine_lr(1.0, 110, 110, 10) == pytest.approx(0.0, abs=1e-12)


def test_pretrain_lr_counts_steps_from_one() -> None:
    # the loop's steps are 1-based: step 1 is the first update
    assert pretrain_lr(0.1, 1, 100, "constant", 0) == 0.1
    assert pretrain_lr(0.1, 1, 100, "constant", 4) == pytest.approx(0.025)
    assert pretrain_lr(0.1, 4, 100, "constant", 4) == pytest.approx(0.1)
    assert pretrain_lr(0.1, 100, 100, "constant", 4) == pytest.approx(0.1)
    assert pretrain_lr(0.1, 1, 100, "cosine", 0) == pytest.approx(0.1)
    last = pretrain_lr(0.1, 100, 100, "cosine", 0)
    assert last == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert pretrain_lr(0.1, 100, 100, "cosine", 0) < 1e-4
