"""What the gate says: its reasons (the failing cells, named) and the notes that never fail it."""

from __future__ import annotations

from exportwatch.diff.changes import Cell, Changes
from exportwatch.diff.kinds import SEVERITY, ChangeKind, Policy, plural
from exportwatch.report import BUG_REPORT_URL, FAILING, Verdict

_MAX_NAMED = 10
_INTERRUPTED_NOUNS = (
    "export interrupted (the head report is partial)",
    "exports interrupted (the head report is partial)",
)
_REASON_NOUNS = {
    ChangeKind.REGRESSION: ("regression", "regressions"),
    ChangeKind.CHANGED_FAILURE: ("changed failure", "changed failures"),
    ChangeKind.COVERAGE_DROP: ("delegation coverage drop", "delegation coverage drops"),
    ChangeKind.NEW: ("new failure", "new failures"),
    ChangeKind.INFRASTRUCTURE: ("infrastructure failure", "infrastructure failures"),
    ChangeKind.ERROR: (
        f"check exportwatch could not complete (an exportwatch bug: please report it at {BUG_REPORT_URL})",
        f"checks exportwatch could not complete (an exportwatch bug: please report it at {BUG_REPORT_URL})",
    ),
    ChangeKind.STILL_FAILING: ("unchanged failure", "unchanged failures"),
    ChangeKind.FIX: ("fix", "fixes"),
    ChangeKind.REMOVED: ("removed result", "removed results"),
    ChangeKind.NEWLY_SKIPPED: ("newly skipped result", "newly skipped results"),
    ChangeKind.UNCHANGED_OK: ("unchanged result", "unchanged results"),
}


def _cell_label(cell: Cell) -> str:
    where = f"{cell.model}/{cell.target}/{cell.device}"
    return f"{where}:{cell.path}" if cell.path else where


def gate_reasons(failing: list[Cell]) -> list[str]:
    """``2 regressions: cnn/export/cpu:blocks.4, …``: one line per change kind, most urgent first."""
    reasons: list[str] = []
    stopped = [c for c in failing if c.head is Verdict.INTERRUPTED]  # a reason of their own, first
    if stopped:
        reasons.append(_reason(stopped, _INTERRUPTED_NOUNS))
    by_kind: dict[ChangeKind, list[Cell]] = {}
    for cell in failing:
        if cell.head is not Verdict.INTERRUPTED:
            by_kind.setdefault(cell.kind, []).append(cell)
    for kind in SEVERITY:
        if kind in by_kind:
            reasons.append(_reason(by_kind[kind], _REASON_NOUNS[kind]))
    return reasons


def _reason(cells: list[Cell], nouns: tuple[str, str]) -> str:
    n = len(cells)
    where = ", ".join(_cell_label(c) for c in cells[:_MAX_NAMED])
    if n > _MAX_NAMED:
        where += f" and {n - _MAX_NAMED} more"
    one, many = nouns
    return f"{n} {one if n == 1 else many}: {where}"


def gate_notes(
    changes: Changes, policy: Policy, *, allow_errors: bool, fail_on_coverage_drop: bool = False
) -> list[str]:
    """What the gate did not count, and why: infrastructure, allowed errors, coverage drops,
    xfail, stale xfail."""
    notes: list[str] = []
    drops = changes.top_level(ChangeKind.COVERAGE_DROP)
    if drops and not fail_on_coverage_drop:
        notes.append(
            f"{plural(len(drops), 'delegation coverage drop')} "
            f"{'was' if len(drops) == 1 else 'were'} not gated (fail-on-coverage-drop is off)"
        )
    infra = [c for c in changes.top_level(ChangeKind.INFRASTRUCTURE) if c.head is not Verdict.INTERRUPTED]
    if infra and policy is not Policy.ANY_FAILURE:
        notes.append(
            f"{plural(len(infra), 'infrastructure problem')} (crash / timeout / out of memory) "
            f"{'was' if len(infra) == 1 else 'were'} not gated: rerun to confirm"
        )
    errors = changes.top_level(ChangeKind.ERROR)
    if errors and (allow_errors or policy is Policy.NEVER):
        notes.append(
            f"{plural(len(errors), 'check')} exportwatch could not complete "
            f"{'was' if len(errors) == 1 else 'were'} allowed: "
            f"{'it is not a pass' if len(errors) == 1 else 'they are not passes'}"
        )
    elif any(c.head is not Verdict.ERROR for c in errors):
        notes.append("exportwatch failed while checking some results on base: they could not be compared")
    expected = [c for c in changes.top_level() if c.expected and c.head in FAILING]
    if expected:
        notes.append(f"{plural(len(expected), 'expected failure')} (xfail) did not count")
    stale = changes.xfail_passing
    if stale:
        notes.append(f"{len(stale)} xfail entr{'y' if len(stale) == 1 else 'ies'} now pass: remove them")
    return notes
