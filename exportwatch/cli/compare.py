"""``exportwatch compare MANIFEST --base REF``: sweep HEAD, get the merge-base's results as
cheaply as possible, then diff, render and gate.

Registered by ``exportwatch.cli.main`` (``compare_cli.add_parser(subparsers)``). The base side
(merge-base, reuse, stored baselines, cache, worktree sweep) lives in :mod:`exportwatch.baseline`
(entry point :mod:`exportwatch.baseline.compare`); this module is wiring and exit codes only:
0 gate passed, 1 gate failed, 2 usage or configuration error (bad manifest, base not found,
checkout too shallow), 3 internal error (raised to ``cli.main``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from exportwatch.cli.options import (
    DEFAULT_REPORT,
    add_gate_options,
    add_sweep_options,
    check_output_path,
    sweep_options,
    use_colour,
)
from exportwatch.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="sweep HEAD and the merge-base with REF (reusing unchanged results); diff and gate",
        description=(
            "Sweep HEAD, obtain results for the merge-base of REF and HEAD (reusing every result "
            "whose code did not change, a stored baseline, or the cache; sweeping the rest in a git "
            "worktree), write both reports, then render the changes and apply the gate. "
            "Exit codes: 0 passed, 1 gate failed, 2 usage or configuration error, 3 internal error."
        ),
    )
    parser.add_argument("manifest", type=Path, help="the exportwatch manifest (YAML)")
    parser.add_argument(
        "--base",
        required=True,
        metavar="REF",
        help="branch, tag or commit to compare with (its merge-base with HEAD is used)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_REPORT, help=f"head report (default: {DEFAULT_REPORT})"
    )
    parser.add_argument(
        "--base-output", type=Path, help="base report (default: the head report's name with .base.json)"
    )
    _add_base_options(parser)
    add_sweep_options(parser)
    parser.add_argument(
        "--no-fetch",
        action="store_true",
        help="never fetch from origin to find the base (fail if it is not in the checkout)",
    )
    add_gate_options(parser)
    _add_output_options(parser)
    parser.set_defaults(handler=run)
    return parser


def _add_base_options(parser: argparse.ArgumentParser) -> None:
    """Where the base's results may come from besides a sweep, and its environment."""
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="a stored report of the base (e.g. from main's last run), used where compatible",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="reuse and keep results keyed by content hash (keep it with actions/cache)",
    )
    parser.add_argument(
        "--base-env",
        choices=["auto", "venv", "never", "head"],
        default="auto",
        help="when the dependency set differs on the merge-base, sweep it in a venv built from its "
        "requirements (auto, the default), always in such a venv (venv), never build one (never: "
        "a stored baseline or no base result), or with HEAD's packages (head: as before)",
    )
    parser.add_argument(
        "--base-env-dir",
        type=Path,
        metavar="DIR",
        help="keep the base environments here, one per dependency set "
        "(default: under --cache-dir, else temporary)",
    )
    parser.add_argument(
        "--dependency-file",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a file of the dependency set (repeatable; default: requirements*.txt, constraints*.txt, "
        "pyproject.toml, uv.lock, poetry.lock, Pipfile.lock at the repository root)",
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """How the changes are rendered and where they go."""
    from exportwatch.render import FORMATS

    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="markdown: the PR comment; summary: the job summary; text: terminal; json: data",
    )
    parser.add_argument(
        "--rendered", type=Path, metavar="FILE", help="write the rendered changes here instead of stdout"
    )
    parser.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto", help="colour in text output"
    )
    parser.add_argument("--marker-key", help="suffix for the hidden comment marker (one per manifest)")
    parser.add_argument("--title", help="shown before the verdict (e.g. the manifest's name)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or status lines (the diff is still printed)"
    )


def run(args: argparse.Namespace) -> int:
    from exportwatch.baseline.compare import CompareRequest, run_compare
    from exportwatch.diff import XfailIndex, diff_reports, gate
    from exportwatch.manifest import check_references, load_manifest
    from exportwatch.render import RenderContext, render
    from exportwatch.render.escape import term_block, term_text
    from exportwatch.report import base_report_path
    from exportwatch.report.io import write_text_atomically
    from exportwatch.report.provenance import repository_root

    err = sys.stderr

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=err, flush=True)

    # A bad manifest or base is an ExportwatchError: cli.main reports it with its exit code.
    manifest = load_manifest(args.manifest)  # once: the comparison and the xfail index share it
    # HEAD's factories and inputs as its files show them: refused before any git or torch work.
    errors = check_references(manifest, search_path=sys.path, repo_root=repository_root(manifest))
    if errors:
        for problem in errors:
            print(term_block(f"error: {problem}"), file=err)
        return EXIT_USAGE
    check_output_path(args.output, flag="-o")
    base_output = args.base_output or base_report_path(args.output)
    check_output_path(base_output, flag="--base-output")
    if base_output.resolve() == args.output.resolve():
        raise UsageError(f"--base-output {base_output}: is the head report's path (-o): give it its own")
    if args.rendered is not None:
        check_output_path(args.rendered, flag="--rendered")
    request = CompareRequest(
        manifest_path=args.manifest,
        manifest=manifest,
        base_ref=args.base,
        head_output=args.output,
        base_output=base_output,
        baseline=args.baseline,
        cache_dir=args.cache_dir,
        options=sweep_options(args),
        fetch=not args.no_fetch,
        base_env=args.base_env,
        base_env_dir=args.base_env_dir,
        dependency_files=tuple(args.dependency_file),
        quiet=args.quiet,
    )
    result = run_compare(request, say=say)

    for note in result.notes:
        print(term_text(f"note: {note}", limit=2000), file=err)
    sources = Counter(str(j.source) for j in result.base.jobs)
    say(
        "base results: "
        + (", ".join(f"{n} {s}" for s, n in sorted(sources.items())) or "none")
        + f"; reports: {request.head_output}, {request.base_output}"
    )

    changes = diff_reports(
        result.base,
        result.head,
        xfail=XfailIndex.from_manifest(manifest),
        coverage_threshold=args.coverage_threshold,
    )
    verdict = gate(
        changes,
        args.fail_on,
        allow_errors=args.allow_errors,
        fail_on_coverage_drop=args.fail_on_coverage_drop,
    )
    colour = use_colour(args.color, stream=sys.stdout) if args.rendered is None else args.color == "always"
    context = RenderContext(marker_key=args.marker_key, title=args.title, color=colour)
    text = render(changes, verdict, args.format, context=context)
    if args.rendered is None:
        sys.stdout.write(text)
    else:
        write_text_atomically(args.rendered, text)  # a full disk: one WriteError (exit 2)
    if result.config_errors:
        for error in result.config_errors:
            print(term_block(f"error: {error}"), file=err)
        return EXIT_USAGE
    return EXIT_OK if verdict.passed else EXIT_GATE_FAILED
