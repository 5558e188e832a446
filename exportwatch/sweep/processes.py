"""The process-table facts the sweep polices: a process's descendants, their memory, their end;
and how a process's main is named (``module:function``) so that its parent need not import it.

Linux ``/proc`` readers and ``prctl``; elsewhere each function degrades to what ``os`` offers
(the process itself, no descendants), so the sweep still runs, with less policing.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: Rounds of "find the descendants, kill them" before giving up on a process that forks faster.
KILL_ROUNDS = 5


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), from ``/proc``."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    frontier = [pid]
    seen = {pid}
    while frontier:
        below = [c for p in frontier for c in children(p) if c not in seen]
        seen.update(below)
        found.extend(below)
        frontier = below
    return found


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb(pid: int) -> float:
    """Resident memory of one process (0.0 when it is gone)."""
    kib = _status_kib(pid, "VmRSS")
    return kib / 1024 if kib else 0.0


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """The kernel's high-water mark of one process's resident memory."""
    kib = _status_kib(pid, "VmHWM")  # type: ignore[arg-type]
    return round(kib / 1024, 1) if kib else None


def reset_peak_rss() -> None:
    """Writing 5 to clear_refs resets VmHWM, so each job of a process reports its own peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def private_mb(pid: int) -> float:
    """Memory only this process holds: a forked child's pages shared with its parent don't count."""
    try:
        total = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
        return total / 1024
    except (OSError, ValueError, IndexError):
        return rss_mb(pid)


def tree_memory_mb(pid: int) -> float:
    """A job's memory: its process's RSS plus what each process it started holds on its own.

    Summing RSS would count the pages a fork shares with its parent once per process.
    """
    return rss_mb(pid) + sum(private_mb(child) for child in descendants(pid))


def kill_tree(pid: int, *, group: bool = True) -> None:
    """SIGKILL ``pid``'s process group (it leads one) and every descendant that left it."""
    for _ in range(KILL_ROUNDS):
        for victim in descendants(pid):  # first: ``pid`` may be the caller itself
            with contextlib.suppress(OSError):
                os.kill(victim, signal.SIGKILL)
        if not descendants(pid):
            break
    if group:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group whose leader was already reaped."""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def oom_kills() -> int | None:
    """The kernel's count of OOM kills in our cgroup (v2), where it is readable."""
    try:
        for line in Path("/sys/fs/cgroup/memory.events").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_limit_mb() -> float | None:
    """The memory this machine (or container) gives us: the cgroup's limit, else MemTotal."""
    limits: list[float] = []
    with contextlib.suppress(OSError, ValueError):
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text != "max":
            limits.append(int(text) / 2**20)
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                limits.append(int(line.split()[1]) / 1024)
    return min(limits) if limits else None


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def become_subreaper(on: bool = True) -> bool:
    """Orphans of our descendants are re-parented to us, not to init, so we can end them."""
    return _prctl(PR_SET_CHILD_SUBREAPER, int(on))


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """The kernel sends ``sig`` when the parent dies (kill -9 included); 0 cancels it.

    Strictly, when the parent's *thread* that started us ends: the sweep starts its processes
    from its main thread. A fork does not inherit it. The caller checks ``os.getppid()`` after
    asking: a parent that died just before would otherwise go unnoticed.
    """
    return _prctl(PR_SET_PDEATHSIG, int(sig))


def signal_name(returncode: int | None) -> str:
    """``signal SIGABRT`` / ``exit code 3`` for a ``Popen``-style return code."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def returncode_of(status: int) -> int:
    """A ``waitpid`` status as a ``Popen``-style return code (negative: the signal)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 0


def run_by_name(main: str, *args: Any) -> None:
    """A child process's target: ``main`` (``package.module:function``) imported in the child.

    The torch-free sweep starts the worker's processes by naming their mains, so it never
    imports the worker package (which imports torch once it runs).
    """
    module, _, function = main.partition(":")
    getattr(importlib.import_module(module), function)(*args)
