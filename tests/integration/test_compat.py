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


#: Declares torchvision's two schemas itself, as a user's own shim would, before importing it:
#: it fails if anything declared them before it.
OWN_SHIM = """\
import torch

for op in ("nms", "qnms"):
    torch.library.define(f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
"""


def test_sweep__the_torchvision_repair_waits_for_the_users_shim_and_its_note_is_said_once(tmp_path):
    """The repair runs when torchvision is first imported, after code of the user's that runs
    before that import; its note is said once per sweep, and recorded only on the jobs of the
    models whose process imported torchvision with it."""
    from exportwatch.manifest import load_manifest
    from exportwatch.sweep.options import SweepOptions
    from exportwatch.sweep.progress import Progress
    from exportwatch.sweep.runner import SweepRequest, run_sweep

    build = "\n\ndef build():\n    return torch.nn.Linear(4, 4)\n"
    sources = {
        "tv_a": "import torch\nimport torchvision\n" + build,
        "tv_b": "import torch\nX = 1\nimport torchvision\n" + build,
        "plain": "import torch\n" + build,
        "own_shim": "import torch\nimport own_shim_ops\nimport torchvision\n" + build,
    }
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "own_shim_ops.py").write_text(OWN_SHIM)
    # ``plain`` on onnx: the ONNX exporter asks whether torchvision is installed as the fork
    # server warms it up, which must not count as importing it.
    (tmp_path / "m.yml").write_text(
        "version: 1\nmodels:\n"
        + "".join(
            f"  - {{name: {name}, factory: '{name}.py:build', targets: [{target}],"
            " inputs: {args: [{shape: [2, 4]}]}}\n"
            for name in sources
            for target in ["onnx" if name == "plain" else "export"]
        )
    )
    said: list[str] = []

    class Recording(Progress):
        def message(self, text: str) -> None:
            said.append(text)

    request = SweepRequest.of(
        load_manifest(tmp_path / "m.yml"), output=tmp_path / "r.json", options=SweepOptions(workers=2)
    )
    report = run_sweep(request, progress=Recording(total=4, quiet=True)).report
    noted = {}
    for job in report.jobs:
        assert job.verdict.value == "ok", (job.model, job.reason)
        noted[job.model] = any("torchvision's C++ extension does not load" in w for w in job.root.warnings)
    assert noted == {"tv_a": True, "tv_b": True, "plain": False, "own_shim": False}
    assert sum("torchvision's C++ extension does not load" in text for text in said) == 1, said
