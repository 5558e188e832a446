"""Pure functions over one job's submodule tree: same-as links, origins, failure groups."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from exportwatch.report.model import (
    FAILING,
    JobResult,
    SubmoduleResult,
    UserFrame,
    Verdict,
    follow_same_as,
)


def is_descendant(path: str, ancestor: str) -> bool:
    """``a.b`` is below ``a``; every path is below the root ``""``; no path is below itself."""
    return path != ancestor and (ancestor == "" or path.startswith(ancestor + "."))


def _has_descendant(sorted_paths: list[str], ancestor: str) -> bool:
    """Whether any of ``sorted_paths`` is below ``ancestor`` (``is_descendant``), by bisection."""
    if ancestor == "":
        return bool(sorted_paths) and sorted_paths[-1] != ""  # "" sorts first: is there another?
    prefix = ancestor + "."
    at = bisect.bisect_left(sorted_paths, prefix)
    return at < len(sorted_paths) and sorted_paths[at].startswith(prefix)


def failure_identity(sub: SubmoduleResult) -> tuple[str | None, ...]:
    """What makes two failures the same: the fingerprint, else (for old reports) verdict and text."""
    if sub.fingerprint:
        return (sub.fingerprint,)
    return (sub.verdict.value, sub.category, sub.message)


def origin_paths(job: JobResult) -> set[str]:
    """The failing submodules whose failure is their own: the one definition of an origin.

    A failing submodule is an origin unless a failing descendant fails *for the same reason*
    (same fingerprint): a parent that only re-raises its child's failure is explained by the
    child, but a parent failing at its own interface (a cache object in its output) while its
    children fail for another reason is an origin too. ``same-as`` links are followed, so a
    copy is an origin exactly when the result it shares is. The deepest failing submodule of
    every chain is an origin, so every failing job has one, and a failing root is either an
    origin or explained by an origin with its fingerprint.
    """
    index = {s.path: s for s in job.submodules}
    resolved = {s.path: follow_same_as(s, index.get) for s in job.submodules}
    failing = {path: result for path, result in resolved.items() if result.verdict in FAILING}
    # A module shared under two parents is listed once, with its other paths as aliases: it is a
    # descendant of both parents.
    names = {s.path: [s.path, *s.aliases] for s in job.submodules}
    # Every name of a failing submodule, sorted, per failure identity: "is any failing descendant
    # of P failing the same way" is then a prefix search, not a scan of every pair (a model with
    # 3,000 failing submodules took 9 s; a hostile report with 100,000, hours).
    by_identity: dict[tuple[str | None, ...], list[str]] = {}
    for other, other_result in failing.items():
        by_identity.setdefault(failure_identity(other_result), []).extend(names[other])
    for listed in by_identity.values():
        listed.sort()

    computed: set[str] = set()
    for path, result in failing.items():
        if index[path].verdict == Verdict.SAME_AS:
            continue
        candidates = by_identity[failure_identity(result)]
        if not any(_has_descendant(candidates, name) for name in names[path]):
            computed.add(path)
    copies = {
        path
        for path, result in failing.items()
        if index[path].verdict == Verdict.SAME_AS and result.path in computed
    }
    return computed | copies


# ---------------------------------------------------------------------------------------------
# Grouping and origins: pure functions over the report


@dataclass(kw_only=True)
class FailureGroup:
    """Submodules of one job that fail for the same reason (one fingerprint)."""

    fingerprint: str
    category: str | None
    message: str | None
    hint: str | None
    user_frame: UserFrame | None
    paths: list[str] = field(default_factory=list)  # every failing submodule, report order
    origins: list[str] = field(default_factory=list)  # those marked origin

    @property
    def count(self) -> int:
        return len(self.paths)


def _failing(job: JobResult, sub: SubmoduleResult) -> SubmoduleResult | None:
    """The computed result behind ``sub`` when it fails (``same-as`` links followed)."""
    effective = job.effective(sub)
    return effective if effective.verdict in FAILING else None


def attribute_mismatches(job: JobResult) -> JobResult:
    """``job`` with each mismatch that a mismatching descendant explains under that cause.

    A mismatch's fingerprint names the output that disagrees, and a parent's output is not its
    child's: without this, every ancestor of one bad module is an origin of its own (five for
    one cause in ModernBERT). An ancestor whose output disagrees while a descendant's already
    does is not where the disagreement starts; it takes the fingerprint of its innermost
    mismatching descendant (the first in report order), so :func:`origin_paths` reads it as
    explained and :func:`group_failures` puts it with that origin. Its own message (which of
    its outputs disagrees, by how much) is kept. ``same-as`` copies follow their original.
    """
    index = {s.path: s for s in job.submodules}
    order = {s.path: at for at, s in enumerate(job.submodules)}
    resolved = {s.path: follow_same_as(s, index.get) for s in job.submodules}
    mismatching = {path for path, result in resolved.items() if result.verdict == Verdict.MISMATCH}
    if len(mismatching) < 2:
        return job
    # Every name of a mismatching submodule (aliases included) → its first path, sorted.
    owner: dict[str, str] = {}
    for path in mismatching:
        for name in (path, *index[path].aliases):
            owner.setdefault(name, path)
    names = sorted(owner)
    innermost = {name for name in names if not _has_descendant(names, name)}
    explained: dict[str, str] = {}  # path → fingerprint of the descendant that explains it
    for path in mismatching:
        if index[path].verdict == Verdict.SAME_AS:
            continue
        below: list[str] = []
        for name in (path, *index[path].aliases):
            start = 0 if name == "" else bisect.bisect_left(names, name + ".")
            for other in names[start:]:
                if other == name:
                    continue  # the root's own name sorts first
                if not is_descendant(other, name):
                    break
                if other in innermost:
                    below.append(owner[other])
        if below:
            first = min(below, key=order.__getitem__)
            fingerprint = resolved[first].fingerprint
            if fingerprint:
                explained[path] = fingerprint
    if not explained:
        return job
    return replace(
        job,
        submodules=[
            replace(sub, fingerprint=explained[sub.path]) if sub.path in explained else sub
            for sub in job.submodules
        ],
    )


def mark_origins(job: JobResult) -> JobResult:
    """``job`` with mismatches grouped by cause (:func:`attribute_mismatches`) and ``origin``
    set on the failing submodules whose failure is their own."""
    job = attribute_mismatches(job)
    origins = origin_paths(job)
    return replace(job, submodules=[replace(sub, origin=sub.path in origins) for sub in job.submodules])


def group_failures(job: JobResult) -> list[FailureGroup]:
    """Failing submodules grouped by fingerprint, largest group first, then report order."""
    groups: dict[str, FailureGroup] = {}
    for sub in job.submodules:
        result = _failing(job, sub)
        if result is None:
            continue
        key = result.fingerprint or "|".join(str(part) for part in failure_identity(result))
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(
                fingerprint=key,
                category=result.category,
                message=result.message,
                hint=result.hint,
                user_frame=result.user_frame,
            )
        group.paths.append(sub.path)
        if sub.origin:
            group.origins.append(sub.path)
    order = {key: index for index, key in enumerate(groups)}
    return sorted(groups.values(), key=lambda g: (-g.count, order[g.fingerprint]))
