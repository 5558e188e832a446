"""Base report × head report → :class:`Changes`: every cell compared, folded, and marked expected.

Linear in the cells: each side is indexed once (paths, walked ancestors, aliases, origins by
failure identity), and each cell is built once, after everything about it is known, so no
cell scans the others and none is copied to be amended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from exportwatch.diff.changes import Cell, Changes, ModelCell, ModelRow, Move, ReportMeta
from exportwatch.diff.classify import classify
from exportwatch.diff.coverage import (
    DEFAULT_COVERAGE_THRESHOLD,
    CoverageDrop,
    coverage_drop,
    coverage_drop_note,
    threshold_for,
)
from exportwatch.diff.kinds import STOPPING, CellKey, ChangeKind, JobKey
from exportwatch.diff.moves import find_moves, rename_paths
from exportwatch.diff.notes import code_differs, report_notes, upgrade_of, version_notes
from exportwatch.diff.xfail import XfailIndex
from exportwatch.report import (
    FAILING,
    PASSING,
    JobResult,
    Report,
    SubmoduleResult,
    Verdict,
    failure_identity,
    follow_same_as,
    origin_paths,
)


def diff_reports(
    base: Report | None,
    head: Report,
    *,
    xfail: XfailIndex | None = None,
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD,
) -> Changes:
    """Compare every cell of ``base`` and ``head``; ``base=None`` makes everything new.

    A cell passing on both sides whose delegation coverage fell by more than
    ``coverage_threshold`` points (or its model's own threshold, which the head job carries
    from the manifest), or that no longer delegates an operator, is a coverage drop.
    """
    index = xfail or XfailIndex()
    base_jobs = {j.key: j for j in base.jobs} if base is not None else {}
    head_jobs = {j.key: j for j in head.jobs}
    job_keys = list(dict.fromkeys([*head_jobs, *base_jobs]))

    cells: dict[CellKey, Cell] = {}
    moves: list[Move] = []
    for key in job_keys:
        base_job, head_job = base_jobs.get(key), head_jobs.get(key)
        moved_from: dict[str, str] = {}
        if base_job is not None and head_job is not None:
            job_moves = find_moves(base_job, head_job)
            if job_moves:
                moves.extend(job_moves)
                renames = {old: new for m in job_moves for old, new in m.paths}
                base_job = rename_paths(base_job, renames)
                moved_from = {new: old for old, new in renames.items()}
        for cell in _diff_job(
            base_job, head_job, index=index, moved_from=moved_from, coverage_threshold=coverage_threshold
        ):
            cells[cell.key] = cell

    targets = tuple(dict.fromkeys(k[1] for k in job_keys))
    devices = tuple(dict.fromkeys(k[2] for k in job_keys))
    counts = Counter(c.kind for c in cells.values() if c.folded_under is None)
    versions = tuple(version_notes(base, head))
    code_changed = frozenset(
        key
        for key in job_keys
        if key in base_jobs and key in head_jobs and code_differs(base_jobs[key], head_jobs[key])
    )
    return Changes(
        cells=cells,
        models=tuple(_model_rows(cells, job_keys)),
        targets=targets,
        devices=devices,
        version_notes=versions,
        notes=tuple(report_notes(base, head)),
        counts={kind: counts.get(kind, 0) for kind in ChangeKind},
        base=ReportMeta.of(base) if base is not None else None,
        head=ReportMeta.of(head),
        upgrade=upgrade_of(cells, versions, code_changed) if versions else None,
        code_changed=code_changed,
        moves=tuple(moves),
    )


# ---------------------------------------------------------------------------------------------
# One side of one job, indexed


def _ancestors(path: str) -> list[str]:
    """``"a.b.c"`` → ``["a.b", "a", ""]``; the root has none."""
    if path == "":
        return []
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)] + [""]


def _walked(paths: Iterable[str]) -> set[str]:
    """Every proper ancestor of ``paths`` (as :func:`_ancestors`), each added once: a walk up
    stops at an ancestor already there, whose own ancestors are then there too."""
    walked: set[str] = set()
    for path in paths:
        ancestor = path
        while ancestor:
            cut = ancestor.rfind(".")
            ancestor = ancestor[:cut] if cut >= 0 else ""
            if ancestor in walked:
                break
            walked.add(ancestor)
    return walked


class _Side:
    """One job on one side, with results resolved the way the diff needs them."""

    def __init__(self, job: JobResult | None) -> None:
        self.job = job
        self.by_path = {s.path: s for s in job.submodules} if job is not None else {}
        #: Paths with a listed descendant: their subtree was walked, so a path under one that
        #: the report does not list did not exist on this side.
        self.walked = _walked(self.by_path)
        #: The other names of a module listed once (shared under two parents).
        self.aliases = {a: s for s in self.by_path.values() for a in s.aliases if a not in self.by_path}
        self.infra = self._infra()

    def _infra(self) -> Verdict | None:
        """The infrastructure verdict that stopped the whole job, if any."""
        if self.job is None:
            return None
        root = self.by_path.get("")
        verdict = root.verdict if root is not None else self.job.verdict
        if verdict in STOPPING:
            return verdict
        return self.job.verdict if self.job.verdict in STOPPING else None

    def raw(self, path: str) -> SubmoduleResult | None:
        if self.job is None:
            return None
        found = self.by_path.get(path)
        if found is None and path == "":
            # A job with no submodule list (e.g. it crashed before the first result).
            return SubmoduleResult(path="", module_type="", verdict=self.job.verdict, reason=self.job.reason)
        return found

    def effective(self, sub: SubmoduleResult) -> SubmoduleResult:
        """``JobResult.effective`` with an index: follow same-as links."""
        return follow_same_as(sub, self.by_path.get)

    def resolve(self, path: str) -> tuple[SubmoduleResult | None, bool]:
        """(effective result, synthesized?) for ``path`` on this side."""
        if self.job is None:
            return None, False
        raw = self.raw(path) or self.aliases.get(path)
        if raw is not None:
            return self.effective(raw), False
        for ancestor in _ancestors(path):
            anc = self.raw(ancestor)
            if anc is not None and self.effective(anc).verdict in PASSING:
                if ancestor in self.walked:
                    return None, False  # listed its subtree without this path: not there
                return (
                    SubmoduleResult(path=path, module_type="", verdict=Verdict.COVERED, covered_by=ancestor),
                    True,
                )
        if self.infra is not None:
            return SubmoduleResult(path=path, module_type="", verdict=self.infra), True
        return None, False

    def origins(self) -> set[str]:
        """Paths marked as origins; computed by the report's one rule if none are marked."""
        if self.job is None:
            return set()
        marked = {s.path for s in self.job.submodules if s.origin}
        return marked or origin_paths(self.job)


