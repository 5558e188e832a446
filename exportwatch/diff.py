"""Base report × head report → what changed, and whether the pull request may merge.

Pure: no I/O, no torch. Every renderer (PR comment, job summary, terminal, JSON) reads the one
:class:`Changes` built here, so the views cannot disagree about what counts as a regression.

Cells are keyed by (model, target, device, submodule path); ``""`` is the root, and the
model-level verdict is the root's. Verdicts are compared after following ``same-as`` links.
A submodule a report does not list, under an ancestor that exported, counts as ``covered``:
a sweep need not try the children of a module that exported. But where the report lists the
ancestor's subtree (a sweep lists every submodule it walked), a path it does not list did not
exist on that side: no verdict is claimed for it. A subtree that moved (a model wrapped as
``backbone``, a child renamed) is compared across the move: see :func:`find_moves`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cached_property
from typing import Any

from exportwatch.report import (
    BUG_REPORT_URL,
    FAILING,
    INFRASTRUCTURE,
    PASSING,
    JobResult,
    Report,
    SubmoduleResult,
    Verdict,
    failure_identity,
    follow_same_as,
    origin_paths,
)
from exportwatch.report.tree import is_descendant

#: Verdicts that stop a whole job: its unlisted submodules share them.
_STOPPING = INFRASTRUCTURE | {Verdict.ERROR}

#: (model, target, device, submodule path)
CellKey = tuple[str, str, str, str]
#: (model, target, device)
JobKey = tuple[str, str, str]


class ChangeKind(str, Enum):
    """How one cell changed between base and head."""

    REGRESSION = "regression"  # exported on base, fails on head
    FIX = "fix"  # failed on base, exports on head
    CHANGED_FAILURE = "changed-failure"  # fails on both, for a different reason
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


# ---------------------------------------------------------------------------------------------
# Expected failures


@dataclass(frozen=True, kw_only=True)
class XfailIndex:
    """Expected failures from the manifest (``expect: xfail``), keyed by model and submodule.

    Reports carry the same reasons in ``JobResult.xfail`` / ``SubmoduleResult.xfail``; an index
    lets a caller apply the *head* manifest's entries to reports swept before they were added.
    """

    models: Mapping[str, str] = field(default_factory=dict)  # model -> reason
    submodules: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (model, path) -> reason

    def reason(self, *, model: str, path: str) -> tuple[str, str] | None:
        """(reason, scope) where scope is ``"submodule"`` or ``"model"``; None when not expected."""
        if (model, path) in self.submodules:
            return self.submodules[(model, path)], "submodule"
        if model in self.models:
            return self.models[model], "model"
        return None

    @classmethod
    def from_manifest(cls, manifest: Any) -> XfailIndex:
        """Read ``ModelSpec.xfail`` / ``xfail_submodules`` (duck-typed: diff imports no manifest)."""
        models: dict[str, str] = {}
        submodules: dict[tuple[str, str], str] = {}
        for spec in manifest.models:
            if spec.xfail:
                models[spec.name] = spec.xfail
            for path, reason in (spec.xfail_submodules or {}).items():
                submodules[(spec.name, path)] = reason
        return cls(models=models, submodules=submodules)


# ---------------------------------------------------------------------------------------------
# The result


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
            parts.append(f"{_plural(len(self.regressions), 'regression')} in {_plural(models, 'model')}")
        if self.fixes:
            parts.append(_plural(len(self.fixes), "fix", "fixes"))
        return f"{versions}: {', '.join(parts) if parts else 'no change in export status'}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


@dataclass(frozen=True, kw_only=True)
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
        wanted = set(kinds) or set(ChangeKind)
        return [c for c in self.cells.values() if c.folded_under is None and c.kind in wanted]

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
        return [c for c in self.cells.values() if c.xfail_passes]

    @property
    def has_changes(self) -> bool:
        """False when a PR comment would have nothing new to say."""
        if self.version_notes or self.xfail_passing or any(not m.complete for m in self._metas()):
            return True
        return any(c.kind not in QUIET for c in self.cells.values())

    def _metas(self) -> list[ReportMeta]:
        return [m for m in (self.base, self.head) if m is not None]


# ---------------------------------------------------------------------------------------------
# The diff


def diff_reports(base: Report | None, head: Report, *, xfail: XfailIndex | None = None) -> Changes:
    """Compare every cell of ``base`` and ``head``; ``base=None`` makes everything new."""
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
        for cell in _diff_job(base_job, head_job, index=index, moved_from=moved_from):
            cells[cell.key] = cell

    targets = tuple(dict.fromkeys(k[1] for k in job_keys))
    devices = tuple(dict.fromkeys(k[2] for k in job_keys))
    counts = Counter(c.kind for c in cells.values() if c.folded_under is None)
    version_notes = tuple(_version_notes(base, head))
    code_changed = frozenset(
        key
        for key in job_keys
        if key in base_jobs and key in head_jobs and _code_differs(base_jobs[key], head_jobs[key])
    )
    return Changes(
        cells=cells,
        models=tuple(_model_rows(cells, job_keys)),
        targets=targets,
        devices=devices,
        version_notes=version_notes,
        notes=tuple(_report_notes(base, head)),
        counts={kind: counts.get(kind, 0) for kind in ChangeKind},
        base=ReportMeta.of(base) if base is not None else None,
        head=ReportMeta.of(head),
        upgrade=_upgrade(cells, version_notes, code_changed) if version_notes else None,
        code_changed=code_changed,
        moves=tuple(moves),
    )


# ---------------------------------------------------------------------------------------------
# Moved subtrees

#: A move needs this many submodules found again under the new prefix ...
_MOVE_MIN = 2
#: ... and a suffix shared by more removed paths than this is too ambiguous to vote with.
_MOVE_MAX_CANDIDATES = 64


def find_moves(base: JobResult, head: JobResult) -> list[Move]:
    """The prefixes under which head lists what base listed elsewhere, with their pairs.

    A removed path ``P + rest`` and an added path ``Q + rest`` of the same module type vote for
    the move ``P → Q`` (the longest shared ``rest`` only); a move is kept when at least half of
    the paths removed under ``P`` reappear under ``Q`` (and at least :data:`_MOVE_MIN`).
    """
    base_types = {s.path: s.module_type for s in base.submodules if s.path}
    head_types = {s.path: s.module_type for s in head.submodules if s.path}
    removed = [p for p in base_types if p not in head_types]
    added = [p for p in head_types if p not in base_types]
    if len(removed) < _MOVE_MIN or len(added) < _MOVE_MIN:
        return []
    by_suffix: dict[str, list[tuple[str, str]]] = {}  # rest -> [(P, removed path)]
    for path in removed:
        parts = path.split(".")
        for k in range(len(parts)):
            prefix = ".".join(parts[:k]) + "." if k else ""
            by_suffix.setdefault(".".join(parts[k:]), []).append((prefix, path))
    votes: dict[tuple[str, str], dict[str, str]] = {}  # (P, Q) -> {removed: added}
    for path in added:
        parts = path.split(".")
        for k in range(len(parts)):
            found = by_suffix.get(".".join(parts[k:]))
            if not found:
                continue
            if len(found) <= _MOVE_MAX_CANDIDATES:
                new_prefix = ".".join(parts[:k]) + "." if k else ""
                for old_prefix, old in found:
                    if old_prefix != new_prefix and base_types[old] == head_types[path]:
                        votes.setdefault((old_prefix, new_prefix), {}).setdefault(old, path)
            break  # the longest shared rest only
    left_under: Counter[str] = Counter()  # prefix -> removed paths under it, not yet moved
    for path in removed:
        left_under.update(_prefixes_of(path))
    order = {p: i for i, p in enumerate(base_types)}
    moves: list[Move] = []
    used_old: set[str] = set()
    used_new: set[str] = set()
    for (old_prefix, new_prefix), pairs in sorted(votes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(pairs) < _MOVE_MIN:
            continue
        kept = {o: n for o, n in pairs.items() if o not in used_old and n not in used_new}
        if len(kept) < _MOVE_MIN or 2 * len(kept) < left_under[old_prefix]:
            continue
        # The renamed child itself ("encoder" → "trunk"), when both are there with one type.
        old_top, new_top = old_prefix[:-1], new_prefix[:-1]
        if (
            old_top
            and new_top
            and old_top in base_types
            and new_top in head_types
            and old_top not in head_types
            and new_top not in base_types
            and base_types[old_top] == head_types[new_top]
        ):
            kept[old_top] = new_top
        used_old.update(kept)
        used_new.update(kept.values())
        for path in kept:
            left_under.subtract(_prefixes_of(path))
        moves.append(
            Move(
                model=head.model,
                target=head.target,
                device=head.device,
                old_prefix=old_prefix,
                new_prefix=new_prefix,
                paths=tuple(sorted(kept.items(), key=lambda kv: order[kv[0]])),
            )
        )
    return moves


def _prefixes_of(path: str) -> list[str]:
    """``"a.b.c"`` → ``["", "a.", "a.b."]``: the prefixes a move may take it from."""
    parts = path.split(".")
    return ["", *(".".join(parts[:k]) + "." for k in range(1, len(parts)))]


def rename_paths(job: JobResult, renames: Mapping[str, str]) -> JobResult:
    """``job`` with its submodules' paths (and the paths they name) renamed by ``renames``."""

    def name(path: str | None) -> str | None:
        return renames.get(path, path) if path is not None else None

    return replace(
        job,
        submodules=[
            replace(
                s,
                path=renames.get(s.path, s.path),
                same_as=name(s.same_as),
                covered_by=name(s.covered_by),
                aliases=[renames.get(a, a) for a in s.aliases],
            )
            for s in job.submodules
        ],
    )


