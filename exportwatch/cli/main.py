"""Command line: argparse, wiring and exit codes (see ``cli_args``); the logic lives elsewhere."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from exportwatch import __version__
from exportwatch.cli.options import (
    EXIT_CONFIG,
    EXIT_GATE_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    memory_mb,
    positive_float,
    positive_int,
)

DEFAULT_REPORT = Path("exportwatch-report.json")


def _shard(text: str) -> tuple[int, int]:
    from exportwatch.plan import ShardError, parse_shard

    try:
        return parse_shard(text)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_sweep_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="export every model and submodule in a manifest; write a JSON report",
        description="Run the submodule export sweep over a manifest and write a versioned JSON report.",
    )
    parser.add_argument("manifest", type=Path, help="the exportwatch manifest (YAML)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_REPORT,
        help=f"report path (default: {DEFAULT_REPORT}); a .jsonl log streams beside it",
    )
    parser.add_argument(
        "--model", action="append", dest="models", metavar="NAME", help="sweep only this model (repeatable)"
    )
    parser.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="T",
        help="sweep this target instead of the manifest's: export, export-strict, onnx, "
        "onnx-legacy (repeatable)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], help="override every model's device")
    parser.add_argument("--workers", type=positive_int, help="worker processes (default: number of cores)")
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
        "--shard",
        type=_shard,
        metavar="I/N",
        help="sweep only the I-th of N shards (whole models, balanced by --durations); "
        "merge the N reports with `exportwatch merge`",
    )
    parser.add_argument(
        "--durations",
        type=Path,
        metavar="REPORT",
        help="an earlier report (or a --cache-dir) whose job durations balance the shards and "
        "start the longest jobs first; every shard of a run must get the same one",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a model that is not marked xfail fails"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from exportwatch.manifest import ConfigError, load_manifest
    from exportwatch.plan import estimate_costs, load_history, select_shard
    from exportwatch.report import FAILING, ReportError
    from exportwatch.sweep.progress import Progress, sweep_table
    from exportwatch.sweep.runner import SweepRequest, plan_units, run_sweep
    from exportwatch.sweep.workers import WorkerStartError

    if args.output.suffix == ".jsonl":
        print("error: -o names the JSON report (e.g. report.json); its .jsonl log goes beside it",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    try:
        manifest = load_manifest(args.manifest)
        units = plan_units(manifest, models=args.models, targets=args.targets, device=args.device)
        history = load_history(args.durations) if args.durations else None
    except (ConfigError, ReportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.shard:
        units = select_shard(units, args.shard, estimate_costs(units, history))
    total = sum(len(u.targets) for u in units)
    progress = Progress(total=total, quiet=args.quiet)
    progress.message(f"exportwatch {__version__}: sweeping {total} job(s) from {args.manifest}")
    request = SweepRequest(
        manifest=manifest,
        output=args.output,
        models=args.models,
        targets=args.targets,
        device=args.device,
        workers=args.workers,
        timeout_s=args.timeout,
        max_memory_mb=args.max_memory,
        artifacts_dir=args.keep_artifacts,
        verbose=args.verbose,
        shard=args.shard,
        history=history,
    )
    try:
        result = run_sweep(request, progress=progress)
    except WorkerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    if not args.quiet:
        print(sweep_table(result.report))
        print(f"\nreport: {args.output}  ({result.report.duration_s:.1f}s)")
    if result.config_errors:
        for error in result.config_errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.strict and any(j.verdict in FAILING and not j.xfail for j in result.report.jobs):
        return EXIT_GATE_FAILED
    return EXIT_OK


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
    add_sweep_parser(subparsers)
    _add_optional_commands(subparsers)
    return parser


def _add_optional_commands(subparsers: argparse._SubParsersAction) -> None:
    """Subcommands that live in their own modules register themselves here."""
    from exportwatch.cli import compare as compare_cli
    from exportwatch.cli import diff as diff_cli
    from exportwatch.cli import merge as merge_cli

    diff_cli.add_parser(subparsers)
    merge_cli.add_parser(subparsers)
    compare_cli.add_parser(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug of ours: say so, with the trace, and a distinct exit code
        print("exportwatch: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL
