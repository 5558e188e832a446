"""Process isolation: warm spawn workers, per-job timeouts, crash and OOM capture.

A model that segfaults, aborts, hangs or eats all memory must become a *result*, never a dead
sweep. Each worker imports torch once and serves many units (one model, several targets); the
parent watches the pipe, the process sentinel, the clock and the worker's RSS. When a worker
dies or is killed, the job it was on gets a ``crash``/``timeout``/``oom`` verdict, the targets it
had not reached go back to the queue, and a fresh worker takes over.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.util
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from exportwatch.errors import InternalError
from exportwatch.manifest import ModelSpec
from exportwatch.plan import Unit
from exportwatch.report import MAX_DETAIL_CHARS, JobResult, SubmoduleResult, Verdict, cap
from exportwatch.sweep.settings import SweepSettings

log = logging.getLogger(__name__)

#: How often the parent wakes to check clocks and memory.
POLL_SECONDS = 0.1
#: An idle worker above this fraction of ``--max-memory`` is replaced before its next unit.
RECYCLE_FRACTION = 0.75
#: How much of a dead worker's log goes into the crash result.
LOG_TAIL_CHARS = 3_000
#: Workers that die before they are ready, in a row, before the sweep gives up.
MAX_FAILED_STARTS = 3


class WorkerStartError(InternalError, RuntimeError):
    """Workers die while starting (a broken torch install, say): no job can run at all."""

    def __init__(self, exitcode: int | None, log_tail: str) -> None:
        super().__init__(
            f"{MAX_FAILED_STARTS} worker processes in a row died while starting "
            f"({_signal_name(exitcode)}); the last one said:\n{log_tail.strip() or '(nothing)'}"
        )




# ---------------------------------------------------------------------------------------------
# The pipe protocol: the parent sends a Unit (or None: stop); the worker answers with these.


@dataclass(frozen=True)
class Ready:
    """The worker imported torch and the exporters: it can take a unit."""


@dataclass(frozen=True)
class DeviceResolved:
    device: str  # the unit's device ("auto" resolved)


@dataclass(frozen=True)
class TargetStarted:
    target: str  # the job's clock starts now


@dataclass(frozen=True)
class JobFinished:
    job: JobResult


@dataclass(frozen=True)
class UnitConfigError:
    message: str  # the manifest entry cannot be built: every target is skipped


@dataclass(frozen=True)
class UnitDone:
    """Every target of the unit has a result."""


WorkerMessage = Ready | DeviceResolved | TargetStarted | JobFinished | UnitConfigError | UnitDone


@dataclass(kw_only=True)
class Event:
    """Progress news for the caller's display."""

    kind: str  # "start" | "result" | "config-error"
    model: str
    target: str | None = None
    job: JobResult | None = None
    message: str | None = None


# ---------------------------------------------------------------------------------------------
# Inside the worker


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _reset_peak_rss() -> None:
    """Writing 5 to clear_refs resets VmHWM, so each job reports its own peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _redirect_output(log_path: Path | None) -> None:
    """Send the worker's stdout/stderr (strict mode dumps FX graphs there) to its log file."""
    if log_path is None:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def worker_main(conn: Connection, settings: SweepSettings, log_path: Path | None) -> None:
    """Serve units until told to stop (``None``)."""
    if not settings.verbose:
        _redirect_output(log_path)
    logging.basicConfig(level=logging.DEBUG if settings.verbose else logging.ERROR)

    _warm_up(settings.threads)
    from exportwatch import compat

    # Before any user module imports torchvision (transformers and timm do).
    environment_notes = [compat.TORCHVISION_NOTE] if compat.allow_torchvision_without_its_extension() else []

    from exportwatch.sweep.quiet import quiet_torch_logs

    conn.send(Ready())
    prepared_targets: set[str] = set()
    while True:
        unit = conn.recv()
        if unit is None:
            # Skip interpreter teardown (seconds with torch loaded; the parent waits for it):
            # results are already sent and logs are unbuffered file descriptors.
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
                # Release what multiprocessing registered (semaphores), or its resource
                # tracker warns about "leaked semaphore objects" on the user's terminal.
                # Private CPython helper that typeshed's multiprocessing.util stub leaves out.
                multiprocessing.util._run_finalizers()  # type: ignore[attr-defined]
            os._exit(0)
        with quiet_torch_logs(settings.verbose):
            _prepare_targets(unit.targets, prepared_targets)
            _run_unit(conn, unit, settings, environment_notes)
        conn.send(UnitDone())


