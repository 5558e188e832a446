"""``exportwatch merge REPORT... -o merged.json``: shard reports → the report of the whole sweep.

Registered by ``exportwatch.cli.main`` (``merge_cli.add_parser(subparsers)``); the handler is
``run(args)``. A REPORT may be a directory: every ``*.json`` file under it is read (what
``actions/download-artifact`` leaves, one folder per shard artifact). Exit codes: 0 merged,
2 the shards do not add up to one sweep (every reason is printed) or a report cannot be read.
Never imports torch: a merge job needs no GPU, no model code and no PyTorch install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from exportwatch.errors import EXIT_OK, EXIT_USAGE
from exportwatch.render.escape import term_block, term_text
from exportwatch.report import ReportError, load_report, write_report
from exportwatch.report.merge import MergeError, Shard, find_report_files, merge_reports

DEFAULT_OUTPUT = Path("exportwatch-report.json")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "merge",
        help="merge the shard reports of `sweep --shard I/N` into one report",
        description=(
            "Merge the reports of `exportwatch sweep --shard I/N` (all N of them) into the report "
            "an unsharded sweep would have written. Refuses shards of different commits, tool or "
            "library versions, plans or splits, and missing, duplicate, partial or overlapping "
            "shards. Exit codes: 0 merged, 2 refused or unreadable."
        ),
    )
    parser.add_argument(
        "reports",
        nargs="+",
        type=Path,
        metavar="REPORT",
        help="shard report files, or directories to search for *.json reports",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where to write the merged report (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    files = find_report_files(list(args.reports))
    if not files:
        print("error: no shard reports found in " + ", ".join(map(str, args.reports)), file=err)
        return EXIT_USAGE
    output = Path(args.output)
    shards: list[Shard] = []
    for path in files:
        if path.resolve() == output.resolve():
            continue  # a rerun into the same folder: never read our own output as a shard
        try:
            shards.append(Shard(name=str(path), report=load_report(path, untrusted=True)))
        except ReportError as exc:
            print(term_block(f"error: {exc}"), file=err)
            return exc.exit_code
    try:
        merged = merge_reports(shards)
    except MergeError as exc:
        print(term_block(f"error: {exc}"), file=err)
        return exc.exit_code
    try:
        write_report(merged, output)
    except OSError as exc:
        print(term_text(f"error: {output}: cannot write the merged report: {exc.strerror or exc}"), file=err)
        return EXIT_USAGE
    if not getattr(args, "quiet", False):
        print(f"merged {len(shards)} shard report(s), {len(merged.jobs)} job(s) → {output}", file=out)
    return EXIT_OK
