"""Independent commands of a test module run at once, for a module-scoped fixture to share.

The suite runs one test at a time, and most of its subprocesses (a sweep with ``--workers 1``,
a CLI that refuses before torch) keep one core busy: on a 2-core machine the other one idles.
Commands that share nothing but the repository (each its own output, its own temporary folder)
start together here and are waited for in turn; each test then reads its own result. Not for
commands that assert on their own timing (a job's ``timeout``): the other commands load the cores.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tests.conftest import REPO_ROOT


def run_side_by_side(
    commands: Mapping[str, Sequence[str]],
    *,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command started at once; name → the finished process (text stdout and stderr),
    as ``subprocess.run(..., capture_output=True, text=True)`` would have returned it."""
    with contextlib.ExitStack() as stack:
        # Output to files, not pipes: a full pipe would stall a command until its turn to be read.
        files = {
            name: (
                stack.enter_context(tempfile.TemporaryFile("w+")),
                stack.enter_context(tempfile.TemporaryFile("w+")),
            )
            for name in commands
        }
        started = {}
        for name, command in commands.items():
            process = subprocess.Popen(
                list(command), cwd=cwd, env=env, stdout=files[name][0], stderr=files[name][1], text=True
            )
            started[name] = stack.enter_context(process)  # waited for on the way out
        done = {}
        for name, process in started.items():
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for each in started.values():
                    each.kill()
                raise
            stdout, stderr = (read(file) for file in files[name])
            done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


def read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()
