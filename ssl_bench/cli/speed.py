"""``bench speed``: measure pretraining / pipeline / evaluation throughput and print a table + record."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


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


def run(args: argparse.Namespace) -> int:
    import torch

    from ssl_bench.data.folder import ImageFolderIndex
    from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool
    from ssl_bench.perf import speed
    from ssl_bench.provenance import device_description, git_commit, package_versions
    from ssl_bench.recipes import find_recipe, load_yaml
    from ssl_bench.records import RECORDS_DIR, peak_memory_mb, utc_now, write_record
    from ssl_bench.runtime.distributed import resolve_device
    from ssl_bench.runtime.performance import Performance, resolve_performance, resolve_workers

    if args.gpu_report:
        from ssl_bench.perf.gpu_check import run_gpu_check

        return run_gpu_check(args)
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    size, bs, iters = args.image_size, args.batch_size, args.iters
    workers = resolve_workers(args.workers, device)
    perf = resolve_performance({}, device)
    m: dict[str, float] = {}
    rows: list[tuple[str, str]] = []

    def note(name: str, value: float, text: str) -> None:
        m[name] = value
        rows.append((name, text))
        print(f"  {name:<24} {text}", flush=True)

    print(f"bench speed on {device_description(device)}: {size} px, batch {bs}, suite settings {perf}")
    dtype = torch.bfloat16 if perf.amp else torch.float32
    measured = speed.stable_peak(device, dtype)
    peak = measured.best
    rounds = " / ".join(f"{r / 1e9:.0f}" for r in measured.rounds)
    clock = "wall time" if device.type == "cuda" else "per CPU-second given"
    note("matmul_peak_gflops", peak / 1e9,
         f"{peak / 1e9:.0f} GFLOP/s (best 4096² {str(dtype)[6:]} GEMM, all threads, {clock}; "
         f"rounds {rounds}: spread {measured.spread:.0%})")  # fmt: skip
    m["matmul_peak_spread"] = measured.spread
    wall = measured.wall / 1e9
    note("matmul_peak_wall_gflops", wall, f"{wall:.0f} GFLOP/s (same GEMM, wall time)")
    fp32_peak = speed.matmul_peak(device, torch.float32) if perf.amp else peak
    note("matmul_peak_fp32_gflops", fp32_peak / 1e9, f"{fp32_peak / 1e9:.0f} GFLOP/s (fp32 2048², wall time)")
    flops = speed.flops_per_image(perf, size, device)
    note("gflop_per_image", flops / 1e9, f"{flops / 1e9:.2f} GFLOP per image (forward + backward)")

    index = ImageFolderIndex(synthvoc_pool(ensure_synthvoc()), labels="none")
    rates = speed.side_by_side(perf, index, size, bs, workers, device, steps=iters * 4)
    eager, model, e2e = rates["eager"], rates["model"], rates["e2e"]
    feeding = f"{workers} workers" if workers else "loader thread"
    note("eager_img_s", eager, f"{eager:.1f} img/s  eager fp32 reference step")
    note("model_img_s", model, f"{model:.1f} img/s  suite step, in-memory batch")
    note("e2e_img_s", e2e, f"{e2e:.1f} img/s  data pipeline ({feeding}) + suite step")
    note("speedup_vs_eager", model / eager, f"{model / eager:.2f}×  suite step over eager fp32")
    note("e2e_over_model", e2e / model, f"{e2e / model:.2f}  end-to-end / model-only")
    achieved = model * flops
    note(
        "flop_fraction_of_peak",
        achieved / measured.wall,
        f"{achieved / measured.wall:.2f}  of the wall-time GEMM peak ({achieved / 1e9:.0f} GFLOP/s, wall)",
    )
    if not args.no_layers:
        from ssl_bench.perf.layers import layer_costs, layer_table

        method, suite_step = speed.build_suite_step(perf, size, device)
        batch = speed.synthetic_batch(bs, size, device, perf.channels_last)
        step_s = speed.cpu_seconds_per_call(lambda: suite_step(batch), 3, device)  # the peak's clock
        rate = flops * bs / step_s
        note("step_gflops_peak_clock", rate / 1e9,
             f"{rate / 1e9:.0f} GFLOP/s achieved by the suite step on the peak's clock = "
             f"{rate / peak:.2f} of the peak")  # fmt: skip
        m["step_fraction_of_stable_peak"] = rate / peak

        def forward() -> object:
            with perf.autocast(device):
                return method(batch)["loss"]

        print(f"  per layer, context-encoder step ({size} px, batch {bs}; each layer alone, best of 3; "
              "times on the peak's clock):")  # fmt: skip
        for line in layer_table(layer_costs(method, forward, perf, device), step_s, flops * bs, peak):
            print(line)
    if args.compile:
        compiled = speed.model_only(
            Performance(perf.amp, perf.channels_last, True, perf.fused_adam), size, bs, device, iters
        )
        note("compiled_img_s", compiled, f"{compiled:.1f} img/s  with torch.compile")

    sweep = speed.batch_size_sweep(perf, size, args.batch_sizes or [], device, iters)
    for n, (rate, peak_mb) in sweep.items():
        note(f"model_img_s_bs{n}", rate, f"{rate:.1f} img/s  suite step, in-memory batch of {n}")
        note(f"peak_mem_mb_bs{n}", peak_mb, f"{peak_mb:.0f} MB  peak memory of that step")

    for w in sorted({1, workers}):
        rate = speed.pipeline_only(index, size, bs, w, device, batches=max(4, 60 // bs))
        note(f"pipeline_img_s_{w}w", rate, f"{rate:.1f} img/s  data pipeline alone, {w} worker(s)")
    m["pipeline_img_s_per_worker"] = m["pipeline_img_s_1w"]
    crop = load_yaml(find_recipe("pretrain", args.profile, "context_encoder"))["data"]["image_size"]
    with tempfile.TemporaryDirectory() as tmp:
        photos = ImageFolderIndex(speed.full_size_jpegs(Path(tmp), 24), labels="none")
        per_core = speed.pipeline_per_core(photos, crop, images=max(48, 12 * iters))
    for name, what in (("full", "decoded in full"), ("scaled", "decoded at the crop's size (draft)")):
        note(f"pipeline_per_core_{name}", per_core[name],
             f"{per_core[name]:.0f} img/s per core  500×375 JPEGs → {crop} px crops, {what}")  # fmt: skip
    gain = per_core["scaled"] / per_core["full"]
    note("pipeline_per_core_gain", gain, f"{gain:.2f}×  scaled over full decoding, per core")

    if not args.no_eval:
        from ssl_bench.perf.eval_steps import EVAL_TASKS, eval_side_by_side

        print(f"  evaluation steps, {args.profile} settings (img/s: suite / before the speed keys / eager):")
        for task, r in eval_side_by_side(EVAL_TASKS, args.profile, device, steps=iters * 2).items():
            m |= {f"{task}_{v}_img_s": rate for v, rate in r.items()}
            note(f"{task}_speedup_vs_eager", r["suite"] / r["eager"],
                 f"{r['suite'] / r['eager']:.2f}×  {task}: {r['suite']:.1f} / {r['before']:.1f} / "
                 f"{r['eager']:.1f} img/s; {r['suite'] / r['before']:.2f}× over before")  # fmt: skip
            m[f"{task}_speedup_vs_before"] = r["suite"] / r["before"]

    if not args.no_memory:
        small = speed.pipeline_memory(index, 2000, size, bs, workers, batches=20)
        large = speed.pipeline_memory(index, 20000, size, bs, workers, batches=20)
        note("rss_2k_images_mb", small, f"{small:.0f} MB  pipeline RSS, 2,000-image folder")
        note("rss_20k_images_mb", large, f"{large:.0f} MB  pipeline RSS, 20,000-image folder")
        note("rss_growth_20k_over_2k", large / small, f"{large / small:.3f}×")
    note(
        "peak_mem_mb", peak_memory_mb(device), f"{peak_memory_mb(device):.0f} MB  peak memory of this process"
    )

    record: dict[str, Any] = {
        "task": "speed",
        "status": "ok",
        "metrics": m,
        "seed": 0,
        "weights": "none",
        "pretrain": {"method": "context_encoder"},
        "extra": {
            "image_size": size,
            "batch_size": bs,
            "workers": workers,
            "performance": perf.__dict__,
            "profile": args.profile,
            "threads": torch.get_num_threads(),
        },
        "device": device_description(device),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "started_at": utc_now(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "peak_mem_mb": m["peak_mem_mb"],
        "images_per_s": m["e2e_img_s"],
    }
    path = write_record(record, args.out or RECORDS_DIR)
    record["record_path"] = str(path)
    print(json.dumps(record, default=str))
    return 0
