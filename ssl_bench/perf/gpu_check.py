"""The one GPU check (``make gpu-check``, ``bench speed --gpu-report``): one command, one record, one table.

On a machine with a CUDA GPU it runs, in a few minutes:

1. the ``gpu``-marked tests (``pytest -m gpu``: the bf16 / channels-last / compiled steps on CUDA, the
   loader's worker processes);
2. ``bench speed`` on CUDA with the suite's GPU settings (bf16, channels_last, ``--compile``, the loader at
   the worker count ``bench pretrain`` picks on that machine), evaluation steps at the ``paper`` profile;
3. the paper profile's schedules (``pretrain/paper/context_encoder.yaml``, ``eval/paper/{cls,seg,det}.yaml``:
   iterations × batch) projected to hours at the rates just measured.

Without a GPU it stops at once with a message saying so. Everything but the measurements (reading the
schedules, the projection, the table) is plain arithmetic, tested on a CPU (``tests/perf/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ssl_bench.errors import BenchError
from ssl_bench.recipes import find_recipe, load_yaml

NO_GPU = (
    "no CUDA GPU: torch.cuda.is_available() is False on this machine, so there is nothing to check. "
    "Run `make gpu-check` (or `bench speed --gpu-report`) on a machine with an NVIDIA GPU; on a CPU, "
    "`bench speed` measures the CPU."
)
EVAL_STAGES = ("cls", "seg", "det")
GPU_TESTS_TIMEOUT_S = 300


def schedules(profile: str = "paper") -> dict[str, tuple[int, int]]:
    """``{stage: (iterations, images per iteration)}`` of the context encoder's pretraining and of the
    fine-tuning evaluations of ``profile``, read from its recipes."""
    recipe = load_yaml(find_recipe("pretrain", profile, "context_encoder"))
    out = {"pretrain": (int(recipe["train"]["steps"]), int(recipe["train"]["batch_size"]))}
    for task in EVAL_STAGES:
        r = load_yaml(find_recipe("eval", profile, task))
        out[task] = (int(r["iterations"]), int(r["batch_size"]))
    return out


def project_hours(plan: dict[str, tuple[int, int]], images_per_s: dict[str, float]) -> dict[str, float]:
    """Hours each stage of ``plan`` takes at ``images_per_s`` (stages without a rate are left out)."""
    return {
        stage: iterations * batch / images_per_s[stage] / 3600
        for stage, (iterations, batch) in plan.items()
        if images_per_s.get(stage, 0) > 0
    }


def projection_table(
    plan: dict[str, tuple[int, int]], images_per_s: dict[str, float], hours: dict[str, float]
) -> list[str]:
    lines = [f"  {'stage':<10} {'iterations':>10} {'batch':>6} {'img/s':>9} {'hours':>7}"]
    for stage, (iterations, batch) in plan.items():
        rate = images_per_s.get(stage)
        shown = (f"{rate:9.1f} {hours[stage]:7.2f}") if stage in hours else f"{'n/a':>9} {'n/a':>7}"
        lines.append(f"  {stage:<10} {iterations:>10,} {batch:>6} {shown}")
    lines.append(f"  {'total':<10} {'':>10} {'':>6} {'':>9} {sum(hours.values()):7.2f}")
    return lines


def require_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise BenchError(NO_GPU)


def _gpu_tests() -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=GPU_TESTS_TIMEOUT_S)
        summary, ok = (done.stdout.strip().splitlines() or ["no output"])[-1], done.returncode == 0
    except subprocess.TimeoutExpired:
        summary, ok = f"stopped after {GPU_TESTS_TIMEOUT_S} s", False
    return {"ok": ok, "summary": summary, "wall_s": round(time.perf_counter() - t0, 1)}


def _paper_rates(iters: int) -> dict[str, float]:
    """img/s of the suite's pretraining step and of each fine-tuning step at the paper profile, on CUDA."""
    import torch

    from ssl_bench.perf.eval_steps import build_eval_step
    from ssl_bench.perf.speed import device_sync, median_seconds, model_only
    from ssl_bench.runtime.performance import resolve_performance

    cuda = torch.device("cuda")
    plan = schedules("paper")
    pretrain = load_yaml(find_recipe("pretrain", "paper", "context_encoder"))
    perf = resolve_performance({"compile": True}, cuda)
    size = int(pretrain["data"]["image_size"])
    rates = {"pretrain": model_only(perf, size, plan["pretrain"][1], cuda, iters)}
    for task in EVAL_STAGES:
        step = build_eval_step(task, "paper", cuda, "suite")
        rates[task] = step.images / median_seconds(step.step, warmup=2, iters=iters, sync=device_sync(cuda))
    return rates


def run_gpu_check(args: argparse.Namespace) -> int:
    """``bench speed --gpu-report``: tests, ``bench speed`` on CUDA, the paper schedules in hours."""
    require_gpu()
    import torch

    from ssl_bench.provenance import device_description, git_commit, package_versions
    from ssl_bench.records import RECORDS_DIR, utc_now, write_record

    t0, started_at = time.perf_counter(), utc_now()
    print(f"GPU check on {device_description(torch.device('cuda'))}", flush=True)
    tests = _gpu_tests()
    print(f"  gpu-marked tests: {tests['summary']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        speed_cmd = [sys.executable, "-m", "ssl_bench", "speed", "--device", "cuda", "--compile",
                     "--no-memory", "--profile", "paper", "--out", tmp]  # fmt: skip
        done = subprocess.run(speed_cmd, capture_output=True, text=True)
        records = list(Path(tmp).glob("*.json"))
        speed = json.loads(records[0].read_text())["metrics"] if done.returncode == 0 and records else {}
    print(done.stdout if done.returncode == 0 else done.stderr[-2000:], flush=True)
    plan = schedules("paper")
    rates = _paper_rates(args.iters)
    hours = project_hours(plan, rates)
    table = projection_table(plan, rates, hours)
    print("  the paper profile's schedules on this GPU:")
    print("\n".join(table))
    record: dict[str, Any] = {
        "task": "gpu-check",
        "status": "ok" if tests["ok"] and speed else "error",
        "metrics": {
            **{f"hours_{k}": v for k, v in hours.items()},
            **{f"img_s_{k}": v for k, v in rates.items()},
            **{f"speed_{k}": v for k, v in speed.items()},
        },
        "seed": 0,
        "weights": "none",
        "pretrain": {"method": "context_encoder"},
        "extra": {"gpu_tests": tests, "schedules": plan},
        "device": device_description(torch.device("cuda")),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "started_at": started_at,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    path = write_record(record, args.out or RECORDS_DIR)
    print(f"  record: {path} ({record['wall_s']:.0f} s)")
    return 0 if record["status"] == "ok" else 1
