"""Whether the devices a plan asks for exist, decided before any model is swept.

A job on a missing CUDA device is ``skipped``; a whole sweep of skipped jobs would read as
"all pass" for exports that never ran. So a plan that wants CUDA on a machine without it is a
usage error, unless the user allows skipping (``--allow-skip``).

Torch-free: the parent process asks a short-lived interpreter (``torch.cuda.is_available()``
there, with the NVML check, which creates no CUDA context), so the sweep's own process never
imports torch.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterable

from exportwatch.errors import UsageError

_PROBE = "import torch, sys; sys.stdout.write('1' if torch.cuda.is_available() else '0')"


def cuda_available(*, python: str = sys.executable, timeout_s: float = 120) -> bool:
    """``torch.cuda.is_available()`` in a fresh interpreter (``EXPORTWATCH_FAKE_NO_CUDA=1``
    answers no without asking, for tests on a GPU machine)."""
    if os.environ.get("EXPORTWATCH_FAKE_NO_CUDA") == "1":
        return False
    return _probe_cuda(python, timeout_s)


@functools.cache
def _probe_cuda(python: str, timeout_s: float) -> bool:
    """Asked once per process: ``compare`` sweeps head and base with the same devices."""
    env = {**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
    try:
        done = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == "1"


class DeviceUnavailable(UsageError):
    """The plan wants a device this machine lacks."""


def require_devices(wanted: Iterable[tuple[str, str]], *, allow_skip: bool) -> None:
    """``wanted``: (model, device) per planned unit. Raise :class:`DeviceUnavailable` when some
    want CUDA and there is none, unless ``allow_skip`` (their jobs are then ``skipped``)."""
    on_cuda = sorted({model for model, device in wanted if device == "cuda"})
    if not on_cuda or allow_skip or cuda_available():
        return
    names = ", ".join(on_cuda[:5]) + (f" and {len(on_cuda) - 5} more" if len(on_cuda) > 5 else "")
    raise DeviceUnavailable(
        f"CUDA is not available on this machine, but {len(on_cuda)} model(s) ask for it ({names}): "
        "sweep on a machine with a GPU, use --device cpu (or auto), or pass --allow-skip to "
        "report their jobs as skipped"
    )
