"""What every subcommand shares: exit codes and argparse value types.

Exit codes (the same for every subcommand and the action):
  0  done (for gates: passed)
  1  the gate failed, or ``sweep --strict`` found a failure not marked xfail
  2  usage or configuration error (bad manifest, bad report, unknown model)
  3  internal error
"""

from __future__ import annotations

import argparse
import math

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERNAL = 3


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """``--fail-on`` and ``--allow-errors``: what fails the merge gate (diff and compare)."""
    from exportwatch.diff import DEFAULT_POLICY, Policy

    parser.add_argument(
        "--fail-on",
        choices=[p.value for p in Policy],
        default=DEFAULT_POLICY.value,
        help=f"what fails the gate (default: {DEFAULT_POLICY.value})",
    )
    parser.add_argument(
        "--allow-errors",
        action="store_true",
        help="do not fail the gate on checks exportwatch itself could not complete (verdict 'error')",
    )


def positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def memory_mb(text: str) -> float:
    """``4096``, ``512M``, ``4G`` → MiB."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    suffix = text[-1:].lower()
    try:
        if suffix in units:
            return positive_float(text[:-1]) * units[suffix]
        return positive_float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 4096, 512M, 4G)") from exc
