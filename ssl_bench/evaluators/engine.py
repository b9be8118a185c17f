"""The one fine-tuning engine of ``cls``, ``seg`` and ``det`` (and of ``bench speed``'s evaluation steps).

An evaluator brings its protocol (data, network, loss, metric); the engine brings what they share:

* :class:`FinetuneProtocol`: the solver keys every fine-tuning protocol has, each evaluator overriding the
  defaults with its cited constants;
* the learning-rate schedules (:func:`lr_at`: ``step``, ``poly``, ``cosine``), pure functions of the
  iteration;
* SGD parameter groups with Caffe-style lr multipliers (:func:`param_groups`: trunk / new head,
  weights / biases);
* :func:`finetune`: the loop (autocast, gradient clipping, a progress bar in img/s, images counted for the
  record's img/s), fed by an endless stream of batches (``ssl_bench.data.batches.endless_batches``);
* :func:`data_dependent_init_`: Krähenbühl et al.'s within-layer init for the new layers of a head;
* :func:`eval_performance`, :func:`on_device`, :func:`make_loader` and :func:`training_loader`: autocast /
  channels-last and the DataLoader settings.

NOTE: bf16 autocast and channels-last are used on CUDA; on a CPU only where a protocol turns on ``cpu_amp`` /
``cpu_channels_last`` (off by default, so that CPU numbers do not depend on the CPU model unless a recipe says
so; bf16 only on CPUs that compute it natively, AVX-512 BF16 or AMX).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext
from ssl_bench.provenance import cpu_has_native_bf16
from ssl_bench.runtime.performance import Performance, resolve_performance
from ssl_bench.runtime.schedules import cosine_lr, poly_lr, step_lr

Schedule = Literal["step", "poly", "cosine"]


@dataclass(frozen=True)
class FinetuneProtocol:
    """The solver keys of every fine-tuning protocol; ``cls``, ``seg`` and ``det`` override the defaults.

    Attributes:
        iterations: SGD steps.
        batch_size: images per step.
        lr: base learning rate.
        lr_schedule: ``step`` (× ``lr_gamma`` at each of ``lr_steps``, Caffe's "multistep"), ``poly``
            (``(1 - it / iterations) ** lr_power``, FCN / DeepLab) or ``cosine`` (half a cosine to 0).
        lr_steps, lr_gamma: the ``step`` schedule.
        lr_power: the ``poly`` schedule.
        momentum, weight_decay: SGD.
        bias_lr_mult, bias_decay_mult: Caffe's ``lr_mult`` / ``decay_mult`` of biases (weights: 1).
        head_lr_mult: lr multiplier of the new layers (the head), on top of the bias multiplier.
        grad_clip: bound on the global L2 norm of all gradients; null (or 0): no clipping.
        workers: DataLoader worker processes.
        amp: bf16 autocast on CUDA.
        cpu_amp: bf16 autocast on a CPU too, where it computes bf16 natively (AVX-512 BF16 / AMX; fp32 on
            other CPUs). Off by default: a CPU evaluation then does not depend on the CPU model.
        cpu_channels_last: channels-last memory on a CPU too (oneDNN's preferred layout; CUDA always uses it).
    """

    # Names the evaluators used before they shared these keys (RENAMED: options.py gives the new name).
    RENAMED: ClassVar[dict[str, str]] = {
        "clip_grad_norm": "grad_clip",
        "bias_lr_factor": "bias_lr_mult",
        "lr_step": "lr_steps",
    }
    iterations: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    lr_schedule: Schedule = "step"
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    lr_power: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 0.0
    bias_lr_mult: float = 1.0
    bias_decay_mult: float = 1.0
    head_lr_mult: float = 1.0
    grad_clip: float | None = None
    workers: int = 2
    amp: bool = True
    cpu_amp: bool = False
    cpu_channels_last: bool = False

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1 or self.lr <= 0 or self.workers < 0:
            raise RecipeError("need iterations >= 1, batch_size >= 1, lr > 0 and workers >= 0")


# ------------------------------------------------------------------------------------------------------
# Schedules: pure functions of the iteration (ssl_bench/runtime/schedules.py).


def lr_at(p: FinetuneProtocol, iteration: int) -> float:
    """The learning rate of ``iteration`` (0-based) under the protocol's schedule."""
    if p.lr_schedule == "step":
        return step_lr(p.lr, iteration, p.lr_steps, p.lr_gamma)
    if p.lr_schedule == "poly":
        return poly_lr(p.lr, iteration, p.iterations, p.lr_power)
    return cosine_lr(p.lr, iteration, p.iterations)


# ------------------------------------------------------------------------------------------------------
# Parameter groups and the optimizer.


def param_groups(
    trunk: nn.Module,
    head: Iterable[nn.Module],
    *,
    head_lr_mult: float,
    bias_lr_mult: float,
    weight_decay: float,
    bias_decay_mult: float = 1.0,
) -> list[dict[str, Any]]:
    """SGD groups in the order trunk weights, trunk biases, head weights, head biases (empty ones left out).

    Each group carries ``lr_mult`` (the schedule's lr is multiplied by it) and its ``weight_decay``.
    """
    groups = []
    for modules, mult in (((trunk,), 1.0), (tuple(head), head_lr_mult)):
        named = [(n, p) for m in modules for n, p in m.named_parameters() if p.requires_grad]
        weights = [p for n, p in named if not n.endswith("bias")]
        biases = [p for n, p in named if n.endswith("bias")]
        groups.append({"params": weights, "lr_mult": mult, "weight_decay": weight_decay})
        groups.append(
            {"params": biases, "lr_mult": mult * bias_lr_mult, "weight_decay": weight_decay * bias_decay_mult}
        )
    return [g for g in groups if g["params"]]


def sgd(
    trunk: nn.Module, head: Iterable[nn.Module], p: FinetuneProtocol, fused: bool = True
) -> torch.optim.SGD:
    """SGD with momentum over :func:`param_groups` of the protocol (``fused=False``: the for-loop update,
    which ``bench speed`` times as the previous engine's)."""
    groups = param_groups(
        trunk,
        head,
        head_lr_mult=p.head_lr_mult,
        bias_lr_mult=p.bias_lr_mult,
        weight_decay=p.weight_decay,
        bias_decay_mult=p.bias_decay_mult,
    )
    # One fused kernel for the whole update instead of several passes per tensor (the same arithmetic): on a
    # shared 2-core CPU each small elementwise op costs a thread barrier, and the for-loop update took ~20%
    # of the cls step (torch.profiler).
    return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum, fused=fused or None)


# ------------------------------------------------------------------------------------------------------
# Devices, layouts and loaders.


def eval_performance(
    device: torch.device, amp: bool = True, cpu_amp: bool = False, cpu_channels_last: bool = False
) -> Performance:
    """Autocast and memory format of an evaluation: bf16 and channels-last on CUDA; on a CPU only as the
    protocol's ``cpu_amp`` / ``cpu_channels_last`` ask (module NOTE), bf16 only where the CPU has it natively.
    The same settings for every encoder: they are protocol keys, not per-run choices."""
    cuda = device.type == "cuda"
    bf16 = amp if cuda else cpu_amp and device.type == "cpu" and cpu_has_native_bf16()
    layout = cuda or cpu_channels_last
    settings = {"amp": bf16, "channels_last": layout, "compile": False, "fused_adam": False}
    return resolve_performance(settings, device)


def protocol_performance(device: torch.device, p: Any) -> Performance:
    """:func:`eval_performance` from a protocol's speed keys (``amp``, ``cpu_amp``, ``cpu_channels_last``;
    a protocol without them gets the defaults)."""
    return eval_performance(device, getattr(p, "amp", True), getattr(p, "cpu_amp", False),
                            getattr(p, "cpu_channels_last", False))  # fmt: skip


def images_to(x: torch.Tensor, device: torch.device, perf: Performance) -> torch.Tensor:
    """A batch of images [N, 3, H, W] on ``device``, channels-last when ``perf`` says so."""
    x = x.to(device, non_blocking=True)
    if perf.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def on_device(model: nn.Module, device: torch.device, perf: Performance) -> nn.Module:
    """``model`` moved to ``device``, in channels-last memory format when ``perf`` says so (CUDA)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if perf.channels_last else model


def make_loader(
    dataset: Dataset,
    ctx: EvalContext,
    batch_size: int,
    workers: int,
    *,
    persistent: bool = False,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader with the suite's settings: pinned memory on CUDA, ``workers`` processes (kept alive
    across epochs when ``persistent``); ``kwargs`` (sampler, shuffle, generator, collate_fn…) as for
    DataLoader."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=persistent and workers > 0,
        **kwargs,
    )


def training_loader(dataset: Dataset, ctx: EvalContext, p: FinetuneProtocol, **kwargs: Any) -> DataLoader:
    """The fine-tuning loader of ``seg`` and ``det``: shuffled by a generator seeded with the evaluation seed,
    the last partial batch dropped (unless the set is smaller than one batch), workers kept across epochs;
    ``kwargs`` (collate_fn…) as for DataLoader."""
    generator = torch.Generator().manual_seed(ctx.seed)
    drop_last = len(dataset) >= p.batch_size
    return make_loader(dataset, ctx, p.batch_size, p.workers, persistent=True, shuffle=True,
                       drop_last=drop_last, generator=generator, **kwargs)  # fmt: skip


# ------------------------------------------------------------------------------------------------------
# New layers and the loop.


@torch.no_grad()
def data_dependent_init_(
    model: nn.Module,
    layers: Sequence[nn.Module],
    trunk_features: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
) -> None:
    """Rescale each new layer in turn to zero-mean, unit-variance pre-activations per output unit on ``x``.

    Krähenbühl et al.'s within-layer data-dependent initialisation (PAPER.md §2) of a new head, so that how
    fast the head learns does not depend on the scale of the trunk's activations. The model is run in eval
    mode (frozen batch-norm statistics, no dropout) and left in the mode it was in.

    Args:
        model: the whole network (for its train/eval mode).
        layers: the new linear or conv layers, input to output, each followed by a ReLU.
        trunk_features: images → the first layer's input (e.g. pool5, flattened for a linear head).
        x: [N, 3, H, W] normalised training images.
    """
    was_training = model.training
    model.eval()
    f = trunk_features(x)  # [N, C] or [N, C, h, w]
    for layer in layers:
        f = layer(f)  # [N, width] or [N, width, h', w']
        dims = [d for d in range(f.ndim) if d != 1]  # every dimension but the unit's
        mean, std = f.mean(dim=dims), f.std(dim=dims).clamp(min=1e-8)  # [width]
        layer.weight.div_(std.view(-1, *[1] * (layer.weight.ndim - 1)))
        layer.bias.sub_(mean).div_(std)
        shape = (1, -1, *[1] * (f.ndim - 2))
        f = F.relu((f - mean.view(shape)) / std.view(shape))
    model.train(was_training)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    step: Callable[[Any], tuple[torch.Tensor, int]],
    p: FinetuneProtocol,
    perf: Performance,
    device: torch.device,
    iteration: int,
) -> tuple[float, int]:
    """One SGD iteration: the schedule's lr, ``step(batch)`` under autocast, backward, clipping, update.

    Returns:
        (the loss, the number of images in the batch).

    Raises:
        FloatingPointError: the loss is not finite (a diverging lr).
    """
    lr = lr_at(p, iteration)
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    with perf.autocast(device):
        loss, n = step(batch)
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"the training loss is {value} at iteration {iteration}; lower the lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if p.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
    optimizer.step()
    return value, n


def finetune(
    ctx: EvalContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Any],
    step: Callable[[Any], tuple[torch.Tensor, int]],
    p: FinetuneProtocol,
    perf: Performance,
    desc: str,
) -> list[float]:
    """The fine-tuning loop: ``p.iterations`` of :func:`train_step`, with a progress bar in img/s.

    Args:
        ctx: evaluation context (device, progress bar, image counter).
        model: the network; put in training mode here.
        optimizer: SGD whose groups carry an ``lr_mult`` (:func:`sgd`).
        batches: an endless stream of batches.
        step: one batch → (loss, number of images in it); moves the batch to the device and runs the model.
        p: the protocol (iterations, schedule, clipping).
        perf: autocast setting (:func:`eval_performance`).
        desc: progress-bar label.

    Returns:
        The loss of every iteration.
    """
    losses: list[float] = []
    model.train()
    with tqdm(total=p.iterations * p.batch_size, desc=desc, unit="img", disable=not ctx.progress) as bar:
        for it in range(p.iterations):
            loss, n = train_step(model, optimizer, next(batches), step, p, perf, ctx.device, it)
            losses.append(loss)
            ctx.images_processed += n
            bar.update(n)  # the bar's rate is in img/s
            bar.set_postfix(
                it=f"{it + 1}/{p.iterations}", loss=f"{np.mean(losses[-10:]):.3f}", lr=f"{lr_at(p, it):.2g}"
            )
    return losses


TRAIN_LOSS_DEFINITION = "mean training loss over the last 10% of iterations"
LOSS_CURVE_POINTS = 20


def loss_summary(losses: list[float]) -> tuple[float, list[float]]:
    """The run's training loss (mean of the last 10% of iterations: one batch's loss is noisy) and its
    curve, the mean loss of each of ``LOSS_CURVE_POINTS`` equal stretches, kept in the record so a reader can
    see whether a schedule still fell when it stopped (issue #22 chooses schedules on the training loss)."""
    tail = float(np.mean(losses[-max(1, len(losses) // 10) :]))
    chunks = np.array_split(np.asarray(losses, dtype=np.float64), min(LOSS_CURVE_POINTS, len(losses)))
    return tail, [round(float(c.mean()), 4) for c in chunks]