def _code_differs(base: JobResult, head: JobResult) -> bool:
    """The job's dependency files differ (or one side could not list them: then nothing can be
    said to be the environment's doing)."""
    if base.content_hash is None or head.content_hash is None:
        return True
    return dict(base.dependencies) != dict(head.dependencies)


def _upgrade(
    cells: Mapping[CellKey, Cell], versions: tuple[VersionNote, ...], code_changed: frozenset[JobKey]
) -> Upgrade:
    regressions: list[CellKey] = []
    fixes: list[CellKey] = []
    for cell in cells.values():
        if cell.folded_under is not None or cell.job_key in code_changed:
            continue
        if cell.kind is ChangeKind.REGRESSION and not cell.expected:
            regressions.append(cell.key)
        elif cell.kind is ChangeKind.FIX:
            fixes.append(cell.key)
    return Upgrade(versions=versions, regressions=tuple(regressions), fixes=tuple(fixes))


_VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime")


def _version_notes(base: Report | None, head: Report) -> Iterable[VersionNote]:
    if base is None:
        return
    for package in _VERSIONED:
        old = getattr(base.environment, package)
        new = getattr(head.environment, package)
        if (old or None) != (new or None):
            yield VersionNote(package=package, base=old or None, head=new or None)
    # The models' own libraries (transformers, timm, ...), where both sides recorded them (an
    # older report has none: that is not a removal).
    old_packages, new_packages = base.environment.packages, head.environment.packages
    if old_packages and new_packages:
        for package in sorted(set(old_packages) | set(new_packages)):
            old, new = old_packages.get(package), new_packages.get(package)
            if old != new:
                yield VersionNote(package=package, base=old, head=new)


