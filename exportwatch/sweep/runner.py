"""Manifest → plan → workers → report: the sweep as one call, streaming results to disk.

Kept free of torch imports: the parent process only schedules, the workers export.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from exportwatch import __version__, git
from exportwatch import plan as shard
from exportwatch.baseline import provenance as deps
from exportwatch.manifest import KNOWN_TARGETS, ConfigError, Manifest, did_you_mean
from exportwatch.report import Environment, JobResult, JsonlLog, Report, write_report
from exportwatch.sweep.progress import Progress
from exportwatch.sweep.settings import SweepSettings
from exportwatch.sweep.workers import Event, Unit, WorkerPool


@dataclass(kw_only=True)
class SweepRequest:
    manifest: Manifest
    output: Path
    models: list[str] | None = None
    targets: list[str] | None = None
    device: str | None = None
    workers: int | None = None
    timeout_s: float | None = None
    max_memory_mb: float | None = None
    artifacts_dir: Path | None = None
    verbose: bool = False
    shard: tuple[int, int] | None = None  # (I, N): sweep only the I-th of N shards
    history: Report | None = None  # an earlier report (or cache): job durations for balancing


@dataclass(kw_only=True)
class SweepResult:
    report: Report
    config_errors: list[str] = field(default_factory=list)
    partial_log: Path | None = None


def plan_units(
    manifest: Manifest, *, models: list[str] | None, targets: list[str] | None, device: str | None
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


def environment() -> Environment:
    """Library versions, read from package metadata so the parent need not import torch."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return Environment(
        python=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        torch=version("torch"),
        onnx=version("onnx"),
        onnxscript=version("onnxscript"),
        onnxruntime=version("onnxruntime"),
    )


def repository_root(manifest: Manifest) -> Path:
    """User frames and dependency paths are relative to the git repository of the manifest."""
    return git.toplevel(manifest.root) or manifest.root


def new_report(manifest: Manifest) -> Report:
    repo_root = repository_root(manifest)
    try:
        manifest_path = str(manifest.path.resolve().relative_to(repo_root.resolve()))
    except ValueError:
        manifest_path = str(manifest.path)
    return Report(
        tool_version=__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        manifest=manifest_path,
        repository=os.environ.get("GITHUB_REPOSITORY") or None,
        git_sha=git.head_sha(manifest.root),
        environment=environment(),
    )


def partial_log_path(output: Path) -> Path:
    return output.with_name(output.name + "l") if output.suffix == ".json" else output.with_suffix(".jsonl")


def run_sweep(request: SweepRequest, *, progress: Progress | None = None) -> SweepResult:
    """Sweep every selected job; each finished job is on disk before the next one starts."""
    manifest = request.manifest
    units = plan_units(manifest, models=request.models, targets=request.targets, device=request.device)
    report = new_report(manifest)
    report.plan = [f"{u.spec.name}/{t}" for u in units for t in u.targets]  # whole plan, every shard
    costs = shard.estimate_costs(units, request.history)
    if request.shard is not None:
        units = shard.select_shard(units, request.shard, costs)
        report.shard = shard.format_shard(request.shard)
    total = sum(len(u.targets) for u in units)
    progress = progress or Progress(total=total, quiet=True)
    log_path = partial_log_path(request.output)
    journal = JsonlLog(log_path, report)
    results: dict[tuple[int, int], JobResult] = {}
    order = {u.spec.name: (u.order, {t: i for i, t in enumerate(u.targets)}) for u in units}
    config_errors: list[str] = []
    started = time.monotonic()

    def on_event(event: Event) -> None:
        if event.kind == "start" and event.target:
            progress.start(event.model, event.target)
        elif event.kind == "result" and event.job is not None:
            journal.append(event.job)
            model_order, target_order = order[event.model]
            results[(model_order, target_order.get(event.job.target, 99))] = event.job
            progress.result(event.job)
        elif event.kind == "config-error" and event.message:
            config_errors.append(event.message)
            progress.message(f"error: {event.message}")

    settings = SweepSettings(
        manifest_root=manifest.root,
        repo_root=repository_root(manifest),
        artifacts_dir=request.artifacts_dir,
        verbose=request.verbose,
    )
    pool = WorkerPool(
        size=request.workers or os.cpu_count() or 1,
        settings=settings,
        timeout_s=request.timeout_s,
        max_memory_mb=request.max_memory_mb,
        on_event=on_event,
    )
    try:
        pool.run(shard.longest_first(units, costs))
    finally:
        journal.close()
        progress.close()
    report.jobs = [results[k] for k in sorted(results)]
    deps.stamp_report(report, manifest, device=request.device)  # dependencies + content_hash
    report.duration_s = round(time.monotonic() - started, 3)
    report.complete = True
    write_report(report, request.output)
    return SweepResult(report=report, config_errors=config_errors, partial_log=log_path)
