"""The versioned report contract: dataclasses that round-trip through JSON.

A report is the product's memory: diffs, base comparisons and shard merges all read it, so it
is plain data (no pickled exceptions, no torch objects) and carries a ``schema_version``.
This module must not import torch: the publish half of the fork-safe flow reads reports.
"""

from exportwatch.report.io import (
    JsonlLog,
    base_report_path,
    load_report,
    write_report,
)
from exportwatch.report.model import (
    BUG_REPORT_URL,
    FAILING,
    INFRASTRUCTURE,
    MAX_DETAIL_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_REPORT_BYTES,
    PASSING,
    SCHEMA_VERSION,
    Delegation,
    Environment,
    JobResult,
    Mismatch,
    Report,
    ReportError,
    ResultSource,
    SubmoduleResult,
    UserFrame,
    Verdict,
    cap,
    first_line,
    follow_same_as,
)
from exportwatch.report.tree import FailureGroup, failure_identity, group_failures, mark_origins, origin_paths
from exportwatch.report.validate import report_schema

__all__ = [
    "BUG_REPORT_URL",
    "FAILING",
    "INFRASTRUCTURE",
    "MAX_DETAIL_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_REPORT_BYTES",
    "PASSING",
    "SCHEMA_VERSION",
    "Delegation",
    "Environment",
    "FailureGroup",
    "JobResult",
    "JsonlLog",
    "Mismatch",
    "Report",
    "ReportError",
    "ResultSource",
    "SubmoduleResult",
    "UserFrame",
    "Verdict",
    "base_report_path",
    "cap",
    "failure_identity",
    "first_line",
    "follow_same_as",
    "group_failures",
    "load_report",
    "mark_origins",
    "origin_paths",
    "report_schema",
    "write_report",
]
