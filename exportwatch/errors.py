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

import errno
import os
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


class WriteError(UsageError):
    """A file exportwatch must write cannot be written: a full disk, a file-size limit, no
    permission, a read-only file system. Exit 2, one line: the machine's state is the user's to
    fix (free space, lift ``ulimit -f``, choose another ``-o``), not a bug of ours.

    Not an ``OSError`` on purpose: code that reads pipes treats ``OSError`` as "the other end
    went away", and a full disk must not be mistaken for that.
    """

    def __init__(self, path: object, error: OSError, *, what: str = "", hint: str = "") -> None:
        self.path = str(path)
        self.error = error
        self.what = what
        self.hint = hint
        named = f"{self.path} ({what})" if what else self.path
        super().__init__(f"cannot write {named}: {describe_os_error(error)}" + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> WriteError:
        """The same error, saying what the user can do next (where their work is safe)."""
        return WriteError(self.path, self.error, what=self.what, hint=hint)


def remedy(error: OSError) -> str:
    """What the user does about ``error`` before trying again, in a few words."""
    return {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space (a disk quota is full)",
        errno.EFBIG: "lift the file-size limit (ulimit -f)",
        errno.EROFS: "make the file system writable",
        errno.EACCES: "make it writable",
        errno.EPERM: "make it writable",
    }.get(error.errno or 0, "fix that")


def describe_os_error(error: OSError) -> str:
    """``no space left on device (errno 28)``: the reason in words, and the number to search for."""
    reason = error.strerror or (os.strerror(error.errno) if error.errno else "") or type(error).__name__
    reason = reason[:1].lower() + reason[1:]
    return f"{reason} (errno {error.errno})" if error.errno else reason
