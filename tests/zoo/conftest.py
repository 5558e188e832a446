"""The real-architecture tier: one real sweep of benchmarks/realarch.exportwatch.yml, and
``report_exportability`` on the same models and inputs to hold it against (see README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "benchmarks" / "realarch.exportwatch.yml"
SWEEP_TIMEOUT_S = 600  # the whole tier takes well under a minute; this only stops a hang


@pytest.fixture(scope="session")
def zoo_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of one real ``exportwatch sweep`` of the manifest (2 workers)."""
    output = tmp_path_factory.mktemp("zoo") / "r.json"
    command = [
        sys.executable,
        "-m",
        "exportwatch",
        "sweep",
        str(MANIFEST),
        "--workers",
        "2",
        "-o",
        str(output),
        "-q",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S
    )
    if done.returncode != 0 or not output.is_file():
        pytest.fail(
            f"exportwatch sweep exited {done.returncode}\n--- stdout\n{done.stdout[-4000:]}"
            f"\n--- stderr\n{done.stderr[-8000:]}",
            pytrace=False,
        )
    return json.loads(output.read_text())


@pytest.fixture(scope="session")
def zoo_jobs(zoo_report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's jobs by model name (one target, one device: one job per model)."""
    return {job["model"]: job for job in zoo_report["jobs"]}


@pytest.fixture(scope="session")
def report_exportability_of() -> Callable[[str], dict[str, BaseException | None]]:
    """``report_exportability`` (non-strict) of a manifest model, computed once per model.

    The model and inputs are built the way a sweep's worker builds them: exportwatch's own
    builders, the global RNG seeded with 0 first (``sweep.prepare_model``), eval() and no_grad.
    When report_exportability itself raises, the root maps to that exception.
    """
    import torch
    from torch._export.tools import report_exportability

    from exportwatch.manifest import load_manifest
    from exportwatch.worker.inputs import build_inputs, build_model

    manifest = load_manifest(MANIFEST)
    specs = {spec.name: spec for spec in manifest.models}
    results: dict[str, dict[str, BaseException | None]] = {}

    def of(name: str) -> dict[str, BaseException | None]:
        if name not in results:
            spec = specs[name]
            torch.manual_seed(0)
            model = build_model(spec, root=manifest.root)
            args, kwargs = build_inputs(spec.inputs, root=manifest.root, device="cpu", field_path="inputs")
            with torch.no_grad():
                try:
                    results[name] = dict(report_exportability(model, tuple(args), kwargs, strict=False))
                except Exception as exc:
                    results[name] = {"": exc}
        return results[name]

    return of