def _report_notes(base: Report | None, head: Report) -> Iterable[str]:
    if base is None:
        yield "No base report: every result is new, and nothing can be a regression."
    elif not base.complete:
        yield (
            "The base report is partial (its sweep did not finish, or part of the base could not be "
            "reproduced): some results show as new."
        )
    if not head.complete:
        yield (
            "The head report is partial (its sweep did not finish or was interrupted): some results "
            "show as removed, and the exports it was running as interrupted."
        )
    if base is not None:
        yield from _device_notes(base, head)


def _device_notes(base: Report, head: Report) -> Iterable[str]:
    """A model swept on one device in the base and another in the head has no cell in common:
    every result would read as new/removed and no regression could show. Say so."""
    base_devices: dict[tuple[str, str], set[str]] = {}
    for job in base.jobs:
        base_devices.setdefault((job.model, job.target), set()).add(job.device)
    moved = []
    for job in head.jobs:
        before = base_devices.get((job.model, job.target))
        if before and job.device not in before:
            moved.append(f"{job.model} · {job.target} ({'/'.join(sorted(before))} → {job.device})")
    moved.sort()
    if moved:
        shown = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        yield (
            f"Base and head ran on different devices for {shown}: those results are not compared "
            "(pin the device in the manifest instead of auto)."
        )


