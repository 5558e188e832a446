"""Manifest → plan → workers → report: the sweep as one call, streaming results to disk.

Kept free of torch imports: the parent process only schedules, the workers export.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

from exportwatch.errors import UsageError
from exportwatch.manifest import Manifest
from exportwatch.plan import Plan, Unit, build_plan
from exportwatch.report import JobResult, JsonlLog, Report, Verdict, provenance, write_report
from exportwatch.report.provenance import new_report, repository_root
from exportwatch.report.shards import format_shard
from exportwatch.sweep.devices import require_devices
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.preload import model_packages
from exportwatch.sweep.progress import Progress
from exportwatch.sweep.protocol import (
    JobFinished,
    News,
    SweepNote,
    TargetPhase,
    TargetStarted,
    UnitConfigError,
    UnitNote,
)
from exportwatch.sweep.settings import SweepSettings
from exportwatch.sweep.workers import WorkerPool

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a job's progress line says when its model's configuration error is printed once, after.
CONFIG_ERROR_REASON = "configuration error, below"


@dataclass(frozen=True, kw_only=True)
class SweepRequest:
    manifest: Manifest
    output: Path
    plan: Plan  # built once (``plan.build_plan``), by the caller that also shows its size
    options: SweepOptions = field(default_factory=SweepOptions)

    @classmethod
    def of(
        cls,
        manifest: Manifest,
        *,
        output: Path,
        options: SweepOptions | None = None,
        models: Sequence[str] | None = None,
        shard: tuple[int, int] | None = None,
        history: Report | None = None,
    ) -> SweepRequest:
        """A request with its plan: the models selected, the options' targets and device."""
        options = options or SweepOptions()
        plan = build_plan(
            manifest,
            models=models,
            targets=options.targets,
            device=options.device,
            shard=shard,
            history=history,
        )
        return cls(manifest=manifest, output=output, plan=plan, options=options)


@dataclass(kw_only=True)
class SweepResult:
    report: Report
    #: Located manifest errors found in the models' processes, each once: the caller prints them
    #: (the progress lines only say that a job was skipped for one).
    config_errors: list[str] = field(default_factory=list)
    #: Warnings about the manifest (an ``expect.xfail`` path the model does not have), each once.
    warnings: list[str] = field(default_factory=list)
    partial_log: Path | None = None


def partial_log_path(output: Path) -> Path:
    return output.with_name(output.name + "l") if output.suffix == ".json" else output.with_suffix(".jsonl")


class SweepSession:
    """Sweeps run one after another on one warm fork server: ``compare`` sweeps HEAD, then the
    merge-base's worktree, and pays torch's, the exporters' and the libraries' start-up once.

    Use as a context manager; :meth:`sweep` has ``run_sweep``'s signature.
    """

    def __init__(self) -> None:
        self.pool: WorkerPool | None = None
        self.sweeps = 0

    def sweep(self, request: SweepRequest, *, progress: Progress | None = None) -> SweepResult:
        return run_sweep(request, progress=progress, session=self)

    def pool_for(self, settings: SweepSettings) -> WorkerPool:
        """The session's pool, started by its first sweep with that sweep's options; a fresh
        one where the warm server imported, as an installed library, a module this sweep's
        tree has its own copy of (the base's models must import the base's copy)."""
        self.sweeps += 1
        if self.pool is not None and shadowed_modules(self.pool.preloaded_tops, settings):
            self.close()
        if self.pool is None:
            self.pool = _pool(settings, persistent=True)
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __enter__(self) -> SweepSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shadowed_modules(tops: Iterable[str], settings: SweepSettings) -> list[str]:
    """Of ``tops`` (imported once for every fork), those the sweep's own tree also has, as a
    package or module on its import path inside the tree: its model processes need theirs."""
    tree = settings.repo_root.resolve()
    places = [settings.manifest_root, *(Path(p) for p in settings.sys_path or ())]
    found = []
    for top in sorted(tops):
        for place in places:
            try:
                inside = place.resolve().is_relative_to(tree)
            except (OSError, RuntimeError):
                continue
            if inside and ((place / top).is_dir() or (place / f"{top}.py").is_file()):
                found.append(top)
                break
    return found


def _pool(settings: SweepSettings, *, persistent: bool = False) -> WorkerPool:
    options = settings.options
    return WorkerPool(
        size=options.workers or os.cpu_count() or 1,
        settings=settings,
        timeout_s=options.timeout_s,
        max_memory_mb=options.max_memory_mb,
        on_event=lambda news: None,
        persistent=persistent,
    )


def run_sweep(
    request: SweepRequest, *, progress: Progress | None = None, session: SweepSession | None = None
) -> SweepResult:
    """Sweep every selected job; each finished job is on disk before the next one starts.

    With ``session``, on that session's warm fork server (which stays up for its next sweep).
    """
    plan, options = request.plan, request.options
    units = list(plan.units)
    require_devices(((u.spec.name, u.device or u.spec.device) for u in units), allow_skip=options.allow_skip)
    from exportwatch.targets import require_installed  # the registry: torch-free, lazily

    require_installed({target for unit in units for target in unit.targets})
    progress = progress or Progress(total=plan.total, quiet=True)
    log_path = partial_log_path(request.output)
    with _sole_writer(log_path, report=request.output):
        # The report's header (git, the installed packages' versions: up to a second) is
        # made while the fork server warms up, which takes seconds and needs none of it.
        opened = _Background(lambda: _open_journal(request, log_path))
        return _sweep(request, opened, units, progress, session, log_path=log_path)


