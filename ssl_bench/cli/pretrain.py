"""``bench pretrain``: pretrain an encoder with a registered method and a recipe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ssl_bench.methods import available_methods
from ssl_bench.recipes import PROFILES, find_recipe, load_yaml, merge, parse_value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain an encoder (context encoder, baselines)",
        description="Pretrain an encoder. With no --data, uses the generated SynthVOC default.",
    )
    p.add_argument("--method", default="context_encoder", help=f"one of: {', '.join(available_methods())}")
    p.add_argument("--profile", default="smoke", choices=PROFILES, help="recipe profile (default: smoke)")
    p.add_argument("--recipe", type=Path, help="recipe YAML (default: pretrain/<profile>/<method>.yaml)")
    p.add_argument("--data", help="folder of images (ImageNet train/ or flat); default: the recipe's source")
    p.add_argument("--out", type=Path, help="output folder (default: runs/pretrain/<method>-<profile>)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int, help="per process")
    p.add_argument("--image-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="data-loading worker processes")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available)")
    p.add_argument("--checkpoint-every", type=int, metavar="N")
    p.add_argument("--sample-every", type=int, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable images (counted in metrics.jsonl) instead of stopping",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any recipe value, e.g. --set model.loss=l1 (YAML value)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe file, then command-line flags on top."""
    from ssl_bench.errors import RecipeError

    recipe = load_yaml(args.recipe or find_recipe("pretrain", args.profile, args.method))
    recipe.setdefault("method", args.method)
    if args.recipe is None and recipe["method"] != args.method:
        raise RecipeError(f"recipe for '{args.method}' names method '{recipe['method']}'")
    flags: dict[str, Any] = {"data": {}, "train": {}}
    for key, section, name in [
        ("data", "data", "source"),
        ("image_size", "data", "image_size"),
        ("steps", "train", "steps"),
        ("batch_size", "train", "batch_size"),
        ("lr", "train", "lr"),
        ("workers", "train", "workers"),
        ("checkpoint_every", "train", "checkpoint_every"),
        ("sample_every", "train", "sample_every"),
    ]:
        if getattr(args, key) is not None:
            flags[section][name] = getattr(args, key)
    if args.skip_bad_images:
        flags["data"]["skip_bad"] = True
    if args.seed is not None:
        flags["seed"] = args.seed
    for item in args.set:
        path, sep, value = item.partition("=")
        if not sep or "." not in path:
            raise RecipeError(f"--set expects SECTION.KEY=VALUE, got '{item}'")
        node = flags
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(value)
    config = merge(recipe, flags)
    config.setdefault("seed", 0)
    return config


def run(args: argparse.Namespace) -> int:
    from ssl_bench.training.pretrain import run_pretraining

    config = resolve_config(args)
    out = args.out or Path("runs") / "pretrain" / f"{config['method']}-{args.profile}"
    summary = run_pretraining(
        config, out, resume=args.resume, device=args.device, progress=not args.no_progress
    )
    summary["out"] = str(out)
    print(json.dumps(summary))
    return 0
