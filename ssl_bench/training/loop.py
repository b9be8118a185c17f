"""The one training loop for every pretraining method: ``model(batch)["loss"]`` → backward → step.

It knows nothing of any method. Checkpoints are written every ``checkpoint_every`` steps and on Ctrl-C,
so a run can always continue with ``--resume``.
"""

from __future__ import annotations

import functools
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
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
from ssl_bench.training.distributed import DistInfo
from ssl_bench.training.performance import Performance


def training_batches(
    loader: DataLoader,
    sampler: EpochSampler,
    start_step: int,
    device: torch.device,
    channels_last: bool,
    thread: bool,
) -> Iterator[dict[str, Any]]:
    """``endless_batches``, loaded ``ThreadPrefetcher.depth`` batches ahead in a thread when ``thread``.

    On a CPU the thread also moves and normalises each batch (``to_device``; the loop's own call is then a
    no-op). Close the result when done (``contextlib.closing``): it stops the thread.
    """
    batches = endless_batches(loader, sampler, start_step)
    if not thread:
        return batches
    if device.type == "cuda":
        # A new thread starts on GPU 0: pinned batches would open a context there for every DDP rank.
        return ThreadPrefetcher(_on_gpu(batches, device))
    return ThreadPrefetcher(
        batches, transform=functools.partial(to_device, device=device, channels_last=channels_last)
    )


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
    optimizer: torch.optim.Optimizer,
    batches: Iterator[dict[str, Any]],
    *,
    start_step: int,
    steps: int,
    info: DistInfo,
    out: Path,
    perf: Performance,
    log_every: int,
    on_checkpoint: Callable[[int], None],
    checkpoint_every: int,
    on_sample: Callable[[int], dict[str, float] | None],
    sample_every: int,
    progress: bool = True,
) -> None:
    device = info.device
    log = (out / "metrics.jsonl").open("a") if info.is_main else None
    # In a log file (no terminal) redraw rarely instead of every 0.1 s.
    bar = tqdm(
        total=steps,
        initial=start_step,
        disable=not (progress and info.is_main),
        unit="step",
        dynamic_ncols=True,
        desc="pretrain",
        mininterval=0.5 if sys.stderr.isatty() else 30,
    )
    t_last, seen, completed = time.perf_counter(), 0, start_step
    model.train()
    try:
        for step, batch in enumerate(itertools.islice(batches, steps - start_step), start=start_step + 1):
            batch = to_device(batch, device, perf.channels_last)
            with perf.autocast(device):
                loss = model(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            completed = step
            seen += batch["image"].shape[0] * info.world_size
            bar.update(1)
            if step % log_every == 0 or step == steps:
                value = loss.detach().float()
                if info.enabled:
                    dist.all_reduce(value, op=dist.ReduceOp.AVG)
                now = time.perf_counter()
                row = {
                    "step": step,
                    "loss": value.item(),
                    "img_s": seen / (now - t_last),
                    "lr": optimizer.param_groups[0]["lr"],
                    "skipped": int(batch.get("skipped", 0)),
                }
                t_last, seen = now, 0
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['img_s']:.1f}")
                if log:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
            if sample_every and step % sample_every == 0 and info.is_main:
                numbers = on_sample(step)
                if numbers and log:
                    log.write(json.dumps({"step": step, **numbers}) + "\n")
                    log.flush()
            if checkpoint_every and step % checkpoint_every == 0:
                on_checkpoint(step)
    except KeyboardInterrupt:
        # The last completed step is a consistent state: keep it, so --resume loses nothing.
        # (Single process only: under DDP the other ranks may not have stopped at the same step.)
        if not info.enabled and completed > start_step and completed % max(checkpoint_every, 1) != 0:
            on_checkpoint(completed)
        raise
    finally:
        bar.close()
        if log:
            log.close()
