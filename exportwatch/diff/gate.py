"""The merge gate: which top-level cells a policy holds against the pull request."""

from __future__ import annotations

from dataclasses import dataclass

from exportwatch.diff.changes import Cell, Changes
from exportwatch.diff.kinds import DEFAULT_POLICY, CellKey, ChangeKind, Policy, parse_policy
from exportwatch.diff.wording import gate_notes, gate_reasons
from exportwatch.report import FAILING, Verdict


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """The merge verdict: which cells failed it and why, plus notes that never fail it."""

    policy: Policy
    passed: bool
    fail_on_coverage_drop: bool = False
    failing: tuple[CellKey, ...] = ()
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def gate_counts(
    changes: Changes, policy: Policy, *, allow_errors: bool = False, fail_on_coverage_drop: bool = False
) -> list[Cell]:
    """The top-level cells that ``policy`` holds against the pull request.

    A coverage drop is gated by its own setting, ``fail_on_coverage_drop``, whatever the
    policy: the export still works, so only a user who asked for it fails on a slower program.

    A check exportwatch could not complete on head (``error``) is never a pass: every policy
    but ``never`` holds it against the pull request unless ``allow_errors`` says otherwise. An
    export the head's sweep was stopped in (``interrupted``) was never checked: held likewise.
    """
    cells = [c for c in changes.top_level() if not c.expected]
    drops = [c for c in cells if c.kind is ChangeKind.COVERAGE_DROP] if fail_on_coverage_drop else []
    if policy is Policy.NEVER:
        return drops
    errors = (
        [] if allow_errors else [c for c in cells if c.kind is ChangeKind.ERROR and c.head is Verdict.ERROR]
    )
    stopped = [c for c in cells if c.head is Verdict.INTERRUPTED]
    gated = [c for c in _policy_counts(cells, policy) if c.head is not Verdict.INTERRUPTED]
    return errors + stopped + gated + drops


def _policy_counts(cells: list[Cell], policy: Policy) -> list[Cell]:
    if policy is Policy.REGRESSION:
        return [c for c in cells if c.kind is ChangeKind.REGRESSION]
    if policy is Policy.NEW_FAILURE:
        return [
            c
            for c in cells
            if c.kind in (ChangeKind.REGRESSION, ChangeKind.CHANGED_FAILURE)
            or (c.kind is ChangeKind.NEW and c.head_fails)
            or (c.kind is ChangeKind.INFRASTRUCTURE and c.head_fails)  # base crashed: unknown
        ]
    return [c for c in cells if c.head in FAILING and c.head is not Verdict.ERROR]


def gate(
    changes: Changes,
    policy: str | Policy = DEFAULT_POLICY,
    *,
    allow_errors: bool = False,
    fail_on_coverage_drop: bool = False,
) -> GateResult:
    """Apply ``policy`` (regression | new-failure | any-failure | never) to ``changes``, and
    fail on delegation coverage drops too when ``fail_on_coverage_drop``."""
    policy = parse_policy(policy)
    failing = gate_counts(
        changes, policy, allow_errors=allow_errors, fail_on_coverage_drop=fail_on_coverage_drop
    )
    return GateResult(
        policy=policy,
        passed=not failing,
        fail_on_coverage_drop=fail_on_coverage_drop,
        failing=tuple(c.key for c in failing),
        reasons=tuple(gate_reasons(failing)),
        notes=tuple(
            gate_notes(
                changes, policy, allow_errors=allow_errors, fail_on_coverage_drop=fail_on_coverage_drop
            )
        ),
    )