# ---------------------------------------------------------------------------------------------
# One job's cells


class _Shown(Enum):
    """The side whose result a cell shows (and whose failure it folds by)."""

    HEAD = "head"
    BASE = "base"


#: Kinds whose cell shows the head's result; the others (a fix, a removal) show the base's.
_HEAD_SIDE = frozenset(
    {
        ChangeKind.REGRESSION,
        ChangeKind.CHANGED_FAILURE,
        ChangeKind.COVERAGE_DROP,
        ChangeKind.STILL_FAILING,
        ChangeKind.NEW,
        ChangeKind.INFRASTRUCTURE,
        ChangeKind.ERROR,
        ChangeKind.NEWLY_SKIPPED,
        ChangeKind.UNCHANGED_OK,
    }
)


@dataclass(slots=True, kw_only=True)
class _Draft:
    """A cell while its job is compared: what :class:`Cell` will hold, amended in place."""

    path: str
    kind: ChangeKind
    note: str | None
    base: SubmoduleResult | None  # effective results
    head: SubmoduleResult | None
    module_type: str
    same_as: str | None
    moved_from: str | None
    synthesized_infra: bool  # an infrastructure / error verdict the whole job's stop gave it
    origin: bool = False
    caused_by: str | None = None
    folded_under: str | None = None
    xfail: str | None = None
    xfail_scope: str | None = None
    coverage_drop: CoverageDrop | None = None

    @property
    def shown_side(self) -> _Shown:
        return _Shown.HEAD if self.kind in _HEAD_SIDE else _Shown.BASE

    def result_on(self, side: _Shown) -> SubmoduleResult | None:
        return self.head if side is _Shown.HEAD else self.base

    def verdict_on(self, side: _Shown) -> Verdict | None:
        result = self.result_on(side)
        return result.verdict if result is not None else None


