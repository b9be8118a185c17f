"""A tiny fake evaluator for the results tests: instant, deterministic, and scriptable to fail or interrupt.

Registered once (at import) under the task names ``fake-cls`` and ``fake-det``; tests reset ``CALLS`` and
set ``FAIL_ON`` / ``INTERRUPT_AT`` to script failures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ssl_bench.evaluators import EvalContext, register_evaluator

CALLS: list[tuple[str, int, str]] = []  # (task, seed, weights)
FAIL_ON: set[tuple[str, int]] = set()  # (task, seed) pairs that raise RuntimeError
INTERRUPT_AT: list[int] = []  # call numbers (1-based, over all calls) that raise KeyboardInterrupt


@dataclass(frozen=True)
class FakeProtocol:
    """The fake tasks' one recipe key, added to every score: a changed recipe changes the numbers."""

    offset: float = 0.0


def reset() -> None:
    CALLS.clear()
    FAIL_ON.clear()
    INTERRUPT_AT.clear()


def _score(ctx: EvalContext, task: str) -> float:
    """A number in [0.3, 0.7) that depends on the weights' bytes, the seed and the recipe's ``offset``."""
    data = Path(ctx.weights).read_bytes() if ctx.weights != "random" else b"random"
    h = hashlib.sha256(data + f"{task}{ctx.seed}".encode()).digest()
    return 0.3 + 0.4 * h[0] / 256 + ctx.protocol.offset


def _evaluate(ctx: EvalContext, task: str, metric: str) -> dict[str, float]:
    CALLS.append((task, ctx.seed, ctx.weights))
    if len(CALLS) in INTERRUPT_AT:
        raise KeyboardInterrupt
    if (task, ctx.seed) in FAIL_ON:
        raise RuntimeError(f"scripted failure of {task} seed {ctx.seed}")
    ctx.extra["primary_metric"] = metric
    return {metric: _score(ctx, task), "other": 1.0}


@register_evaluator("fake-cls", protocol=FakeProtocol)
def evaluate_fake_cls(ctx: EvalContext) -> dict[str, float]:
    return _evaluate(ctx, "fake-cls", "map_sklearn")


@register_evaluator("fake-det", protocol=FakeProtocol)
def evaluate_fake_det(ctx: EvalContext) -> dict[str, float]:
    return _evaluate(ctx, "fake-det", "map_voc07_11point")
