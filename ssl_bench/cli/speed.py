"""``bench speed``: measure pretraining / pipeline / evaluation throughput and print a table + record."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the measurements import torch when they run, not when the CLI starts
    import torch

    from ssl_bench.data.folder import ImageFolderIndex
    from ssl_bench.runtime.performance import Performance


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "speed", help="measure images/s of pretraining, the data pipeline and evaluation steps"
    )
    p.add_argument("--device", help="cpu, cuda … (default: cuda if available)")
    p.add_argument("--image-size", type=int, default=227)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--workers",
        type=int,
        help="data workers for the end-to-end run (default: what bench pretrain picks on this device: "
        "0 on a CPU, loading in a thread of the training process; most cores on a GPU)",
    )
    p.add_argument(
        "--iters",
        type=int,
        default=8,
        help="timed steps per measurement, after warm-up (4× as many for the side-by-side eager / suite / "
        "end-to-end timing, whose ratios the record compares)",
    )
    p.add_argument("--compile", action="store_true", help="also measure the step under torch.compile")
    p.add_argument(
        "--batch-sizes",
        type=batch_size_list,
        metavar="N,N,…",
        help="also measure the model-only step and its peak memory at each of these batch sizes "
        "(plan a run: how large a batch fits, and how throughput grows with it)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the 2k-vs-20k-images memory measurement")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation-step measurements")
    p.add_argument("--no-layers", action="store_true", help="skip the pretraining step's per-layer table")
    p.add_argument(
        "--profile",
        default="mini",
        help="recipes whose settings the evaluation steps and the pipeline's crop size take (default: mini)",
    )
    p.add_argument(
        "--gpu-report",
        action="store_true",
        help="the one GPU check: gpu-marked tests, bench speed on CUDA (bf16, channels_last, compile, the "
        "loader at the machine's worker count), the paper schedules projected to hours; stops without a GPU",
    )
    p.add_argument("--out", type=Path, help="folder for the record (default: results/runs)")
    p.set_defaults(func=run)


def batch_size_list(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers separated by commas, got {text!r}")
    return sizes


class Notes:
    """The record's metrics, each printed as it is measured."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def __call__(self, name: str, value: float, text: str) -> None:
        self.metrics[name] = value
        print(f"  {name:<24} {text}", flush=True)


@dataclass(frozen=True)
class Setup:
    """What every measurement runs with."""

    device: torch.device
    perf: Performance
    size: int  # image side, px
    bs: int  # batch size
    iters: int  # timed steps per measurement
    workers: int  # data workers of the end-to-end run


def run(args: argparse.Namespace) -> int:
    from ssl_bench.data.folder import ImageFolderIndex
    from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool
    from ssl_bench.provenance import device_description
    from ssl_bench.records import RECORDS_DIR, peak_memory_mb, utc_now, write_record
    from ssl_bench.runtime.distributed import resolve_device
    from ssl_bench.runtime.performance import resolve_performance, resolve_workers

    if args.gpu_report:
        from ssl_bench.perf.gpu_check import run_gpu_check

        return run_gpu_check(args)
    t0, started_at = time.perf_counter(), utc_now()
    device = resolve_device(args.device)
    workers = resolve_workers(args.workers, device)
    s = Setup(device, resolve_performance({}, device), args.image_size, args.batch_size, args.iters, workers)
    note = Notes()

    print(f"bench speed on {device_description(device)}: {s.size} px, batch {s.bs}, suite settings {s.perf}")
    peak, wall_peak, flops = measure_peak(note, s)
    index = ImageFolderIndex(synthvoc_pool(ensure_synthvoc()), labels="none")
    measure_steps(note, s, index, flops, wall_peak)
    if not args.no_layers:
        measure_layers(note, s, flops, peak)
    measure_model_only(note, s, args.compile, args.batch_sizes or [])
    measure_pipeline(note, s, index, args.profile)
    if not args.no_eval:
        measure_eval_steps(note, s, args.profile)
    if not args.no_memory:
        measure_memory(note, s, index)
    note(
        "peak_mem_mb", peak_memory_mb(device), f"{peak_memory_mb(device):.0f} MB  peak memory of this process"
    )

    record = speed_record(note.metrics, s, args.profile, started_at, time.perf_counter() - t0)
    path = write_record(record, args.out or RECORDS_DIR)
    record["record_path"] = str(path)
    print(json.dumps(record, default=str))
    return 0


