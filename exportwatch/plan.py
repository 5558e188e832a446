"""Splitting a sweep across matrix jobs, and ordering a sweep's queue: pure scheduling, no torch.

A sweep's unit of work is one model with all its selected targets (the model is built and its
inputs captured once, then every target reuses them), so shards are made of whole models.

Every matrix job computes the same split on its own, from the same manifest and the same cost
history, and keeps its own part: ``exportwatch sweep --shard I/N`` needs no coordinator. The
split is deterministic (it depends on the units and the costs only, not on their order or on the
machine), and every unit lands in exactly one shard. Costs come from a previous report when one
is given (``--durations REPORT``); all shards of one run must be given the same one, or their
splits disagree (``exportwatch merge`` then refuses the shards as overlapping or missing jobs).

Balancing is greedy LPT (longest processing time first): sort by cost, largest first, and give
each unit to the least-loaded shard. Its longest shard is at most ``4/3 - 1/(3N)`` times the
best possible split (Graham, 1969), and in practice within a few percent of it.
"""

from __future__ import annotations

import heapq
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from exportwatch.manifest import KNOWN_TARGETS, ConfigError, Manifest, ModelSpec, did_you_mean
from exportwatch.report import SCHEMA_VERSION, Report
from exportwatch.report.shards import ShardError

#: Cost of one target of a model nothing is known about. Costs are relative: with history they
#: are seconds, and unknown models are then priced at the median known per-target time instead.
DEFAULT_TARGET_COST = 1.0


