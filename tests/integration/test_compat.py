"""A torchvision whose C++ extension cannot load (a wheel built for another torch) must not stop
models that import it (transformers, timm) from being swept: the worker repairs the import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _torchvision_extension_is_broken() -> bool:
    probe = "import torchvision"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return done.returncode != 0 and "torchvision::nms" in done.stderr


pytestmark = pytest.mark.skipif(
    not _torchvision_extension_is_broken(), reason="needs a torchvision whose C++ extension cannot load"
)


def test_worker__sweeps_a_model_that_imports_a_torchvision_without_its_extension(tmp_path):
    (tmp_path / "m.py").write_text(
        textwrap.dedent(
            """\
            import torch
            import torchvision  # fails on its own when its _C cannot load

            def build():
                return torch.nn.Linear(4, 4)
            """
        )
    )
    (tmp_path / "m.yml").write_text(
        "version: 1\nmodels:\n  - {name: tv, factory: 'm.py:build', targets: [export],"
        " inputs: {args: [{shape: [2, 4]}]}}\n"
    )
    subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", "m.yml", "-o", "r.json", "--workers", "1", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    (job,) = json.loads((tmp_path / "r.json").read_text())["jobs"]
    assert job["verdict"] == "ok", job.get("reason")
    root = next(s for s in job["submodules"] if s["path"] == "")
    assert any("torchvision's C++ extension does not load" in w for w in root["warnings"])