def _ancestors(path: str) -> list[str]:
    """``"a.b.c"`` → ``["a.b", "a", ""]``; the root has none."""
    if path == "":
        return []
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)] + [""]


class _Side:
    """One job on one side, with results resolved the way the diff needs them."""

    def __init__(self, job: JobResult | None) -> None:
        self.job = job
        self.by_path = {s.path: s for s in job.submodules} if job is not None else {}
        #: Paths with a listed descendant: their subtree was walked, so a path under one that
        #: the report does not list did not exist on this side.
        self.walked = {a for s in self.by_path for a in _ancestors(s)}
        #: The other names of a module listed once (shared under two parents).
        self.aliases = {a: s for s in self.by_path.values() for a in s.aliases if a not in self.by_path}

    @property
    def infra(self) -> Verdict | None:
        """The infrastructure verdict that stopped the whole job, if any."""
        if self.job is None:
            return None
        root = self.by_path.get("")
        verdict = root.verdict if root is not None else self.job.verdict
        if verdict in _STOPPING:
            return verdict
        return self.job.verdict if self.job.verdict in _STOPPING else None

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


def _same_reason(a: SubmoduleResult | None, b: SubmoduleResult | None) -> bool:
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


_HEAD_SIDE = frozenset(
    {
        ChangeKind.REGRESSION,
        ChangeKind.CHANGED_FAILURE,
        ChangeKind.STILL_FAILING,
        ChangeKind.NEW,
        ChangeKind.INFRASTRUCTURE,
        ChangeKind.ERROR,
        ChangeKind.NEWLY_SKIPPED,
        ChangeKind.UNCHANGED_OK,
    }
)


def _diff_job(
    base_job: JobResult | None,
    head_job: JobResult | None,
    *,
    index: XfailIndex,
    moved_from: Mapping[str, str] | None = None,
) -> list[Cell]:
    base, head = _Side(base_job), _Side(head_job)
    job = head_job or base_job
    assert job is not None
    paths = ["", *dict.fromkeys(s.path for j in (head_job, base_job) if j for s in j.submodules if s.path)]

    draft: dict[str, Cell] = {}
    synthesized_infra: set[str] = set()
    for path in paths:
        b, b_synth = base.resolve(path)
        h, h_synth = head.resolve(path)
        kind, note = classify(b, h)
        if (
            kind in (ChangeKind.INFRASTRUCTURE, ChangeKind.ERROR)
            and path
            and (
                (h_synth and h is not None and h.verdict in _STOPPING)
                or (b_synth and b is not None and b.verdict in _STOPPING)
            )
        ):
            synthesized_infra.add(path)
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
        draft[path] = Cell(
            model=job.model,
            target=job.target,
            device=job.device,
            path=path,
            kind=kind,
            base=b.verdict if b else None,
            head=h.verdict if h else None,
            base_fingerprint=b.fingerprint if b else None,
            head_fingerprint=h.fingerprint if h else None,
            base_result=b,
            head_result=h,
            module_type=(raw.module_type if raw else "") or (shown.module_type if shown else ""),
            same_as=same_as,
            note=note,
            moved_from=(moved_from or {}).get(path),
        )

    _fold(draft, base=base, head=head, synthesized_infra=synthesized_infra)
    _apply_xfail(draft, base_job=base_job, head_job=head_job, index=index)
    return list(draft.values())


