"""``exportwatch report REPORT.json [--base BASE.json] -o report.html``: the sweep as one HTML page.

Registered by ``exportwatch.cli.main``; the handler is ``run(args)``. The page is self-contained
(styles and script inline, nothing fetched), so it can be opened offline or downloaded as a
workflow artifact. Reports are read as untrusted (size cap, schema): on a fork PR a stranger
wrote them. Exit codes: 0 written, 2 a report cannot be read or the page cannot be written,
3 internal error. Never imports torch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from exportwatch.errors import EXIT_OK, UsageError
from exportwatch.render.html import render_html
from exportwatch.report import Report, ReportError, load_report
from exportwatch.report.io import write_text_atomically

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="draw a report as one self-contained HTML page: each job's module tree, where it broke",
        description=(
            "Render an exportwatch report as one HTML file that needs no network: per model and "
            "target, the module tree with each submodule's verdict, failing branches expanded, "
            "search and a failing-only filter. With --base, regressions and fixes are marked and "
            "the page can show either side. Exit codes: 0 written, 2 unreadable report or "
            "unwritable output, 3 internal error."
        ),
    )
    parser.add_argument("report", type=Path, metavar="REPORT", help="the (head) report, .json or .jsonl")
    parser.add_argument("--base", type=Path, metavar="BASE", help="a base report to compare with")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write the page (default: REPORT with .html for its suffix)",
    )
    parser.add_argument("--title", help="shown in the page's heading (e.g. the manifest's name)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handle ``exportwatch report``; errors reach ``cli.main`` as ``UsageError`` (exit 2)."""
    head = _load(args.report)
    base = _load(args.base) if args.base is not None else None
    output: Path = args.output or args.report.with_suffix(".html")
    if output.resolve() in {p.resolve() for p in (args.report, args.base) if p is not None}:
        raise UsageError(f"{output}: the output would overwrite an input report")
    page = render_html(head, base=base, title=args.title)
    write_text_atomically(output, page, what="the HTML report")  # a WriteError: exit 2, one line
    log.info("wrote %s (%d bytes)", output, len(page.encode("utf-8")))
    print(f"report: {output}")
    return EXIT_OK


def _load(path: Path) -> Report:
    try:
        return load_report(path, untrusted=True)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A report is input (from an untrusted PR, maybe): a malformed one is a usage error.
        raise UsageError(f"{path}: cannot read report: {type(exc).__name__}: {exc}") from exc
