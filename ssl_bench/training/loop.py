"""The one training loop for every pretraining method: ``model(batch)`` → loss → backward → step.

It knows nothing of any method: ``Optimizers.step`` (``training/optimizers.py``) takes the step, the plain
one for a method with one optimiser, and for a method with several (a GAN) one forward, backward and step
per optimiser in turn.
Checkpoints are written every ``checkpoint_every`` steps and when a stop signal arrives (SIGINT from Ctrl-C,
SIGTERM from a job scheduler): the step in progress is finished, saved, and :class:`TrainingStopped` raised,
so a run can always continue with ``--resume``.

A method that plans its epochs (``PretrainMethod.on_epoch_start``, e.g. DeepCluster's re-clustering) does so
through the batch stream: ``training_batches(plan_epoch=...)`` calls it before each epoch loads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from ssl_bench.data.batches import endless_batches
from ssl_bench.data.prefetch import ThreadPrefetcher
from ssl_bench.data.pretrain import EpochSampler
from ssl_bench.data.transforms import normalize_uint8
from ssl_bench.errors import DataError
from ssl_bench.runtime.distributed import DistInfo
from ssl_bench.runtime.performance import Performance
from ssl_bench.training.optimizers import Optimizers

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(KeyboardInterrupt):
    """A stop signal ended training after ``step``; ``saved_step`` is the step checkpoint.pt now holds.

    A KeyboardInterrupt, so that whoever catches Ctrl-C catches this too. The exit code is 128 + signum
    (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, step: int, saved_step: int | None, checkpoint: Path) -> None:
        super().__init__(signum, step)
        self.signum, self.step, self.saved_step, self.checkpoint = signum, step, saved_step, checkpoint
        self.resume_command: str | None = None  # filled in by the command line

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.saved_step is None:
            text = f"stopped by {name} after step {self.step}; no checkpoint was saved"
        else:
            text = f"stopped by {name}: step {self.saved_step} saved in {self.checkpoint}"
        if self.resume_command and self.saved_step is not None:
            text += f"; resume with: {self.resume_command}"
        return text


