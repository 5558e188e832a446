"""One job's submodules as a tree of display nodes: the picture every tree view draws.

Pure and torch-free. The HTML report draws it with colours and ``<details>``; a text tree (the
job summary's) can draw the same nodes with :attr:`VerdictStyle.emoji` and indentation, using
:func:`failing_branch` to keep only what broke. Deciding what a node *is* (its verdict after
``same-as`` links, whether its branch fails, which origin explains it, how it changed since
the base) happens here once, so the views cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from exportwatch.diff import Cell, ChangeKind, Changes, JobKey
from exportwatch.report import (
    FAILING,
    INFRASTRUCTURE,
    PASSING,
    JobResult,
    SubmoduleResult,
    Verdict,
    follow_same_as,
)
from exportwatch.report.tree import failure_identity, is_descendant, origin_paths

#: Deeper paths hang from their ancestor at this depth (a hostile report cannot exhaust the stack
#: of a recursive renderer; real module trees are a few dozen levels at most).
MAX_DEPTH = 48


@dataclass(frozen=True, kw_only=True)
class VerdictStyle:
    """How every view shows one verdict: an emoji (markdown, text), a glyph any font has (HTML),
    a short label, and a tone that picks the colour."""

    emoji: str
    glyph: str
    label: str
    tone: str  # pass | fail | infra | error | neutral


STYLES: Mapping[Verdict, VerdictStyle] = {
    Verdict.OK: VerdictStyle(emoji="✅", glyph="✓", label="ok", tone="pass"),
    Verdict.COVERED: VerdictStyle(emoji="☑️", glyph="✓", label="covered", tone="pass"),
    Verdict.SAME_AS: VerdictStyle(emoji="🔗", glyph="=", label="same as", tone="neutral"),
    Verdict.NOT_CALLED: VerdictStyle(emoji="➖", glyph="–", label="not called", tone="neutral"),
    Verdict.SKIPPED: VerdictStyle(emoji="⏭️", glyph="»", label="skipped", tone="neutral"),
    Verdict.FAIL: VerdictStyle(emoji="❌", glyph="✗", label="fail", tone="fail"),
    Verdict.MISMATCH: VerdictStyle(emoji="❗", glyph="≠", label="mismatch", tone="fail"),
    Verdict.ERROR: VerdictStyle(emoji="🐞", glyph="!", label="error", tone="error"),
    Verdict.CRASH: VerdictStyle(emoji="💥", glyph="✸", label="crash", tone="infra"),
    Verdict.TIMEOUT: VerdictStyle(emoji="⏱️", glyph="◷", label="timeout", tone="infra"),
    Verdict.OOM: VerdictStyle(emoji="🪫", glyph="▣", label="oom", tone="infra"),
    Verdict.INTERRUPTED: VerdictStyle(emoji="⏹️", glyph="■", label="interrupted", tone="infra"),
}


def style(verdict: Verdict) -> VerdictStyle:
    return STYLES[verdict]


@dataclass(frozen=True, kw_only=True)
class TreeNode:
    """One submodule as drawn: its listed result, the result it shares, and its place."""

    path: str  # "" is the root
    name: str  # the path relative to the parent node (the model's name at the root)
    result: SubmoduleResult  # as listed in the report
    shown: SubmoduleResult  # what it stands for: ``same-as`` links followed
    failing: bool  # ``shown`` fails (infrastructure and exportwatch errors included)
    branch_fails: bool  # this node or a node below it fails: drawn expanded
    origin: bool  # fails for its own reason (report.tree.origin_paths)
    caused_by: str | None  # a failing non-origin: the origin below it that fails for the same reason
    twin: str | None  # a ``same-as`` node: the listed path it shares its result with
    change: ChangeKind | None  # with a base: how this path changed (exportwatch.diff)
    children: tuple[TreeNode, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return self.result.verdict

    @property
    def style(self) -> VerdictStyle:
        """The listed verdict's style, except that a ``same-as`` of a failure looks like one."""
        if self.result.verdict == Verdict.SAME_AS and self.shown.verdict in FAILING:
            return STYLES[self.shown.verdict]
        return STYLES[self.result.verdict]

    @property
    def passing(self) -> bool:
        return self.shown.verdict in PASSING

    @property
    def infrastructure(self) -> bool:
        return self.shown.verdict in INFRASTRUCTURE

    def count(self) -> int:
        """Nodes in this subtree, itself included."""
        return sum(1 for _ in walk(self))


