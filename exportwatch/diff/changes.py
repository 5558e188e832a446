"""What a diff hands every view and the gate: the compared cells, rows, moves and notes.

Plain frozen data; built by :func:`exportwatch.diff.compare.diff_reports`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from exportwatch.diff.coverage import CoverageDrop
from exportwatch.diff.kinds import QUIET, SEVERITY, CellKey, ChangeKind, JobKey, plural
from exportwatch.report import FAILING, INFRASTRUCTURE, PASSING, Report, SubmoduleResult, Verdict


@dataclass(frozen=True, kw_only=True)
class ReportMeta:
    """What the renderers need to know about one side, without the jobs."""

    repository: str | None = None
    git_sha: str | None = None
    run_url: str | None = None
    duration_s: float = 0.0
    complete: bool = True
    tool_version: str = ""
    shard: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)  # python, torch, onnx, ...

    @classmethod
    def of(cls, report: Report) -> ReportMeta:
        env = report.environment
        return cls(
            repository=report.repository,
            git_sha=report.git_sha,
            run_url=report.run_url,
            duration_s=report.duration_s,
            complete=report.complete,
            tool_version=report.tool_version,
            shard=report.shard,
            versions={
                "python": env.python or None,
                "torch": env.torch,
                "onnx": env.onnx,
                "onnxscript": env.onnxscript,
                "onnxruntime": env.onnxruntime,
                "cuda": env.cuda,
            },
        )


@dataclass(frozen=True, kw_only=True)
class VersionNote:
    """A library whose version differs between base and head: changes may come from it."""

    package: str
    base: str | None
    head: str | None


@dataclass(frozen=True, kw_only=True)
class Upgrade:
    """Base and head ran on different library versions: the regressions and fixes of jobs whose
    code did not change (the same files, byte for byte, on both sides) are the upgrade's."""

    versions: tuple[VersionNote, ...]
    regressions: tuple[CellKey, ...] = ()  # top-level, not expected
    fixes: tuple[CellKey, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        """Models the upgrade changed, regressions first, in report order."""
        return tuple(dict.fromkeys(key[0] for key in (*self.regressions, *self.fixes)))

    @property
    def regressed_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key[0] for key in self.regressions))

    def summary(self) -> str:
        """``torch 2.13.0 → 2.14.1: 3 regressions in 2 models, 1 fix``: what the headline leads with."""
        versions = ", ".join(
            f"{v.package} {v.base or '(none)'} → {v.head or '(none)'}" for v in self.versions
        )
        parts = []
        if self.regressions:
            models = len(self.regressed_models)
            parts.append(f"{plural(len(self.regressions), 'regression')} in {plural(models, 'model')}")
        if self.fixes:
            parts.append(plural(len(self.fixes), "fix", "fixes"))
        return f"{versions}: {', '.join(parts) if parts else 'no change in export status'}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    """One (model, target, device, submodule path) compared across base and head."""

    model: str
    target: str
    device: str
    path: str
    kind: ChangeKind
    base: Verdict | None  # effective verdict (same-as followed); None: no result
    head: Verdict | None
    base_fingerprint: str | None = None
    head_fingerprint: str | None = None
    base_result: SubmoduleResult | None = None  # effective result on base
    head_result: SubmoduleResult | None = None  # effective result on head
    module_type: str = ""
    same_as: str | None = None  # the path whose result this cell shares, on the side shown
    note: str | None = None  # why an infrastructure / new / skipped cell is classified so
    origin: bool = False  # fails for its own reason (report.origin_paths), on the side that fails
    caused_by: str | None = None  # for a failing ancestor: the origin it fails because of
    folded_under: str | None = None  # path of the cell that tells this story; None: top level
    xfail: str | None = None  # reason, when this failure is expected
    xfail_scope: str | None = None  # "submodule" | "model" | "inherited"
    moved_from: str | None = None  # the base path of a submodule whose subtree moved (see Move)
    coverage_drop: CoverageDrop | None = None  # what fell, for a COVERAGE_DROP cell

    @property
    def key(self) -> CellKey:
        return (self.model, self.target, self.device, self.path)

    @property
    def job_key(self) -> JobKey:
        return (self.model, self.target, self.device)

    @property
    def is_root(self) -> bool:
        return self.path == ""

    @property
    def head_fails(self) -> bool:
        """Fails on head for a reason of the model's own (not an infrastructure failure)."""
        return self.head in FAILING and self.head not in INFRASTRUCTURE and self.head is not Verdict.ERROR

    @property
    def expected(self) -> bool:
        return self.xfail is not None

    @property
    def xfail_passes(self) -> bool:
        """An own xfail entry whose export now works: the entry should be removed."""
        if self.head not in PASSING:
            return False
        return self.xfail_scope == "submodule" or (self.xfail_scope == "model" and self.is_root)

    @property
    def shown(self) -> SubmoduleResult | None:
        """The result a reader wants: head's, or base's when head has none or passes."""
        if self.kind in (ChangeKind.FIX, ChangeKind.REMOVED) or self.head_result is None:
            return self.base_result or self.head_result
        return self.head_result


