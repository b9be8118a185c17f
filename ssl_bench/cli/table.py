"""``bench table``: render the results table from stored result records (never from live runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssl_bench.errors import BenchError
from ssl_bench.recipes import PROFILES

FORMAT_BY_SUFFIX = {".md": "markdown", ".csv": "csv", ".tex": "latex"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table",
        help="render the results table (Markdown, CSV, LaTeX) from result records",
        description="Rows = pretraining methods, columns = tasks; each cell = mean ± 95%% CI over "
        "seeds with n, the paper's number and the difference beside it.",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results") / "runs",
        help="folder of result records (default: results/runs)",
    )
    p.add_argument(
        "--format",
        choices=("markdown", "csv", "latex"),
        help="output format (default: from --out's suffix, else markdown)",
    )
    p.add_argument(
        "--out", type=Path, help="write here (and FILE's .manifest.json beside it) instead of stdout"
    )
    p.add_argument("--profile", choices=PROFILES, help="only records of this profile")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="columns, in order (default: every task found)")
    p.add_argument(
        "--methods", nargs="+", metavar="METHOD", help="rows, in order (default: every method found)"
    )
    p.add_argument("--seeds", type=int, metavar="N", help="only evaluation seeds 0…N-1 (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssl_bench.records import load_records
    from ssl_bench.results.table import build_table, render, write_table

    if not args.results.is_dir():
        raise BenchError(
            f"--results {args.results}: no such folder (run `bench eval` or `bench reproduce` first)"
        )
    fmt = args.format or (FORMAT_BY_SUFFIX.get(args.out.suffix, "markdown") if args.out else "markdown")
    records = load_records(args.results)
    seeds = range(args.seeds) if args.seeds is not None else None
    table = build_table(
        records,
        profile=args.profile,
        tasks=args.tasks,
        methods=args.methods,
        seeds=seeds,
        results_dir=str(args.results),
    )
    if args.out is None:
        sys.stdout.write(render(table, fmt))
        return 0
    manifest = write_table(table, args.out, fmt)
    empty = "" if table.rows else f" (no result records in {args.results})"
    print(f"wrote {args.out} and {manifest}{empty}", file=sys.stderr)
    return 0
