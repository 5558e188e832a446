"""``exportwatch merge REPORT... -o merged.json``: shard reports → the report of the whole sweep.

Registered by ``exportwatch.cli.main`` (``merge_cli.add_parser(subparsers)``); the handler is
``run(args)``. A REPORT may be a directory: every ``*.json`` file under it is read (what
``actions/download-artifact`` leaves, one folder per shard artifact). One sweep log
(``exportwatch merge LOG.jsonl -o REPORT.json``) is turned into its report: the way back when a
sweep could not write its report (a full disk) but its log holds the results. Exit codes: 0
merged, 2 the shards do not add up to one sweep (every reason is printed), a report cannot be
read or the output cannot be written.
Never imports torch: a merge job needs no GPU, no model code and no PyTorch install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from exportwatch.errors import EXIT_OK, EXIT_USAGE, WriteError
from exportwatch.render.escape import term_block, term_text
from exportwatch.report import Report, ReportError, load_report, write_report
from exportwatch.report.io import report_from_log
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
            "shards. Given one sweep log (REPORT.jsonl, what a sweep writes as it goes), writes "
            "the report it holds: complete when every planned job has a result. "
            "Exit codes: 0 merged, 2 refused, unreadable or unwritable."
        ),
    )
    parser.add_argument(
        "reports",
        nargs="+",
        type=Path,
        metavar="REPORT",
        help="shard report files, directories to search for *.json reports, or one sweep log (.jsonl)",
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
    if len(files) == 1 and files[0].suffix == ".jsonl":
        return _from_log(files[0], output=output, quiet=getattr(args, "quiet", False), out=out, err=err)
    shards: list[Shard] = []
    for path in files:
        if path.resolve() == output.resolve():
            continue  # a rerun into the same folder: never read our own output as a shard
        try:
            shards.append(Shard(name=str(path), report=load_report(path, untrusted=True)))
        except ReportError as exc:
            return _refused(exc, err=err)
    try:
        merged = merge_reports(shards)
    except MergeError as exc:
        return _refused(exc, err=err)
    if not _written(merged, output, err=err):
        return EXIT_USAGE
    if not getattr(args, "quiet", False):
        print(f"merged {len(shards)} shard report(s), {len(merged.jobs)} job(s) → {output}", file=out)
    return EXIT_OK


def _from_log(log: Path, *, output: Path, quiet: bool, out: TextIO, err: TextIO) -> int:
    """One sweep log → its report (see ``report_from_log``)."""
    if log.resolve() == output.resolve():
        print(term_text(f"error: {output}: the output would overwrite the log"), file=err)
        return EXIT_USAGE
    try:
        rebuilt = report_from_log(log)
    except ReportError as exc:
        return _refused(exc, err=err)
    if not _written(rebuilt, output, err=err):
        return EXIT_USAGE
    if not quiet:
        done = len({f"{job.model}/{job.target}" for job in rebuilt.jobs})
        state = (
            "complete" if rebuilt.complete else f"partial: {done} of {len(rebuilt.plan)} planned job(s) done"
        )
        print(f"wrote the report of {log}, {len(rebuilt.jobs)} job(s) ({state}) → {output}", file=out)
    return EXIT_OK


def _refused(exc: ReportError | MergeError, *, err: TextIO) -> int:
    """One located error line (its text is untrusted: quoted for the terminal), its exit code."""
    print(term_block(f"error: {exc}"), file=err)
    return exc.exit_code


def _written(report: Report, output: Path, *, err: TextIO) -> bool:
    try:
        write_report(report, output)
    except WriteError as exc:
        print(term_text(f"error: {exc}"), file=err)
        return False
    return True
