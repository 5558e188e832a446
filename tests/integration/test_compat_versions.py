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
    "2.13": {
        "static_dim": "STATIC",
        "private_onnx_errors": True,
        "registry": True,
        "torchscript_log": True,
        "lazy_stack_lines": True,
    },
    "2.14": {
        "static_dim": "STATIC",
        "private_onnx_errors": True,
        "registry": True,
        "torchscript_log": True,
        "lazy_stack_lines": True,
    },
    "2.15": {
        "static_dim": "STATIC",
        "private_onnx_errors": True,
        "registry": True,
        "torchscript_log": True,
        "lazy_stack_lines": True,
    },
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


#: Run in a fresh interpreter: exports a model that passes and one that fails (a data-dependent
#: branch), first with torch's own stack-frame reader, then with exportwatch's lazy one, and
#: prints what each produced.
_LAZY_LINES_SCRIPT = r"""
import json, pathlib, torch
from exportwatch import compat
from exportwatch.diagnose import diagnose_exception

class Passing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.relu(self.linear(x)) * 2

class Failing(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent: torch.export cannot trace this
            return x + 1
        return x - 1

def run():
    ep = torch.export.export(Passing(), (torch.ones(2, 4),), strict=False)
    traces = [n.meta.get("stack_trace") for n in ep.graph.nodes if n.op == "call_function"]
    try:
        torch.export.export(Failing(), (torch.ones(2, 4),), strict=False)
    except Exception as exc:
        found = diagnose_exception(
            exc, target="export", stage="capture", repo_root=pathlib.Path.cwd(), module=None
        )
        frame = found.user_frame
        return {"traces": traces, "error": str(exc), "fingerprint": found.fingerprint,
                "frame": frame and [frame.path, frame.line, frame.source]}
    raise SystemExit("the failing model exported")

before = run()
acted = compat.read_stack_lines_lazily()
after = run()
again = compat.read_stack_lines_lazily()
print(json.dumps({"acted": acted, "again": again, "before": before, "after": after}))
"""


def test_compat__stack_lines_read_lazily_change_no_stack_trace_message_or_fingerprint(facts, tmp_path):
    import json
    import subprocess
    import sys

    script = tmp_path / "lazy_lines.py"  # a real file: frames need source lines to read
    script.write_text(_LAZY_LINES_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["acted"] is facts["lazy_stack_lines"]
    assert result["again"] is False  # installed once
    before, after = result["before"], result["after"]
    assert len(before["traces"]) == 3 and all(before["traces"])
    assert "return torch.relu(self.linear(x)) * 2" in before["traces"][-1]
    assert "if x.sum() > 0" in before["frame"][2]
    assert after == before  # node stack traces, the error text, its fingerprint and frame
