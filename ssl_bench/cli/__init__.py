"""``bench``: the suite's command line; each subcommand lives in its own module (``add_parser``, ``run``)."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from ssl_bench.errors import BenchError

# subcommand → module (imported lazily so ``bench --help`` stays fast)
SUBCOMMANDS = {
    "pretrain": "ssl_bench.cli.pretrain",
    "data": "ssl_bench.cli.data",
    "show": "ssl_bench.cli.show",
    "memorisation": "ssl_bench.cli.memorisation",
    "eval": "ssl_bench.cli.eval",
    "table": "ssl_bench.cli.table",
    "compare": "ssl_bench.cli.compare",
    "reproduce": "ssl_bench.cli.reproduce",
    "speed": "ssl_bench.cli.speed",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", description="Self-supervised feature-learning benchmark: pretrain, evaluate, tabulate."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def _clean_message(error: BaseException) -> str:
    """A worker's error arrives wrapped with its traceback text; keep only the final line."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: list[str] | None = None) -> int:
    """Run one ``bench`` command. Exit codes: 0 done, 1 a check found problems (``bench data check``),
    2 a usage error (one line on stderr, nothing written), 128 + signal number when stopped by a signal
    (130 SIGINT / Ctrl-C, 143 SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for messages that repeat the command (the resume command after a stop)
    try:
        return int(args.func(args) or 0)
    except BenchError as e:
        print(f"bench {args.command}: error: {_clean_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # A stop signal that the command handled (a checkpoint saved) says what it did; plain Ctrl-C
        # elsewhere is an interruption.
        print(f"bench {args.command}: {str(e) or 'interrupted'}", file=sys.stderr)
        return int(getattr(e, "exit_code", 128 + signal.SIGINT))


if __name__ == "__main__":
    sys.exit(main())