def _fold(draft: dict[str, Cell], *, base: _Side, head: _Side, synthesized_infra: set[str]) -> None:
    """Attach each cell that fails only because of another cell to that cell (in place: the
    cells of ``draft`` are replaced, in order, by their folded versions)."""
    origins = {"head": head.origins(), "base": base.origins()}
    for path, cell in list(draft.items()):
        side_name = "head" if cell.kind in _HEAD_SIDE else "base"
        side = head if side_name == "head" else base
        verdict = getattr(cell, side_name)
        origin = path in origins[side_name] and verdict in FAILING
        caused_by, folded_under = _folding(
            draft, path, cell, side, side_name, origin, origins, synthesized_infra
        )
        draft[path] = replace(cell, origin=origin, caused_by=caused_by, folded_under=folded_under)
    # Follow chains (a same-as copy of an ancestor...) to the cell that is shown.
    for path, cell in list(draft.items()):
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
        if folded_under != cell.folded_under:
            draft[path] = replace(cell, folded_under=folded_under)


def _folding(
    draft: Mapping[str, Cell],
    path: str,
    cell: Cell,
    side: _Side,
    side_name: str,
    origin: bool,
    origins: Mapping[str, set[str]],
    synthesized_infra: set[str],
) -> tuple[str | None, str | None]:
    """``(caused_by, folded_under)`` of one cell, before chains are followed."""
    if path in synthesized_infra:
        return None, ""
    raw = side.raw(path)
    if cell.same_as and raw is not None and raw.verdict == Verdict.SAME_AS:
        target = draft.get(cell.same_as)
        same = target is not None and target.kind == cell.kind
        return None, cell.same_as if same else None
    if getattr(cell, side_name) not in FAILING or origin:
        return None, None
    # Only an origin that fails for the same reason explains this cell.
    mine = getattr(cell, f"{side_name}_result")
    below = [
        p
        for p, other in draft.items()
        if p in origins[side_name]
        and is_descendant(p, path)
        and getattr(other, side_name) in FAILING
        and _same_reason(getattr(other, f"{side_name}_result"), mine)
    ]
    if not below:
        return None, None
    same_kind = [p for p in below if draft[p].kind == cell.kind]
    if not same_kind and cell.kind is ChangeKind.NEW:
        # A module that did not exist on base (the wrapper of a moved subtree) failing only
        # because of a regression inside it: the regression tells it, and gates under every
        # policy that would gate this cell.
        same_kind = [p for p in below if draft[p].kind is ChangeKind.REGRESSION]
    return (same_kind or below)[0], same_kind[0] if same_kind else None


def _apply_xfail(
    draft: dict[str, Cell],
    *,
    base_job: JobResult | None,
    head_job: JobResult | None,
    index: XfailIndex,
) -> None:
    """Expected failures come from the head (the manifest under review), else from base."""
    job = head_job or base_job
    assert job is not None
    listed = {id(side): {s.path: s for s in side.submodules} for side in (head_job, base_job) if side}
    for path, cell in list(draft.items()):
        found = index.reason(model=job.model, path=path)
        if found is None:
            for side in (head_job, base_job):
                if side is None:
                    continue
                sub = listed[id(side)].get(path)
                if sub is not None and sub.xfail:
                    found = (sub.xfail, "submodule")
                elif side.xfail:
                    found = (side.xfail, "model")
                break
        xfail, scope = found if found else (None, None)
        draft[path] = replace(cell, xfail=xfail, xfail_scope=scope)
    for path, cell in list(draft.items()):
        if cell.xfail is not None:
            continue
        for parent in (cell.folded_under, cell.caused_by):
            parent_cell = draft.get(parent) if parent is not None else None
            if parent_cell is not None and parent_cell.xfail is not None:
                reason = f"fails because of {parent or 'the root'}, which is expected to fail"
                draft[path] = replace(cell, xfail=reason, xfail_scope="inherited")
                break


def _model_rows(cells: Mapping[CellKey, Cell], job_keys: list[JobKey]) -> list[ModelRow]:
    below_by_job: dict[JobKey, Counter[ChangeKind]] = {}
    for c in cells.values():
        if not c.is_root and c.folded_under is None:
            below_by_job.setdefault(c.job_key, Counter())[c.kind] += 1
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


