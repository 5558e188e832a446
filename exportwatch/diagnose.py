"""Exception → category, fingerprint, user frame and hint.

PLACEHOLDER: a minimal version so the sweep runs; the diagnosis issue replaces it with the
table-driven classifier. Keep the public signatures.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from pathlib import Path

from exportwatch.report import MAX_DETAIL_CHARS, MAX_MESSAGE_CHARS, UserFrame, cap, first_line


@dataclass(kw_only=True)
class Diagnosis:
    category: str
    fingerprint: str
    exception_type: str
    root_cause: str | None
    message: str
    detail: str
    user_frame: UserFrame | None
    hint: str | None


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def diagnose_exception(
    exc: BaseException, *, target: str, stage: str | None, repo_root: Path
) -> Diagnosis:
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    message = first_line(str(exc)) or type(exc).__name__
    detail = "".join(traceback.format_exception(exc))
    key = "|".join([target, stage or "", qualified_name(type(root)), first_line(str(root))])
    return Diagnosis(
        category="unknown",
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:12],
        exception_type=qualified_name(type(exc)),
        root_cause=qualified_name(type(root)),
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(detail, MAX_DETAIL_CHARS) or "",
        user_frame=None,
        hint=None,
    )


def diagnose_infrastructure(kind: str, *, target: str, message: str) -> Diagnosis:
    """crash / timeout / oom: no exception object, only what the parent saw."""
    key = "|".join([target, kind])
    return Diagnosis(
        category=kind,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:12],
        exception_type=kind,
        root_cause=None,
        message=message,
        detail=message,
        user_frame=None,
        hint=None,
    )
