"""The vocabulary of a diff: cell and job keys, how a cell changed, and the gate's policies."""

from __future__ import annotations

from enum import Enum

from exportwatch.report import INFRASTRUCTURE, Verdict

#: Verdicts that stop a whole job: its unlisted submodules share them.
STOPPING = INFRASTRUCTURE | {Verdict.ERROR}

#: (model, target, device, submodule path)
CellKey = tuple[str, str, str, str]
#: (model, target, device)
JobKey = tuple[str, str, str]


class ChangeKind(str, Enum):
    """How one cell changed between base and head."""

    REGRESSION = "regression"  # exported on base, fails on head
    FIX = "fix"  # failed on base, exports on head
    CHANGED_FAILURE = "changed-failure"  # fails on both, for a different reason
    COVERAGE_DROP = "coverage-drop"  # passes on both; delegation coverage fell (see diff.coverage)
    STILL_FAILING = "still-failing"  # fails on both, same fingerprint
    NEW = "new"  # no result on base (absent or skipped there)
    REMOVED = "removed"  # no result on head
    NEWLY_SKIPPED = "newly-skipped"  # had a result on base, skipped / not called on head
    INFRASTRUCTURE = "infrastructure"  # crash, timeout or OOM on either side
    ERROR = "error"  # exportwatch itself failed while checking this, on either side
    UNCHANGED_OK = "unchanged-ok"  # nothing to report (passing, or skipped, on both sides)

    def __str__(self) -> str:
        return self.value


#: Most to least urgent: the order of sections and of table rows.
SEVERITY: tuple[ChangeKind, ...] = (
    ChangeKind.REGRESSION,
    ChangeKind.ERROR,
    ChangeKind.INFRASTRUCTURE,
    ChangeKind.CHANGED_FAILURE,
    ChangeKind.COVERAGE_DROP,
    ChangeKind.NEW,
    ChangeKind.FIX,
    ChangeKind.REMOVED,
    ChangeKind.NEWLY_SKIPPED,
    ChangeKind.STILL_FAILING,
    ChangeKind.UNCHANGED_OK,
)
#: Kinds that say nothing new to a reviewer.
QUIET = frozenset({ChangeKind.UNCHANGED_OK, ChangeKind.STILL_FAILING})


class Policy(str, Enum):
    """What fails the merge gate (``--fail-on``)."""

    REGRESSION = "regression"  # something that exported on base fails on head
    NEW_FAILURE = "new-failure"  # ... or fails differently, or a new model/submodule fails
    ANY_FAILURE = "any-failure"  # anything fails on head, infrastructure included
    NEVER = "never"  # report only

    def __str__(self) -> str:
        return self.value


DEFAULT_POLICY = Policy.REGRESSION


def parse_policy(value: str | Policy) -> Policy:
    """``"new-failure"`` → Policy.NEW_FAILURE; a ValueError naming the choices otherwise."""
    if isinstance(value, Policy):
        return value
    try:
        return Policy(value.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Policy)
        raise ValueError(f"unknown gate policy {value!r} (choose one of: {choices})") from None


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"
