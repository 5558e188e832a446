"""Merging shard reports (``exportwatch sweep --shard I/N``) into one report. Pure: no I/O, no torch.

The merged report is the report an unsharded sweep of the same manifest would have written,
apart from timing fields (``created_at``, ``duration_s`` and the per-job and per-submodule
``duration_s``/``peak_rss_mb``): jobs in plan order, ``shard`` cleared, ``complete`` true.

Shards are refused (:class:`MergeError`, one message listing every problem) unless they are the
complete set ``1/N … N/N`` of one sweep: same commit, tool version, library versions, manifest
and plan, no shard partial, every planned job in exactly one shard and no job outside the plan.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from exportwatch.report import JobResult, Report, ReportError
from exportwatch.report.shards import ShardError, format_shard, parse_shard

#: Report fields every shard must agree on: (label, getter).
_SAME_RUN = (
    ("commit (git_sha)", lambda r: r.git_sha),
    ("exportwatch version (tool_version)", lambda r: r.tool_version),
    ("report schema_version", lambda r: r.schema_version),
    ("torch version", lambda r: r.environment.torch),
    ("onnx version", lambda r: r.environment.onnx),
    ("onnxscript version", lambda r: r.environment.onnxscript),
    ("onnxruntime version", lambda r: r.environment.onnxruntime),
    ("manifest", lambda r: r.manifest),
    ("repository", lambda r: r.repository),
)


class MergeError(ReportError):
    """Shard reports that do not add up to one sweep; ``problems`` lists each reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"cannot merge these shard reports:\n{lines}")


@dataclass(frozen=True, kw_only=True)
class Shard:
    """A shard report with the name to call it by in messages (usually its path)."""

    name: str
    report: Report


def plan_key(job: JobResult) -> str:
    """A job's entry in ``Report.plan``: ``"model/target"``."""
    return f"{job.model}/{job.target}"


