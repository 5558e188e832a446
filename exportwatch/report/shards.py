"""``--shard I/N``: the one spelling of a shard, read and written (a sweep's plan and a report's
``shard`` field share it; below both ``plan`` and ``report.merge``)."""

from __future__ import annotations

import re

from exportwatch.errors import UsageError

_SHARD_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class ShardError(UsageError, ValueError):
    """A ``--shard`` value that cannot be used."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` → ``(2, 4)``: the 2nd of 4 shards, counting from 1 (as a job matrix does)."""
    match = _SHARD_PATTERN.fullmatch(text or "")
    if match is None:
        raise ShardError(
            f"--shard {text!r} is not of the form I/N (the I-th of N shards, counting from 1, e.g. 2/4)"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ShardError(f"--shard {text!r}: the number of shards must be at least 1")
    if not 1 <= index <= count:
        raise ShardError(f"--shard {text!r}: the shard index must be between 1 and {count} (counting from 1)")
    return index, count


def format_shard(shard: tuple[int, int]) -> str:
    """``(2, 4)`` → ``"2/4"``, the form a report's ``shard`` field holds."""
    return f"{shard[0]}/{shard[1]}"


__all__ = ["ShardError", "format_shard", "parse_shard"]
