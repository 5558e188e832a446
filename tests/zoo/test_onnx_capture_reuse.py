"""On real architectures, the ``onnx`` target's result after ``export`` (starting from its
captures) is the result it reaches alone, and the root is not traced a second time."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
import torch

from exportwatch.manifest import load_manifest
from exportwatch.report import JobResult
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.zoo.conftest import MANIFEST, REPO_ROOT

# Before transformers/timm/torchvision: lets torchvision import when its C++ extension cannot load.
if str(MANIFEST.parent) not in sys.path:
    sys.path.insert(0, str(MANIFEST.parent))
importlib.import_module("realarch_models")
pytest.importorskip("transformers")
pytest.importorskip("timm")
pytest.importorskip("onnxscript")

pytestmark = [pytest.mark.zoo, pytest.mark.slow]

SPECS = {spec.name: spec for spec in load_manifest(MANIFEST).models}
SETTINGS = SweepSettings(manifest_root=MANIFEST.parent, repo_root=REPO_ROOT)


def _results(job: JobResult) -> list[tuple[Any, ...]]:
    return [
        (s.path, s.verdict, s.fingerprint, s.category, s.stage, s.same_as, s.attempts, s.warnings)
        for s in job.submodules
    ]


@pytest.mark.parametrize("model", ["hf_distilbert", "timm_resnet18"])
def test_onnx_after_export__same_result_without_a_second_capture(model, monkeypatch):
    spec = SPECS[model]
    with torch.no_grad():
        alone = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "onnx", settings=SETTINGS)
        prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
        sweep_target(prepared, "export", settings=SETTINGS)
        captures: list[object] = []
        real = torch.export.export
        monkeypatch.setattr(torch.export, "export", lambda *a, **k: captures.append(a[0]) or real(*a, **k))
        after_export = sweep_target(prepared, "onnx", settings=SETTINGS)
    assert alone.verdict.value == "ok"
    assert _results(after_export) == _results(alone)
    assert captures == []  # the root's capture came from the export target