def find_report_files(paths: list[Path]) -> list[Path]:
    """Files as given; directories → their ``*.json`` files (recursively, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def merge_reports(shards: Sequence[Shard | Report]) -> Report:
    """Merge a complete set of shard reports into one, or raise :class:`MergeError`."""
    named = [
        s if isinstance(s, Shard) else Shard(name=f"report {i + 1}", report=s) for i, s in enumerate(shards)
    ]
    if not named:
        raise MergeError(["no shard reports given"])
    problems: list[str] = []
    indices = _check_shard_fields(named, problems)
    _check_same_run(named, problems)
    for shard in named:
        if not shard.report.complete:
            problems.append(
                f"{shard.name} is partial (complete: false): its sweep did not finish; rerun that shard"
            )
    if not problems:  # job checks only make sense for one consistent, complete set
        _check_jobs(named, problems)
    if problems:
        raise MergeError(problems)
    return _merged(named, indices)


def _check_shard_fields(named: Sequence[Shard], problems: list[str]) -> dict[str, tuple[int, int]]:
    indices: dict[str, tuple[int, int]] = {}
    for shard in named:
        if not shard.report.shard:
            problems.append(
                f"{shard.name} is not a shard report (no `shard` field): it was not "
                f"written by `exportwatch sweep --shard I/N`"
            )
            continue
        try:
            indices[shard.name] = parse_shard(shard.report.shard)
        except ShardError as exc:
            problems.append(f"{shard.name}: invalid shard field {shard.report.shard!r}: {exc}")
    counts = sorted({n for _, n in indices.values()})
    if len(counts) > 1:
        listing = ", ".join(f"{name}: {format_shard(s)}" for name, s in indices.items())
        problems.append(f"shards of different splits (N = {', '.join(map(str, counts))}): {listing}")
        return indices
    if not counts:
        return indices
    count = counts[0]
    by_index: dict[int, list[str]] = {}
    for name, (index, _) in indices.items():
        by_index.setdefault(index, []).append(name)
    for index, names in sorted(by_index.items()):
        if len(names) > 1:
            problems.append(f"duplicate shard {index}/{count}: {', '.join(names)}")
    if len(indices) == len(named):  # a missing index is only meaningful when all parsed
        missing = [i for i in range(1, count + 1) if i not in by_index]
        if missing:
            problems.append(
                f"missing shard{'s' if len(missing) > 1 else ''} "
                f"{', '.join(f'{i}/{count}' for i in missing)} (got {len(by_index)} of {count}); "
                f"did a matrix job fail before uploading its report?"
            )
    return indices


def _check_same_run(named: Sequence[Shard], problems: list[str]) -> None:
    first = named[0]
    for label, get in _SAME_RUN:
        values = {shard.name: get(shard.report) for shard in named}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{name}: {value!r}" for name, value in values.items())
            problems.append(f"shards differ in {label}: {listing}")
    plans = {tuple(shard.report.plan) for shard in named}
    if len(plans) > 1:
        for shard in named[1:]:
            if shard.report.plan != first.report.plan:
                problems.append(f"different plans: {_plan_difference(first, shard)}")


def _plan_difference(a: Shard, b: Shard) -> str:
    in_a, in_b = set(a.report.plan), set(b.report.plan)  # once: a plan can be long (or hostile)
    only_a = [p for p in a.report.plan if p not in in_b]
    only_b = [p for p in b.report.plan if p not in in_a]
    parts = []
    if only_a:
        parts.append(f"only {a.name} plans {', '.join(only_a[:5])}{' …' if len(only_a) > 5 else ''}")
    if only_b:
        parts.append(f"only {b.name} plans {', '.join(only_b[:5])}{' …' if len(only_b) > 5 else ''}")
    if not parts:
        parts.append(f"{a.name} and {b.name} plan the same jobs in a different order")
    return "; ".join(parts)


def _check_jobs(named: Sequence[Shard], problems: list[str]) -> None:
    plan = named[0].report.plan
    planned = set(plan)
    owner: dict[tuple[str, str, str], str] = {}
    covered: set[str] = set()
    for shard in named:
        for job in shard.report.jobs:
            if job.key in owner:
                where = owner[job.key]
                also = "twice in " + where if where == shard.name else f"in {where} and {shard.name}"
                problems.append(
                    f"overlapping job {'/'.join(job.key)}: {also} (were the shards split with "
                    f"different --durations reports or manifests?)"
                )
                continue
            owner[job.key] = shard.name
            key = plan_key(job)
            if key not in planned:
                problems.append(f"{shard.name} has job {'/'.join(job.key)}, which is not in the plan")
            covered.add(key)
    missing = [p for p in plan if p not in covered]
    if missing:
        problems.append(
            f"missing job{'s' if len(missing) > 1 else ''}: {', '.join(missing[:10])}"
            f"{f' and {len(missing) - 10} more' if len(missing) > 10 else ''} "
            f"(planned, but in no shard's report)"
        )


def _merged(named: Sequence[Shard], indices: dict[str, tuple[int, int]]) -> Report:
    ordered = sorted(named, key=lambda s: indices[s.name])
    first = ordered[0].report
    position = {key: i for i, key in enumerate(first.plan)}
    jobs = [copy.deepcopy(job) for shard in ordered for job in shard.report.jobs]
    # Plan order (manifest order, then the model's targets); a sort is stable for the rest.
    jobs.sort(key=lambda j: (position.get(plan_key(j), len(position)), j.device))
    # Timing: the merged sweep started with its earliest shard and took as long as its slowest.
    stamps = [s.report.created_at for s in ordered if s.report.created_at]
    return replace(
        copy.deepcopy(first),
        jobs=jobs,
        shard=None,
        complete=True,
        created_at=min(stamps) if stamps else first.created_at,
        duration_s=max(s.report.duration_s for s in ordered),
    )


#: Fields that differ between two runs of the same sweep (for comparisons in tests and tools).
TIMING_FIELDS = {
    "report": ("created_at", "duration_s"),
    "job": ("duration_s", "peak_rss_mb", "compile_s"),
    "submodule": ("duration_s",),
}


def without_timing(report: Report) -> dict:
    """``report.to_dict()`` with every timing field removed: equal for equal sweeps."""
    data = report.to_dict()
    for name in TIMING_FIELDS["report"]:
        data.pop(name, None)
    for job in data.get("jobs", []):
        for name in TIMING_FIELDS["job"]:
            job.pop(name, None)
        for sub in job.get("submodules", []):
            for name in TIMING_FIELDS["submodule"]:
                sub.pop(name, None)
            if isinstance(sub.get("blockers"), dict):
                sub["blockers"].pop("duration_s", None)  # draft_export's own time
    return data
