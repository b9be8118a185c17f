"""``bench table``: render the results table from stored result records (never from live runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
        action="append",
        metavar="DIR",
        help="folder of result records, searched recursively; repeat to combine runs, e.g. a separate "
        "`bench reproduce --methods …` run beside the main one (default: results/runs)",
    )
    p.add_argument(
        "--format",
        choices=("markdown", "csv", "latex"),
        help="output format (default: from --out's suffix, else markdown)",
    )
    p.add_argument(
        "--out", type=Path, help="write here (and FILE's .manifest.json beside it) instead of stdout"
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also write a report of the table (Markdown): how it was made from its parts, supervised "
        "against random and the trivial levels, fine-tuning against the linear probe, each task's ordering "
        "beside the published one, did pretraining learn, every stage's time and img/s; for a table joined "
        "from several `bench reproduce` runs (each writes its own REPORT.md)",
    )
    p.add_argument(
        "--evidence-from",
        type=Path,
        metavar="DIR",
        help="with --report: records of pretraining runs outside the table (e.g. the same methods on "
        "another pool) whose 'Did pretraining learn?' numbers the report shows after the table's own",
    )
    p.add_argument("--profile", choices=PROFILES, help="only records of this profile")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="columns, in order (default: every task found)")
    p.add_argument(
        "--methods", nargs="+", metavar="METHOD", help="rows, in order (default: every method found)"
    )
    p.add_argument("--seeds", type=int, metavar="N", help="only evaluation seeds 0…N-1 (default: all)")
    p.add_argument(
        "--all-tasks",
        action="store_true",
        help="also make columns of records whose task is not a registered evaluator (default: leave them "
        "out, with a warning)",
    )
    p.add_argument(
        "--all-methods",
        action="store_true",
        help="also make rows of records whose method is not a registered pretraining method (default: "
        "leave them out, with a warning)",
    )
    p.set_defaults(func=run)


def _warn_left_out(kind: str, left_out: dict[str, list[str]], flag: str) -> None:
    for name, ids in sorted(left_out.items()):
        shown = ", ".join(ids[:3]) + (", …" if len(ids) > 3 else "")
        print(
            f"bench table: warning: {len(ids)} record(s) of unknown {kind} '{name}' left out ({shown}); "
            f"pass {flag} to show them",
            file=sys.stderr,
        )


def known_records(
    records: list[dict[str, Any]],
    tasks: list[str] | None,
    all_tasks: bool,
    all_methods: bool,
) -> list[dict[str, Any]]:
    """Records of registered tasks and methods (and tasks named with --tasks); a warning for the others.

    A typo'd task or a mislabelled record must not become a column or a row of its own.
    """
    from ssl_bench.evaluators import available_evaluators
    from ssl_bench.methods import available_methods
    from ssl_bench.results.table import record_method

    # "pretrain" records give the table its time columns; "speed" records (bench speed) are never a column.
    known_tasks = {*available_evaluators(), *(tasks or ()), "pretrain"}
    known_methods = set(available_methods())
    kept: list[dict[str, Any]] = []
    unknown_tasks: dict[str, list[str]] = {}
    unknown_methods: dict[str, list[str]] = {}
    for r in records:
        task = r.get("task")
        if task is None:  # unreadable: the table lists it
            kept.append(r)
        elif task == "speed" and "speed" not in (tasks or ()):
            continue
        elif task not in known_tasks and not all_tasks:
            unknown_tasks.setdefault(str(task), []).append(str(r.get("id")))
        elif record_method(r) not in known_methods and not all_methods:
            unknown_methods.setdefault(record_method(r), []).append(str(r.get("id")))
        else:
            kept.append(r)
    _warn_left_out("task", unknown_tasks, "--all-tasks")
    _warn_left_out("method", unknown_methods, "--all-methods")
    return kept


def _command(args: argparse.Namespace) -> list[str]:
    """The ``bench table`` command that ``args`` stand for (what the report says it was made by)."""
    words = ["bench", "table"]
    for folder in args.results or []:
        words += ["--results", str(folder)]
    for flag, value in (("--profile", args.profile), ("--seeds", args.seeds)):
        if value is not None:
            words += [flag, str(value)]
    for flag, values in (("--tasks", args.tasks), ("--methods", args.methods)):
        if values:
            words += [flag, *values]
    words += ["--all-tasks"] * args.all_tasks + ["--all-methods"] * args.all_methods
    words += ["--report", str(args.report)]
    return words + (["--evidence-from", str(args.evidence_from)] if args.evidence_from else [])


def run(args: argparse.Namespace) -> int:
    from ssl_bench.records import load_records
    from ssl_bench.results.table import build_table, render, write_table

    folders = args.results or [Path("results") / "runs"]
    if args.evidence_from is not None and args.report is None:
        raise BenchError("--evidence-from adds to the report: give --report FILE too")
    if args.evidence_from is not None and not args.evidence_from.is_dir():
        raise BenchError(f"--evidence-from {args.evidence_from}: no such folder")
    for folder in folders:
        if not folder.is_dir():
            raise BenchError(
                f"--results {folder}: no such folder (run `bench eval` or `bench reproduce` first)"
            )
    fmt = args.format or (FORMAT_BY_SUFFIX.get(args.out.suffix, "markdown") if args.out else "markdown")
    found = [r for folder in folders for r in load_records(folder)]
    records = known_records(found, args.tasks, args.all_tasks, args.all_methods)
    seeds = range(args.seeds) if args.seeds is not None else None
    table = build_table(
        records,
        profile=args.profile,
        tasks=args.tasks,
        methods=args.methods,
        seeds=seeds,
        results_dir=" + ".join(str(f) for f in folders),
    )
    if args.report is not None:
        from ssl_bench.results.joined_report import write_joined_report

        other = None
        if args.evidence_from is not None:
            other = (str(args.evidence_from), load_records(args.evidence_from))
        write_joined_report(args.report, table, records, _command(args), other)
        print(f"wrote {args.report}", file=sys.stderr)
    if args.out is None:
        if args.report is None:
            sys.stdout.write(render(table, fmt))
        return 0
    manifest = write_table(table, args.out, fmt)
    empty = "" if table.rows else f" (no result records in {', '.join(map(str, folders))})"
    print(f"wrote {args.out} and {manifest}{empty}", file=sys.stderr)
    return 0