@dataclass(kw_only=True)
class Unit:
    """One model on one device with the targets still to sweep; what a worker is handed."""

    spec: ModelSpec
    targets: list[str]
    device: str | None  # override from the command line; None: the spec's
    order: int  # manifest position, to keep the report in manifest order


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What one sweep does, decided once and passed on: this run's units (a shard's, or all),
    every job of the whole selection (each shard's report lists them), the shard, and the
    costs that order the queue longest first."""

    units: tuple[Unit, ...]
    planned: tuple[str, ...]  # "model/target" for the whole selection, manifest order
    shard: tuple[int, int] | None = None
    costs: Mapping[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Jobs (model × target) this run sweeps."""
        return sum(len(unit.targets) for unit in self.units)

    def queue(self) -> list[Unit]:
        return longest_first(self.units, self.costs)


def execution_order(targets: Sequence[str]) -> list[str]:
    """The order a model's process sweeps its targets: ``export`` before ``onnx``, ``aoti`` and
    ``executorch``, which start from the capture ``export`` made, ``export-strict`` before
    ``onnx`` (which starts from its capture where ``export``'s failed), and ``executorch`` last
    (its lowering may rewrite that program in place; ONNX and AOTInductor get it as ``export``
    made it). The report keeps the manifest's order."""
    readers, strict_readers = trace_readers(targets)
    first = [*(["export"] if readers else []), *(["export-strict"] if strict_readers else [])]
    if not first:
        return list(targets)
    last = ["executorch"] if readers and "executorch" in targets else []
    return [*first, *(t for t in targets if t not in first and t not in last), *last]


#: The targets that take the ``export`` target's capture of the same module and call.
TRACE_READERS = ("onnx", "aoti", "executorch")
#: The targets that take the ``export-strict`` target's capture (torch.onnx's second strategy).
STRICT_TRACE_READERS = ("onnx",)


def trace_readers(targets: Sequence[str]) -> tuple[int, int]:
    """How many of ``targets`` read each of ``export``'s captures, and each of
    ``export-strict``'s (0 where that target is not swept: nothing is kept)."""
    readers = sum(t in TRACE_READERS for t in targets) if "export" in targets else 0
    strict = sum(t in STRICT_TRACE_READERS for t in targets) if "export-strict" in targets else 0
    return readers, strict


def plan_units(
    manifest: Manifest, *, models: Sequence[str] | None, targets: Sequence[str] | None, device: str | None
) -> list[Unit]:
    """One unit per selected model, with its selected targets; unknown names are config errors."""
    names = [m.name for m in manifest.models]
    for name in models or []:
        if name not in names:
            raise ConfigError(f"no model named {name!r} in {manifest.path}{did_you_mean(name, names)}")
    for target in targets or []:
        if target not in KNOWN_TARGETS:
            raise ConfigError(
                f"unknown target {target!r}{did_you_mean(target, list(KNOWN_TARGETS))}; "
                f"known: {', '.join(KNOWN_TARGETS)}"
            )
    units = []
    for order, spec in enumerate(manifest.models):
        if models and spec.name not in models:
            continue
        chosen = list(dict.fromkeys(targets)) if targets else list(spec.targets)
        units.append(Unit(spec=spec, targets=chosen, device=device, order=order))
    return units


def build_plan(
    manifest: Manifest,
    *,
    models: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    device: str | None = None,
    shard: tuple[int, int] | None = None,
    history: Report | None = None,
) -> Plan:
    """The plan of a sweep: select, cost and (with ``shard``) split, once."""
    units = plan_units(manifest, models=models, targets=targets, device=device)
    costs = estimate_costs(units, history)
    chosen = select_shard(units, shard, costs) if shard is not None else units
    return Plan(
        units=tuple(chosen),
        planned=tuple(f"{u.spec.name}/{t}" for u in units for t in u.targets),
        shard=shard,
        costs=costs,
    )


# Read-only members (properties): scheduling never assigns them, and a read-only protocol member
# is covariant, so ``workers.Unit`` (whose ``spec`` is a ``ModelSpec``) satisfies it; a plain
# mutable attribute would be invariant and demand ``spec: _Spec`` exactly.
class _Spec(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def timeout(self) -> float: ...


class UnitLike(Protocol):
    """What scheduling needs of a ``workers.Unit`` (kept structural: no torch, no cycle)."""

    @property
    def spec(self) -> _Spec: ...
    @property
    def targets(self) -> Sequence[str]: ...
    @property
    def order(self) -> int: ...


#: The concrete unit type a caller schedules: the functions that hand units back return the
#: caller's own type (``list[Unit]`` in, ``list[Unit]`` out), not the bare protocol.
U = TypeVar("U", bound=UnitLike)


def estimate_costs(units: Sequence[UnitLike], previous: Report | None = None) -> dict[str, float]:
    """Expected cost of each unit (one model, all its selected targets), keyed by model name.

    In order of preference, per model:

    1. **Durations** of that model's jobs in ``previous`` (a report of an earlier sweep, e.g.
       the base branch's, or a result cache read by :func:`load_history`): the sum of the
       recorded ``duration_s`` of the unit's targets, in seconds. A target the history lacks
       is priced at the mean of the model's known targets; a job that timed out counts as its
       timeout.
    2. **Model size**: the ``parameters`` count the previous report recorded for the model,
       scaled into seconds by the seconds-per-parameter rate of the models that have both
       (or, with no durations at all, relative to the median model).
    3. **A default** of the median known per-target cost (``1.0`` without any history) per
       target. The parent process never imports torch and never builds a model, so without
       history it cannot know a model's size: every model then counts the same per target,
       and the split balances the number of jobs.

    Always positive, so every unit weighs something.
    """
    jobs = list(previous.jobs) if previous is not None else []
    timeouts = {u.spec.name: float(u.spec.timeout) for u in units}
    durations: dict[tuple[str, str], float] = {}
    parameters: dict[str, int] = {}
    for job in jobs:
        seconds = _job_seconds(job, timeouts.get(job.model))
        if seconds is not None and seconds > 0:
            # Several devices for one (model, target): keep the slowest, it bounds the job.
            key = (job.model, job.target)
            durations[key] = max(durations.get(key, 0.0), seconds)
        if job.parameters:
            parameters[job.model] = max(parameters.get(job.model, 0), int(job.parameters))

    per_model: dict[str, list[float]] = {}
    for (model, _target), seconds in durations.items():
        per_model.setdefault(model, []).append(seconds)
    default = statistics.median(durations.values()) if durations else DEFAULT_TARGET_COST
    rate = _seconds_per_parameter(durations, parameters)
    median_params = statistics.median(parameters.values()) if parameters else None

    costs: dict[str, float] = {}
    for unit in units:
        name = unit.spec.name
        known = per_model.get(name)
        if known:
            mean = sum(known) / len(known)
            cost = sum(durations.get((name, t), mean) for t in unit.targets)
        elif name in parameters and rate is not None:
            cost = max(parameters[name] * rate, default * 0.1) * len(unit.targets)
        elif name in parameters and median_params:
            cost = default * (parameters[name] / median_params) * len(unit.targets)
        else:
            cost = default * len(unit.targets)
        costs[name] = max(float(cost), 1e-6)
    return costs


def _job_seconds(job: object, timeout: float | None) -> float | None:
    """Seconds a job's sweep took; results from a cache or the base keep their sweep's time."""
    verdict = str(getattr(job, "verdict", ""))
    if verdict == "timeout" and timeout:
        return timeout
    if verdict == "skipped":
        return None  # took no time: says nothing about the cost of sweeping it
    return float(getattr(job, "duration_s", 0.0) or 0.0)


def load_history(path: Path) -> Report:
    """Cost history for :func:`estimate_costs`: a report (``.json``, or a ``.jsonl`` log of an
    unfinished sweep) or a ``--cache-dir`` directory (every entry's job, whatever its hash).

    Raises ``ReportError`` when ``path`` is neither. The only function here that reads files.
    """
    from exportwatch.report import Report, ReportError, load_report

    path = Path(path)
    if not path.is_dir():
        return load_report(path)
    jobs = []
    for entry in sorted(path.glob("*.json")):
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
            jobs.extend(Report.from_dict({"schema_version": SCHEMA_VERSION, "jobs": [data["job"]]}).jobs)
        except (OSError, ValueError, KeyError, TypeError, ReportError):
            continue  # an unreadable entry costs a little balance, nothing more
    return Report(jobs=jobs)


def _seconds_per_parameter(
    durations: Mapping[tuple[str, str], float], parameters: Mapping[str, int]
) -> float | None:
    """Least-squares slope through the origin of per-target seconds against parameters."""
    pairs = [(parameters[m], s) for (m, _t), s in durations.items() if parameters.get(m)]
    if not pairs:
        return None
    denominator = sum(p * p for p, _ in pairs)
    return sum(p * s for p, s in pairs) / denominator if denominator else None


def _cost_of(unit: UnitLike, costs: Mapping[str, float]) -> float:
    return float(costs.get(unit.spec.name, DEFAULT_TARGET_COST * len(unit.targets)))


def _lpt_order(units: Iterable[U], costs: Mapping[str, float]) -> list[U]:
    """Largest cost first; equal costs by model name, so input order never matters."""
    return sorted(units, key=lambda u: (-_cost_of(u, costs), u.spec.name, tuple(u.targets)))


def partition(units: Sequence[U], n: int, costs: Mapping[str, float]) -> list[list[U]]:
    """Split ``units`` into ``n`` shards of about equal total cost (greedy LPT).

    Deterministic: units sorted by cost (descending) then model name; each goes to the
    least-loaded shard, ties to the lowest index. Whole units only: a model's targets stay in
    one shard, so the model is built and its inputs captured once. Each shard's units are
    returned in manifest order (``unit.order``); a shard may be empty when ``n`` exceeds the
    number of models.
    """
    if n < 1:
        raise ShardError(f"cannot split into {n} shards")
    shards: list[list[U]] = [[] for _ in range(n)]
    heap = [(0.0, index) for index in range(n)]  # (load, shard index): ties → lowest index
    for unit in _lpt_order(units, costs):
        load, index = heapq.heappop(heap)
        shards[index].append(unit)
        heapq.heappush(heap, (load + _cost_of(unit, costs), index))
    return [sorted(shard, key=lambda u: (u.order, u.spec.name)) for shard in shards]


def shard_loads(shards: Sequence[Sequence[UnitLike]], costs: Mapping[str, float]) -> list[float]:
    """Total expected cost of each shard (for logs and tests)."""
    return [sum(_cost_of(u, costs) for u in shard) for shard in shards]


def select_shard(units: Sequence[U], shard: tuple[int, int], costs: Mapping[str, float]) -> list[U]:
    """The units of shard ``I`` of ``N`` (``shard=(I, N)``, counting from 1), manifest order."""
    index, count = shard
    if not 1 <= index <= count:
        raise ShardError(f"shard {index}/{count}: the index must be between 1 and {count}")
    return partition(units, count, costs)[index - 1]


def longest_first(units: Sequence[U], costs: Mapping[str, float]) -> list[U]:
    """Queue order for the worker pool: most expensive unit first (LPT on the workers).

    Started last, a long model keeps one worker busy while the others sit idle; started first,
    the short ones fill in around it. Equal costs (no history: one per target) keep manifest
    order, so a sweep without history runs as it always did.
    """
    return sorted(units, key=lambda u: (-_cost_of(u, costs), u.order, u.spec.name))