def measure_peak(note: Notes, s: Setup) -> tuple[float, float, float]:
    """The GEMM peaks (best, on the wall clock, fp32) and the pretraining step's FLOPs per image.

    Returns:
        (best peak, wall-time peak, FLOPs per image), the peaks in FLOP/s.
    """
    import torch

    from ssl_bench.perf import speed

    dtype = torch.bfloat16 if s.perf.amp else torch.float32
    measured = speed.stable_peak(s.device, dtype)
    peak = measured.best
    rounds = " / ".join(f"{r / 1e9:.0f}" for r in measured.rounds)
    clock = "wall time" if s.device.type == "cuda" else "per CPU-second given"
    note("matmul_peak_gflops", peak / 1e9,
         f"{peak / 1e9:.0f} GFLOP/s (best 4096² {str(dtype)[6:]} GEMM, all threads, {clock}; "
         f"rounds {rounds}: spread {measured.spread:.0%})")  # fmt: skip
    note.metrics["matmul_peak_spread"] = measured.spread
    wall = measured.wall / 1e9
    note("matmul_peak_wall_gflops", wall, f"{wall:.0f} GFLOP/s (same GEMM, wall time)")
    fp32_peak = speed.matmul_peak(s.device, torch.float32) if s.perf.amp else peak
    note("matmul_peak_fp32_gflops", fp32_peak / 1e9, f"{fp32_peak / 1e9:.0f} GFLOP/s (fp32 2048², wall time)")
    flops = speed.flops_per_image(s.perf, s.size, s.device)
    note("gflop_per_image", flops / 1e9, f"{flops / 1e9:.2f} GFLOP per image (forward + backward)")
    return peak, measured.wall, flops


def measure_steps(note: Notes, s: Setup, index: ImageFolderIndex, flops: float, wall_peak: float) -> None:
    """The eager, suite and end-to-end pretraining steps side by side, and the suite step's FLOP fraction."""
    from ssl_bench.perf import speed

    rates = speed.side_by_side(s.perf, index, s.size, s.bs, s.workers, s.device, steps=s.iters * 4)
    eager, model, e2e = rates["eager"], rates["model"], rates["e2e"]
    feeding = f"{s.workers} workers" if s.workers else "loader thread"
    note("eager_img_s", eager, f"{eager:.1f} img/s  eager fp32 reference step")
    note("model_img_s", model, f"{model:.1f} img/s  suite step, in-memory batch")
    note("e2e_img_s", e2e, f"{e2e:.1f} img/s  data pipeline ({feeding}) + suite step")
    note("speedup_vs_eager", model / eager, f"{model / eager:.2f}×  suite step over eager fp32")
    note("e2e_over_model", e2e / model, f"{e2e / model:.2f}  end-to-end / model-only")
    achieved = model * flops
    note(
        "flop_fraction_of_peak",
        achieved / wall_peak,
        f"{achieved / wall_peak:.2f}  of the wall-time GEMM peak ({achieved / 1e9:.0f} GFLOP/s, wall)",
    )


def measure_layers(note: Notes, s: Setup, flops: float, peak: float) -> None:
    """The suite step on the peak's clock, and its per-layer table."""
    from ssl_bench.perf import speed
    from ssl_bench.perf.layers import layer_costs, layer_table

    method, suite_step = speed.build_suite_step(s.perf, s.size, s.device)
    batch = speed.synthetic_batch(s.bs, s.size, s.device, s.perf.channels_last)
    step_s = speed.cpu_seconds_per_call(lambda: suite_step(batch), 3, s.device)  # the peak's clock
    rate = flops * s.bs / step_s
    note("step_gflops_peak_clock", rate / 1e9,
         f"{rate / 1e9:.0f} GFLOP/s achieved by the suite step on the peak's clock = "
         f"{rate / peak:.2f} of the peak")  # fmt: skip
    note.metrics["step_fraction_of_stable_peak"] = rate / peak

    def forward() -> object:
        with s.perf.autocast(s.device):
            return method(batch)["loss"]

    print(f"  per layer, context-encoder step ({s.size} px, batch {s.bs}; each layer alone, best of 3; "
          "times on the peak's clock):")  # fmt: skip
    for line in layer_table(layer_costs(method, forward, s.perf, s.device), step_s, flops * s.bs, peak):
        print(line)


def measure_model_only(note: Notes, s: Setup, compile_step: bool, batch_sizes: list[int]) -> None:
    """The model-only step under torch.compile (``--compile``) and at each of ``--batch-sizes``."""
    from ssl_bench.perf import speed
    from ssl_bench.runtime.performance import Performance

    if compile_step:
        p = s.perf
        compiled = speed.model_only(
            Performance(p.amp, p.channels_last, True, p.fused_adam), s.size, s.bs, s.device, s.iters
        )
        note("compiled_img_s", compiled, f"{compiled:.1f} img/s  with torch.compile")

    for n, (rate, peak_mb) in speed.batch_size_sweep(s.perf, s.size, batch_sizes, s.device, s.iters).items():
        note(f"model_img_s_bs{n}", rate, f"{rate:.1f} img/s  suite step, in-memory batch of {n}")
        note(f"peak_mem_mb_bs{n}", peak_mb, f"{peak_mb:.0f} MB  peak memory of that step")


