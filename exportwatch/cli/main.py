"""Command line: the parser of every command and the one mapping from errors to exit codes.

Each command lives in its own module (``cli/sweep.py``, ``diff.py``, ``compare.py``, ``merge.py``);
the shared flags and value types are in ``cli/options.py``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from collections.abc import Sequence

from exportwatch import __version__
from exportwatch.cli import compare, diff, matrix, merge, report, sweep
from exportwatch.errors import EXIT_INTERNAL, ExportwatchError
from exportwatch.render.escape import term_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exportwatch",
        description="Tells you, on every pull request, whether your PyTorch models still export.",
    )
    parser.add_argument("--version", action="version", version=f"exportwatch {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show debug logs and the exporters' own output"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (sweep, diff, merge, compare, matrix, report):  # one module per command
        command.add_parser(subparsers)
    for sub in subparsers.choices.values():  # ``exportwatch sweep -v`` as well as ``exportwatch -v sweep``
        sub.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except ExportwatchError as exc:  # the one mapping: an explained error carries its exit code
        print(term_text(f"error: {exc}", limit=4000), file=sys.stderr)  # quotes untrusted text
        return exc.exit_code
    except KeyboardInterrupt as exc:
        # The partial report is written; from here on we only exit. Python resets a Python-level
        # SIGINT handler to the default while it shuts down, so a second Ctrl-C in that window
        # would kill the process by signal instead of exiting 130: ignore it instead.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(str(exc) or "interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug of ours: say so, with the trace, and a distinct exit code
        print("exportwatch: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL
