"""`exportwatch sweep` as a user runs it, on a model whose module path is hostile (issue 15, item 1).

``nn.Module.add_module`` takes any name without a dot, so a pull request's model can name a
submodule with terminal escapes and workflow commands; the sweep prints that path in its table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.unit.test_inert_outputs import commands_in, control_characters

HOSTILE_NAME = "\x1b]0;PWNED\x07\x1b[2J\x9b31m\r::set-output name=gate::pass ##[error]boom\u202e"

MODEL = f"""
import torch


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent: torch.export cannot trace it
            return x * 2
        return x


class Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.add_module({HOSTILE_NAME!r}, Branchy())

    def forward(self, x):
        return next(iter(self.children()))(x)


def build():
    return Outer()
"""


def test_inert_sweep__a_hostile_module_path_reaches_the_log_inert(tmp_path: Path):
    (tmp_path / "m.py").write_text(MODEL, encoding="utf-8")
    manifest = tmp_path / "exportwatch.yml"
    manifest.write_text(
        "version: 1\nmodels:\n"
        "  - name: hostile\n    factory: m.py:build\n    inputs: {args: [{shape: [2, 4]}]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(tmp_path / "r.json"),
         "--target", "export", "--workers", "1"],
        cwd=REPO_ROOT, capture_output=True, timeout=600,
    )  # fmt: skip
    stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == 0, stderr
    assert "set-output" in stdout  # the failing path is in the table, shown ...
    assert "\\x1b]0;PWNED\\x07" in stdout  # ... with its escapes made visible
    for text in (stdout, stderr):
        assert control_characters(text) == []
        assert commands_in(text) == []
