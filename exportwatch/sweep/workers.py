"""Process isolation, parent side: one fresh process per model, its whole tree policed.

A model that segfaults, aborts, hangs, eats memory or ends the program must become a *result*,
never a dead sweep, and nothing it does may reach another model. The fork server
(``worker/forkserver.py``) forks one process per model (all its targets in that process); where
forking is unsafe, each model's process is spawned instead. The parent watches each model's
pipe, its exit, its clock and the memory of its whole process tree. A job's clock covers
building the model, capturing its inputs and its export attempts; never the exporter's start-up
(paid in the fork server) nor waiting for a free slot. When a model's process dies or is
killed, the job it was on gets a ``crash``/``timeout``/``oom`` verdict and the targets it had
not reached go back to the queue, for a fresh process.

Ctrl-C or SIGTERM: the first one stops scheduling, ends every model's process tree, records
each job that was running as ``interrupted`` and raises ``KeyboardInterrupt`` (the runner writes
the partial report); a second one ends everything at once and exits 128 + the signal (130 for
Ctrl-C, 143 for SIGTERM).

The worker's processes are started by name (``processes.run_by_name``): this module never
imports :mod:`exportwatch.worker`, which imports torch.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import send_handle
from pathlib import Path
from types import FrameType
from typing import Any, Final

from exportwatch.errors import InternalError
from exportwatch.plan import Unit, execution_order
from exportwatch.report import Verdict
from exportwatch.sweep import processes
from exportwatch.sweep.endings import infrastructure_job
from exportwatch.sweep.preload import ImportStatement, preload_fits, safe_preload
from exportwatch.sweep.protocol import (
    DeviceResolved,
    Exited,
    JobFinished,
    ModelExit,
    ModelMessage,
    News,
    Phase,
    Preloading,
    ServerReady,
    Started,
    StartUnit,
    SweepNote,
    TargetPhase,
    TargetStarted,
    UnitConfigError,
    UnitDone,
    UnitNote,
    describe_phase,
)
from exportwatch.sweep.settings import SweepSettings

log = logging.getLogger(__name__)

#: How often the parent wakes to check clocks and memory.
POLL_SECONDS = 0.1
#: How much of a dead process's log goes into the crash result.
LOG_TAIL_CHARS = 3_000
#: A model's process that says nothing for this long after its launch is stuck starting.
STARTUP_SECONDS = 120.0
#: One import run in the fork server for the models may take this long.
PRELOAD_SECONDS = 60.0
#: Spawned model processes that die before saying anything, in a row, before the sweep gives up.
MAX_FAILED_STARTS = 3
#: ``EXPORTWATCH_START_METHOD=spawn`` spawns every model's process (slower; for debugging).
START_METHOD_VARIABLE = "EXPORTWATCH_START_METHOD"
#: A SIGKILL'd process whose tree used this share of the machine's memory was the OOM killer's.
OOM_SHARE = 0.5
#: The model's own process exits with this when exportwatch failed outside any job.
INTERNAL_EXIT_CODE = 70
#: The worker's mains, imported only in the processes they run in (``processes.run_by_name``).
FORK_SERVER_MAIN: Final = "exportwatch.worker.forkserver:serve"
SPAWNED_MODEL_MAIN: Final = "exportwatch.worker.forkserver:spawned_model_main"
#: The signals that interrupt a sweep: a terminal's Ctrl-C, and a CI runner's or a user's kill.
INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The sweep was stopped by ``signum``: its command exits ``128 + signum`` as the shell's
    convention has it (130 for Ctrl-C, 143 for SIGTERM), after the partial report is written."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class WorkerStartError(InternalError, RuntimeError):
    """The fork server (or every spawned process) dies while starting: no job can run at all."""

    def __init__(self, what: str, returncode: int | None, log_tail: str) -> None:
        super().__init__(
            f"{what} died while starting ({processes.signal_name(returncode)}); it said:\n"
            f"{log_tail.strip() or '(nothing)'}"
        )


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_CHARS))
        return handle.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Launchers: how a model's process comes to exist, and how its exit is learnt.


class _PreloadFailed(Exception):
    """An import run for the models hung or killed the fork server: start one without preloading."""

    def __init__(self, statement: str, what: str) -> None:
        super().__init__(f"preloading `{statement}` {what}")


class _ForkServer:
    """Forks model processes from one warm server; learns pids and exits from its messages."""

    spawn_reason: str | None = None

    def __init__(
        self, context: Any, settings: SweepSettings, log_dir: Path, units: list[Unit], *, preload: bool = True
    ) -> None:
        self.log_path = log_dir / "fork-server.log"
        self.conn, child_conn = context.Pipe()
        targets = list(dict.fromkeys(t for u in units for t in u.targets))
        statements = (
            safe_preload(
                [u.spec for u in units], manifest_root=settings.manifest_root, repo_root=settings.repo_root
            )
            if preload
            else []
        )
        #: What the server imports for the models, before any model's own code (every fork shares it).
        self.statements: list[ImportStatement] = statements
        #: Top-level modules the server imports as installed libraries (shared by every fork).
        self.preloaded_tops = frozenset(s.module.split(".")[0] for s in statements)
        self.process = context.Process(
            target=processes.run_by_name,
            args=(FORK_SERVER_MAIN, child_conn, settings, self.log_path, targets, statements, os.getpid()),
            name="exportwatch-fork-server",
            daemon=True,
        )
        self.process.start()
        child_conn.close()
        self.ready: ServerReady | None = None
        self.pending: list[Started | Exited] = []

    def wait_ready(self, interrupted: Callable[[], bool]) -> ServerReady:
        preloading: str | None = None
        deadline = time.monotonic() + STARTUP_SECONDS
        while self.ready is None:
            if interrupted():
                raise KeyboardInterrupt
            if self.conn.poll(POLL_SECONDS):
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    message = None
                if isinstance(message, ServerReady):
                    self.ready = message
                    break
                if isinstance(message, Preloading):
                    preloading = message.statement
                    deadline = time.monotonic() + PRELOAD_SECONDS
            if not self.process.is_alive():
                self.process.join(1)
                if preloading is not None:
                    raise _PreloadFailed(
                        preloading, f"killed the fork server ({processes.signal_name(self.process.exitcode)})"
                    )
                raise WorkerStartError("the sweep's fork server", self.process.exitcode, _tail(self.log_path))
            if time.monotonic() > deadline:
                self.close(hard=True)
                if preloading is not None:
                    raise _PreloadFailed(preloading, f"did not finish within {PRELOAD_SECONDS:g} s")
                raise WorkerStartError("the sweep's fork server (stuck)", None, _tail(self.log_path))
        log.debug("fork server ready; preloaded %s", self.ready.preloaded)
        return self.ready

    def serves(self, units: list[Unit], settings: SweepSettings) -> bool:
        """Whether these models may be forked from this server: what it preloaded is what each
        of them imports before its own code runs (compare's base may import otherwise)."""
        return preload_fits(
            self.statements,
            [u.spec for u in units],
            manifest_root=settings.manifest_root,
            repo_root=settings.repo_root,
        )

    def waitables(self) -> list[Any]:
        return [self.conn, self.process.sentinel]

    def launch(
        self, token: int, unit: Unit, child_end: Connection, log_path: Path | None, settings: SweepSettings
    ) -> int | None:
        self.conn.send(StartUnit(token, unit, log_path, settings))
        send_handle(self.conn, child_end.fileno(), self.process.pid)
        return None  # the pid comes back as ``Started``

    def poll(self) -> tuple[dict[int, int], dict[int, int], int | None]:
        """({token: pid} started, {token: returncode} exited, the server's exit code if it died)."""
        started: dict[int, int] = {}
        exited: dict[int, int] = {}
        with contextlib.suppress(EOFError, OSError):
            while self.conn.poll():
                message = self.conn.recv()
                if isinstance(message, Started):
                    started[message.token] = message.pid
                elif isinstance(message, Exited):
                    exited[message.token] = message.returncode
        died = (
            None
            if self.process.is_alive()
            else (self.process.exitcode if self.process.exitcode is not None else -1)
        )
        return started, exited, died

    def close(self, *, hard: bool = False, grace_s: float = 5.0) -> None:
        if hard:
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGKILL)
            return
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.process.join(timeout=grace_s)
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.join(timeout=5)
        self.conn.close()


