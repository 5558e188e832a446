"""One base error that carries its exit code, and the exit codes themselves.

Exit codes, the same for every command and the action:
  0  done (for gates: passed)
  1  the gate failed, or ``sweep --strict`` found a failure not marked xfail
  2  usage or configuration error (bad manifest, bad report, unknown model, bad input)
  3  internal error (a bug in exportwatch, or an environment it cannot run in)

Each entry point (``cli.main``, ``action.main``) maps :class:`ExportwatchError` to its
``exit_code`` in one place; anything else that escapes is an internal error.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class ExportwatchError(Exception):
    """An error exportwatch expects and explains: the message is for the user."""

    exit_code: ClassVar[int] = EXIT_INTERNAL


class UsageError(ExportwatchError):
    """What the user gave is wrong: a manifest, a report, a flag, an input, an event."""

    exit_code: ClassVar[int] = EXIT_USAGE


class InternalError(ExportwatchError):
    """exportwatch cannot do its job here (workers cannot start, git fails): exit 3."""

    exit_code: ClassVar[int] = EXIT_INTERNAL
