"""What each tested torch release does, checked on the torch this suite runs on (CI runs it on
every release in ``compat.TESTED_TORCH``): one row per release, so a new torch that moves a
private module or changes an API fails here, by name, before it misleads a diagnosis."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import tomllib
import torch
import torch.export

from exportwatch import compat

REPO = Path(__file__).resolve().parents[2]

#: release → what compat answers there. Add a row when CI gains a torch leg.
FACTS = {
    "2.13": {"static_dim": "STATIC", "private_onnx_errors": True, "registry": True, "torchscript_log": True},
    "2.14": {"static_dim": "STATIC", "private_onnx_errors": True, "registry": True, "torchscript_log": True},
    "2.15": {"static_dim": "STATIC", "private_onnx_errors": True, "registry": True, "torchscript_log": True},
}
RELEASE = compat.torch_release()


def test_compat__every_tested_release_has_a_row_and_this_torch_is_tested():
    assert set(FACTS) == set(compat.TESTED_TORCH)
    assert RELEASE in compat.TESTED_TORCH, f"torch {torch.__version__} is not a tested release"


def test_compat__the_package_accepts_exactly_the_tested_releases():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"torch\b", d)]
    low, high = re.fullmatch(r"torch>=(\d+\.\d+),<(\d+\.\d+)", spec.replace(" ", "")).groups()
    minors = [int(r.split(".")[1]) for r in compat.TESTED_TORCH]
    assert low == compat.TESTED_TORCH[0]
    assert high == f"2.{max(minors) + 1}"
    assert minors == list(range(min(minors), max(minors) + 1))  # no untested release in between


@pytest.fixture
def facts() -> dict[str, object]:
    return FACTS[RELEASE]


def test_compat__static_dim(facts):
    dim = compat.static_dim()
    assert (dim is torch.export.Dim.STATIC) == (facts["static_dim"] == "STATIC")
    # ... and torch.export accepts it for a static axis.
    model = torch.nn.Linear(4, 4)
    batch = torch.export.Dim("batch", min=2, max=8)
    program = torch.export.export(model, (torch.ones(3, 4),), dynamic_shapes=({0: batch, 1: dim},))
    assert program.module()(torch.ones(5, 4)).shape == (5, 4)


def test_compat__onnx_exporter_modules(facts):
    errors = compat.onnx_exporter_errors()
    assert (errors.__name__ == "torch.onnx._internal.exporter._errors") is facts["private_onnx_errors"]
    if facts["private_onnx_errors"]:
        # The classes the onnx target tells stages apart with.
        assert hasattr(errors, "TorchExportError") and hasattr(errors, "ConversionError")
    registration = compat.onnx_registration()
    assert (registration is not None) is facts["registry"]
    if registration is not None:
        assert inspect.ismethod(registration.ONNXRegistry.from_torchlib)


def test_compat__onnx_capture_strategy_is_recorded_on_the_program():
    pytest.importorskip("onnxscript")
    program = torch.onnx.export(torch.nn.Linear(2, 2), (torch.ones(1, 2),), dynamo=True, verbose=False)
    assert compat.onnx_capture_strategy(program) == "TorchExportNonStrictStrategy"
    assert compat.onnx_capture_strategy(object()) is None


def test_compat__torchscript_onnx_log_can_be_silenced(facts):
    assert hasattr(torch._C, "_jit_set_onnx_log_enabled") is facts["torchscript_log"]
    compat.silence_torchscript_onnx_log()  # no error, and the log is off
    if facts["torchscript_log"]:
        assert torch._C._jit_is_onnx_log_enabled() is False