class _Spawner:
    """A freshly spawned interpreter per model: where forking is unsafe (slower: imports torch)."""

    def __init__(self, context: Any, settings: SweepSettings) -> None:
        self.context = context
        self.settings = settings
        self.processes: dict[int, Any] = {}
        # What a model's process leaves behind is re-parented to the sweep, which ends it.
        self.baseline = set(processes.children(os.getpid()))
        self.subreaper = processes.become_subreaper()

    def _end_orphans(self) -> None:
        known = {p.pid for p in self.processes.values()}
        for pid in processes.children(os.getpid()):
            if pid not in known and pid not in self.baseline:
                processes.kill_tree(pid, group=False)
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, 0)

    def waitables(self) -> list[Any]:
        return [p.sentinel for p in self.processes.values()]

    def launch(
        self, token: int, unit: Unit, child_end: Connection, log_path: Path | None, settings: SweepSettings
    ) -> int | None:
        process = self.context.Process(
            target=processes.run_by_name,
            args=(SPAWNED_MODEL_MAIN, child_end, unit, settings, log_path),
            name=f"exportwatch-model-{token}",
            daemon=True,
        )
        process.start()
        self.processes[token] = process
        return int(process.pid)

    def poll(self) -> tuple[dict[int, int], dict[int, int], int | None]:
        exited: dict[int, int] = {}
        for token, process in list(self.processes.items()):
            if not process.is_alive():
                process.join(1)
                exited[token] = process.exitcode if process.exitcode is not None else -1
                del self.processes[token]
        if exited and self.subreaper:
            self._end_orphans()
        return {}, exited, None

    def close(self, *, hard: bool = False, grace_s: float = 5.0) -> None:
        for process in self.processes.values():
            processes.kill_tree(process.pid)
            if not hard:
                process.join(timeout=grace_s)
        if self.subreaper:
            self._end_orphans()
            processes.become_subreaper(False)