class StopSignals:
    """While active, SIGINT and SIGTERM ask the loop to stop after the step in progress (``requested``).

    A second signal stops at once (the previous handlers come back and a KeyboardInterrupt is raised), with
    the last periodic checkpoint kept. Handlers can only be set from the main thread; elsewhere this does
    nothing and the signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()


@dataclass
class LoopResult:
    step: int  # the last completed step
    skipped: int  # unreadable images skipped since step 0 (--skip-bad-images), resumed runs included


class _CountingDrops:
    """``loader`` with the batches whose every image was unreadable taken out, their count carried into
    the next batch's ``skipped`` (so each skipped image is counted once), and an epoch that yields no
    batch at all stopped with an error instead of looping for ever."""

    def __init__(self, loader: DataLoader, sampler: EpochSampler) -> None:
        self.loader, self.sampler, self.carried = loader, sampler, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yielded = False
        for batch in self.loader:
            if isinstance(batch, dict) and "image" not in batch:
                self.carried += int(batch.get("skipped", 0))
                continue
            if self.carried:
                batch["skipped"] = int(batch.get("skipped", 0)) + self.carried
                self.carried = 0
            yielded = True
            yield batch
        if not yielded and self.sampler.start_batch == 0:
            raise DataError(
                f"every image of an epoch was unreadable ({self.carried} skipped): nothing to train on"
            )


def training_batches(
    loader: DataLoader,
    sampler: EpochSampler,
    start_step: int,
    device: torch.device,
    channels_last: bool,
    thread: bool,
    plan_epoch: Callable[[int], torch.Tensor | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """``endless_batches``, loaded ``ThreadPrefetcher.depth`` batches ahead in a thread when ``thread``.

    On a CPU the thread also moves and normalises each batch (``to_device``; the loop's own call is then a
    no-op). Close the result when done (``contextlib.closing``): it stops the thread.

    With ``plan_epoch`` (a method's ``on_epoch_start``), the stream goes epoch by epoch instead
    (``PlannedEpochs``): ``plan_epoch(epoch)`` returns the epoch's sample order, and the epoch loads only
    once it has returned.
    """
    drops = _CountingDrops(loader, sampler)
    if plan_epoch is not None:
        return PlannedEpochs(
            drops, sampler, start_step, plan_epoch, lambda b: _prefetched(b, device, channels_last, thread)
        )
    return _prefetched(endless_batches(drops, sampler, start_step), device, channels_last, thread)


def _prefetched(
    batches: Iterator[dict[str, Any]], device: torch.device, channels_last: bool, thread: bool
) -> Iterator[dict[str, Any]]:
    """``batches``, loaded ahead in a thread when ``thread`` (see ``training_batches``)."""
    if not thread:
        return batches
    if device.type == "cuda":
        # A new thread starts on GPU 0: pinned batches would open a context there for every DDP rank.
        return ThreadPrefetcher(_on_gpu(batches, device))
    return ThreadPrefetcher(
        batches, transform=functools.partial(to_device, device=device, channels_last=channels_last)
    )


class PlannedEpochs:
    """Batches from global step ``start_step`` on, one epoch at a time, each epoch planned before it loads.

    ``plan_epoch(epoch)`` runs in the thread that calls ``next`` (the training loop's) when the epoch's first
    batch is asked for, also for the epoch a resumed run starts in: every step of the previous epoch is
    then taken, so the plan sees the weights they left. Its order goes to the sampler; only then does the
    epoch start loading (``open_epoch``: ahead in a thread or not), so no batch is loaded in a stale order.
    """

    def __init__(
        self,
        loader: Iterable[dict[str, Any]],
        sampler: EpochSampler,
        start_step: int,
        plan_epoch: Callable[[int], torch.Tensor | None],
        open_epoch: Callable[[Iterator[dict[str, Any]]], Iterator[dict[str, Any]]],
    ) -> None:
        self.loader, self.sampler, self.plan_epoch, self.open_epoch = loader, sampler, plan_epoch, open_epoch
        self.epoch, self.skip = divmod(start_step, sampler.batches_per_epoch)
        self.current: Iterator[dict[str, Any]] | None = None  # the batches of self.epoch

    def __iter__(self) -> PlannedEpochs:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            if self.current is None:
                self.sampler.set_epoch(self.epoch, self.skip, order=self.plan_epoch(self.epoch))
                self.current = self.open_epoch(iter(self.loader))
            try:
                return next(self.current)
            except StopIteration:
                self.close()
                self.epoch, self.skip = self.epoch + 1, 0

    def close(self) -> None:
        """Stop the loading of the epoch in progress (its thread, its DataLoader)."""
        if self.current is not None:
            close = getattr(self.current, "close", None)
            if close is not None:
                close()
            self.current = None


def _on_gpu(batches: Iterator[dict[str, Any]], device: torch.device) -> Iterator[dict[str, Any]]:
    torch.cuda.set_device(device)  # runs in the thread that iterates this generator
    yield from batches


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    """Move a batch to ``device``; uint8 images (the pretraining pipeline's) are normalised there."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "image":
                layout = torch.channels_last if channels_last else torch.contiguous_format
                v = v.contiguous(memory_format=layout)
                if v.dtype == torch.uint8:
                    v = normalize_uint8(v)  # keeps the memory format
        out[k] = v
    return out


def train_loop(
    model: torch.nn.Module,
    optimizers: Optimizers,
    batches: Iterator[dict[str, Any]],
    *,
    start_step: int,
    steps: int,
    info: DistInfo,
    out: Path,
    perf: Performance,
    log_every: int,
    on_checkpoint: Callable[[int, int], None],
    checkpoint_every: int,
    on_sample: Callable[[int], dict[str, float] | None],
    sample_every: int,
    skipped: int = 0,
    progress: bool = True,
    lr_at: Callable[[int], float] | None = None,
) -> LoopResult:
    """Train from ``start_step`` to ``steps``; ``on_checkpoint(step, skipped)`` saves a resumable state.

    ``skipped`` is the running total of unreadable images skipped before ``start_step``; each logged row
    carries the total so far. ``lr_at(step)`` (1-based) sets every optimiser's lr before the step (times its
    group's ``lr_factor``); None keeps the optimisers'. Each logged row holds every scalar the method's
    forward(s) returned (each optimiser's loss among them) and the schedule's lr. When SIGINT or SIGTERM
    arrives, the step in progress is finished and saved, then TrainingStopped is raised.
    """
    log_file = out / "metrics.jsonl" if info.is_main else None
    log = StepLog(log_file, steps, start_step, progress and info.is_main)
    completed, saved, stopped = start_step, start_step, False
    model.train()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(log.close)
        stop = cleanup.enter_context(StopSignals())
        for step in range(start_step + 1, steps + 1):
            batch = None if _stop_now(stop, info, completed, log_every) else _next_batch(batches, stop, info)
            if batch is None:
                stopped = True
                break
            batch = to_device(batch, info.device, perf.channels_last)
            if lr_at is not None:
                optimizers.set_lr(lr_at(step))
            output = optimizers.step(model, batch, functools.partial(perf.autocast, info.device))
            completed = step
            skipped += int(batch.get("skipped", 0))
            log.count(batch["image"].shape[0] * info.world_size)
            if step % log_every == 0 or step == steps:
                log.step_row(step, output, info, optimizers, skipped)
            if sample_every and step % sample_every == 0 and info.is_main:
                numbers = on_sample(step)
                if numbers:
                    log.write({"step": step, **numbers})
            if checkpoint_every and step % checkpoint_every == 0:
                on_checkpoint(step, skipped)
                saved = step
        if stopped:  # (a signal during the last step lets the run finish instead)
            # The last completed step is a consistent state: keep it, so --resume loses nothing.
            if saved != completed or completed == 0:
                on_checkpoint(completed, skipped)
            raise TrainingStopped(stop.signum or signal.SIGTERM, completed, completed, out / "checkpoint.pt")
    return LoopResult(completed, skipped)


def _next_batch(
    batches: Iterator[dict[str, Any]], stop: StopSignals, info: DistInfo
) -> dict[str, Any] | None:
    """The next batch; None where loading failed because a stop signal reached the loader's workers too."""
    try:
        return next(batches)
    except Exception:
        if stop.requested and not info.enabled:  # Ctrl-C reached the loader's workers as well
            return None
        raise


class StepLog:
    """The loop's ``metrics.jsonl`` (None: not written, e.g. on a DDP rank other than 0) and progress bar."""

    def __init__(self, path: Path | None, steps: int, start_step: int, show: bool) -> None:
        self.file = path.open("a") if path is not None else None
        # In a log file (no terminal) redraw rarely instead of every 0.1 s.
        self.bar = tqdm(
            total=steps,
            initial=start_step,
            disable=not show,
            unit="step",
            dynamic_ncols=True,
            desc="pretrain",
            mininterval=0.5 if sys.stderr.isatty() else 30,
        )
        self.t_last, self.seen = time.perf_counter(), 0  # images trained on since the last logged row

    def count(self, images: int) -> None:
        """One step done, on ``images`` images over all processes."""
        self.seen += images
        self.bar.update(1)

    def step_row(
        self, step: int, output: dict[str, Any], info: DistInfo, optimizers: Optimizers, skipped: int
    ) -> None:
        """Log the step's scalars (averaged over the processes), img/s since the last row, lr and skipped."""
        # the loss and any other scalar the method reports (a pretext's accuracy), this step's batch
        names = [k for k, v in output.items() if torch.is_tensor(v) and v.numel() == 1]
        values = torch.stack([output[k].detach().float() for k in names])
        if info.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.AVG)
        now = time.perf_counter()
        row = {
            "step": step,
            **dict(zip(names, values.tolist(), strict=True)),
            "img_s": self.seen / (now - self.t_last),
            "lr": optimizers.lr,
            "skipped": skipped,  # running total since step 0
        }
        self.t_last, self.seen = now, 0
        losses = {g.loss: f"{row[g.loss]:.4f}" for g in optimizers.groups}
        self.bar.set_postfix(**losses, img_s=f"{row['img_s']:.1f}")
        self.write(row)

    def write(self, row: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.bar.close()


def _stop_now(stop: StopSignals, info: DistInfo, completed: int, log_every: int) -> bool:
    """Whether a stop signal has arrived. Under DDP every rank must stop after the same step, so the ranks
    agree (one all-reduce) only after logged steps, where they synchronise anyway."""
    if not info.enabled:
        return stop.requested
    if completed % log_every:
        return False
    flag = torch.tensor([float(stop.requested)], device=info.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item() and stop.signum is None:
        stop.signum = int(signal.SIGTERM)  # another rank was signalled
    return bool(flag.item())