@dataclass(frozen=True, kw_only=True)
class ModelCell:
    """One target column of a model row: the root's change plus what happened below it."""

    target: str
    kind: ChangeKind
    base: Verdict | None
    head: Verdict | None
    expected: bool = False
    submodule_kinds: Mapping[ChangeKind, int] = field(default_factory=dict)  # top-level cells only


@dataclass(frozen=True, kw_only=True)
class ModelRow:
    """A (model, device) row of the per-model table."""

    model: str
    device: str
    cells: Mapping[str, ModelCell]  # target -> cell

    @property
    def kinds(self) -> set[ChangeKind]:
        found = {c.kind for c in self.cells.values()}
        for cell in self.cells.values():
            found.update(k for k, n in cell.submodule_kinds.items() if n)
        return found

    @property
    def worst(self) -> ChangeKind:
        kinds = self.kinds
        return next((k for k in SEVERITY if k in kinds), ChangeKind.UNCHANGED_OK)

    @property
    def changed(self) -> bool:
        return bool(self.kinds - QUIET)


@dataclass(frozen=True, kw_only=True)
class Move:
    """Submodules one job reports under another prefix on head: a model wrapped (``blocks.0`` →
    ``backbone.blocks.0``), unwrapped, or a child renamed. Each pair is compared across the
    move, so the cells carry head paths and a regression inside the subtree is still one."""

    model: str
    target: str
    device: str
    old_prefix: str  # "" (the old root's children) or "encoder."
    new_prefix: str  # "backbone." or ""
    paths: tuple[tuple[str, str], ...]  # (base path, head path), every pair of the move

    @property
    def job_key(self) -> JobKey:
        return (self.model, self.target, self.device)

    @property
    def count(self) -> int:
        return len(self.paths)


@dataclass(frozen=True, kw_only=True)
class Changes:
    """Everything the renderers and the gate need; built by :func:`diff_reports`."""

    cells: Mapping[CellKey, Cell]
    models: tuple[ModelRow, ...]
    targets: tuple[str, ...]
    devices: tuple[str, ...]
    version_notes: tuple[VersionNote, ...]
    notes: tuple[str, ...]
    counts: Mapping[ChangeKind, int]  # top-level (unfolded) cells per kind
    base: ReportMeta | None
    head: ReportMeta
    upgrade: Upgrade | None = None  # when library versions differ between base and head
    #: Jobs whose code (dependency files) differs between base and head; the rest ran the same
    #: code on both sides, so their changes come from the environment.
    code_changed: frozenset[JobKey] = frozenset()
    moves: tuple[Move, ...] = ()  # subtrees compared across a rename, per job

    @property
    def has_base(self) -> bool:
        return self.base is not None

    def top_level(self, *kinds: ChangeKind) -> list[Cell]:
        """Unfolded cells of the given kinds (all kinds when none given), in report order."""
        if len(kinds) == 1:
            return list(self._top_level_by_kind.get(kinds[0], ()))
        if not kinds:
            return list(self._top_level)
        wanted = set(kinds)
        return [c for c in self._top_level if c.kind in wanted]

    @cached_property
    def _top_level(self) -> list[Cell]:
        """Indexed once: every view asks for the top-level cells of a kind, several times."""
        return [c for c in self.cells.values() if c.folded_under is None]

    @cached_property
    def _top_level_by_kind(self) -> dict[ChangeKind, list[Cell]]:
        index: dict[ChangeKind, list[Cell]] = {}
        for c in self._top_level:
            index.setdefault(c.kind, []).append(c)
        return index

    def folded(self, cell: Cell) -> list[Cell]:
        """Cells that fail only because of ``cell`` (ancestors of an origin, same-as copies)."""
        return list(self._folded_index.get(cell.key, ()))

    @cached_property
    def _folded_index(self) -> dict[CellKey, list[Cell]]:
        index: dict[CellKey, list[Cell]] = {}
        for c in self.cells.values():
            if c.folded_under is not None and c.folded_under != c.path:
                index.setdefault((*c.job_key, c.folded_under), []).append(c)
        return index

    @property
    def xfail_passing(self) -> list[Cell]:
        return list(self._xfail_passing)

    @cached_property
    def _xfail_passing(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.xfail_passes]

    @cached_property
    def has_changes(self) -> bool:
        """False when a PR comment would have nothing new to say."""
        if self.version_notes or self.xfail_passing or any(not m.complete for m in self._metas()):
            return True
        return any(c.kind not in QUIET for c in self.cells.values())

    def _metas(self) -> list[ReportMeta]:
        return [m for m in (self.base, self.head) if m is not None]
