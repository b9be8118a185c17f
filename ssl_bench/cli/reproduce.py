"""``bench reproduce``: the paper's Table 2 in one command (pretrain, evaluate, table, figures, report).

Stages are cached on hashes of their inputs and an interrupted run continues where it stopped; see
``ssl_bench/results/reproduce.py`` for the stage layout and keys. ``--dry-run`` runs nothing: it lists the
stages, checks their data and estimates their time (``cli/plan.py``, ``results/plan.py``).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from ssl_bench.errors import RecipeError
from ssl_bench.recipes import PROFILES, parse_value
from ssl_bench.results import DEFAULT_METHODS, DEFAULT_TASKS


# Over ~60 lines on purpose: a flat list of add_argument calls, one per flag, read top to bottom as --help
# prints them; splitting it would only scatter the flags.
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the results table end to end (pretrain, evaluate, table, figures, report)",
        description="Pretrain every method, evaluate every task for every seed, then write the table "
        "(Markdown, CSV, LaTeX), the figures and REPORT.md under --out. Unchanged stages are reused; "
        "an interrupted run continues where it stopped; a failed stage does not stop the others.",
    )
    p.add_argument("--profile", default="smoke", choices=PROFILES, help="recipe profile (default: smoke)")
    p.add_argument("--seeds", type=int, default=2, metavar="N", help="evaluation seeds 0…N-1 (default: 2)")
    p.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        metavar="S",
        help="run only these of the seeds (with --pretrain-per-seed, their pretraining too), e.g. a long "
        "method's seeds as separate commands; `bench table --results` joins their records (default: all)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        metavar="METHOD",
        help=f"table rows (default: {' '.join(DEFAULT_METHODS)})",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=list(DEFAULT_TASKS),
        metavar="TASK",
        help=f"table columns (default: {' '.join(DEFAULT_TASKS)}; also cls-linear knn inpaint)",
    )
    p.add_argument(
        "--data-pretrain", metavar="DIR", help="pretraining images (default: the recipe's, SynthVOC)"
    )
    p.add_argument(
        "--data-voc",
        action="append",
        default=[],
        metavar="[TASK=]DIR",
        help="VOC year folder for every task, or for one task (repeatable), e.g. "
        "--data-voc VOCdevkit/VOC2007 --data-voc seg=VOCdevkit/VOC2012 (default: SynthVOC)",
    )
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    p.add_argument("--device", help="cpu, cuda … (default: cuda if available)")
    p.add_argument(
        "--pretrain-per-seed",
        action="store_true",
        help="pretrain once per evaluation seed (default: once, seed 0)",
    )
    p.add_argument(
        "--no-retry-failed",
        action="store_true",
        help="keep the error records of stages that failed before instead of running them again",
    )
    p.add_argument("--no-figures", action="store_true")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="override a recipe value of one method or task, e.g. --set cls.iterations=20 or "
        "--set context_encoder.train.steps=100 (YAML value)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run nothing: list every stage with its recipe, check the data each needs (present, complete) "
        "and estimate each stage's time on this machine from a short probe; exit 1 naming what is missing",
    )
    p.add_argument("--no-timing", action="store_true", help="with --dry-run: skip the timing probes")
    p.set_defaults(func=run)


def parse_data_voc(items: list[str]) -> dict[str, Path]:
    """``["VOC2007", "seg=VOC2012"]`` → ``{"": VOC2007, "seg": VOC2012}``."""
    out: dict[str, Path] = {}
    for item in items:
        task, sep, path = item.partition("=")
        out["" if not sep else task] = Path(path if sep else item)
    return out


def parse_sets(
    items: list[str], methods: list[str], tasks: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set NAME.KEY=VALUE`` → (pretraining overrides per method, evaluation overrides per task)."""
    pretrain: dict[str, dict[str, Any]] = {}
    evals: dict[str, dict[str, Any]] = {}
    for item in items:
        path, sep, value = item.partition("=")
        name, dot, rest = path.partition(".")
        if not sep or not dot or not rest:
            raise RecipeError(f"--set expects NAME.KEY=VALUE (NAME a method or task), got '{item}'")
        if name in methods:
            node = pretrain.setdefault(name, {})
            *parents, leaf = rest.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = parse_value(value)
        elif name in tasks:
            evals.setdefault(name, {})[rest] = parse_value(value)
        else:
            raise RecipeError(f"--set {item}: '{name}' is neither a --methods entry nor a --tasks entry")
    return pretrain, evals


def command_line(args: argparse.Namespace) -> str:
    """The command in a canonical form (defaults left out), for the report: same flags, same text."""
    parts = ["bench", "reproduce", "--profile", args.profile, "--seeds", str(args.seeds)]
    if list(args.methods) != list(DEFAULT_METHODS):
        parts += ["--methods", *args.methods]
    if list(args.tasks) != list(DEFAULT_TASKS):
        parts += ["--tasks", *args.tasks]
    for flag, value in (("--data-pretrain", args.data_pretrain), ("--device", args.device)):
        if value:
            parts += [flag, str(value)]
    for item in args.data_voc:
        parts += ["--data-voc", item]
    if str(args.out) != "results":
        parts += ["--out", str(args.out)]
    if args.only_seeds is not None:
        parts += ["--only-seeds", *map(str, args.only_seeds)]
    for flag in ("pretrain_per_seed", "no_retry_failed", "no_figures"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    for item in args.set:
        parts += ["--set", item]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from ssl_bench.results.reproduce import reproduce  # torch, matplotlib: not for `bench --help`
    from ssl_bench.results.stages import ReproduceOptions

    if args.seeds < 1:
        raise RecipeError("--seeds must be at least 1")
    outside = sorted(set(args.only_seeds or ()) - set(range(args.seeds)))
    if outside:
        raise RecipeError(
            f"--only-seeds {' '.join(map(str, outside))}: not among --seeds {args.seeds} (0…{args.seeds - 1})"
        )
    pretrain_sets, eval_sets = parse_sets(args.set, args.methods, args.tasks)
    options = ReproduceOptions(
        profile=args.profile,
        seeds=args.seeds,
        only_seeds=args.only_seeds,
        methods=args.methods,
        tasks=args.tasks,
        out=args.out,
        data_pretrain=args.data_pretrain,
        data_voc=parse_data_voc(args.data_voc),
        device=args.device,
        pretrain_per_seed=args.pretrain_per_seed,
        retry_failed=not args.no_retry_failed,
        figures=not args.no_figures,
        progress=not args.no_progress,
        pretrain_overrides=pretrain_sets,
        eval_overrides=eval_sets,
        command=command_line(args),
    )
    if args.dry_run:
        from ssl_bench.cli.plan import run_dry

        return run_dry(options, timing=not args.no_timing)
    summary = reproduce(options)
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0
