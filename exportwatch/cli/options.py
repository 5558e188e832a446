"""What every subcommand shares: the sweep and gate flags, argparse value types, the exit
codes live in :mod:`exportwatch.errors`."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
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
        help="per-job timeout in seconds, an aoti compile included (default: each model's, or 300)",
    )
    parser.add_argument(
        "--max-memory",
        type=memory_mb,
        metavar="SIZE",
        help="kill and report as oom a worker whose process tree's memory exceeds SIZE: 4G, 4GB, "
        "4GiB and 4096 (MiB) are the same size (K, M, G, T are powers of 1024)",
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
    parser.add_argument(
        "--no-blockers",
        dest="blockers",
        action="store_false",
        help="do not run torch.export.draft_export on each failing origin of the export target to "
        "list every blocker (it costs one more export per origin)",
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
        blockers=getattr(args, "blockers", True),
    )


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """``--fail-on``, ``--allow-errors``, ``--fail-on-coverage-drop`` and
    ``--coverage-threshold``: what fails the merge gate (diff and compare)."""
    from exportwatch.diff import DEFAULT_COVERAGE_THRESHOLD, DEFAULT_POLICY, Policy

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
    parser.add_argument(
        "--fail-on-coverage-drop",
        action="store_true",
        help="also fail the gate when a module that exports on both sides delegates less to its "
        "backend (executorch target; default: report the drop, do not fail)",
    )
    parser.add_argument(
        "--coverage-threshold",
        type=coverage_points,
        default=DEFAULT_COVERAGE_THRESHOLD,
        metavar="POINTS",
        help="percentage points of delegation coverage a module may lose before it is a coverage "
        f"drop (default: {DEFAULT_COVERAGE_THRESHOLD:g}); a newly non-delegated operator always is",
    )


def coverage_points(text: str) -> float:
    """A coverage threshold in percentage points, 0..100."""
    value = float(text)
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100 points, got {text}")
    return value


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


#: ``--max-memory`` units, all binary (powers of 1024), in MiB: ``4G``, ``4GB`` and ``4GiB`` are
#: the same 4096 MiB, as ``G`` always meant here (and in ``docker --memory``, ``free -g``).
_MEMORY_UNITS = {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}
_MEMORY_SIZE = re.compile(r"\s*(?P<number>[0-9]*\.?[0-9]+)\s*(?:(?P<unit>[kmgt])(?:i?b)?)?\s*", re.IGNORECASE)
MEMORY_EXAMPLES = "e.g. 4096 (MiB), 512M, 4G, 4GB, 4GiB, 1.5G; K, M, G and T are powers of 1024"


def memory_mb(text: str) -> float:
    """A memory size in MiB: a bare number is MiB; ``K``, ``M``, ``G``, ``T``, with or without
    ``B`` or ``iB`` (any case), are binary units, so ``4GB`` is not refused for lack of ``4G``."""
    found = _MEMORY_SIZE.fullmatch(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} ({MEMORY_EXAMPLES})")
    unit = (found["unit"] or "m").lower()
    value = float(found["number"]) * _MEMORY_UNITS[unit]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r} ({MEMORY_EXAMPLES})")
    return value


_NUMBER = re.compile(r"-[0-9.]+")  # a negative number is a value, never a mistyped flag


def unrecognized_arguments(extras: Sequence[str], *, known: Iterable[str]) -> str:
    """argparse's "unrecognized arguments" error, naming the closest real flag of the command
    for each unknown one (``--targets`` → ``--target``), which argparse itself never does."""
    flags = sorted({flag for flag in known if flag.startswith("-")})
    suggestions: dict[str, str] = {}
    for argument in extras:
        name = argument.split("=", 1)[0]
        if not name.startswith("-") or name in suggestions or _NUMBER.fullmatch(name):
            continue
        same_kind = [flag for flag in flags if flag.startswith("--") == name.startswith("--")]
        close = difflib.get_close_matches(name, same_kind, n=1, cutoff=0.6)
        if close:
            suggestions[name] = close[0]
    message = f"unrecognized arguments: {' '.join(extras)}"
    if len(suggestions) == 1:
        return f"{message}; did you mean {next(iter(suggestions.values()))}?"
    if suggestions:
        listed = ", ".join(f"{flag} (for {name})" for name, flag in suggestions.items())
        return f"{message}; did you mean {listed}?"
    return message


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
