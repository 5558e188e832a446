"""What surrounds the cells: library versions, the upgrade, partial reports, devices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exportwatch.diff.changes import Cell, Upgrade, VersionNote
from exportwatch.diff.kinds import CellKey, ChangeKind, JobKey
from exportwatch.report import JobResult, Report


def code_differs(base: JobResult, head: JobResult) -> bool:
    """The job's dependency files differ (or one side could not list them: then nothing can be
    said to be the environment's doing)."""
    if base.content_hash is None or head.content_hash is None:
        return True
    return dict(base.dependencies) != dict(head.dependencies)


def upgrade_of(
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


def version_notes(base: Report | None, head: Report) -> Iterable[VersionNote]:
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


def report_notes(base: Report | None, head: Report) -> Iterable[str]:
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
