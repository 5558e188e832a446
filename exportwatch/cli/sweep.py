"""``exportwatch sweep``: every model × target × device of a manifest, submodule by submodule."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exportwatch import __version__
from exportwatch.cli.options import DEFAULT_REPORT, add_sweep_options, check_output_path, sweep_options
from exportwatch.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, UsageError


def _shard(text: str) -> tuple[int, int]:
    from exportwatch.report.shards import ShardError, parse_shard

    try:
        return parse_shard(text)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
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
    add_sweep_options(parser)
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
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines and no final table (errors still go to stderr; the report is written)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from exportwatch.manifest import check_references, load_manifest
    from exportwatch.plan import build_plan, load_history
    from exportwatch.render.escape import term_block
    from exportwatch.report import FAILING
    from exportwatch.report.provenance import repository_root
    from exportwatch.sweep.progress import Progress, sweep_table
    from exportwatch.sweep.runner import SweepRequest, run_sweep

    if args.output.suffix == ".jsonl":
        print("error: -o names the JSON report (e.g. report.json); its .jsonl log goes beside it",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    options = sweep_options(args)
    check_output_path(args.output, flag="-o")
    if options.artifacts_dir is not None and options.artifacts_dir.is_file():
        raise UsageError(f"--keep-artifacts {options.artifacts_dir}: is a file, not a directory")
    # A bad manifest or history report is an ExportwatchError: cli.main reports it (exit 2).
    manifest = load_manifest(args.manifest)
    history = load_history(args.durations) if args.durations else None
    plan = build_plan(
        manifest,
        models=args.models,
        targets=options.targets,
        device=options.device,
        shard=args.shard,
        history=history,
    )
    # What the manifest's files already show is refused now, before any process imports torch.
    errors = check_references(
        manifest,
        models=[u.spec for u in plan.units],
        search_path=sys.path,
        repo_root=repository_root(manifest),
    )
    if errors:
        for problem in errors:
            print(term_block(f"error: {problem}"), file=sys.stderr)
        return EXIT_USAGE
    progress = Progress(total=plan.total, quiet=args.quiet)
    progress.message(f"exportwatch {__version__}: sweeping {plan.total} job(s) from {args.manifest}")
    request = SweepRequest(manifest=manifest, output=args.output, plan=plan, options=options)
    # The devices are checked there (once), before any process starts: a missing one is exit 2.
    result = run_sweep(request, progress=progress)  # WorkerStartError: exit 3, from cli.main
    if not args.quiet:
        print(sweep_table(result.report))
        print(f"\nreport: {args.output}  ({result.report.duration_s:.1f}s)")
    else:  # the progress output that shows them is off; a mistake in the manifest is not progress
        for warning in result.warnings:
            print(term_block(f"warning: {warning}"), file=sys.stderr)
    if result.config_errors:
        for error in result.config_errors:
            print(term_block(f"error: {error}"), file=sys.stderr)  # the factory's exception text
        return EXIT_USAGE
    if args.strict and any(j.verdict in FAILING and not j.xfail for j in result.report.jobs):
        return EXIT_GATE_FAILED
    return EXIT_OK
