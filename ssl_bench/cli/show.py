"""``bench show RUN_DIR``: what a pretraining run produced, in a few lines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ssl_bench.errors import BenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="summarise a pretraining run folder")
    p.add_argument("run", type=Path, help="a `bench pretrain --out` folder")
    p.set_defaults(func=run)


def summarise(run_dir: Path) -> dict:
    if not (run_dir / "config.yaml").is_file():
        raise BenchError(f"{run_dir} is not a pretraining run folder (no config.yaml)")
    rows = []
    if (run_dir / "metrics.jsonl").is_file():
        rows = [
            json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()
        ]
    losses = [r for r in rows if "loss" in r]
    samples = [r for r in rows if "sample_l2" in r]
    grids = sorted((run_dir / "samples").glob("step_*.png")) if (run_dir / "samples").is_dir() else []
    out = {
        "run": str(run_dir),
        "encoder": str(run_dir / "encoder.pt") if (run_dir / "encoder.pt").is_file() else None,
    }
    if losses:
        out |= {
            "steps": losses[-1]["step"],
            "first_loss": losses[0]["loss"],
            "last_loss": losses[-1]["loss"],
            "img_s": round(sum(r["img_s"] for r in losses[1:] or losses) / len(losses[1:] or losses), 1),
        }
    if samples:
        out |= {"hole_l2_output": samples[-1]["sample_l2"], "hole_l2_mean_fill": samples[-1]["fill_l2"]}
    if grids:
        out["latest_samples"] = str(grids[-1])
    return out


def run(args: argparse.Namespace) -> int:
    s = summarise(args.run)
    print(f"run:            {s['run']}")
    if "steps" in s:
        print(
            f"steps:          {s['steps']}  "
            f"(loss {s['first_loss']:.4f} → {s['last_loss']:.4f}, {s['img_s']} img/s)"
        )
    if "hole_l2_output" in s:
        better = s["hole_l2_output"] < s["hole_l2_mean_fill"]
        print(
            f"hole L2:        {s['hole_l2_output']:.4f} inpainted vs {s['hole_l2_mean_fill']:.4f} mean fill"
            f"  ({'better' if better else 'NOT better'} than the fill value)"
        )
    if s.get("latest_samples"):
        print(f"samples:        {s['latest_samples']}  (rows: masked input / output / original)")
    print(f"encoder:        {s['encoder']}")
    return 0