# ---------------------------------------------------------------------------------------------
# The scheduler


@dataclass
class _Running:
    """One model's process, from launch to exit."""

    token: int
    unit: Unit
    conn: Connection
    log_path: Path | None
    launched: float
    deadline: float
    pid: int | None = None
    phase: Phase | None = None
    device: str | None = None
    current: str | None = None  # target being swept
    clock_started: float | None = None  # when building the model began
    prep_s: float | None = None  # building + capturing: on every job's clock
    target_started: float = 0.0
    peak_mb: float = 0.0  # of the whole tree, for the current job
    finished: list[str] = field(default_factory=list)
    done: bool = False
    eof: bool = False
    spoke: bool = False
    ended_itself: str | None = None  # os._exit, as the process said just before
    killed: tuple[Verdict, str] | None = None
    returncode: int | None = None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]


class WorkerPool:
    """Runs units, one fresh process each, ``size`` at a time, and reports each finished job.

    ``persistent``: the fork server outlives a ``run`` and serves the next one (compare's head
    and base: start-up paid once) until :meth:`close`; each run may bring its own settings.
    """

    def __init__(
        self,
        *,
        size: int,
        settings: SweepSettings,
        timeout_s: float | None = None,
        max_memory_mb: float | None = None,
        on_event: Callable[[News], None],
        persistent: bool = False,
    ) -> None:
        self.size = max(1, size)
        settings = self._default_threads(settings)
        self.settings = settings
        self._run_settings = settings
        self.persistent = persistent
        self.timeout_s = timeout_s
        self.max_memory_mb = max_memory_mb
        self.on_event = on_event
        self._context = multiprocessing.get_context("spawn")
        self._log_dir = settings.log_dir or Path(tempfile.mkdtemp(prefix="exportwatch-logs-"))
        self._running: dict[int, _Running] = {}
        self._tokens = 0
        self._launcher: _ForkServer | _Spawner | None = None
        self._interrupts = 0
        self._interrupted_by: int = signal.SIGINT
        self._failed_starts = 0
        self.start_method = "fork"
        self._next_police = 0.0
        self._preload = True
        self._oom_kills_at_start = processes.oom_kills() or 0
        self._server_deaths: dict[str, int] = {}  # model -> fork-server deaths while it ran
        self._notes_said: set[str] = set()  # this run's sweep-wide notes, each said once

    def _default_threads(self, settings: SweepSettings) -> SweepSettings:
        """The cores shared among the pool's processes, where the settings do not say."""
        if settings.threads is None and self.size > 1:
            return replace(settings, threads=max(1, (os.cpu_count() or 1) // self.size))
        return settings

    # --- the loop -----------------------------------------------------------------------------

    def run(
        self,
        units: list[Unit],
        *,
        settings: SweepSettings | None = None,
        on_event: Callable[[News], None] | None = None,
    ) -> None:
        """Sweep ``units`` (with ``settings``: another tree's, e.g. a worktree of the base)."""
        if not units:
            return
        self._run_settings = self._default_threads(settings) if settings is not None else self.settings
        if on_event is not None:
            self.on_event = on_event
        # What one run counts is its own (compare's base run must not inherit HEAD's deaths).
        self._server_deaths = {}
        self._notes_said = set()
        self._failed_starts = 0
        self._oom_kills_at_start = processes.oom_kills() or 0
        queue: deque[Unit] = deque(units)
        previous = self._catch_interrupts()
        finished = False
        try:
            server = self._launcher
            if isinstance(server, _ForkServer) and not server.serves(units, self._run_settings):
                server.close()  # it preloaded what these models import only after code of their own
                self._launcher = None
            if self._launcher is None:
                self._launcher = self._start_launcher(units)
            while queue or self._running:
                if self._interrupts:
                    raise KeyboardInterrupt
                # A process that sent its last result frees its slot before it has exited.
                while queue and sum(not r.done for r in self._running.values()) < self.size:
                    self._launch(queue.popleft())
                self._wait()
                self._poll_launcher(queue)
                police = time.monotonic() >= self._next_police
                if police:
                    self._next_police = time.monotonic() + POLL_SECONDS
                for running in list(self._running.values()):
                    self._drain(running)
                    if police:  # not on every message: the parent shares the cores
                        self._police(running)
                    if running.returncode is not None:
                        self._finish(running, queue)
            finished = True
        except KeyboardInterrupt as exc:
            self._end_all(hard=False)
            self._record_interrupted()
            if self._launcher is not None:
                self._launcher.close(grace_s=1.0)
                self._launcher = None
            if isinstance(exc, Interrupted) or not self._interrupts:
                raise
            raise Interrupted(self._interrupted_by) from None
        finally:
            if not (finished and self.persistent):
                self.close()
            # After an interrupt our handler stays: a second Ctrl-C, while the partial report
            # is written, still ends the sweep at once, with 128 + the signal.
            if not self._interrupts:
                for signum, handler in previous.items():
                    if handler is not None:  # None: not set from Python, nothing to put back
                        signal.signal(signum, handler)

    @property
    def preloaded_tops(self) -> frozenset[str]:
        """Top-level modules the running fork server imported as libraries (none if spawning)."""
        launcher = self._launcher
        return launcher.preloaded_tops if isinstance(launcher, _ForkServer) else frozenset()

    @property
    def preloaded(self) -> list[str]:
        """The imports the running fork server ran for the models (none if spawning)."""
        launcher = self._launcher
        ready = launcher.ready if isinstance(launcher, _ForkServer) else None
        return list(ready.preloaded) if ready is not None else []

    def close(self) -> None:
        """Stop the fork server (if running) and remove the temporary log directory."""
        if self._launcher is not None:
            self._launcher.close()
            self._launcher = None
        if self.settings.log_dir is None:
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def _catch_interrupts(self) -> dict[int, Any]:
        """First Ctrl-C or SIGTERM: a flag the loop acts on within ``POLL_SECONDS``; second: end
        it all now. Returns the handlers it replaced."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_interrupt(signum: int, frame: FrameType | None) -> None:
            self._interrupts += 1
            if self._interrupts == 1:
                self._interrupted_by = signum
            else:
                self._end_all(hard=True)
                os._exit(128 + signum)

        return {signum: signal.signal(signum, on_interrupt) for signum in INTERRUPTING_SIGNALS}

    def _record_interrupted(self) -> None:
        """Each job that was running when the sweep was interrupted is a result: ``interrupted``.

        Its process tree is being ended: what it sent before is read first, so a job that
        finished is kept as it finished.
        """
        for running in list(self._running.values()):
            self._drain(running)
            self._running.pop(running.token, None)
            with contextlib.suppress(OSError):
                running.conn.close()
            if running.done:
                continue
            victims, _ = _victims(running)
            self._charge(
                running,
                victims,
                Verdict.INTERRUPTED,
                _interrupted_message(running),
            )

    def _start_launcher(self, units: list[Unit]) -> _ForkServer | _Spawner:
        forced = os.environ.get(START_METHOD_VARIABLE, "").strip().lower()
        if forced == "spawn":
            self.start_method = "spawn"
            return _Spawner(self._context, self.settings)
        server = _ForkServer(self._context, self._run_settings, self._log_dir, units, preload=self._preload)
        try:
            ready = server.wait_ready(lambda: self._interrupts > 0)
        except _PreloadFailed as failed:  # the model that needs it will say so, in its own process
            server.close(hard=True)
            self._preload = False
            self.on_event(News("", SweepNote(f"{failed}; each model's process imports its libraries itself")))
            return self._start_launcher(units)
        except BaseException:  # Ctrl-C during its warm-up, or it died: it has no model to end
            server.close(hard=True)
            raise
        if ready.spawn_reason is None:
            return server
        server.close()
        self.start_method = "spawn"
        self.on_event(
            News("", SweepNote(f"each model's process is spawned, not forked: {ready.spawn_reason} (slower)"))
        )
        return _Spawner(self._context, self.settings)

    def _timeout_for(self, unit: Unit) -> float:
        return self.timeout_s if self.timeout_s is not None else unit.spec.timeout

    def _launch(self, unit: Unit) -> None:
        assert self._launcher is not None
        self._tokens += 1
        token = self._tokens
        parent_end, child_end = self._context.Pipe()
        log_path = self._log_dir / f"{token:04d}-{_safe_name(unit.spec.name)}.log"
        now = time.monotonic()
        running = _Running(
            token=token,
            unit=unit,
            conn=parent_end,
            log_path=log_path,
            launched=now,
            deadline=now + STARTUP_SECONDS + self._timeout_for(unit),
        )
        running.pid = self._launcher.launch(token, unit, child_end, log_path, self._run_settings)
        child_end.close()
        self._running[token] = running

    def _wait(self) -> None:
        assert self._launcher is not None
        handles: list[Any] = [r.conn for r in self._running.values() if not r.eof]
        with contextlib.suppress(OSError):
            wait(handles + self._launcher.waitables(), timeout=POLL_SECONDS)

    def _poll_launcher(self, queue: deque[Unit]) -> None:
        assert self._launcher is not None
        started, exited, server_died = self._launcher.poll()
        for token, pid in started.items():
            if token in self._running:
                self._running[token].pid = pid
        for token, returncode in exited.items():
            if token in self._running:
                self._running[token].returncode = returncode
        if server_died is not None:
            if self._interrupts:  # a signal to the sweep's group ended it too: no restart
                raise KeyboardInterrupt
            self._restart_server(queue, server_died)

    def _restart_server(self, queue: deque[Unit], returncode: int) -> None:
        """The fork server died (a model killed it, or the OOM killer did): a new one serves.

        The models running then are retried; a model running at two such deaths is charged.
        """
        message = (
            f"the sweep's fork server died ({processes.signal_name(returncode)}) twice while this model ran"
        )
        log.warning("the sweep's fork server died (%s); restarting it", processes.signal_name(returncode))
        for running in list(self._running.values()):
            if running.pid is not None:
                processes.kill_tree(running.pid)
            self._drain(running)
            name = running.unit.spec.name
            self._server_deaths[name] = self._server_deaths.get(name, 0) + 1
            self._running.pop(running.token, None)
            with contextlib.suppress(OSError):
                running.conn.close()
            if running.done:
                continue
            if self._server_deaths[name] >= 2:
                running.returncode = -signal.SIGKILL
                self._fail_current(running, queue, Verdict.CRASH, message)
                continue
            remaining = [t for t in execution_order(running.unit.targets) if t not in running.finished]
            unit = running.unit
            queue.appendleft(Unit(spec=unit.spec, targets=remaining, device=unit.device, order=unit.order))
        if queue:
            self._launcher = self._start_launcher(list(queue))

    # --- one model's process -----------------------------------------------------------------

    def _drain(self, running: _Running) -> None:
        if running.eof:
            return
        try:
            while running.conn.poll():
                self._handle(running, running.conn.recv())
        except (EOFError, OSError):
            running.eof = True

    def _handle(self, running: _Running, message: ModelMessage) -> None:
        unit = running.unit
        now = time.monotonic()
        running.spoke = True
        match message:
            case Phase(name=name, path=path):
                running.phase = message
                if name == "build":
                    running.clock_started = now
                    running.deadline = now + self._timeout_for(unit)
                if running.current is not None:  # the progress line says what the target does
                    self.on_event(News(unit.spec.name, TargetPhase(running.current, name, path)))
            case DeviceResolved(device=device):
                running.device = device
            case TargetStarted(target=target):
                if running.prep_s is None:
                    started = running.clock_started
                    running.prep_s = now - started if started is not None else 0.0
                running.current = target
                running.target_started = now
                running.deadline = now + max(0.0, self._timeout_for(unit) - running.prep_s)
                running.peak_mb = 0.0
                self.on_event(News(unit.spec.name, message))
            case JobFinished(job=job):
                peak = max(job.peak_rss_mb or 0.0, running.peak_mb)
                if peak:
                    job = replace(job, peak_rss_mb=round(peak, 1))
                running.finished.append(job.target)
                running.current = None
                running.peak_mb = 0.0
                self.on_event(News(unit.spec.name, JobFinished(job)))
            case UnitConfigError() | UnitNote():
                self.on_event(News(unit.spec.name, message))
            case SweepNote(message=text):
                if text not in self._notes_said:  # said once per run, however many processes say it
                    self._notes_said.add(text)
                    self.on_event(News(unit.spec.name, message))
            case ModelExit(message=text):
                running.ended_itself = text
            case UnitDone():
                running.done = True
                running.current = None

    def _police(self, running: _Running) -> None:
        if (
            running.done
            or running.killed is not None
            or running.returncode is not None
            or running.pid is None
        ):
            return
        memory = processes.tree_memory_mb(running.pid)
        running.peak_mb = max(running.peak_mb, memory)
        if self.max_memory_mb is not None and memory > self.max_memory_mb:
            self._kill(
                running,
                Verdict.OOM,
                f"the model's processes used {memory:.0f} MiB, over the --max-memory limit of "
                f"{self.max_memory_mb:.0f} MiB, {describe_phase(running.phase)}",
            )
        elif time.monotonic() > running.deadline:
            limit = self._timeout_for(running.unit)
            if running.clock_started is None:
                message = f"the model's process did not start within {STARTUP_SECONDS + limit:g} s"
            else:
                message = f"no result after {limit:g} s (per-job timeout) {describe_phase(running.phase)}"
            self._kill(running, Verdict.TIMEOUT, message + "; the model's processes were killed")

    def _kill(self, running: _Running, verdict: Verdict, message: str) -> None:
        running.killed = (verdict, message)
        if running.pid is not None:
            processes.kill_tree(running.pid)

    def _finish(self, running: _Running, queue: deque[Unit]) -> None:
        """The process has exited: results it sent are in; any job it did not finish is charged."""
        self._drain(running)
        self._running.pop(running.token, None)
        with contextlib.suppress(OSError):
            running.conn.close()
        if running.spoke:
            self._failed_starts = 0
        if running.done:
            return
        returncode = running.returncode
        if running.killed is not None:
            verdict, message = running.killed
        elif self._interrupts:  # a signal to the sweep's group reached the fork server first
            verdict, message = (
                Verdict.INTERRUPTED,
                _interrupted_message(running),
            )
        elif running.ended_itself is not None:
            verdict, message = Verdict.CRASH, running.ended_itself
        elif returncode == -signal.SIGKILL:
            verdict, message = self._sigkill_verdict(running)
        elif returncode == INTERNAL_EXIT_CODE:
            verdict, message = Verdict.ERROR, "exportwatch failed in the model's process (its log is below)"
        else:
            verdict = Verdict.CRASH
            died = processes.signal_name(returncode)
            message = f"the model's process died ({died}) {describe_phase(running.phase)}"
        if not running.spoke and isinstance(self._launcher, _Spawner):
            self._failed_starts += 1
            if self._failed_starts >= MAX_FAILED_STARTS:
                raise WorkerStartError(
                    f"{MAX_FAILED_STARTS} model processes in a row", returncode, _tail(running.log_path)
                )
        self._fail_current(running, queue, verdict, message)

    def _sigkill_verdict(self, running: _Running) -> tuple[Verdict, str]:
        """SIGKILL, not sent by us: the OOM killer when the kernel counted one or memory was high."""
        oom_kills = processes.oom_kills()
        limit = processes.memory_limit_mb()
        counted = oom_kills is not None and oom_kills > self._oom_kills_at_start
        high = limit is not None and running.peak_mb >= OOM_SHARE * limit
        phase = describe_phase(running.phase)
        if counted or high:
            return Verdict.OOM, f"the model's process was killed by the kernel's OOM killer {phase}"
        return Verdict.CRASH, (
            f"the model's process was killed with SIGKILL {phase}, not by exportwatch; its memory "
            f"peaked at {running.peak_mb:.0f} MiB, so not likely by the OOM killer"
        )

    def _fail_current(self, running: _Running, queue: deque[Unit], verdict: Verdict, message: str) -> None:
        victims, requeue = _victims(running)
        self._charge(running, victims, verdict, message)
        if requeue:
            unit = running.unit
            queue.appendleft(Unit(spec=unit.spec, targets=requeue, device=unit.device, order=unit.order))

    def _charge(self, running: _Running, victims: list[str], verdict: Verdict, message: str) -> None:
        """A result no exporter produced for each of ``victims``, on the job's own clock."""
        unit = running.unit
        tail = _tail(running.log_path)
        # The job's clock: building and capturing are on it, as they are on its deadline.
        if running.current is not None:
            elapsed = time.monotonic() - running.target_started + (running.prep_s or 0.0)
        else:
            elapsed = time.monotonic() - (running.clock_started or running.launched)
        for target in victims:
            job = infrastructure_job(
                unit.spec,
                target,
                verdict,
                message,
                device=running.device or unit.device or unit.spec.device,
                log_tail=tail,
                peak_rss_mb=running.peak_mb,
                duration_s=round(elapsed, 3),
            )
            self.on_event(News(unit.spec.name, JobFinished(job)))

    def _end_all(self, *, hard: bool) -> None:
        """End every model's process tree (and, when hard, the fork server) without waiting."""
        for running in list(self._running.values()):
            if running.pid is not None:
                processes.kill_tree(running.pid)
        if self._launcher is not None and hard:
            self._launcher.close(hard=True)


def _victims(running: _Running) -> tuple[list[str], list[str]]:
    """(the targets a process's death is charged to, the targets to retry in a fresh one)."""
    remaining = [t for t in execution_order(running.unit.targets) if t not in running.finished]
    if running.current is None and not running.finished:
        # Died while building the model or capturing inputs: every target shares that fate.
        return remaining, []
    if running.current is None:
        # Between two targets: charge the next one, retry the rest in a fresh process.
        return remaining[:1], remaining[1:]
    return [running.current], [t for t in remaining if t != running.current]


def _interrupted_message(running: _Running) -> str:
    return f"the sweep was interrupted (Ctrl-C or SIGTERM) {describe_phase(running.phase)}"
