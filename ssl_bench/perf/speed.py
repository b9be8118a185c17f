"""``bench speed``: images/s of the pretraining step, the data pipeline and both together, in one run.

Everything that is compared is measured in the same process: CPU timings drift between runs, ratios
measured side by side do not. The eager reference, the suite's step and the fed step take turns in blocks
(``side_by_side``), each summarised by the interquartile mean of its step times; the other figures are
medians over timed steps after warm-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ssl_bench.data import pretrain as pretrain_data
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.masks import make_mask
from ssl_bench.data.prefetch import ThreadPrefetcher
from ssl_bench.data.pretrain import PREFETCH_FACTOR, EpochSampler, PretrainDataset
from ssl_bench.methods import create_method
from ssl_bench.perf.eager_reference import build_reference, reference_step
from ssl_bench.perf.flops import flop_counter
from ssl_bench.runtime.performance import Performance, maybe_compile, resolve_loader_thread
from ssl_bench.training.loop import endless_batches, to_device, training_batches


def median_seconds(step: Callable[[], Any], warmup: int, iters: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def device_sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, iters: int = 10) -> float:
    """Best wall-clock FLOP/s of an n×n matmul in ``dtype`` over ``iters`` tries (see ``stable_peak``)."""
    return stable_peak(device, dtype, n, rounds=1, per_round=iters).wall


@dataclass(frozen=True)
class Peak:
    """A GEMM peak: ``best`` of the ``rounds`` (each its best try), and the best wall-clock rate."""

    best: float
    rounds: list[float]
    wall: float

    @property
    def spread(self) -> float:
        """(best - worst) / best of the rounds' figures."""
        return (max(self.rounds) - min(self.rounds)) / max(self.rounds)


