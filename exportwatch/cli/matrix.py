"""``exportwatch matrix REPORT...``: one manifest swept on several torch (or onnx) versions,
side by side, a column per version: "works on 2.13.0, fails on 2.14.1".

A REPORT may be a directory: every ``*.json`` report under it is read (what
``actions/download-artifact`` leaves, one folder per matrix job). Exit codes: 0 done, 1 with
``--strict`` when an export works on some versions and not on others, 2 unreadable or
incomparable reports. Never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exportwatch.cli.options import check_output_path
from exportwatch.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE

FORMATS = ("text", "markdown", "json")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "matrix",
        help="compare reports of one manifest swept on several library versions",
        description=(
            "Put reports of one manifest, each swept on another torch (or onnx, onnxruntime, "
            "python) version, side by side: a column per version, and for each export that works "
            "on some versions only, where it breaks."
        ),
    )
    parser.add_argument(
        "reports", nargs="+", type=Path, metavar="REPORT", help="report files, or directories of them"
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="text (default), markdown or json")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--title", help="shown before the headline (e.g. the manifest's name)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when an export works on some versions and not on others"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from exportwatch.render.matrix import (
        render_matrix_json,
        render_matrix_markdown,
        render_matrix_text,
        version_matrix,
    )
    from exportwatch.report import load_report
    from exportwatch.report.io import write_text_atomically
    from exportwatch.report.merge import find_report_files

    if args.output is not None:
        check_output_path(args.output, flag="-o")
    files = [
        f
        for f in find_report_files(list(args.reports))
        if args.output is None or f.resolve() != args.output.resolve()
    ]
    if not files:
        print("error: no reports found in " + ", ".join(map(str, args.reports)), file=sys.stderr)
        return EXIT_USAGE
    # Unreadable reports and incomparable sets are ExportwatchErrors: cli.main prints them (exit 2).
    matrix = version_matrix([load_report(path, untrusted=True) for path in files])
    if args.format == "markdown":
        text = render_matrix_markdown(matrix, title=args.title)
    elif args.format == "json":
        text = render_matrix_json(matrix)
    else:
        text = render_matrix_text(matrix)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text_atomically(args.output, text)  # a full disk: one WriteError (exit 2), the old file whole
    return EXIT_GATE_FAILED if args.strict and matrix.varying else EXIT_OK
