"""What runs in a model's own process: build it, capture its inputs, sweep each of its targets.

One process per model (a fork of the warm fork server, or a fresh spawn where forking is
unsafe), so nothing a model does (a global dtype, a ``chdir``, a monkeypatch, a registered op)
reaches another model. The process leads its own process group; a thread ends that group when
the sweep's end of the pipe closes (the sweep died, even by ``kill -9``). Model code that ends
the program (``sys.exit``, ``KeyboardInterrupt``, ``os._exit``) is reported as what it is.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exportwatch.plan import Unit, execution_order, trace_readers
from exportwatch.sweep import endings, processes
from exportwatch.sweep.protocol import (
    DeviceResolved,
    JobFinished,
    ModelExit,
    Phase,
    SweepNote,
    TargetStarted,
    UnitConfigError,
    UnitDone,
    UnitNote,
    describe_phase,
)
from exportwatch.sweep.settings import SweepSettings

if TYPE_CHECKING:
    from exportwatch.manifest import ModelSpec

log = logging.getLogger(__name__)

#: How much more the kernel's OOM killer should prefer a model's process over the sweep.
OOM_SCORE_ADJ = 500


def redirect_output(log_path: Path | None) -> None:
    """Send stdout/stderr (strict mode dumps FX graphs there) to the process's log file."""
    if log_path is None:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class _Phases:
    """The current phase, told to the sweep as it changes (a timeout names it)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.current: Phase | None = None

    def enter(self, name: str, path: str = "") -> None:
        self.current = Phase(name, path)
        self.conn.send(self.current)


def _end_group_when_the_sweep_goes(conn: Connection) -> None:
    """The sweep never writes to this pipe: a read returns only when its end closes."""
    with contextlib.suppress(BaseException):
        while True:
            conn.recv()
    # Descendants first (one that called setsid left our group), then the group, then us.
    processes.kill_tree(os.getpid())


def _report_os_exit(conn: Connection, phases: _Phases) -> Callable[[int], Any]:
    """Wrap ``os._exit`` so model code that calls it says so (and where) before the process ends."""
    real_exit = os._exit
    me = os.getpid()

    def reporting_exit(code: int) -> Any:
        if os.getpid() == me:  # not a process the model forked
            caller = sys._getframe(1)
            where = f"{describe_phase(phases.current)} ({caller.f_code.co_filename}:{caller.f_lineno})"
            with contextlib.suppress(BaseException):
                conn.send(ModelExit(f"model code called os._exit({code}) {where}"))
        real_exit(code)

    os._exit = reporting_exit  # type: ignore[assignment]
    return real_exit


def _restore_signals() -> None:
    """The fork server ignores Ctrl-C (the sweep handles it); model code gets Python's defaults."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_model_process(conn: Connection, unit: Unit, settings: SweepSettings, *, threads: int | None) -> None:
    """The model's process from its first line to ``os._exit``: never returns."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _restore_signals()
    threading.Thread(target=_end_group_when_the_sweep_goes, args=(conn,), daemon=True).start()
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text(str(OOM_SCORE_ADJ))
    phases = _Phases(conn)
    real_exit = _report_os_exit(conn, phases)
    if settings.sys_path is not None:  # this sweep's (a base sweep's points into its worktree)
        sys.path[:] = list(settings.sys_path)
    code = 0
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        from exportwatch.worker.quiet import quiet_torch_logs

        with quiet_torch_logs(settings.options.verbose):
            _run_unit(conn, unit, settings, phases)
        conn.send(UnitDone())
    except BaseException:  # our own bug, outside any job: the parent reports the exit code
        log.exception("the model's process failed")
        code = 70
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    real_exit(code)  # no interpreter teardown: seconds with torch loaded, and nothing to tear down


def _environment_notes(conn: Connection, said: set[str]) -> list[str]:
    """Notes about what this process's imports met (a repaired torchvision): for the root of each
    of its jobs, and for the sweep, once."""
    from exportwatch import compat

    notes = [compat.TORCHVISION_NOTE] if compat.torchvision_repaired() else []
    for note in notes:
        if note not in said:
            said.add(note)
            conn.send(SweepNote(note))
    return notes


def _run_unit(conn: Connection, unit: Unit, settings: SweepSettings, phases: _Phases) -> None:
    from exportwatch.manifest import ConfigError
    from exportwatch.targets import MissingDependency
    from exportwatch.worker import walk

    spec = unit.spec
    device, skip_reason = walk.device_for(spec, unit.device)
    conn.send(DeviceResolved(device))
    if skip_reason is not None:
        for target in unit.targets:
            conn.send(JobFinished(walk.skipped_job(spec, target, device, skip_reason)))
        return
    processes.reset_peak_rss()
    started = time.perf_counter()
    try:
        prepared = walk.prepare_model(spec, device=device, settings=settings, on_phase=phases.enter)
    except ConfigError as exc:
        conn.send(UnitConfigError(str(exc)))
        for target in unit.targets:
            conn.send(JobFinished(walk.skipped_job(spec, target, device, f"configuration error: {exc}")))
        return
    except BaseException as exc:
        for target in unit.targets:
            if endings.is_model_ending(exc):
                message = endings.ending_message(exc, where=describe_phase(phases.current))
                job = endings.ending_job(
                    spec, target, device, exc, message=message, repo_root=settings.repo_root
                )
            else:
                job = endings.internal_error_job(spec, target, device, exc)
            conn.send(JobFinished(replace(job, duration_s=round(time.perf_counter() - started, 3))))
        return
    said: set[str] = set()
    readers, strict_readers = trace_readers(unit.targets)
    if not (readers or strict_readers) or prepared.traces is None:
        prepared.traces = None  # no target would take a capture another one kept
    else:
        prepared.traces.readers, prepared.traces.strict_readers = readers, strict_readers
    paths = {
        id(module): path
        for path, module in reversed(list(prepared.model.named_modules(remove_duplicate=False)))
    }
    for note in unknown_xfail_notes(spec, paths.values()):
        conn.send(UnitNote(note))
    for target in execution_order(unit.targets):
        conn.send(TargetStarted(target))
        started = time.perf_counter()
        try:
            job = walk.sweep_target(prepared, target, settings=settings, on_phase=phases.enter)
        except MissingDependency as exc:
            job = walk.skipped_job(spec, target, device, str(exc))
        except BaseException as exc:
            if endings.is_model_ending(exc):
                module = endings.raising_module(exc, paths)
                if module is None:
                    where = describe_phase(phases.current)
                elif module == "":
                    where = f"in `{type(prepared.model).__name__}.forward` (the root module)"
                else:
                    where = f"in `{module}.forward`"
                message = endings.ending_message(exc, where=where)
                job = endings.ending_job(
                    spec, target, device, exc, message=message, repo_root=settings.repo_root
                )
            else:  # a bug in exportwatch or torch internals: still a result
                job = endings.internal_error_job(spec, target, device, exc)
        job = replace(
            job, duration_s=round(time.perf_counter() - started, 3), peak_rss_mb=processes.peak_rss_mb()
        )
        notes = _environment_notes(conn, said)
        if notes and job.root is not None:
            root = replace(job.root, warnings=[*job.root.warnings, *notes])
            job = replace(job, submodules=[root if s.path == "" else s for s in job.submodules])
        conn.send(JobFinished(job))
        processes.reset_peak_rss()


def unknown_xfail_notes(spec: ModelSpec, module_paths: Iterable[str]) -> list[str]:
    """One warning per ``expect.xfail`` submodule path the built model does not have, with the
    closest path it does have: a typo there would otherwise mark nothing, silently."""
    known = set(module_paths)
    notes = []
    for path in spec.xfail_submodules:
        if path == "" or path in known:
            continue
        close = difflib.get_close_matches(path, sorted(known - {""}), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        where = spec.field_locations.get(f"xfail:{path}") or spec.where("expect")
        at = f"{where.file}:{where.line}: " if where is not None else ""
        notes.append(
            f"{at}model '{spec.name}': expect.xfail names submodule '{path}', which the model "
            f"does not have{hint}"
        )
    return notes
