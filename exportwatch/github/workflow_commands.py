"""GitHub Actions workflow commands (``::group::``, ``::error file=…,line=…::``), escaped.

Only the edge (``exportwatch.action.main``) prints these; everything else logs through ``logging``.
Escaping follows the runner's rules (actions/toolkit ``command.ts``): in the message ``%``,
``\\r`` and ``\\n``; in property values also ``:`` and ``,``. Control and invisible characters
are dropped first (:func:`exportwatch.render.escape.clean`). Plain lines of untrusted text go
through :func:`inert` (or, for ``logging``, :class:`InertFormatter`): no line the action prints
can start a workflow command (``::name::`` at a line's start, ``##[name]`` anywhere).
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from exportwatch.render.escape import clean, no_workflow_commands


def escape_data(value: object) -> str:
    return str(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: object) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def inert(text: object) -> str:
    """Untrusted text as one plain log line: no control characters, no line break, and no
    workflow command (a leading ``::`` or any ``##[`` is visibly broken)."""
    return no_workflow_commands(" ".join(clean(text).split()))


class InertFormatter(logging.Formatter):
    """A ``logging`` formatter for the Actions log: every line of every record (tracebacks
    included, which can quote untrusted text) made inert, controls dropped."""

    def format(self, record: logging.LogRecord) -> str:
        return no_workflow_commands(clean(super().format(record)))


def command(name: str, message: object = "", **properties: object) -> str:
    """``::name key=value,…::message`` (properties whose value is None are left out), with
    control and invisible characters dropped from both."""
    props = ",".join(f"{k}={escape_property(clean(v))}" for k, v in properties.items() if v is not None)
    return f"::{name}{' ' + props if props else ''}::{escape_data(clean(message))}"


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """An ``error`` / ``warning`` / ``notice`` line, pointing at a file and line when known."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(f"unknown annotation level {level!r}")
    return command(level, message, file=file, line=line, endLine=end_line, col=col, title=title)


def error(message: str, **where: object) -> str:
    return annotation("error", message, **where)  # type: ignore[arg-type]


def warning(message: str, **where: object) -> str:
    return annotation("warning", message, **where)  # type: ignore[arg-type]


def notice(message: str, **where: object) -> str:
    return annotation("notice", message, **where)  # type: ignore[arg-type]


def group(title: str) -> str:
    """``::group::title``, the title one line (a model's name may be anyone's text)."""
    return command("group", inert(title))


def endgroup() -> str:
    return command("endgroup")


@contextmanager
def grouped(title: str, *, stream: TextIO | None = None) -> Iterator[None]:
    """Fold everything printed inside the block under ``title`` in the Actions log."""
    out = stream if stream is not None else sys.stdout
    print(group(title), file=out, flush=True)
    try:
        yield
    finally:
        print(endgroup(), file=out, flush=True)


@contextmanager
def commands_stopped(*, stream: TextIO | None = None) -> Iterator[None]:
    """Print untrusted text inside: the runner ignores workflow commands until the block ends.

    A report from a fork's run can carry ``::error …`` or ``::add-mask::`` in its messages;
    escaping each line is not enough where a value may start a line. The resume token is
    random, so the text cannot end the block itself.
    """
    out = stream if stream is not None else sys.stdout
    token = secrets.token_hex(16)
    print(f"::stop-commands::{token}", file=out, flush=True)
    try:
        yield
    finally:
        print(f"::{token}::", file=out, flush=True)
