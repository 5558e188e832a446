"""One cell's change kind from its two effective results: the table every view agrees on."""

from __future__ import annotations

from exportwatch.diff.kinds import ChangeKind
from exportwatch.report import FAILING, INFRASTRUCTURE, PASSING, SubmoduleResult, Verdict, failure_identity


def _klass(verdict: Verdict | None) -> str:
    if verdict is None:
        return "absent"
    if verdict is Verdict.ERROR:
        return "error"
    if verdict in PASSING:
        return "pass"
    if verdict in INFRASTRUCTURE:
        return "infra"
    if verdict in FAILING:
        return "fail"
    return "neutral"  # skipped, not-called, a same-as whose target is missing


def same_reason(a: SubmoduleResult | None, b: SubmoduleResult | None) -> bool:
    """Two results of one side fail for the same reason (the report's failure identity)."""
    return a is not None and b is not None and failure_identity(a) == failure_identity(b)


def _same_failure(base: SubmoduleResult, head: SubmoduleResult) -> bool:
    if base.verdict != head.verdict:
        return False
    if base.fingerprint and head.fingerprint:
        return base.fingerprint == head.fingerprint
    return (base.category, base.message) == (head.category, head.message)


def classify(base: SubmoduleResult | None, head: SubmoduleResult | None) -> tuple[ChangeKind, str | None]:
    """The change kind of one cell from its effective results, with a note where one helps."""
    b = _klass(base.verdict if base is not None else None)
    h = _klass(head.verdict if head is not None else None)
    bv = base.verdict.value if base else "absent"
    hv = head.verdict.value if head else "absent"
    if h == "error":
        return ChangeKind.ERROR, "exportwatch failed while checking this on head: please report the bug"
    if b == "absent":
        return ChangeKind.NEW, None
    if h == "absent":
        return ChangeKind.REMOVED, None
    if b == "error":
        return (
            ChangeKind.ERROR,
            f"exportwatch failed while checking this on base, so head's {hv} cannot be compared",
        )
    if "infra" in (b, h):
        return ChangeKind.INFRASTRUCTURE, _infra_note(b, bv, h, hv)
    if b == "neutral":
        if h == "neutral":
            return ChangeKind.UNCHANGED_OK, None
        return ChangeKind.NEW, f"was {bv} on base"
    if h == "neutral":
        return ChangeKind.NEWLY_SKIPPED, f"was {bv} on base"
    assert base is not None and head is not None
    if b == "pass":
        return (ChangeKind.UNCHANGED_OK if h == "pass" else ChangeKind.REGRESSION), None
    if h == "pass":
        return ChangeKind.FIX, None
    if _same_failure(base, head):
        return ChangeKind.STILL_FAILING, None
    return ChangeKind.CHANGED_FAILURE, None


def _infra_note(b: str, bv: str, h: str, hv: str) -> str:
    def hit(verdict: str) -> str:
        return "was interrupted" if verdict == Verdict.INTERRUPTED.value else f"hit a {verdict}"

    if b == "infra" and h == "infra":
        return f"{bv} on base, {hv} on head: rerun to get a result"
    if b == "infra":
        tail = {
            "fail": "this failure cannot be compared and may be a regression",
            "pass": "head exports",
            "neutral": f"head is {hv}",
        }[h]
        return f"base {hit(bv)}, so {tail}"
    if b == "pass":
        return f"exported on base; head {hit(hv)}, so this may be a regression: rerun to confirm"
    return f"{bv} on base; head {hit(hv)}: rerun to confirm"