def walk(node: TreeNode, depth: int = 0) -> Iterator[tuple[int, TreeNode]]:
    """Every node of the subtree, pre-order, with its depth (the root at ``depth``)."""
    stack = [(depth, node)]
    while stack:
        level, current = stack.pop()
        yield level, current
        stack.extend((level + 1, child) for child in reversed(current.children))


def failing_branch(node: TreeNode) -> TreeNode | None:
    """The subtree cut down to the branches that fail (None when nothing in it fails).

    A failing node keeps its failing children only; what passes below it is left out, so a
    text view can show "where it broke" within a size budget.
    """
    if not node.branch_fails:
        return None
    kept = tuple(child for child in (failing_branch(c) for c in node.children) if child is not None)
    return replace(node, children=kept)


def changes_by_job(changes: Changes) -> dict[tuple[str, str, str], dict[str, ChangeKind]]:
    """Each job's change kind per path, keyed like :attr:`JobResult.key`: the ``changes`` that
    :func:`build_tree` marks nodes with. Empty without a base (nothing changed *from* anything)."""
    if not changes.has_base:
        return {}
    out: dict[tuple[str, str, str], dict[str, ChangeKind]] = {}
    for (model, target, device, path), cell in changes.cells.items():
        out.setdefault((model, target, device), {})[path] = cell.kind
    return out


def head_cells_by_job(changes: Changes) -> dict[JobKey, list[Cell]]:
    """Each job's cells that have a result on head, in report order (one pass, nothing copied)."""
    by_job: dict[JobKey, list[Cell]] = {}
    for cell in changes.cells.values():
        if cell.head is None or cell.head_result is None:
            continue  # removed, or no result on head
        cells = by_job.get(cell.job_key)
        if cells is None:
            cells = by_job[cell.job_key] = []
        cells.append(cell)
    return by_job


def head_job(key: JobKey, cells: Sequence[Cell]) -> JobResult:
    """One head job rebuilt from its cells (:func:`head_cells_by_job`): each listed path with
    its head result, a ``same-as`` cell as the link it was."""
    subs = []
    for cell in cells:
        assert cell.head_result is not None
        if cell.same_as is not None:
            listed = SubmoduleResult(
                path=cell.path, module_type=cell.module_type, verdict=Verdict.SAME_AS, same_as=cell.same_as
            )
        elif cell.head_result.path == cell.path:
            listed = cell.head_result  # the common case: no copy
        else:
            listed = replace(cell.head_result, path=cell.path)
        subs.append(listed)
    model, target, device = key
    root = next((s for s in subs if s.path == ""), None)
    verdict = follow_same_as(root, {s.path: s for s in subs}.get).verdict if root else Verdict.OK
    return JobResult(
        model=model,
        target=target,
        device=device,
        verdict=verdict,
        reason=root.reason if root else None,
        submodules=subs,
    )


def head_jobs(changes: Changes) -> list[JobResult]:
    """The head side's jobs, rebuilt from ``changes`` for views that get only a diff (the job
    summary): see :func:`head_job`."""
    return [head_job(key, cells) for key, cells in head_cells_by_job(changes).items()]


def build_tree(job: JobResult, *, changes: Mapping[str, ChangeKind] | None = None) -> TreeNode:
    """``job``'s submodules as a tree under its root.

    A node hangs from the nearest *listed* ancestor (a sweep need not list the children of a
    module that exported), in report order; a repeated path is drawn once. ``changes`` maps a
    path to its change kind from :func:`exportwatch.diff.diff_reports`, when there is a base.
    """
    facts = _JobFacts.of(job)
    children: dict[str, list[str]] = {path: [] for path in facts.index}
    for path in facts.index:
        if path:
            children[_parent(path, facts.index)].append(path)
    # Which branches fail, bottom-up over an explicit order (no recursion on untrusted depth).
    branch_fails: dict[str, bool] = {}
    for path in reversed(_preorder(children)):
        branch_fails[path] = path in facts.failing or any(branch_fails[c] for c in children[path])
    return facts.nodes(children, branch_fails=branch_fails, changes=changes)


