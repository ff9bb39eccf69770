"""``seqshap`` command line: one entry point, one subcommand per module in ``commands/``.

Exit codes: 0 success, 2 bad usage, 1 any other error, printed as one line on stderr
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands import COMMANDS
from .commands.common import UsageError


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="seqshap",
        description="Train text classifiers and explain their predictions with exact DeepSHAP.",
    )
    parser.add_argument("--version", action="version", version=f"seqshap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name.replace('-', '_')}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a bad option: its one line is printed (commands/common.py); --help exits 0
        if e.code in (0, None):
            raise
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        if args.debug:
            raise
        print(f"seqshap {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `seqshap explain ... | head`: the reader left, which is fine
        sys.stderr.close()
        return 0
    except Exception as e:  # one line for people; the traceback is behind --debug
        if args.debug:
            raise
        print(f"seqshap {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