def _diff_job(
    base_job: JobResult | None,
    head_job: JobResult | None,
    *,
    index: XfailIndex,
    moved_from: Mapping[str, str] | None = None,
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD,
) -> list[Cell]:
    base, head = _Side(base_job), _Side(head_job)
    job = head_job or base_job
    assert job is not None
    paths = ["", *dict.fromkeys(s.path for j in (head_job, base_job) if j for s in j.submodules if s.path)]
    renamed = moved_from or {}
    coverage_threshold = threshold_for(head_job, default=coverage_threshold)
    draft = {
        path: _draft(
            path, base=base, head=head, moved_from=renamed.get(path), coverage_threshold=coverage_threshold
        )
        for path in paths
    }
    _fold(draft, sides={_Shown.HEAD: head, _Shown.BASE: base})
    _apply_xfail(draft, base_job=base_job, head_job=head_job, index=index)
    return [
        Cell(
            model=job.model,
            target=job.target,
            device=job.device,
            path=d.path,
            kind=d.kind,
            base=d.base.verdict if d.base else None,
            head=d.head.verdict if d.head else None,
            base_fingerprint=d.base.fingerprint if d.base else None,
            head_fingerprint=d.head.fingerprint if d.head else None,
            base_result=d.base,
            head_result=d.head,
            module_type=d.module_type,
            same_as=d.same_as,
            note=d.note,
            origin=d.origin,
            caused_by=d.caused_by,
            folded_under=d.folded_under,
            xfail=d.xfail,
            xfail_scope=d.xfail_scope,
            moved_from=d.moved_from,
            coverage_drop=d.coverage_drop,
        )
        for d in draft.values()
    ]


def _draft(
    path: str, *, base: _Side, head: _Side, moved_from: str | None, coverage_threshold: float
) -> _Draft:
    """One path compared: its kind, note, effective results and what it shares."""
    b, b_synth = base.resolve(path)
    h, h_synth = head.resolve(path)
    kind, note = classify(b, h)
    drop = coverage_drop(b, h, threshold=coverage_threshold) if kind is ChangeKind.UNCHANGED_OK else None
    if drop is not None:
        kind, note = ChangeKind.COVERAGE_DROP, coverage_drop_note(drop)
    synthesized_infra = bool(
        kind in (ChangeKind.INFRASTRUCTURE, ChangeKind.ERROR)
        and path
        and (
            (h_synth and h is not None and h.verdict in STOPPING)
            or (b_synth and b is not None and b.verdict in STOPPING)
        )
    )
    if synthesized_infra:
        note = (
            "not reached: exportwatch failed on the whole job"
            if kind is ChangeKind.ERROR
            else "not reached: the whole job hit an infrastructure failure"
        )
    raw_head, raw_base = head.raw(path), base.raw(path)
    raw = raw_head if kind in _HEAD_SIDE and raw_head is not None else raw_base or raw_head
    shown = h if kind in _HEAD_SIDE and h is not None else b or h
    same_as = shown.path if shown is not None and shown.path != path else None
    if same_as is not None and raw is not None and raw.verdict != Verdict.SAME_AS:
        same_as = None  # a synthesized 'covered' result, not a shared one
    return _Draft(
        path=path,
        kind=kind,
        note=note,
        base=b,
        head=h,
        module_type=(raw.module_type if raw else "") or (shown.module_type if shown else ""),
        same_as=same_as,
        moved_from=moved_from,
        synthesized_infra=synthesized_infra,
        coverage_drop=drop,
    )


@dataclass(frozen=True, slots=True)
class _OriginsBelow:
    """The first origin (in report order) below an ancestor failing for one reason, and the
    first of each change kind: what :func:`_folding` asks of every failing ancestor."""

    first: str
    by_kind: dict[ChangeKind, str]


def _origins_below(
    draft: Mapping[str, _Draft], side: _Shown, origins: set[str]
) -> dict[tuple[str, tuple[str | None, ...]], _OriginsBelow]:
    """(ancestor, failure identity) → the origins below it failing so on ``side``: one walk up
    from each origin instead of a scan of the job for each failing ancestor."""
    found: dict[tuple[str, tuple[str | None, ...]], _OriginsBelow] = {}
    for path, cell in draft.items():
        result = cell.result_on(side)
        if path not in origins or result is None or result.verdict not in FAILING:
            continue
        identity = failure_identity(result)
        ancestor = path
        while ancestor:
            cut = ancestor.rfind(".")
            ancestor = ancestor[:cut] if cut >= 0 else ""
            entry = found.get((ancestor, identity))
            if entry is None:
                found[(ancestor, identity)] = _OriginsBelow(first=path, by_kind={cell.kind: path})
            elif cell.kind in entry.by_kind:
                break  # an earlier origin of this kind walked on up from here: nothing changes above
            else:
                entry.by_kind[cell.kind] = path
    return found


