"""The fork server: one warm process that forks a fresh process for every model.

It imports torch and the exporters, runs each target's first export, and imports the libraries
the manifest's models use (``sweep/preload.py``), once. Then each model gets a fork of that
state: a start-up of milliseconds instead of seconds, and nothing one model changes (global
dtype, working directory, environment, monkeypatches, registered ops) reaches the next.

It never initialises CUDA (a forked child could not use it) and keeps torch at one thread
until it forks (OpenMP's pool does not survive a fork). It is a child subreaper: what a
model's process leaves behind is re-parented here and ended. When the sweep's end of the pipe
closes (the sweep ended, or was killed), it ends every model's process tree and exits. It dies
with the sweep even while it warms up (and reads no pipe): the kernel sends it SIGKILL then
(``PR_SET_PDEATHSIG``), SIGTERM once it serves, so that it ends its models' trees first.

Where forking is unsafe, ``spawned_model_main`` is the fallback: the same warm-up in a fresh
interpreter per model. Both are started by name (the sweep never imports this package); this
module imports ``model_process``, never the other way round.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from pathlib import Path

from exportwatch.plan import Unit
from exportwatch.sweep import processes
from exportwatch.sweep.preload import ImportStatement, run_preload
from exportwatch.sweep.protocol import Exited, Preloading, ServerReady, Started, StartUnit
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.model_process import redirect_output, run_model_process

log = logging.getLogger(__name__)

#: How often the server looks for exited children and orphans while idle.
REAP_SECONDS = 0.05


@dataclass
class Warm:
    default_threads: int  # torch's own choice, for the model processes


def warm_up(settings: SweepSettings, targets: list[str]) -> Warm:
    """Pay torch's and each target's one-off costs before any job's clock starts.

    torch stays at one thread here, so no OpenMP pool exists to be broken by a fork; the
    model's process gets ``--threads``-worth (or torch's default) back.
    """
    import torch
    import torch.export

    default_threads = settings.threads or torch.get_num_threads()
    torch.set_num_threads(1)
    with contextlib.suppress(Exception):
        import torch._dynamo
        from torch.fx.experimental import symbolic_shapes  # noqa: F401
    with contextlib.suppress(Exception):
        import tqdm  # type: ignore[import-untyped]  # onnxscript's progress bars: no monitor thread to be lost in a fork

        tqdm.tqdm.monitor_interval = 0
        # A thread lock, not tqdm's default multiprocessing one: a model's process ends with
        # os._exit, and the sweep's resource tracker then reports that semaphore as leaked (the
        # FX interpreter's progress bar makes one in every AOTInductor compile).
        tqdm.tqdm.set_lock(threading.RLock())
    from exportwatch import compat

    # When torchvision is first imported (transformers and timm import it), not before: a shim
    # of the user's that runs before that import still runs first.
    compat.repair_torchvision_when_imported()
    compat.read_stack_lines_lazily()  # about a tenth of every export (benchmarks/README.md)
    # What every model's process runs, imported (and compiled) once, here.
    import exportwatch.diagnose
    import exportwatch.worker.walk  # noqa: F401
    from exportwatch.targets import get_target
    from exportwatch.worker.quiet import quiet_torch_logs

    with quiet_torch_logs(settings.options.verbose):
        for name in dict.fromkeys(targets):
            try:
                get_target(name).prepare()
            except Exception as exc:  # a missing extra says so when its job runs
                log.debug("preparing target %s failed: %s", name, exc)
    return Warm(default_threads=default_threads)


def fork_unsafe_reason() -> str | None:
    """Why forking this process would hand the model's process a broken state, if it would."""
    if not sys.platform.startswith("linux"):
        return f"forking a process that imported torch is not safe on {sys.platform}"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA was initialised while importing the models' libraries, and CUDA does not survive a fork"
    return None


def die_with_the_sweep(sweep_pid: int, sig: int) -> None:
    """Have the kernel send ``sig`` when the sweep dies (kill -9 included); exit now if it has
    died already (we were re-parented before the request was made)."""
    processes.die_with_parent(sig)
    if os.getppid() != sweep_pid:
        os._exit(0)


