"""Per-layer time and FLOPs of a training step: where a step loses the machine's peak.

Each leaf module (a convolution, an LRN, a ReLU, a pooling…) is timed on its own, forward and backward, on
the very input it received in one run of the step (captured by forward hooks: same shape, dtype, memory
format, autocast setting and ``requires_grad``), with a random gradient of its output. Its FLOPs are counted
by ``torch.utils.flop_counter`` on the same calls. What the layers do not account for (the loss, masking,
autocast's weight casts outside the layers, the optimizer) is the step's ``rest``.

Times are on the clock of ``speed.stable_peak`` (on a CPU, the process's CPU time over its threads: what a
shared machine's neighbours take is not counted). Timing layers in isolation, rather than hooking the
backward pass, keeps the step itself untouched
(backward hooks wrap every output and clash with in-place ReLUs) and lets each layer take the best of a few
tries, which a shared machine needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_bench.perf.flops import flop_counter
from ssl_bench.runtime.performance import Performance


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    forward_s: float
    backward_s: float
    flops: float  # forward + backward, per step

    @property
    def seconds(self) -> float:
        return self.forward_s + self.backward_s

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 else 0.0


def capture_layer_inputs(
    model: nn.Module, run: Callable[[], Any]
) -> list[tuple[str, nn.Module, torch.Tensor, bool]]:
    """``(name, leaf module, its first input (detached), whether that input needed a gradient)`` in call
    order, from one call of ``run`` (which should run ``model`` forward, e.g. the step's loss)."""
    seen: list[tuple[str, nn.Module, torch.Tensor, bool]] = []
    calls: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue

        def hook(module: nn.Module, args: tuple, name: str = name) -> None:
            if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
                calls[name] = calls.get(name, 0) + 1  # a module called twice (a shared LRN) gets "#2"
                label = name if calls[name] == 1 else f"{name}#{calls[name]}"
                seen.append((label, module, args[0].detach().clone(), args[0].requires_grad))

        handles.append(module.register_forward_pre_hook(hook))
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def _best_seconds(fn: Callable[[], Any], tries: int, sync: Callable[[], None], cpu_clock: bool) -> float:
    """Best of ``tries``, on the clock of ``speed.stable_peak`` (CPU time over threads on a CPU)."""
    clock = (lambda: time.process_time() / torch.get_num_threads()) if cpu_clock else time.perf_counter
    fn()
    sync()
    best = float("inf")
    for _ in range(tries):
        t0 = clock()
        fn()
        sync()
        best = min(best, clock() - t0)
    return max(best, 1e-9)


def layer_costs(
    model: nn.Module,
    run: Callable[[], Any],
    perf: Performance,
    device: torch.device,
    tries: int = 3,
) -> list[LayerCost]:
    """Forward / backward seconds (best of ``tries``) and FLOPs of every leaf module ``run`` calls."""
    from ssl_bench.perf.speed import device_sync

    sync = device_sync(device)
    costs = []
    for name, module, saved, needs_grad in capture_layer_inputs(model, run):
        inplace = getattr(module, "inplace", None)
        if inplace:
            module.inplace = False  # its input here is a leaf of the timing graph
        x = saved.requires_grad_(needs_grad)
        trains = needs_grad or any(p.requires_grad for p in module.parameters())

        def forward(module: nn.Module = module, x: torch.Tensor = x) -> torch.Tensor:
            with perf.autocast(device):
                return module(x)

        out = forward()
        grad = torch.randn_like(out) if trains and out.requires_grad else None

        def backward(out: torch.Tensor = out, grad: torch.Tensor | None = grad) -> None:
            out.backward(grad, retain_graph=True)

        def zero(module: nn.Module = module, x: torch.Tensor = x) -> None:
            for t in (*module.parameters(), x):
                t.grad = None

        cpu_clock = device.type != "cuda"
        forward_s = _best_seconds(forward, tries, sync, cpu_clock)
        backward_s = 0.0
        if grad is not None:
            zero()
            backward_s = _best_seconds(lambda b=backward, z=zero: (b(), z()), tries, sync, cpu_clock)
        with flop_counter() as counter:
            y = forward()
            if grad is not None:
                y.backward(grad)
        zero()
        if inplace:
            module.inplace = True
        costs.append(LayerCost(name, type(module).__name__, forward_s, backward_s, counter.get_total_flops()))
    return costs


def layer_table(costs: list[LayerCost], step_s: float, step_flops: float, peak: float) -> list[str]:
    """Lines of the per-layer table: time, FLOPs, achieved GFLOP/s and share of the step, then the rest."""
    head = f"{'fwd ms':>7} {'bwd ms':>7} {'GFLOP':>7} {'GFLOP/s':>8} {'step':>6}"
    lines = [f"  {'layer':<22} {'kind':<16} {head}"]
    for c in costs:
        if c.seconds < 0.02 * step_s and c.flops < 0.02 * step_flops:
            continue  # the table shows where time goes; the rest row keeps the total
        lines.append(
            f"  {c.name:<22} {c.kind[:16]:<16} {c.forward_s * 1e3:7.1f} {c.backward_s * 1e3:7.1f} "
            f"{c.flops / 1e9:7.2f} {c.gflops_per_s:8.0f} {c.seconds / step_s:6.1%}"
        )
    layers_s = sum(c.seconds for c in costs)
    rest = max(0.0, step_s - layers_s)
    lines.append(f"  {'(all layers)':<22} {'':<16} {'':>7} {'':>7} {sum(c.flops for c in costs) / 1e9:7.2f} "
                 f"{sum(c.flops for c in costs) / layers_s / 1e9:8.0f} {layers_s / step_s:6.1%}")  # fmt: skip
    lines.append(f"  {'(rest: loss, casts, optimizer)':<40} {rest * 1e3:7.1f} {'':>7} {'':>7} {'':>8} "
                 f"{rest / step_s:6.1%}")  # fmt: skip
    lines.append(f"  step: {step_s * 1e3:.0f} ms, {step_flops / step_s / 1e9:.0f} GFLOP/s achieved = "
                 f"{step_flops / step_s / peak:.2f} of the {peak / 1e9:.0f} GFLOP/s peak")  # fmt: skip
    return lines