def measure_pipeline(note: Notes, s: Setup, index: ImageFolderIndex, profile: str) -> None:
    """The data pipeline alone (1 and ``workers`` workers), and per core on full-size JPEGs."""
    from ssl_bench.data.folder import ImageFolderIndex
    from ssl_bench.perf import speed
    from ssl_bench.recipes import find_recipe, load_yaml

    for w in sorted({1, s.workers}):
        rate = speed.pipeline_only(index, s.size, s.bs, w, s.device, batches=max(4, 60 // s.bs))
        note(f"pipeline_img_s_{w}w", rate, f"{rate:.1f} img/s  data pipeline alone, {w} worker(s)")
    note.metrics["pipeline_img_s_per_worker"] = note.metrics["pipeline_img_s_1w"]
    crop = load_yaml(find_recipe("pretrain", profile, "context_encoder"))["data"]["image_size"]
    with tempfile.TemporaryDirectory() as tmp:
        photos = ImageFolderIndex(speed.full_size_jpegs(Path(tmp), 24), labels="none")
        per_core = speed.pipeline_per_core(photos, crop, images=max(48, 12 * s.iters))
    for name, what in (("full", "decoded in full"), ("scaled", "decoded at the crop's size (draft)")):
        note(f"pipeline_per_core_{name}", per_core[name],
             f"{per_core[name]:.0f} img/s per core  500×375 JPEGs → {crop} px crops, {what}")  # fmt: skip
    gain = per_core["scaled"] / per_core["full"]
    note("pipeline_per_core_gain", gain, f"{gain:.2f}×  scaled over full decoding, per core")


def measure_eval_steps(note: Notes, s: Setup, profile: str) -> None:
    """Each evaluator's training step: suite settings, before the speed keys, eager."""
    from ssl_bench.perf.eval_steps import EVAL_TASKS, eval_side_by_side

    print(f"  evaluation steps, {profile} settings (img/s: suite / before the speed keys / eager):")
    for task, r in eval_side_by_side(EVAL_TASKS, profile, s.device, steps=s.iters * 2).items():
        note.metrics |= {f"{task}_{v}_img_s": rate for v, rate in r.items()}
        note(f"{task}_speedup_vs_eager", r["suite"] / r["eager"],
             f"{r['suite'] / r['eager']:.2f}×  {task}: {r['suite']:.1f} / {r['before']:.1f} / "
             f"{r['eager']:.1f} img/s; {r['suite'] / r['before']:.2f}× over before")  # fmt: skip
        note.metrics[f"{task}_speedup_vs_before"] = r["suite"] / r["before"]


def measure_memory(note: Notes, s: Setup, index: ImageFolderIndex) -> None:
    """The pipeline's resident memory on a 2,000- and a 20,000-image folder."""
    from ssl_bench.perf import speed

    small = speed.pipeline_memory(index, 2000, s.size, s.bs, s.workers, batches=20)
    large = speed.pipeline_memory(index, 20000, s.size, s.bs, s.workers, batches=20)
    note("rss_2k_images_mb", small, f"{small:.0f} MB  pipeline RSS, 2,000-image folder")
    note("rss_20k_images_mb", large, f"{large:.0f} MB  pipeline RSS, 20,000-image folder")
    note("rss_growth_20k_over_2k", large / small, f"{large / small:.3f}×")


def speed_record(
    metrics: dict[str, float], s: Setup, profile: str, started_at: str, wall_s: float
) -> dict[str, Any]:
    """The ``speed`` record of the measured ``metrics``."""
    import torch

    from ssl_bench.provenance import device_description, git_commit, package_versions

    return {
        "task": "speed",
        "status": "ok",
        "metrics": metrics,
        "seed": 0,
        "weights": "none",
        "pretrain": {"method": "context_encoder"},
        "extra": {
            "image_size": s.size,
            "batch_size": s.bs,
            "workers": s.workers,
            "performance": s.perf.__dict__,
            "profile": profile,
            "threads": torch.get_num_threads(),
        },
        "device": device_description(s.device),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "started_at": started_at,
        "wall_s": round(wall_s, 1),
        "peak_mem_mb": metrics["peak_mem_mb"],
        "images_per_s": metrics["e2e_img_s"],
    }