def _prepare_targets(targets: list[str], done: set[str]) -> None:
    """Each target's one-off start-up (onnxscript's registry, first trace), once per worker.

    Paid before the job's clock starts, so a worker's first job is timed like the rest.
    A target that cannot prepare (missing extra) says so later, when its job runs.
    """
    from exportwatch.targets import get_target

    for name in targets:
        if name in done:
            continue
        done.add(name)
        try:
            get_target(name).prepare()
        except Exception as exc:
            log.debug("preparing target %s failed: %s", name, exc)


def _warm_up(threads: int | None) -> None:
    """Pay torch's one-off costs before the first job's clock starts.

    Several workers each running torch's default thread count oversubscribe the cores; and
    torch.export imports dynamo, sympy and friends lazily on first use.
    """
    import torch
    import torch.export

    if threads:
        torch.set_num_threads(threads)
    with contextlib.suppress(Exception):
        import torch._dynamo
        from torch.fx.experimental import symbolic_shapes  # noqa: F401


def _run_unit(conn: Connection, unit: Unit, settings: SweepSettings, environment_notes: list[str]) -> None:
    from exportwatch.manifest import ConfigError
    from exportwatch.sweep import walk as sweep
    from exportwatch.targets import MissingDependency

    spec = unit.spec
    device, skip_reason = sweep.device_for(spec, unit.device)
    conn.send(DeviceResolved(device))
    if skip_reason is not None:
        for target in unit.targets:
            conn.send(JobFinished(sweep.skipped_job(spec, target, device, skip_reason)))
        return
    _reset_peak_rss()
    try:
        prepared = sweep.prepare_model(spec, device=device, settings=settings)
    except ConfigError as exc:
        conn.send(UnitConfigError(str(exc)))
        for target in unit.targets:
            conn.send(JobFinished(sweep.skipped_job(spec, target, device, f"configuration error: {exc}")))
        return
    for target in unit.targets:
        conn.send(TargetStarted(target))
        started = time.perf_counter()
        try:
            job = sweep.sweep_target(prepared, target, settings=settings)
        except MissingDependency as exc:
            job = sweep.skipped_job(spec, target, device, str(exc))
        except Exception as exc:  # a bug in exportwatch or torch internals: still a result
            job = _internal_error_job(spec, target, device, exc)
        job = replace(job, duration_s=round(time.perf_counter() - started, 3), peak_rss_mb=_peak_rss_mb())
        if environment_notes and job.root is not None:
            root = replace(job.root, warnings=[*job.root.warnings, *environment_notes])
            job = replace(job, submodules=[root if s.path == "" else s for s in job.submodules])
        conn.send(JobFinished(job))
        _reset_peak_rss()


def _internal_error_job(spec: ModelSpec, target: str, device: str, exc: BaseException) -> JobResult:
    """exportwatch's own code raised outside any one submodule: the job is ``error``, not a crash."""
    from exportwatch.diagnose import internal_error_diagnosis

    found = internal_error_diagnosis(exc, target=target)
    root = SubmoduleResult(
        path="",
        module_type="",
        verdict=Verdict.ERROR,
        origin=True,
        category=found.category,
        fingerprint=found.fingerprint,
        exception_type=found.exception_type,
        message=found.message,
        detail=found.detail,
        hint=found.hint,
    )
    return JobResult(
        model=spec.name,
        target=target,
        device=device,
        verdict=Verdict.ERROR,
        reason="exportwatch internal error",
        submodules=[root],
        xfail=spec.xfail,
    )


# ---------------------------------------------------------------------------------------------
# In the parent


@dataclass
class _Worker:
    process: Any
    conn: Connection
    log_path: Path | None
    unit: Unit | None = None
    current: str | None = None  # target being swept
    current_started: float = 0.0
    device: str | None = None  # the unit's resolved device ("auto" becomes cpu or cuda)
    deadline: float = 0.0
    started: float = 0.0
    peak_rss_mb: float = 0.0
    finished: list[str] = field(default_factory=list)
    ready: bool = False
    units_done: int = 0


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "unknown"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_CHARS))
        return handle.read().decode("utf-8", "replace")