def stable_peak(
    device: torch.device, dtype: torch.dtype, n: int = 4096, rounds: int = 4, per_round: int = 2
) -> Peak:
    """The machine's practical peak: the best FLOP/s of large ``n``×``n`` GEMMs on all threads, in
    ``rounds`` rounds of ``per_round`` tries (their spread says how much it moved within the run).

    On a CPU the rate is per CPU-second the process was given (FLOPs over its CPU time divided by its
    threads): on a shared machine a try's wall time counts the neighbours' time slices, and the old
    wall-clock figure (best of 10 2048² GEMMs) moved 1,670 → 717 GFLOP/s between two runs; CPU time moves
    little. The best, not the median: a peak is what the hardware can do. On CUDA: wall time, synchronised.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = device_sync(device)
    threads = torch.get_num_threads()
    for _ in range(2):
        a @ b
    sync()
    bests, wall = [], float("inf")
    for _ in range(rounds):
        best = float("inf")
        for _ in range(per_round):
            t0, c0 = time.perf_counter(), time.process_time()
            a @ b
            sync()
            seconds = time.perf_counter() - t0
            cpu_seconds = (time.process_time() - c0) / threads
            wall = min(wall, seconds)
            best = min(best, seconds if device.type == "cuda" else max(cpu_seconds, 1e-9))
        bests.append(2 * n**3 / best)
    return Peak(max(bests), bests, 2 * n**3 / wall)


def cpu_clock() -> float:
    """Seconds of CPU time this process was given, over its threads: a clock a shared CPU's neighbours
    do not advance (``stable_peak``'s clock)."""
    return time.process_time() / torch.get_num_threads()


def cpu_seconds_per_call(call: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Seconds per ``call`` on the clock of ``stable_peak``: the process's CPU time over its threads on a
    CPU (the time it was given, whatever its neighbours took), wall time on CUDA."""
    sync = device_sync(device)
    call()
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    sync()
    if device.type == "cuda":
        return (time.perf_counter() - t0) / calls
    return (time.process_time() - c0) / torch.get_num_threads() / calls


def synthetic_batch(
    batch_size: int, image_size: int, device: torch.device, channels_last: bool, mask: str = "random_region"
) -> dict[str, torch.Tensor]:
    """An in-memory batch of images and masks: the model-only measurements read no files."""
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(batch_size, 3, image_size, image_size, generator=g),
        "mask": torch.stack([make_mask(mask, image_size, g) for _ in range(batch_size)]),
    }
    return to_device(batch, device, channels_last)


def build_suite_step(
    perf: Performance, image_size: int, device: torch.device, lr: float = 3e-4
) -> tuple[torch.nn.Module, Callable[[dict[str, torch.Tensor]], torch.Tensor]]:
    """The context-encoder step exactly as ``bench pretrain`` runs it with these settings."""
    method = create_method("context_encoder", image_size=image_size).to(device)
    if perf.channels_last:
        method.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        method.parameters(), lr=lr, betas=(0.5, 0.999), fused=perf.fused_adam or None
    )
    model = maybe_compile(method, perf.compile)

    def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with perf.autocast(device):
            loss = model(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return method, step


def flops_per_image(perf: Performance, image_size: int, device: torch.device) -> float:
    """Forward + backward FLOPs of one training step per image, counted by torch.utils.flop_counter (grouped
    convolutions' weight gradients counted once per group's weights: ``perf/flops.py``).

    Counted on the eager reference model: the network's own arithmetic. The suite's ``ChannelLRN`` adds
    ~5% of extra (cheap) GEMM FLOPs that would otherwise inflate the achieved fraction of peak.
    """
    method, _ = build_reference(image_size)
    method.to(device)
    batch = synthetic_batch(2, image_size, device, False)
    with flop_counter() as counter:
        method(batch)["loss"].backward()
    return counter.get_total_flops() / 2


def model_only(
    perf: Performance, image_size: int, batch_size: int, device: torch.device, iters: int
) -> float:
    _, step = build_suite_step(perf, image_size, device)
    batch = synthetic_batch(batch_size, image_size, device, perf.channels_last)
    seconds = median_seconds(
        lambda: step(batch), warmup=3 if perf.compile else 2, iters=iters, sync=device_sync(device)
    )
    return batch_size / seconds


def alternating_blocks(
    paths: dict[str, tuple[Callable[[], Any], int]],
    steps: int,
    block: int,
    sync: Callable[[], None],
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Seconds per step of each path, timed in turn in blocks of ``block`` steps: the interquartile mean.

    ``paths`` maps a name to ``(step, lead)``: ``lead`` untimed steps open each of its blocks. A slow
    spell of a shared machine then hits every path alike, instead of whichever happened to run during it
    (``clock``: ``cpu_clock`` leaves the neighbours' time out altogether, where no other thread of the
    process works meanwhile)
    (measured on the 2-core development box: the same code timed one path after the other gave
    end-to-end / model-only anywhere from 0.82 to 1.01; single steps there vary by ±15%, so the mean of
    the middle half of the steps, robust like the median but steadier).
    """
    for step, _ in paths.values():
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(max(1, steps // block)):
        for name, (step, lead) in paths.items():
            for _ in range(lead):
                step()
            sync()
            for _ in range(block):
                t0 = clock()
                step()
                sync()
                times[name].append(clock() - t0)
    return {name: interquartile_mean(t) for name, t in times.items()}


def interquartile_mean(values: list[float]) -> float:
    ordered = sorted(values)
    quarter = len(ordered) // 4
    return statistics.fmean(ordered[quarter : len(ordered) - quarter])


def make_loader(
    index: ImageFolderIndex, image_size: int, batch_size: int, workers: int, device: torch.device
) -> tuple[DataLoader, EpochSampler]:
    """The context encoder's pretraining loader, as ``bench pretrain`` builds it."""
    dataset = PretrainDataset(index, image_size, "random_region", seed=0)
    sampler = EpochSampler(len(dataset), batch_size)
    return pretrain_data.make_loader(dataset, sampler, workers, device.type == "cuda"), sampler


def pipeline_only(
    index: ImageFolderIndex,
    image_size: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    batches: int,
) -> float:
    """Read, decode, crop, flip and mask; no model. Images/s once the workers are warm."""
    loader, sampler = make_loader(index, image_size, batch_size, workers, device)
    it = endless_batches(loader, sampler, 0)
    next(it)  # start the workers
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - t0)


def side_by_side(
    perf: Performance,
    index: ImageFolderIndex,
    image_size: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    steps: int,
    block: int = 2,
) -> dict[str, float]:
    """Images/s of the eager fp32 reference, the suite's step on an in-memory batch (``model``) and the
    suite's step fed by the data pipeline as ``bench pretrain`` feeds it (``e2e``), timed in alternating
    blocks in one process (``alternating_blocks``), so both ratios compare like with like.

    The pipeline loads ahead (worker processes, or the loader thread when ``workers`` is 0) and refills
    its queue while the other paths run; each end-to-end block therefore first drains what it holds
    (untimed) and only then times ``block`` steps that wait for batches loaded at the rate it sustains.
    """
    reference, reference_optimizer = build_reference(image_size)
    reference.to(device)
    reference_batch = synthetic_batch(batch_size, image_size, device, False)
    _, step = build_suite_step(perf, image_size, device)
    batch = synthetic_batch(batch_size, image_size, device, perf.channels_last)
    loader, sampler = make_loader(index, image_size, batch_size, workers, device)
    thread = resolve_loader_thread(None, workers)
    queued = ThreadPrefetcher.DEPTH + 1 if thread else workers * PREFETCH_FACTOR  # +1: the one in hand
    with contextlib.closing(
        training_batches(loader, sampler, 0, device, perf.channels_last, thread)
    ) as batches:
        seconds = alternating_blocks(
            {
                "eager": (lambda: reference_step(reference, reference_optimizer, reference_batch), 0),
                "model": (lambda: step(batch), 0),
                "e2e": (lambda: step(to_device(next(batches), device, perf.channels_last)), queued),
            },
            steps,
            block,
            device_sync(device),
            warmup=3 if perf.compile else 2,
        )
    return {name: batch_size / s for name, s in seconds.items()}


def full_size_jpegs(root: Path, n: int, size: tuple[int, int] = (500, 375), seed: int = 0) -> Path:
    """``n`` photograph-sized JPEGs (VOC's typical 500×375, quality 90) in ``root``: smooth colour fields
    with pixel texture, so that decoding costs what a photograph's does."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        field = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        texture = rng.integers(-20, 21, (size[1], size[0], 3))
        pixels = (np.asarray(field).astype(np.int16) + texture).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{i:04d}.jpg", quality=90)
    return root


def pipeline_per_core(
    index: ImageFolderIndex, image_size: int, images: int, block: int = 4
) -> dict[str, float]:
    """Images per second of one core (CPU time of the loading thread, one torch thread) of the pretraining
    pipeline (decode, resize, crop, flip, mask) decoding in full (``full``) and at the size the crop uses
    (``scaled``, ``PretrainDataset(draft=True)``), in alternating blocks.

    CPU time, not wall time: on a shared machine a preempted thread's wall time counts its neighbours' work.
    """
    datasets = {
        "full": PretrainDataset(index, image_size, "random_region", seed=0, draft=False),
        "scaled": PretrainDataset(index, image_size, "random_region", seed=0, draft=True),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for dataset in datasets.values():
            dataset[0]  # warm-up
        times: dict[str, list[float]] = {name: [] for name in datasets}
        for start in range(0, images, block):
            for name, dataset in datasets.items():
                for i in range(start, min(images, start + block)):
                    t0 = time.thread_time()
                    dataset[i % len(dataset)]
                    times[name].append(time.thread_time() - t0)
    finally:
        torch.set_num_threads(threads)
    return {name: 1.0 / interquartile_mean(t) for name, t in times.items()}


def rss_mb(pids: list[int], field: str = "VmRSS") -> float:
    """Resident memory of these processes, summed (Linux /proc); ``VmHWM`` gives each one's peak."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so that the RSS
    counts live memory only and a later peak belongs to what ran after this call."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak also counts freed pages kept by the allocator
        pass


def batch_size_sweep(
    perf: Performance, image_size: int, batch_sizes: list[int], device: torch.device, iters: int
) -> dict[int, tuple[float, float]]:
    """Model-only images/s and peak memory (MB) of the suite's step at each batch size, to plan runs.

    Peak memory is the step's own: CUDA's ``max_memory_allocated`` after resetting it, or on a CPU the
    process's peak RSS (``VmHWM``) after releasing freed memory and resetting the peak through
    ``/proc/self/clear_refs`` (Linux; elsewhere the process's peak so far): the whole process, model and
    Adam state included, as a run at that batch size would need.
    """
    results = {}
    for batch_size in batch_sizes:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        else:
            release_freed_memory()
            try:
                Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
            except OSError:
                pass
        rate = model_only(perf, image_size, batch_size, device, iters)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peak = rss_mb([os.getpid()], "VmHWM")
        results[batch_size] = (rate, peak)
    return results


def pipeline_memory(
    source: ImageFolderIndex, copies: int, image_size: int, batch_size: int, workers: int, batches: int
) -> float:
    """RSS (main + workers) after streaming ``batches`` batches from a folder of ``copies`` images.

    The folder is made of hard links to the source images, so 20k images cost no disk space.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(copies):
            src = source.path(i % len(source))
            os.link(src, Path(tmp) / f"{i:06d}{src.suffix}")
        index = ImageFolderIndex(tmp, labels="none")
        loader, sampler = make_loader(index, image_size, batch_size, workers, torch.device("cpu"))
        it = endless_batches(loader, sampler, 0)
        for _ in range(batches):
            next(it)
        workers_alive = getattr(loader._iterator, "_workers", [])  # persistent workers' processes
        used = rss_mb([os.getpid()] + [w.pid for w in workers_alive])
        del it, loader
    return used
