"""``bench eval``: evaluate encoder weights on a transfer task; print and store a result record."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ssl_bench.recipes import PROFILES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate encoder weights on a transfer task (cls, seg, det, …)",
                       description="Evaluate an encoder. With no --data, uses the generated SynthVOC "
                                   "default.")
    p.add_argument("--task", required=True, help="cls, cls-linear, knn, det, seg, inpaint (or a plug-in's)")
    p.add_argument("--weights", required=True, help="an encoder.pt, or 'random'")
    p.add_argument("--arch", default="caffenet", help="encoder the weights load into (default caffenet)")
    p.add_argument("--data", type=Path, help="VOC year folder, e.g. VOCdevkit/VOC2007 (default: SynthVOC)")
    p.add_argument("--profile", default="smoke", choices=PROFILES)
    p.add_argument("--recipe", type=Path, help="evaluation recipe (default: eval/<profile>/<task>.yaml)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda … (default: cuda if available)")
    p.add_argument("--out", type=Path, help="folder for the result record (default: results/runs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set iterations=200 (YAML value)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssl_bench.evaluators.runner import run_evaluation

    record, code = run_evaluation(args.task, args.weights, args.arch, args.data, args.profile, args.seed,
                                  args.out, args.set, args.device, not args.no_progress, args.recipe)
    if code:
        print(f"bench eval: error: {record['error']} (record: {record['record_path']})", file=sys.stderr)
    print(json.dumps({k: v for k, v in record.items() if k != "traceback"}, default=str))
    return code


def __getattr__(name: str) -> Any:
    """``evaluate``, ``resolve_eval_recipe``: moved to ``ssl_bench.evaluators.runner`` (old imports work)."""
    if name in ("evaluate", "resolve_eval_recipe"):
        from ssl_bench.evaluators import runner

        return getattr(runner, name)
    raise AttributeError(name)
