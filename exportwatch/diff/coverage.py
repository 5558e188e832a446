"""A passing cell whose delegation coverage dropped: the ``executorch`` target's own change.

Pure: two effective results and a threshold in, a :class:`CoverageDrop` (or None) out. A
drop is counted only on a cell that exports on both sides and carries ``delegation`` on both
(an old report without it gives no coverage change): a cell failing on head is a regression.
The threshold is the diff's, or the model's own where its manifest entry sets one
(:func:`threshold_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exportwatch.report import PASSING, JobResult, SubmoduleResult

#: Percentage points of coverage a cell may lose before the diff calls it a drop.
DEFAULT_COVERAGE_THRESHOLD = 5.0
#: Operators named in a drop's wording; the rest are counted (the names are report text).
_NAMED_OPERATORS = 3
_OPERATOR_CHARS = 80


@dataclass(frozen=True, kw_only=True)
class CoverageDrop:
    """How one cell's delegation got worse: its share of delegated nodes, and the operators
    the backend no longer takes."""

    backend: str
    base_percent: float | None  # None: no compute nodes on that side
    head_percent: float | None
    newly_not_delegated: tuple[str, ...] = ()
    #: Where each newly undelegated operator is called: ``aten.cumsum`` -> ``encoder.head``.
    called_in: tuple[tuple[str, str], ...] = ()

    @property
    def percent_drop(self) -> float:
        if self.base_percent is None or self.head_percent is None:
            return 0.0
        return self.base_percent - self.head_percent


def threshold_for(head: JobResult | None, *, default: float = DEFAULT_COVERAGE_THRESHOLD) -> float:
    """The threshold for one job's cells: the model's own (the manifest's
    ``executorch: {coverage_threshold: ...}``, which the head report's job carries), else the
    diff's (``--coverage-threshold``). The head's, as for ``expect: xfail``: the pull request's
    manifest says what its models may lose."""
    if head is not None and head.coverage_threshold is not None:
        return head.coverage_threshold
    return default


def coverage_drop(
    base: SubmoduleResult | None,
    head: SubmoduleResult | None,
    *,
    threshold: float = DEFAULT_COVERAGE_THRESHOLD,
) -> CoverageDrop | None:
    """The drop from ``base`` to ``head``: coverage lost beyond ``threshold`` points, or an
    operator delegated on base and not on head; None when neither (or no comparison)."""
    if base is None or head is None or base.verdict not in PASSING or head.verdict not in PASSING:
        return None
    before, after = base.delegation, head.delegation
    if before is None or after is None or before.backend != after.backend or after.backend == "portable":
        return None  # nothing comparable: a portable program delegates nothing by design
    base_percent = before.coverage * 100 if before.coverage is not None else None
    head_percent = after.coverage * 100 if after.coverage is not None else None
    lost = base_percent is not None and head_percent is not None and base_percent - head_percent > threshold
    newly = tuple(op for op in after.not_delegated if op not in before.not_delegated)
    if not lost and not newly:
        return None
    called_in = tuple(
        (op, _join(head.path, below)) for op in newly if (below := after.not_delegated_in.get(op))
    )
    return CoverageDrop(
        backend=after.backend,
        base_percent=base_percent,
        head_percent=head_percent,
        newly_not_delegated=newly,
        called_in=called_in,
    )


def _join(path: str, below: str) -> str:
    """A submodule's path and a path below it, as the report writes paths (``""``: the root)."""
    return ".".join(part for part in (path, below) if part)


def coverage_drop_note(
    drop: CoverageDrop, *, text: Callable[[str], str] = str, code: Callable[[str], str] = str
) -> str:
    """``XNNPACK delegation 97% → 61%; aten.native_layer_norm no longer delegated``. Plain,
    unescaped text by default (backend and operators are report text: each renderer escapes
    it); a markdown view passes ``text`` (its escaping) and ``code`` (its code span)."""

    def percent(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f}%"

    backend = drop.backend.upper()[:_OPERATOR_CHARS]
    before, after = percent(drop.base_percent), percent(drop.head_percent)
    note = text(
        f"{backend} delegation {before} → {after}" if before != after else f"{backend} delegation {after}"
    )
    called_in = dict(drop.called_in)

    def named_op(op: str) -> str:
        module = called_in.get(op)
        where = f" (in {code(module[:_OPERATOR_CHARS])})" if module else ""
        return code(op[:_OPERATOR_CHARS]) + where

    ops = [named_op(op) for op in drop.newly_not_delegated[:_NAMED_OPERATORS]]
    if ops:
        more = len(drop.newly_not_delegated) - len(ops)
        named = ", ".join(ops) + (f" and {more} more" if more else "")
        note += f"; {named} no longer delegated"  # our words: no escaping needed
    return note