def serve(
    conn: Connection,
    settings: SweepSettings,
    log_path: Path | None,
    targets: list[str],
    preload: list[ImportStatement],
    sweep_pid: int | None = None,
) -> None:
    """The fork server's main: warm up, then fork one process per ``StartUnit`` until told to stop."""
    if sweep_pid is not None:  # warming up, it reads no pipe: only the kernel can end it in time
        die_with_the_sweep(sweep_pid, signal.SIGKILL)
    if not settings.options.verbose:
        redirect_output(log_path)
    logging.basicConfig(level=logging.DEBUG if settings.options.verbose else logging.ERROR)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep handles Ctrl-C, and ends us
    for ending in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(ending, _exit_through_cleanup)  # a CI step's timeout signals the group
    processes.become_subreaper()
    if settings.manifest_root and str(settings.manifest_root) not in sys.path:
        sys.path.insert(0, str(settings.manifest_root))  # as the model's process will
    warm = warm_up(settings, targets)
    preloaded = run_preload(preload, before_each=lambda statement: conn.send(Preloading(str(statement))))
    reason = fork_unsafe_reason()
    # Objects that exist now are never collected: the collector in a fork would otherwise visit
    # (write to) every one of them and copy every page the fork shares with us.
    gc.collect()
    gc.freeze()
    conn.send(ServerReady(spawn_reason=reason, preloaded=preloaded))
    baseline = set(processes.children(os.getpid()))  # helpers the imports started, if any
    models: dict[int, int] = {}  # pid -> token
    try:
        if sweep_pid is not None:  # from now on ending means ending the models' trees first
            die_with_the_sweep(sweep_pid, signal.SIGTERM)
        while True:
            if conn.poll(REAP_SECONDS):
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break  # the sweep is gone
                if message is None or reason is not None:
                    break
                assert isinstance(message, StartUnit)
                fd = recv_handle(conn)
                pid = os.fork()
                if pid == 0:
                    _become_model_process(conn, fd, message, settings, warm)
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)  # also done in the child: whichever runs first
                os.close(fd)
                models[pid] = message.token
                conn.send(Started(message.token, pid))
            _reap(conn, models, baseline)
    finally:
        for pid in list(models):
            processes.kill_tree(pid)
        _end_orphans(models, baseline)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        with contextlib.suppress(Exception):
            multiprocessing.util._run_finalizers()  # type: ignore[attr-defined]
        os._exit(0)


def spawned_model_main(conn: Connection, unit: Unit, settings: SweepSettings, log_path: Path | None) -> None:
    """The spawn fallback: a fresh interpreter per model, warmed up before the clock starts."""
    # Warming up, nothing watches the sweep's pipe yet: the kernel ends us if the sweep dies. Once
    # the watching thread runs, it ends our whole tree instead (SIGKILL would leave it).
    sweep = multiprocessing.parent_process()
    if sweep is not None and sweep.pid is not None:
        die_with_the_sweep(sweep.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    if not settings.options.verbose:
        redirect_output(log_path)
    logging.basicConfig(level=logging.DEBUG if settings.options.verbose else logging.ERROR)
    warm = warm_up(settings, unit.targets)
    processes.die_with_parent(0)
    run_model_process(conn, unit, settings, threads=settings.threads or warm.default_threads)


def _exit_through_cleanup(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # the ``finally`` of ``serve`` ends every model's tree


def _become_model_process(
    conn: Connection, fd: int, start: StartUnit, settings: SweepSettings, warm: Warm
) -> None:
    """In the fork: drop the server's channel, take the model's own, and run. Never returns."""
    from multiprocessing.connection import Connection as Pipe

    try:
        os.setpgid(0, 0)
        conn.close()
        if not settings.options.verbose:
            redirect_output(start.log_path)
        own = Pipe(fd)
    except BaseException:
        os._exit(71)
    run_model_process(own, start.unit, start.settings or settings, threads=warm.default_threads)
    os._exit(0)  # not reached


def _reap(conn: Connection, models: dict[int, int], baseline: set[int]) -> None:
    """Collect exited children: a model's process is reported; an orphan is just reaped."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        token = models.pop(pid, None)
        if token is not None:
            processes.kill_group(pid)  # what it left in its process group
            conn.send(Exited(token, processes.returncode_of(status)))
    _end_orphans(models, baseline)


def _end_orphans(models: dict[int, int], baseline: set[int]) -> None:
    """Processes re-parented to us (a model's process died before them): end their trees."""
    for pid in processes.children(os.getpid()):
        if pid not in models and pid not in baseline:
            processes.kill_tree(pid, group=False)