def _open_journal(request: SweepRequest, log_path: Path) -> tuple[Report, JsonlLog]:
    """The report's header, and the ``.jsonl`` log begun with it."""
    plan = request.plan
    header = replace(
        new_report(request.manifest, model_packages(request.manifest)),
        plan=list(plan.planned),  # the whole plan, in every shard
        shard=format_shard(plan.shard) if plan.shard is not None else None,
    )
    return header, JsonlLog(log_path, header)


class _Background(Generic[T]):
    """``make()`` run on a thread from now on; :meth:`result` waits for it (its error re-raised)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._made: list[T] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(make,), name="exportwatch-header", daemon=True
        )
        self._thread.start()

    def _run(self, make: Callable[[], T]) -> None:
        try:
            self._made.append(make())
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._made[0]


def _sweep(
    request: SweepRequest,
    opened: _Background[tuple[Report, JsonlLog]],
    units: list[Unit],
    progress: Progress,
    session: SweepSession | None,
    *,
    log_path: Path,
) -> SweepResult:
    manifest, plan, options = request.manifest, request.plan, request.options
    results: dict[tuple[int, int], JobResult] = {}
    order = {u.spec.name: (u.order, {t: i for i, t in enumerate(u.targets)}) for u in units}
    config_errors: list[str] = []
    warnings: list[str] = []
    misconfigured: set[str] = set()
    started = time.monotonic()

    def on_news(news: News) -> None:
        match news.event:
            case TargetStarted(target=target):
                progress.start(news.model, target)
            case TargetPhase(target=target, phase=phase):
                progress.phase(news.model, target, phase)
            case JobFinished(job=job):
                opened.result()[1].append(job)
                model_order, target_order = order[news.model]
                results[(model_order, target_order.get(job.target, 99))] = job
                skipped_for_error = news.model in misconfigured and job.verdict is Verdict.SKIPPED
                progress.result(job, reason=CONFIG_ERROR_REASON if skipped_for_error else None)
            case UnitConfigError(message=message):
                misconfigured.add(news.model)
                if message not in config_errors:  # a model's process started again says it again
                    config_errors.append(message)
            case SweepNote(message=message):
                progress.message(f"note: {message}")
            case UnitNote(message=message):
                if message not in warnings:
                    warnings.append(message)
                    progress.warning(message)

    settings = SweepSettings(
        manifest_root=manifest.root,
        repo_root=repository_root(manifest),
        options=options,
        sys_path=tuple(sys.path),  # as it is now: a base sweep's points into its worktree
    )
    pool = session.pool_for(settings) if session is not None else _pool(settings)
    try:
        pool.run(plan.queue(), settings=settings, on_event=on_news)
    except KeyboardInterrupt as exc:
        header, journal = opened.result()
        journal.close()
        progress.close()
        # What finished is kept, and what was running is recorded as interrupted: a report
        # marked incomplete, then the interrupt goes on.
        partial = replace(header, jobs=[results[k] for k in sorted(results)])
        write_report(
            replace(partial, duration_s=round(time.monotonic() - started, 3), complete=False),
            request.output,
            log=log_path,
        )
        cut = sum(job.verdict is Verdict.INTERRUPTED for job in partial.jobs)
        raise SweepInterrupted(
            request.output,
            len(results) - cut,
            plan.total,
            interrupted=cut,
            signum=getattr(exc, "signum", signal.SIGINT),
        ) from None
    finally:
        opened.result()[1].close()  # an error making the header is raised here, after the pool
        progress.close()
    header = opened.result()[0]
    swept = replace(header, jobs=[results[k] for k in sorted(results)])
    report = replace(
        provenance.stamp_report(swept, manifest, device=options.device),  # dependencies + content_hash
        duration_s=round(time.monotonic() - started, 3),
        complete=True,
    )
    write_report(report, request.output, log=log_path)  # a full disk: the error says the log has it all
    return SweepResult(report=report, config_errors=config_errors, warnings=warnings, partial_log=log_path)


@contextmanager
def _sole_writer(log_path: Path, *, report: Path) -> Iterator[None]:
    """Hold an exclusive lock on the sweep's ``.jsonl`` log while it runs: a second sweep to
    the same ``-o`` is refused before it truncates the first one's log."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise UsageError(f"cannot write {log_path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"{report}: another exportwatch sweep is writing this report (its log {log_path} "
                "is locked): wait for it, or give this one another -o"
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the jobs that finished, and those that were running (``interrupted``),
    are in an incomplete report at ``output``."""

    def __init__(
        self, output: Path, finished: int, total: int, *, interrupted: int = 0, signum: int = signal.SIGINT
    ) -> None:
        cut = f", {interrupted} interrupted" if interrupted else ""
        super().__init__(
            f"interrupted: {finished} of {total} job(s) finished{cut}; partial report in {output}"
        )
        self.output = output
        self.signum = signum  # the command exits 128 + signum
