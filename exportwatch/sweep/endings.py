"""Results nobody's exporter produced: a process that died, hung, ran out of memory, ended
itself (``sys.exit``, ``os._exit``, ``KeyboardInterrupt``), or an exportwatch bug.

Used on both sides (the parent builds crash/timeout/oom results, the model's process builds
internal-error and model-ended ones), so nothing here imports torch at module level.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from exportwatch.manifest import ModelSpec
from exportwatch.report import MAX_DETAIL_CHARS, JobResult, SubmoduleResult, Verdict, cap

if TYPE_CHECKING:
    from exportwatch.diagnose import Diagnosis


def _root_only_job(
    spec: ModelSpec,
    target: str,
    device: str,
    verdict: Verdict,
    found: Diagnosis,
    *,
    reason: str,
    message: str,
    detail: str | None,
    origin: bool = True,
    peak_rss_mb: float | None = None,
    duration_s: float = 0.0,
) -> JobResult:
    """A job with one result, its root's: what every ending here comes to."""
    root = SubmoduleResult(
        path="",
        module_type="",
        verdict=verdict,
        origin=origin,
        category=found.category,
        fingerprint=found.fingerprint,
        exception_type=found.exception_type,
        message=message,
        detail=detail,
        user_frame=found.user_frame,
        hint=found.hint,
    )
    return JobResult(
        model=spec.name,
        target=target,
        device=device,
        verdict=verdict,
        reason=reason,
        submodules=[root],
        xfail=spec.xfail,
        peak_rss_mb=round(peak_rss_mb, 1) if peak_rss_mb else None,
        duration_s=duration_s,
    )


def infrastructure_job(
    spec: ModelSpec,
    target: str,
    verdict: Verdict,
    message: str,
    *,
    device: str,
    log_tail: str = "",
    peak_rss_mb: float | None = None,
    duration_s: float = 0.0,
) -> JobResult:
    """crash / timeout / oom / interrupted, as the parent saw it (no exception object crossed over)."""
    from exportwatch.diagnose import diagnose_infrastructure
    from exportwatch.diagnose.catalogue import hint_for

    found = diagnose_infrastructure(verdict.value, target=target, message=message)
    if verdict == Verdict.ERROR:
        found.category = "internal-error"
    elif verdict == Verdict.INTERRUPTED:  # nothing went wrong with the model
        found.category = "interrupted"
        found.hint = hint_for("interrupted")
    detail = message + (f"\n\nLast output of the model's process:\n{log_tail}" if log_tail.strip() else "")
    return _root_only_job(
        spec,
        target,
        device,
        verdict,
        found,
        reason=message,
        message=message,
        detail=cap(detail, MAX_DETAIL_CHARS),
        origin=False,
        peak_rss_mb=peak_rss_mb,
        duration_s=duration_s,
    )


def internal_error_job(spec: ModelSpec, target: str, device: str, exc: BaseException) -> JobResult:
    """exportwatch's own code raised outside any one submodule: ``error``, never a crash."""
    from exportwatch.diagnose import internal_error_diagnosis

    found = internal_error_diagnosis(exc, target=target)
    return _root_only_job(
        spec,
        target,
        device,
        Verdict.ERROR,
        found,
        reason="exportwatch internal error",
        message=found.message,
        detail=found.detail,
    )


def is_model_ending(exc: BaseException) -> bool:
    """``SystemExit``, ``KeyboardInterrupt`` and other non-``Exception``s: the model ends itself."""
    return not isinstance(exc, Exception)


def raising_module(exc: BaseException, paths: Mapping[int, str]) -> str | None:
    """The submodule whose ``forward`` raised: the innermost such frame of the traceback.

    ``paths`` maps ``id(module)`` to its path in the model.
    """
    found: str | None = None
    for frame, _line in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        if frame.f_code.co_name == "forward" and owner is not None and id(owner) in paths:
            found = paths[id(owner)]
    return found


def ending_message(exc: BaseException, *, where: str) -> str:
    """``model code called sys.exit(0) in `blocks.3.forward``` and friends."""
    if isinstance(exc, SystemExit):
        what = f"called sys.exit({exc.code!r})"
    elif isinstance(exc, KeyboardInterrupt):
        what = "raised KeyboardInterrupt"
    else:
        what = f"raised {type(exc).__name__} (a BaseException, which ends a program)"
    return f"model code {what} {where}"


def ending_job(
    spec: ModelSpec, target: str, device: str, exc: BaseException, *, message: str, repo_root: Path
) -> JobResult:
    """A ``crash`` for a job whose model code ended the program: with the line that did it."""
    from exportwatch.diagnose import diagnose_ending

    found = diagnose_ending(exc, target=target, message=message, repo_root=repo_root)
    return _root_only_job(
        spec, target, device, Verdict.CRASH, found, reason=message, message=message, detail=found.detail
    )
