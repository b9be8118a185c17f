"""``bench pretrain``: pretrain an encoder with a registered method and a recipe."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ssl_bench.methods import available_methods
from ssl_bench.recipes import PROFILES, find_recipe, load_yaml, parse_value

RECIPE = "(default: the recipe's)"


# Over ~60 lines on purpose: a flat list of add_argument calls, one per flag, read top to bottom as --help
# prints them; splitting it would only scatter the flags.
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain an encoder (context encoder, baselines)",
        description="Pretrain an encoder. With no --data, uses the generated SynthVOC default. Values "
        "not given come from the recipe, pretrain/<profile>/<method>.yaml.",
    )
    p.add_argument(
        "--method",
        default="context_encoder",
        metavar="METHOD",
        help=f"pretraining method, one of: {', '.join(available_methods())} (default: context_encoder)",
    )
    p.add_argument("--profile", default="smoke", choices=PROFILES, help="recipe profile (default: smoke)")
    p.add_argument("--recipe", type=Path, help="recipe YAML (default: pretrain/<profile>/<method>.yaml)")
    p.add_argument(
        "--data", help="folder of images (ImageNet train/ or a flat folder) (default: the recipe's source)"
    )
    p.add_argument("--out", type=Path, help="output folder (default: runs/pretrain/<method>-<profile>)")
    p.add_argument("--steps", type=int, metavar="N", help=f"training steps (train.steps) {RECIPE}")
    p.add_argument(
        "--batch-size", type=int, metavar="B", help=f"images per step per process (train.batch_size) {RECIPE}"
    )
    p.add_argument(
        "--image-size", type=int, metavar="PX", help=f"training crop side, ≥ 67 (data.image_size) {RECIPE}"
    )
    p.add_argument("--lr", type=float, help=f"learning rate (train.lr) {RECIPE}")
    p.add_argument("--seed", type=int, help=f"seed of initial weights and data order (seed) {RECIPE}")
    p.add_argument(
        "--workers", type=int, metavar="W", help="data-loading worker processes (train.workers) (default: "
        "the recipe's; auto = none on a CPU, most cores on a GPU)",
    )  # fmt: skip
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when torch sees one, else cpu)")
    p.add_argument(
        "--checkpoint-every", type=int, metavar="N",
        help=f"write checkpoint.pt every N steps, 0 = at the end only (train.checkpoint_every) {RECIPE}",
    )  # fmt: skip
    p.add_argument(
        "--sample-every", type=int, metavar="N",
        help=f"write a sample grid every N steps, 0 = never (train.sample_every) {RECIPE}",
    )  # fmt: skip
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint.pt; the recipe must be the saved one, except "
        "a higher --steps and the speed and cadence settings (docs/troubleshooting.md)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its checkpoint, weights, config, metrics and samples are "
        "deleted, once every value is checked)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable images (counted in metrics.jsonl and the summary) instead of stopping",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a recipe value, e.g. --set model.loss=l1 (YAML value; the key must exist)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# flag → recipe key
FLAG_KEYS = {
    "data": ("data", "source"),
    "image_size": ("data", "image_size"),
    "steps": ("train", "steps"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "workers": ("train", "workers"),
    "checkpoint_every": ("train", "checkpoint_every"),
    "sample_every": ("train", "sample_every"),
    "seed": ("seed",),
}


def resolve_config(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Recipe file, then command-line flags on top, each checked; returns (config, where it came from)."""
    from ssl_bench.errors import RecipeError
    from ssl_bench.training.recipe import Override, apply_overrides, check_method, check_recipe

    if args.recipe is None:
        check_method(args.method, "--method")
    path = args.recipe or find_recipe("pretrain", args.profile, args.method)
    recipe = load_yaml(path)
    recipe.setdefault("method", args.method)
    if args.recipe is None and recipe["method"] != args.method:
        raise RecipeError(f"recipe {path} for '{args.method}' names method '{recipe['method']}'")
    overrides = []
    for attr, key in FLAG_KEYS.items():
        value = getattr(args, attr)
        if value is not None:
            overrides.append(Override(key, value, f"--{attr.replace('_', '-')}"))
    if args.skip_bad_images:
        overrides.append(Override(("data", "skip_bad"), True, "--skip-bad-images"))
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError(f"--set expects SECTION.KEY=VALUE, got '{item}'")
        overrides.append(Override(tuple(key.split(".")), parse_value(text), f"--set {item}"))
    config = apply_overrides(recipe, overrides)
    config.setdefault("seed", 0)
    check_recipe(config, str(path))
    return config, str(path)


def resume_command(argv: list[str], out: Path) -> str:
    """The command that continues this run: the same flags, ``--resume`` instead of ``--overwrite``."""
    args = [a for a in argv if a != "--overwrite"]
    if "--resume" not in args:
        args.append("--resume")
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return shlex.join(["bench", *args])


def run(args: argparse.Namespace) -> int:
    config, where = resolve_config(args)  # before the training imports (torchvision): a typo fails fast
    from ssl_bench.training.loop import TrainingStopped
    from ssl_bench.training.pretrain import run_pretraining

    out = args.out or Path("runs") / "pretrain" / f"{config['method']}-{args.profile}"
    try:
        summary = run_pretraining(
            config,
            out,
            resume=args.resume,
            device=args.device,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            where=where,
        )
    except TrainingStopped as e:
        argv = getattr(args, "argv", None) or sys.argv[1:]
        e.resume_command = resume_command(list(argv), out)
        raise
    summary["out"] = str(out)
    if summary.get("skipped_images"):
        print(
            f"bench pretrain: {summary['skipped_images']} unreadable image(s) skipped over the run "
            "(--skip-bad-images; running total in metrics.jsonl, column 'skipped')",
            file=sys.stderr,
        )
    print(json.dumps(summary))
    return 0