# ---------------------------------------------------------------------------------------------
# The gate


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """The merge verdict: which cells failed it and why, plus notes that never fail it."""

    policy: Policy
    passed: bool
    failing: tuple[CellKey, ...] = ()
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def gate_counts(changes: Changes, policy: Policy, *, allow_errors: bool = False) -> list[Cell]:
    """The top-level cells that ``policy`` holds against the pull request.

    A check exportwatch could not complete on head (``error``) is never a pass: every policy
    but ``never`` holds it against the pull request unless ``allow_errors`` says otherwise. An
    export the head's sweep was stopped in (``interrupted``) was never checked: held likewise.
    """
    cells = [c for c in changes.top_level() if not c.expected]
    if policy is Policy.NEVER:
        return []
    errors = (
        [] if allow_errors else [c for c in cells if c.kind is ChangeKind.ERROR and c.head is Verdict.ERROR]
    )
    stopped = [c for c in cells if c.head is Verdict.INTERRUPTED]
    return errors + stopped + [c for c in _policy_counts(cells, policy) if c.head is not Verdict.INTERRUPTED]


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
    changes: Changes, policy: str | Policy = DEFAULT_POLICY, *, allow_errors: bool = False
) -> GateResult:
    """Apply ``policy`` (regression | new-failure | any-failure | never) to ``changes``."""
    policy = parse_policy(policy)
    failing = gate_counts(changes, policy, allow_errors=allow_errors)
    reasons: list[str] = []
    stopped = [c for c in failing if c.head is Verdict.INTERRUPTED]  # a reason of their own
    by_kind = Counter(c.kind for c in failing if c.head is not Verdict.INTERRUPTED)
    for kind in (None, *SEVERITY) if stopped else SEVERITY:
        n = len(stopped) if kind is None else by_kind.get(kind, 0)
        if n:
            cells = (
                stopped
                if kind is None
                else [c for c in failing if c.kind is kind and c.head is not Verdict.INTERRUPTED]
            )
            where = ", ".join(_cell_label(c) for c in cells[:_MAX_NAMED])
            if n > _MAX_NAMED:
                where += f" and {n - _MAX_NAMED} more"
            one, many = _REASON_NOUNS[kind] if kind is not None else _INTERRUPTED_NOUNS
            reasons.append(f"{n} {one if n == 1 else many}: {where}")
    notes: list[str] = []
    infra = [c for c in changes.top_level(ChangeKind.INFRASTRUCTURE) if c.head is not Verdict.INTERRUPTED]
    if infra and policy is not Policy.ANY_FAILURE:
        notes.append(
            f"{_plural(len(infra), 'infrastructure problem')} (crash / timeout / out of memory) "
            f"{'was' if len(infra) == 1 else 'were'} not gated: rerun to confirm"
        )
    errors = changes.top_level(ChangeKind.ERROR)
    if errors and (allow_errors or policy is Policy.NEVER):
        notes.append(
            f"{_plural(len(errors), 'check')} exportwatch could not complete "
            f"{'was' if len(errors) == 1 else 'were'} allowed: "
            f"{'it is not a pass' if len(errors) == 1 else 'they are not passes'}"
        )
    elif any(c.head is not Verdict.ERROR for c in errors):
        notes.append("exportwatch failed while checking some results on base: they could not be compared")
    expected = [c for c in changes.top_level() if c.expected and c.head in FAILING]
    if expected:
        notes.append(f"{_plural(len(expected), 'expected failure')} (xfail) did not count")
    stale = changes.xfail_passing
    if stale:
        notes.append(f"{len(stale)} xfail entr{'y' if len(stale) == 1 else 'ies'} now pass: remove them")
    return GateResult(
        policy=policy,
        passed=not failing,
        failing=tuple(c.key for c in failing),
        reasons=tuple(reasons),
        notes=tuple(notes),
    )


_MAX_NAMED = 10
_INTERRUPTED_NOUNS = (
    "export interrupted (the head report is partial)",
    "exports interrupted (the head report is partial)",
)
_REASON_NOUNS = {
    ChangeKind.REGRESSION: ("regression", "regressions"),
    ChangeKind.CHANGED_FAILURE: ("changed failure", "changed failures"),
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
