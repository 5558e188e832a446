"""The process-table helpers on a real process tree."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from exportwatch.sweep import processes
from exportwatch.worker import forkserver

if not sys.platform.startswith("linux"):
    pytest.skip("reads /proc", allow_module_level=True)

# A child that forks a grandchild holding ~200 MiB of its own, then both sleep.
TREE = """
import os, sys, time
pid = os.fork()
if pid == 0:
    hog = bytearray(b"\\1") * (200 * 2**20)
    print("ready", flush=True)
    time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


def test_processes__descendants_memory_and_kill_tree():
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        below = processes.descendants(parent.pid)
        assert len(below) == 1
        assert processes.tree_memory_mb(parent.pid) > processes.rss_mb(parent.pid) + 150
        processes.kill_tree(parent.pid)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while processes.rss_mb(below[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes.rss_mb(below[0]) == 0.0
    finally:
        processes.kill_tree(parent.pid)


def test_processes__return_codes_read_as_signals_and_exit_codes():
    assert processes.signal_name(-6) == "signal SIGABRT"
    assert processes.signal_name(3) == "exit code 3"
    done = subprocess.run([sys.executable, "-c", "import os; os.abort()"], check=False)
    assert processes.signal_name(done.returncode) == "signal SIGABRT"


def test_fork_unsafe_reason__cuda_initialised_or_not_linux(monkeypatch):
    torch = pytest.importorskip("torch")
    assert forkserver.fork_unsafe_reason() is None
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert "CUDA was initialised" in forkserver.fork_unsafe_reason()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "not safe on darwin" in forkserver.fork_unsafe_reason()
