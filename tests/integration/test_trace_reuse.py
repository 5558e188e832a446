"""The ``onnx`` target starts from the capture the ``export`` target made of the same module,
call and state, and ends with exactly the result it reaches capturing on its own."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.plan import execution_order
from exportwatch.report import JobResult
from exportwatch.targets import Call, TargetOptions
from exportwatch.targets.base import SharedTrace, TraceShelf
from exportwatch.targets.onnx import shared_capture
from exportwatch.worker.capture import module_state
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.integration.test_sweep import SETTINGS


def _spec(factory: str) -> ModelSpec:
    return ModelSpec(
        name=factory.lower(),
        factory=f"models/sweep_cases.py:{factory}",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 8])]),
    )


@pytest.fixture
def non_strict_captures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Type names of the modules ``torch.export.export(strict=False)`` is called on, in order."""
    seen: list[str] = []
    real = torch.export.export

    def counting(module: Any, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("strict", False):
            seen.append(type(module).__name__)
        return real(module, *args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counting)
    return seen


def _results(job: JobResult) -> list[tuple[Any, ...]]:
    return [
        (
            s.path,
            s.verdict,
            s.fingerprint,
            s.category,
            s.stage,
            s.same_as,
            s.covered_by,
            s.attempts,
            s.warnings,
        )
        for s in job.submodules
    ]


def test_reuse__onnx_after_export_captures_less_and_reaches_the_same_result(non_strict_captures):
    spec = _spec("WarnsThenBranches")
    alone = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "onnx", settings=SETTINGS)
    captured_alone = list(non_strict_captures)

    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    sweep_target(prepared, "export", settings=SETTINGS)
    del non_strict_captures[:]
    after_export = sweep_target(prepared, "onnx", settings=SETTINGS)

    assert _results(after_export) == _results(alone)
    block = after_export.submodule("block")
    assert block.verdict.value == "ok"
    assert any("block traced with a fixed width" in w for w in block.warnings)  # replayed
    # The passing block was not traced again; the failing root and head were (torch.onnx
    # retries a failed capture with strict=True, which only a trace of its own can answer).
    assert "_WarningBlock" in captured_alone
    assert "_WarningBlock" not in non_strict_captures
    assert non_strict_captures.count("WarnsThenBranches") == captured_alone.count("WarnsThenBranches") == 1


def test_reuse__a_module_its_forward_mutated_is_traced_again(non_strict_captures):
    prepared = prepare_model(_spec("CountsItsCalls"), device="cpu", settings=SETTINGS)
    sweep_target(prepared, "export", settings=SETTINGS)  # verification's eager calls count too
    del non_strict_captures[:]
    sweep_target(prepared, "onnx", settings=SETTINGS)
    assert non_strict_captures == ["CountsItsCalls"]


def test_shelf__hands_a_capture_back_only_while_the_module_is_unchanged():
    module = torch.nn.Linear(2, 2)
    call = Call(args=(torch.ones(1, 2),))
    shelf = TraceShelf(module_state)
    trace = SharedTrace(program=object(), warnings=("UserWarning: w",))
    shelf.keep(module, call, shelf.state(module), trace)
    assert shelf.take(module, Call(args=call.args)) is None  # another call: never confused
    assert shelf.take(module, call) is trace
    assert shelf.take(module, call) is None  # handed on once
    shelf.keep(module, call, shelf.state(module), trace)
    with torch.no_grad():
        module.bias.add_(1)  # in place: the version counter moves
    assert shelf.take(module, call) is None


class _Stateful(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._step = 1  # private: forward reads it
        self.stats = {"shift": torch.zeros(8192)}  # a big tensor inside a container
        self.config = type("Config", (), {})()
        self.config.scale = 2.0  # a plain object's attribute


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: setattr(m, "_step", 2),
        lambda m: m.stats.__setitem__("shift", m.stats["shift"] + 1),
        lambda m: m.stats["shift"].add_(1),
        lambda m: setattr(m.config, "scale", 3.0),
    ],
    ids=["private-counter", "replaced-tensor-in-dict", "in-place-tensor-in-dict", "plain-object-field"],
)
def test_module_state__sees_what_a_forward_may_change(mutate):
    module = _Stateful()
    before = module_state(module)
    assert before is not None and module_state(module) == before
    mutate(module)
    assert module_state(module) != before


def test_shelf__a_state_that_cannot_be_described_shares_nothing():
    def broken(module: object) -> object:
        raise RuntimeError("no description")

    module, call = torch.nn.Linear(2, 2), Call(args=(torch.ones(1, 2),))
    shelf = TraceShelf(broken)
    shelf.keep(module, call, shelf.state(module), SharedTrace(program=object()))
    assert shelf.take(module, call) is None


def test_shared_capture__only_where_the_exporter_would_capture_the_same_program():
    module = torch.nn.Linear(2, 2).eval()
    shelf = TraceShelf(module_state)
    plain = Call(args=(torch.ones(1, 2),))
    trailing_dict = Call(args=(torch.ones(1, 2), {"scale": torch.ones(1)}))
    for call in (plain, trailing_dict):
        shelf.keep(module, call, shelf.state(module), SharedTrace(program=object()))
    assert shared_capture(module, plain, TargetOptions(traces=shelf)) is not None
    # torch.onnx passes a trailing dict as keyword arguments: another call than export's.
    assert shared_capture(module, trailing_dict, TargetOptions(traces=shelf)) is None
    # With dynamic shapes the exporter traces under its own size settings.
    dynamic = TargetOptions(traces=shelf, dynamic_shapes=({0: torch.export.Dim("b")},))
    assert shared_capture(module, plain, dynamic) is None
    assert shared_capture(module, plain, TargetOptions()) is None
    # In training mode torch.onnx warns before it captures: its own capture says so.
    module.train()
    assert shared_capture(module, plain, TargetOptions(traces=shelf)) is None


@pytest.mark.parametrize("factory", ["AsksIfOnnxExports", "ReprRaises"])
def test_reuse__code_that_behaves_otherwise_under_torch_onnx_gets_its_own_capture(factory):
    """is_in_onnx_export() answers True in torch.onnx's capture; torch.onnx prints repr(module)
    before capturing. Either way the onnx result after export must be the one it gets alone."""
    spec = _spec(factory)
    alone = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "onnx", settings=SETTINGS)
    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    assert sweep_target(prepared, "export", settings=SETTINGS).verdict.value == "ok"
    after_export = sweep_target(prepared, "onnx", settings=SETTINGS)
    assert alone.verdict.value != "ok"  # what a reused plain capture would have hidden
    assert _results(after_export) == _results(alone)


def test_execution_order__export_runs_before_the_onnx_target_that_reuses_it():
    assert execution_order(["onnx", "export-strict", "export"]) == ["export", "onnx", "export-strict"]
    assert execution_order(["onnx", "onnx-legacy"]) == ["onnx", "onnx-legacy"]
    assert execution_order(["export-strict", "export"]) == ["export-strict", "export"]
