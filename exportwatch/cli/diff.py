"""``exportwatch diff [BASE.json] HEAD.json``: compare two reports, render, and apply the gate.

Registered by ``exportwatch.cli.main`` (``diff_cli.add_parser(subparsers)``); the handler is
``run(args)``. Exit codes: 0 gate passed, 1 gate failed, 2 usage or configuration error (e.g.
an unreadable report), 3 internal error. Never imports torch: the trusted publish job runs it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from exportwatch.cli.options import add_gate_options, use_colour
from exportwatch.diff import diff_reports, gate
from exportwatch.errors import EXIT_GATE_FAILED, EXIT_INTERNAL, EXIT_OK, UsageError
from exportwatch.render import FORMATS, RenderContext, render
from exportwatch.render.escape import term_text
from exportwatch.report import load_report
from exportwatch.report.io import write_text_atomically

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "diff",
        help="compare a base and a head report; print what changed and apply the merge gate",
        description=(
            "Compare two exportwatch reports (base × head) cell by cell, render the changes and "
            "apply the gate. With one report, there is no base: every result is new. "
            "Exit codes: 0 passed, 1 gate failed, 2 usage or configuration error, 3 internal error."
        ),
    )
    parser.add_argument(
        "reports", nargs="+", type=Path, metavar="REPORT", help="BASE.json HEAD.json, or HEAD.json alone"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="markdown: the PR comment; summary: the job summary; text: for a terminal; json: data",
    )
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    add_gate_options(parser)
    parser.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto", help="colour in text output"
    )
    parser.add_argument("--marker-key", help="suffix for the hidden comment marker (one per manifest)")
    parser.add_argument("--title", help="shown before the verdict (e.g. the manifest's name)")
    parser.add_argument("--summary-url", help="where the full job summary can be read (for cut comments)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handle ``exportwatch diff``; returns the exit code."""
    try:
        return _run(args)
    except UsageError as exc:
        print(term_text(f"exportwatch diff: error: {exc}", limit=4000), file=sys.stderr)
        return exc.exit_code
    except Exception:  # a bug of ours: say so, with the trace, and a distinct exit code
        print("exportwatch diff: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


def _run(args: argparse.Namespace) -> int:
    paths: list[Path] = list(args.reports)
    if len(paths) > 2:
        raise UsageError(f"expected BASE.json HEAD.json or HEAD.json, got {len(paths)} reports")
    base_path, head_path = (paths[0], paths[1]) if len(paths) == 2 else (None, paths[0])
    # A report is input (from an untrusted PR, maybe): ``load_report`` refuses a malformed one as
    # a ReportError (a usage error, exit 2) naming the file and the field; anything else that
    # escapes is a bug of ours and is reported as one (exit 3), not disguised as bad input.
    base = load_report(base_path, untrusted=True) if base_path is not None else None
    head = load_report(head_path, untrusted=True)

    changes = diff_reports(base, head, coverage_threshold=args.coverage_threshold)
    verdict = gate(
        changes,
        args.fail_on,
        allow_errors=args.allow_errors,
        fail_on_coverage_drop=args.fail_on_coverage_drop,
    )
    output: Path | None = args.output
    context = RenderContext(
        marker_key=args.marker_key,
        title=args.title,
        summary_url=args.summary_url,
        color=use_colour(args.color, stream=sys.stdout) if output is None else args.color == "always",
    )
    text = render(changes, verdict, args.format, context=context)
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomically(output, text)  # a full disk: one WriteError (exit 2), the old file whole
        log.info("wrote %s", output)
    if not verdict.passed:
        for reason in verdict.reasons:
            log.info("gate %s failed: %s", verdict.policy, reason)
    return EXIT_OK if verdict.passed else EXIT_GATE_FAILED
