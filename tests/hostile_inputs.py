"""Hostile inputs for the trusted side (shared by the untrusted-input tests and the fuzz harness).

Byte-level zip corruption (encryption flag, unknown compression method, broken deflate data),
JSON documents no report writer produces (deep nesting, non-finite numbers, lone surrogates),
and one way to run a command in-process and read what the user would see.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

#: The name the action looks for in an artifact (``ActionConfig.report_path``'s default).
REPORT_NAME = "exportwatch-report.json"

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"


def zip_bytes(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An archive as actions/upload-artifact writes it (deflate by default)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _headers(data: bytes) -> tuple[int, int]:
    """Offsets of the first local header and the first central-directory entry."""
    return data.index(_LOCAL), data.index(_CENTRAL)


def encrypted(data: bytes) -> bytes:
    """Set the "encrypted" flag bit on the first member (local header and central directory)."""
    out = bytearray(data)
    local, central = _headers(data)
    out[local + 6] |= 0x1
    out[central + 8] |= 0x1
    return bytes(out)


def with_method(data: bytes, method: int) -> bytes:
    """Claim compression ``method`` (99 is WinZip AES) for the first member."""
    out = bytearray(data)
    local, central = _headers(data)
    out[local + 8 : local + 10] = struct.pack("<H", method)
    out[central + 10 : central + 12] = struct.pack("<H", method)
    return bytes(out)


def corrupt_member_data(data: bytes, *, start: int = 0, length: int = 24) -> bytes:
    """Flip the bits of the first member's compressed bytes (a broken deflate stream)."""
    out = bytearray(data)
    local, _ = _headers(data)
    name_len, extra_len = struct.unpack("<HH", data[local + 26 : local + 30])
    begin = local + 30 + name_len + extra_len + start
    for i in range(begin, min(begin + length, len(out))):
        out[i] ^= 0xFF
    return bytes(out)


def deep_json(depth: int, *, opener: str = "[", closer: str = "]") -> str:
    """A report whose unknown field nests ``depth`` levels deep."""
    return '{"schema_version": 1, "x": ' + opener * depth + closer * depth + "}"


@dataclass(frozen=True)
class Ran:
    """What a command left: its exit code and what it printed."""

    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        """Everything the user saw, stdout and stderr together."""
        return self.out + self.err


def run_in_process(entry: Callable[[list[str]], int], argv: list[str]) -> Ran:
    """Call a command's ``main(argv)`` the way a shell would see it: exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = entry(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return Ran(code=code, out=out.getvalue(), err=err.getvalue())


def assert_clean_refusal(ran: Ran, *, names: str) -> None:
    """Exit 2, no traceback, and one line of error that names ``names`` (a file, a member)."""
    assert ran.code == 2, f"exit {ran.code}: {ran.said[-2000:]}"
    assert "Traceback" not in ran.err, ran.err[-2000:]
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of error, got {len(lines)}: {ran.err[-2000:]}"
    assert names in lines[0], f"{names!r} not named in {lines[0][:500]!r}"
