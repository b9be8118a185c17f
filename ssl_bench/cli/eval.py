"""``bench eval``: evaluate encoder weights on a transfer task; print and store a result record.

A usage error (unknown task, a bad recipe key or value, unreadable weights, CUDA where there is none) is one
line on stderr, exit 2, and no record. A run that started writes a record, also when it fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ssl_bench.errors import RecipeError
from ssl_bench.options import did_you_mean
from ssl_bench.recipes import PROFILES

# Listed here so that `bench --help` imports no encoder; a test checks them against the registry.
BUILT_IN_ARCHES = ("caffenet", "caffenet_bn", "torchvision_alexnet")


def _arch(name: str) -> str:
    """A registered encoder, or ``timm:<model>``."""
    from ssl_bench.encoders import ENCODERS  # torch: only once a command runs

    if name in ENCODERS or name.startswith("timm:"):
        return name
    raise argparse.ArgumentTypeError(
        f"unknown encoder '{name}'{did_you_mean(name, ENCODERS)}; "
        f"choose from: {', '.join(sorted(ENCODERS))}, timm:<model>"
    )


class _RegisteredTasksHelp(argparse.HelpFormatter):
    """Names the registered tasks only when the help is shown: listing them imports every evaluator, which
    would double the start-up of every ``bench`` command (each builds this parser)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and _TASKS in text:
            from ssl_bench.results.registered import registered_tasks  # plug-ins' tasks too, in column order

            text = text.replace(_TASKS, ", ".join(registered_tasks()))
        return text


_TASKS = "<registered tasks>"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        formatter_class=_RegisteredTasksHelp,
        help="evaluate encoder weights on a transfer task (cls, seg, det, …)",
        description="Evaluate an encoder on a transfer task and store a result record. With no --data, uses "
        "the generated SynthVOC default. A usage error (unknown task, bad recipe key or value, unreadable "
        "weights, CUDA where there is none) exits 2 and writes no record.",
    )
    arches = ", ".join(BUILT_IN_ARCHES)
    p.add_argument("--task", required=True, help=f"required: a registered task: {_TASKS}")
    p.add_argument("--weights", required=True, help="required: an encoder.pt, or 'random' (Gaussian init)")
    p.add_argument("--arch", default="caffenet", type=_arch,
                   help=f"encoder the weights load into: {arches} or timm:<model> (default: caffenet)")
    p.add_argument("--data", type=Path, help="VOC year folder, e.g. VOCdevkit/VOC2007 (default: SynthVOC)")
    p.add_argument("--sbd", type=Path, metavar="DIR",
                   help="seg only: SBD's benchmark_RELEASE/dataset; trains on VOC train + SBD train and val "
                   "minus the test images, the paper's protocol (default: VOC alone; paper profile warns)")
    p.add_argument("--profile", default="smoke", choices=PROFILES, help="recipe profile (default: smoke)")
    p.add_argument("--recipe", type=Path, help="evaluation recipe (default: eval/<profile>/<task>.yaml)")
    p.add_argument("--seed", type=int, default=0,
                   help="evaluation seed: new layers, data order, dropout (default: 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available, else cpu)")
    p.add_argument("--out", type=Path, help="folder for the result record (default: results/runs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value (a YAML value), e.g. --set iterations=200; repeatable; an "
                   "unknown key is an error (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown)")
    p.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ssl_bench.evaluators.runner import prepare, run_prepared

    overrides = list(args.set)
    if args.sbd is not None:
        from ssl_bench.data.sbd import resolve_sbd_root

        if args.task != "seg":
            raise RecipeError(f"--sbd: only for --task seg, not {args.task}")
        overrides.append(f"sbd_root={json.dumps(str(resolve_sbd_root(args.sbd)))}")  # a quoted YAML string
    prepared = prepare(args.task, args.weights, args.arch, args.data, args.profile, args.seed, args.out,
                       overrides, args.device, not args.no_progress, args.recipe)  # fmt: skip
    record, code = run_prepared(prepared)
    if code:
        print(f"bench eval: error: {record['error']} (record: {record['record_path']})", file=sys.stderr)
    print(json.dumps({k: v for k, v in record.items() if k != "traceback"}, default=str))
    return code