class WorkerPool:
    """Runs units on ``size`` warm worker processes and reports each finished job."""

    def __init__(
        self,
        *,
        size: int,
        settings: SweepSettings,
        timeout_s: float | None = None,
        max_memory_mb: float | None = None,
        recycle_mb: float | None = None,
        on_event: Callable[[Event], None],
    ) -> None:
        self.size = max(1, size)
        if settings.threads is None and self.size > 1:
            settings.threads = max(1, (os.cpu_count() or 1) // self.size)
        self.settings = settings
        self.timeout_s = timeout_s
        self.max_memory_mb = max_memory_mb
        # Between units, a worker whose RSS crossed this is replaced by a fresh one, before
        # memory left behind by earlier models makes a later one run out.
        if recycle_mb is None and max_memory_mb is not None:
            recycle_mb = RECYCLE_FRACTION * max_memory_mb
        self.recycle_mb = recycle_mb
        self.recycled = 0
        self.on_event = on_event
        self._context = multiprocessing.get_context("spawn")
        self._log_dir = settings.log_dir or Path(tempfile.mkdtemp(prefix="exportwatch-logs-"))
        self._spawned = 0

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._context.Pipe()
        self._spawned += 1
        log_path = self._log_dir / f"worker-{self._spawned}.log"
        process = self._context.Process(
            target=worker_main,
            args=(child_conn, self.settings, log_path),
            name=f"exportwatch-worker-{self._spawned}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Worker(process=process, conn=parent_conn, log_path=log_path)

    def _timeout_for(self, unit: Unit) -> float:
        return self.timeout_s if self.timeout_s is not None else unit.spec.timeout

    def run(self, units: list[Unit]) -> None:
        queue: deque[Unit] = deque(units)
        workers = [self._spawn() for _ in range(min(self.size, len(units)))]
        failed_starts = 0
        try:
            while queue or any(w.unit is not None for w in workers):
                for worker in workers:
                    if worker.unit is None and worker.ready and queue:
                        self._assign(worker, queue.popleft())
                self._wait(workers)
                for index, worker in enumerate(workers):
                    if not self._check(worker, queue):
                        continue
                    if not worker.ready:
                        # Died before it could import torch: respawning will not help.
                        failed_starts += 1
                        if failed_starts >= MAX_FAILED_STARTS:
                            raise WorkerStartError(worker.process.exitcode, _tail(worker.log_path))
                    else:
                        failed_starts = 0
                    workers[index] = self._spawn()
        finally:
            self._stop_all(workers)
            if self.settings.log_dir is None:
                shutil.rmtree(self._log_dir, ignore_errors=True)

    def _assign(self, worker: _Worker, unit: Unit) -> None:
        worker.unit = unit
        worker.current = None
        worker.device = None
        worker.finished = []
        worker.started = time.monotonic()
        worker.deadline = worker.started + self._timeout_for(unit)
        worker.peak_rss_mb = 0.0
        worker.conn.send(unit)

    def _wait(self, workers: list[_Worker]) -> None:
        handles: list[Any] = [w.conn for w in workers] + [w.process.sentinel for w in workers]
        wait(handles, timeout=POLL_SECONDS)

    def _check(self, worker: _Worker, queue: deque[Unit]) -> bool:
        """Drain messages, then police the worker; True when it died and needs replacing."""
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the pipe broke: the sentinel check below says why
        if not worker.process.is_alive():
            self._fail_current(worker, queue, self._death_verdict(worker))
            return True
        if worker.unit is None:
            if self._should_recycle(worker, queue):
                self._stop(worker)
                self.recycled += 1
                return True
            return False
        rss = _rss_mb(worker.process.pid)
        worker.peak_rss_mb = max(worker.peak_rss_mb, rss)
        if self.max_memory_mb is not None and rss > self.max_memory_mb:
            self._kill(worker)
            message = (
                f"worker used {rss:.0f} MiB, over the --max-memory limit of {self.max_memory_mb:.0f} MiB"
            )
            self._fail_current(worker, queue, (Verdict.OOM, message))
            return True
        if time.monotonic() > worker.deadline:
            self._kill(worker)
            limit = self._timeout_for(worker.unit)
            message = f"no result after {limit:g} s (per-job timeout); the worker was killed"
            self._fail_current(worker, queue, (Verdict.TIMEOUT, message))
            return True
        return False

    def _should_recycle(self, worker: _Worker, queue: deque[Unit]) -> bool:
        if self.recycle_mb is None or not queue or not worker.units_done:
            return False  # a fresh worker is as small as workers get: never recycle it
        rss = _rss_mb(worker.process.pid)
        if rss <= self.recycle_mb:
            return False
        log.info(
            "recycling worker %s: %.0f MiB after its last unit (limit %.0f MiB)",
            worker.process.pid,
            rss,
            self.recycle_mb,
        )
        return True

    def _handle(self, worker: _Worker, message: WorkerMessage) -> None:
        unit = worker.unit
        if isinstance(message, Ready):
            worker.ready = True
        elif isinstance(message, DeviceResolved):
            worker.device = message.device
        elif isinstance(message, TargetStarted) and unit is not None:
            worker.current = message.target
            worker.current_started = time.monotonic()
            worker.deadline = worker.current_started + self._timeout_for(unit)
            self.on_event(Event(kind="start", model=unit.spec.name, target=message.target))
        elif isinstance(message, JobFinished) and unit is not None:
            job = message.job
            if job.peak_rss_mb is None and worker.peak_rss_mb:
                job = replace(job, peak_rss_mb=round(worker.peak_rss_mb, 1))
            worker.finished.append(job.target)
            worker.current = None
            self.on_event(Event(kind="result", model=unit.spec.name, target=job.target, job=job))
        elif isinstance(message, UnitConfigError) and unit is not None:
            self.on_event(Event(kind="config-error", model=unit.spec.name, message=message.message))
        elif isinstance(message, UnitDone):
            worker.units_done += 1
            worker.unit = None
            worker.current = None

    def _death_verdict(self, worker: _Worker) -> tuple[Verdict, str]:
        exitcode = worker.process.exitcode
        if exitcode == -signal.SIGKILL:
            # Not killed by us (we handle our kills before we get here): the kernel's OOM killer.
            return Verdict.OOM, "the worker was killed with SIGKILL, most likely by the kernel's OOM killer"
        return Verdict.CRASH, f"the worker process died ({_signal_name(exitcode)})"

    def _fail_current(self, worker: _Worker, queue: deque[Unit], failure: tuple[Verdict, str]) -> None:
        unit = worker.unit
        worker.unit = None
        if unit is None:
            return
        verdict, message = failure
        remaining = [t for t in unit.targets if t not in worker.finished]
        if worker.current is None and not worker.finished:
            # Died while building the model or capturing inputs: every target shares that fate.
            victims, requeue = remaining, []
            message = f"{message}, while building the model or capturing its inputs"
        elif worker.current is None:
            # Between two targets (a target's clean-up, say): charge the next one, retry the rest.
            victims, requeue = remaining[:1], remaining[1:]
        else:
            victims = [worker.current]
            requeue = [t for t in remaining if t != worker.current]
        tail = _tail(worker.log_path)
        since = worker.current_started if worker.current is not None else worker.started
        elapsed = round(time.monotonic() - since, 3)
        for target in victims:
            job = _infrastructure_job(
                unit,
                target,
                verdict,
                message,
                tail,
                worker.peak_rss_mb,
                device=worker.device or unit.device or unit.spec.device,
                duration_s=elapsed,
            )
            self.on_event(Event(kind="result", model=unit.spec.name, target=target, job=job))
        if requeue:
            queue.appendleft(Unit(spec=unit.spec, targets=requeue, device=unit.device, order=unit.order))

    def _kill(self, worker: _Worker) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.join(timeout=5)

    def _stop_all(self, workers: list[_Worker]) -> None:
        """Tell every worker to stop first, then wait for all: they exit in parallel."""
        for worker in workers:
            if worker.process.is_alive():
                with contextlib.suppress(OSError, BrokenPipeError):
                    worker.conn.send(None)
        deadline = time.monotonic() + 5
        for worker in workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                self._kill(worker)
            worker.conn.close()

    def _stop(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                worker.conn.send(None)
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                self._kill(worker)
        worker.conn.close()


def _infrastructure_job(
    unit: Unit,
    target: str,
    verdict: Verdict,
    message: str,
    log_tail: str,
    peak_rss_mb: float,
    *,
    device: str,
    duration_s: float = 0.0,
) -> JobResult:
    from exportwatch.diagnose import diagnose_infrastructure

    found = diagnose_infrastructure(verdict.value, target=target, message=message)
    detail = message + (f"\n\nLast worker output:\n{log_tail}" if log_tail.strip() else "")
    root = SubmoduleResult(
        path="",
        module_type="",
        verdict=verdict,
        category=found.category,
        fingerprint=found.fingerprint,
        exception_type=found.exception_type,
        message=message,
        detail=cap(detail, MAX_DETAIL_CHARS),
        hint=found.hint,
    )
    return JobResult(
        model=unit.spec.name,
        target=target,
        device=device,
        verdict=verdict,
        reason=message,
        submodules=[root],
        xfail=unit.spec.xfail,
        peak_rss_mb=round(peak_rss_mb, 1) or None,
        duration_s=duration_s,
    )