def _fold(draft: dict[str, _Draft], *, sides: Mapping[_Shown, _Side]) -> None:
    """Attach each cell that fails only because of another cell to that cell."""
    origins = {side: sides[side].origins() for side in _Shown}
    below = {side: _origins_below(draft, side, origins[side]) for side in _Shown}
    for path, cell in draft.items():
        side = cell.shown_side
        cell.origin = path in origins[side] and cell.verdict_on(side) in FAILING
        cell.caused_by, cell.folded_under = _folding(draft, cell, sides[side], side, below[side])
    # Follow chains (a same-as copy of an ancestor...) to the cell that is shown.
    for cell in draft.values():
        folded_under = cell.folded_under
        seen: set[str] = set()
        while folded_under is not None and folded_under not in seen:
            seen.add(folded_under)
            parent = draft.get(folded_under)
            if parent is None or parent.folded_under is None:
                break
            folded_under = parent.folded_under
        if folded_under == cell.path:
            folded_under = None
        cell.folded_under = folded_under


def _folding(
    draft: Mapping[str, _Draft],
    cell: _Draft,
    side: _Side,
    shown: _Shown,
    below: Mapping[tuple[str, tuple[str | None, ...]], _OriginsBelow],
) -> tuple[str | None, str | None]:
    """``(caused_by, folded_under)`` of one cell, before chains are followed."""
    if cell.synthesized_infra:
        return None, ""
    raw = side.raw(cell.path)
    if cell.same_as and raw is not None and raw.verdict == Verdict.SAME_AS:
        target = draft.get(cell.same_as)
        same = target is not None and target.kind == cell.kind
        return None, cell.same_as if same else None
    mine = cell.result_on(shown)
    if cell.verdict_on(shown) not in FAILING or cell.origin or mine is None:
        return None, None
    # Only an origin that fails for the same reason explains this cell.
    origins = below.get((cell.path, failure_identity(mine)))
    if origins is None:
        return None, None
    same_kind = origins.by_kind.get(cell.kind)
    if same_kind is None and cell.kind is ChangeKind.NEW:
        # A module that did not exist on base (the wrapper of a moved subtree) failing only
        # because of a regression inside it: the regression tells it, and gates under every
        # policy that would gate this cell.
        same_kind = origins.by_kind.get(ChangeKind.REGRESSION)
    return same_kind or origins.first, same_kind


def _apply_xfail(
    draft: Mapping[str, _Draft],
    *,
    base_job: JobResult | None,
    head_job: JobResult | None,
    index: XfailIndex,
) -> None:
    """Expected failures come from the head (the manifest under review), else from base."""
    job = head_job or base_job
    assert job is not None
    side = head_job if head_job is not None else base_job
    assert side is not None
    listed = {s.path: s for s in side.submodules}
    for path, cell in draft.items():
        found = index.reason(model=job.model, path=path)
        if found is None:
            sub = listed.get(path)
            if sub is not None and sub.xfail:
                found = (sub.xfail, "submodule")
            elif side.xfail:
                found = (side.xfail, "model")
        cell.xfail, cell.xfail_scope = found if found else (None, None)
    for cell in draft.values():
        if cell.xfail is not None:
            continue
        for parent in (cell.folded_under, cell.caused_by):
            parent_cell = draft.get(parent) if parent is not None else None
            if parent_cell is not None and parent_cell.xfail is not None:
                cell.xfail = f"fails because of {parent or 'the root'}, which is expected to fail"
                cell.xfail_scope = "inherited"
                break


def _model_rows(cells: Mapping[CellKey, Cell], job_keys: list[JobKey]) -> list[ModelRow]:
    below_by_job: dict[JobKey, Counter[ChangeKind]] = {}
    for c in cells.values():
        if not c.is_root and c.folded_under is None:
            counter = below_by_job.get(c.job_key)
            if counter is None:
                counter = below_by_job[c.job_key] = Counter()
            counter[c.kind] += 1
    rows: dict[tuple[str, str], dict[str, ModelCell]] = {}
    for model, target, device in job_keys:
        root = cells[(model, target, device, "")]
        below = below_by_job.get(root.job_key, Counter())
        rows.setdefault((model, device), {})[target] = ModelCell(
            target=target,
            kind=root.kind,
            base=root.base,
            head=root.head,
            expected=root.expected,
            submodule_kinds=dict(below),
        )
    return [ModelRow(model=m, device=d, cells=c) for (m, d), c in rows.items()]
