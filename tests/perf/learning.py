"""How to tell that a fast training step (bf16 autocast, channels_last, fused Adam, torch.compile) learns what
the plain fp32 step learns, with tolerances that come from bf16's arithmetic rather than from one machine.

Used by ``tests/perf/test_speed.py`` (CPU) and ``tests/training/test_performance.py`` (CUDA).
"""

from __future__ import annotations

import math

import torch

from ssl_bench.perf import speed
from ssl_bench.runtime.performance import Performance

FP32 = Performance(amp=False, channels_last=False, compile=False, fused_adam=False)

# bf16 arithmetic, for the tolerances below. bf16 keeps 8 significant bits: one rounding errs by at most
# u = 2⁻⁸ ≈ 0.4% of the value. Under autocast each convolution / matmul rounds its two operands to bf16 and
# accumulates in fp32 (oneDNN with AVX-512 BF16 or AMX tiles, cuBLAS/cuDNN: the order of the fp32 sums
# differs between them, the rounding of the operands does not). The context encoder has L = 12 such layers
# (conv1–5, the channel-wise FC, the mixing conv, 5 up-convolutions); their roundings are independent, so
# the relative error of the output, and of the gradient that flows back through the same layers, is about
# √(2L)·u ≈ 1.9%.
BF16_U = 2.0**-8
BF16_LAYERS = 12
NETWORK_ERROR = math.sqrt(2 * BF16_LAYERS) * BF16_U  # ≈ 1.9%
# The loss is a mean of squared errors: at the same weights it errs by about twice the output's error.
FORWARD_TOL = 2 * NETWORK_ERROR  # ≈ 3.8%; measured 0.02% on AVX-512 BF16
# What a few Adam steps learn moves with the gradient (≈ 1.9% off); ×5 covers kernels that sum in another
# order and Adam's sign-like first steps on parameters whose gradient is at the rounding level (they change
# the loss only at second order). Measured 0.5–1.7% with four oneDNN kernel variants (1 or 2 threads,
# NCHW or channels_last); a step trained on other images learns 7% of it, half the steps 61%, half the lr 75%.
LEARNT_TOL = 5 * NETWORK_ERROR  # ≈ 9.6%
# NOTE: the recipes' Adam lr. At lr 1e-3 (β1 0.5, one batch) even the fp32 curve oscillates, and there any
# rounding difference grows step by step: bf16 and fp32 drifted 8% apart by step 6 on AVX-512 BF16 and 16%
# on AMX, which made a per-step comparison a measure of chaos rather than of the arithmetic.
LR = 3e-4
STEPS = 10


def training_batch(seed: int, channels_last: bool, device: torch.device) -> dict[str, torch.Tensor]:
    """8 smooth images (predictable from their context) and random-region masks."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(8, 3, 4, 4, generator=g)
    batch = speed.synthetic_batch(8, 99, device, channels_last)
    batch["image"] = torch.nn.functional.interpolate(coarse, size=(99, 99), mode="bilinear").to(device)
    if channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    return batch


def train_steps(
    perf: Performance, device: torch.device, batch_seed: int = 0
) -> tuple[list[float], torch.nn.Module]:
    """STEPS steps of the suite's step on one batch from the same initial weights: (loss curve, method)."""
    torch.manual_seed(0)
    method, step = speed.build_suite_step(perf, 99, device, lr=LR)
    batch = training_batch(batch_seed, perf.channels_last, device)
    return [step(batch).item() for _ in range(STEPS)], method


@torch.no_grad()
def fp32_loss(method: torch.nn.Module, device: torch.device) -> float:
    """The loss of ``method`` on the training batch, computed in fp32: what it has learnt, measured alike."""
    method = method.to(memory_format=torch.contiguous_format).eval()
    return method(training_batch(0, False, device))["loss"].item()


def check_learns_like_fp32(
    fast: Performance, device: torch.device, reference: Performance = FP32
) -> tuple[float, float]:
    """``fast`` computes ``reference``'s loss within FORWARD_TOL at the same weights, and STEPS of its steps
    learn what as many reference steps learn: the drop of the loss, both measured in fp32, within
    LEARNT_TOL. Returns (initial loss, the reference's drop)."""
    curve, reference_model = train_steps(reference, device)
    fast_curve, fast_model = train_steps(fast, device)
    start = curve[0]
    assert abs(fast_curve[0] - start) <= FORWARD_TOL * start, (curve, fast_curve)  # same weights and batch
    learnt = start - fp32_loss(reference_model, device)
    assert learnt > 0.25 * start, curve  # the reference learns a lot: the comparison is not vacuous
    learnt_fast = start - fp32_loss(fast_model, device)
    assert abs(learnt_fast - learnt) <= LEARNT_TOL * learnt, (learnt, learnt_fast)
    return start, learnt