def failing_tree(job: JobResult, *, changes: Mapping[str, ChangeKind] | None = None) -> TreeNode | None:
    """``failing_branch(build_tree(job, changes=changes))``, built without the rest of the tree:
    only the failing nodes and their ancestors become nodes (the job summary draws a failing
    branch per job, and a job of thousands of passing submodules should cost what it shows)."""
    facts = _JobFacts.of(job)
    if not facts.failing:
        return None
    branch: set[str] = set()
    for path in facts.failing:
        while path not in branch:
            branch.add(path)
            if not path:
                break
            path = _parent(path, facts.index)
    children: dict[str, list[str]] = {path: [] for path in branch}
    for path in facts.index:  # report order, as build_tree
        if path and path in branch:
            children[_parent(path, facts.index)].append(path)
    return facts.nodes(children, branch_fails=dict.fromkeys(branch, True), changes=changes)


@dataclass(frozen=True)
class _JobFacts:
    """What every tree of one job reads: its submodules by path (the first of a repeated path),
    what each shows after same-as, which fail, and its origins in report order."""

    job: JobResult
    index: dict[str, SubmoduleResult]
    shown: dict[str, SubmoduleResult]
    failing: set[str]
    origin_set: set[str]
    origins: list[str]

    @classmethod
    def of(cls, job: JobResult) -> _JobFacts:
        index: dict[str, SubmoduleResult] = {}
        for sub in job.submodules:
            index.setdefault(sub.path, sub)
        index[""] = index.get("") or SubmoduleResult(
            path="", module_type="", verdict=job.verdict, reason=job.reason
        )
        shown = {path: follow_same_as(sub, index.get) for path, sub in index.items()}
        origin_set = origin_paths(job)
        return cls(
            job=job,
            index=index,
            shown=shown,
            failing={path for path, result in shown.items() if result.verdict in FAILING},
            origin_set=origin_set,
            origins=[path for path in index if path in origin_set],  # report order: deterministic
        )

    def nodes(
        self,
        children: Mapping[str, list[str]],
        *,
        branch_fails: Mapping[str, bool],
        changes: Mapping[str, ChangeKind] | None,
    ) -> TreeNode:
        """The tree of ``children`` under the root, built bottom-up (no recursion on untrusted depth)."""
        built: dict[str, TreeNode] = {}
        for path in reversed(_preorder(children)):
            sub = self.index[path]
            twin = sub.same_as if sub.verdict == Verdict.SAME_AS and sub.same_as in self.index else None
            built[path] = TreeNode(
                path=path,
                name=_name(path, self.index, self.job),
                result=sub,
                shown=self.shown[path],
                failing=path in self.failing,
                branch_fails=branch_fails[path],
                origin=path in self.origin_set and path in self.failing,
                caused_by=_caused_by(path, self.shown, self.origins, self.failing),
                twin=twin,
                change=(changes or {}).get(path),
                children=tuple(built[c] for c in children[path]),
            )
        return built[""]


def _parent(path: str, index: Mapping[str, SubmoduleResult]) -> str:
    """The nearest listed ancestor, at most :data:`MAX_DEPTH` levels below the root."""
    parts = path.split(".")
    for end in range(min(len(parts) - 1, MAX_DEPTH), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in index:
            return candidate
    return ""


def _preorder(children: Mapping[str, list[str]]) -> list[str]:
    order: list[str] = []
    stack = [""]
    while stack:
        path = stack.pop()
        order.append(path)
        stack.extend(reversed(children[path]))
    return order


def _name(path: str, index: Mapping[str, SubmoduleResult], job: JobResult) -> str:
    if not path:
        return job.model
    parent = _parent(path, index)
    return path[len(parent) + 1 :] if parent else path


def _caused_by(
    path: str, shown: Mapping[str, SubmoduleResult], origins: list[str], failing: set[str]
) -> str | None:
    """The first origin below ``path`` that fails for the same reason, for a failing non-origin."""
    if path not in failing or path in origins:  # a short list: origins are few
        return None
    mine = failure_identity(shown[path])
    for other in origins:
        if other in failing and is_descendant(other, path) and failure_identity(shown[other]) == mine:
            return other
    return None
