"""A mistyped flag, as a user types it (issue 25, finding 9): exit 2 before any work, the
command's own usage and the flag that was meant. A real ``exportwatch`` subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.quick  # argparse only: no torch import, ~0.3 s


def test_sweep__a_mistyped_flag_is_exit_2_with_did_you_mean_the_real_one(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", "x.yml", "--targets", "export"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: exportwatch sweep ")
    assert "did you mean --target?" in done.stderr
    assert not (tmp_path / "exportwatch-report.json").exists()
