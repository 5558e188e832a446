"""What every subcommand shares: the sweep and gate flags, argparse value types, the exit
codes live in :mod:`exportwatch.errors`."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import TextIO

from exportwatch.errors import UsageError
from exportwatch.manifest import KNOWN_TARGETS
from exportwatch.sweep.options import SweepOptions

#: The head report's default path, for ``sweep`` and ``compare``.
DEFAULT_REPORT = Path("exportwatch-report.json")


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """How the sweep runs, for ``sweep`` and ``compare`` alike (read back by :func:`sweep_options`)."""
    parser.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="T",
        help=f"sweep this target instead of the manifest's: {', '.join(KNOWN_TARGETS)} (repeatable)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], help="override every model's device")
    parser.add_argument(
        "--workers",
        type=positive_int,
        help="models swept at once, each in a process of its own (default: number of cores)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        metavar="S",
        help="per-job timeout in seconds (default: each model's, or 300)",
    )
    parser.add_argument(
        "--max-memory",
        type=memory_mb,
        metavar="SIZE",
        help="kill and report as oom a worker whose RSS exceeds SIZE (e.g. 4G)",
    )
    parser.add_argument(
        "--keep-artifacts",
        type=Path,
        metavar="DIR",
        help="write the exported files of failing or mismatching attempts here",
    )
    parser.add_argument(
        "--allow-skip",
        action="store_true",
        help="sweep even when a model's device is missing (e.g. --device cuda without a GPU): "
        "its jobs are reported as skipped, never as passing",
    )


def sweep_options(args: argparse.Namespace) -> SweepOptions:
    """The :class:`SweepOptions` of parsed ``sweep`` / ``compare`` arguments."""
    return SweepOptions(
        targets=tuple(dict.fromkeys(args.targets or ())),
        device=args.device,
        workers=args.workers,
        timeout_s=args.timeout,
        max_memory_mb=args.max_memory,
        artifacts_dir=args.keep_artifacts,
        verbose=getattr(args, "verbose", False),
        allow_skip=args.allow_skip,
    )


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


def use_colour(choice: str, *, stream: TextIO) -> bool:
    """``auto``: colour on a TTY unless ``NO_COLOR`` is set (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def check_output_path(path: Path, *, flag: str) -> None:
    """Refuse, before any work, an output path the command could not write at the end: a
    directory, a parent that cannot be made, a read-only place. Creates missing parents."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; name a file in it (e.g. {path / DEFAULT_REPORT})")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent, prefix=".exportwatch-probe-"):
            pass  # a real write: os.access says yes to root on a read-only mount
    except FileExistsError:  # a file where a parent directory should be
        raise UsageError(f"{flag} {path}: {parent} is not a directory") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{flag} {path}: cannot write in {parent}: {reason}") from None
