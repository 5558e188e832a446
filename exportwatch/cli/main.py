"""Command line: the parser of every command and the one mapping from errors to exit codes.

Each command lives in its own module (``cli/sweep.py``, ``diff.py``, ``compare.py``, ``merge.py``);
the shared flags and value types are in ``cli/options.py``.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import signal
import sys
import traceback
from collections.abc import Sequence

from exportwatch import __version__
from exportwatch.cli import compare, diff, matrix, merge, report, sweep
from exportwatch.cli.options import unrecognized_arguments
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
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show debug logs and the exporters' own output",
        )
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but an unknown flag is refused by the command it was given to (its
    usage, not the top level's) with the closest real flag: ``--targets`` → ``--target``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    _check_before_the_command(parser, arguments)
    args, extras = parser.parse_known_args(arguments)
    if extras:
        command = _command_parsers(parser).get(getattr(args, "command", None) or "", parser)
        known = [flag for action in command._actions for flag in action.option_strings]
        command.error(unrecognized_arguments(extras, known=known))  # exits 2
    return args


def _check_before_the_command(parser: argparse.ArgumentParser, arguments: Sequence[str]) -> None:
    """A mistyped flag or command before the command (``exportwatch --verson``, ``exportwatch
    swep``) is named, with the closest real one: argparse would only say that COMMAND is missing
    or list every command."""
    known = [flag for action in parser._actions for flag in action.option_strings]
    commands = list(_command_parsers(parser))
    for argument in arguments:
        if argument in commands:
            return
        if not argument.startswith("-"):
            close = difflib.get_close_matches(argument, commands, n=1)
            if close:
                choices = ", ".join(map(repr, commands))
                parser.error(
                    f"argument COMMAND: invalid choice: {argument!r} (choose from {choices}); "
                    f"did you mean {close[0]}?"
                )
            return
        name = argument.split("=", 1)[0]
        # argparse takes an unambiguous prefix of a long flag (``--verb``) as the flag
        if name not in known and not (name.startswith("--") and any(k.startswith(name) for k in known)):
            parser.error(unrecognized_arguments([argument], known=known))


def _command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser by name (argparse keeps them on its private subparsers action)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
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
        return 128 + int(getattr(exc, "signum", signal.SIGINT))  # 130 Ctrl-C, 143 SIGTERM
    except Exception:  # a bug of ours: say so, with the trace, and a distinct exit code
        print("exportwatch: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL
