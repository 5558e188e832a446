"""The ``onnx`` target starts from the captures the ``export`` and ``export-strict`` targets made
of the same module, call and state (programs and failures: torch.onnx's non-strict strategy, then
its strict one), and ends with exactly the result it reaches capturing on its own."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.plan import execution_order, trace_readers
from exportwatch.report import JobResult
from exportwatch.targets import Call, TargetOptions, get_target
from exportwatch.targets.base import SharedTrace, TraceShelf
from exportwatch.targets.onnx import shared_captures
from exportwatch.worker.capture import module_state
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.integration.test_sweep import SETTINGS


def _spec(factory: str, module: str = "sweep_cases") -> ModelSpec:
    return ModelSpec(
        name=factory.lower(),
        factory=f"models/{module}.py:{factory}",
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


@pytest.fixture
def captures(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(type name, strict) of every ``torch.export.export`` call, in order."""
    seen: list[tuple[str, bool]] = []
    real = torch.export.export

    def counting(module: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((type(module).__name__, bool(kwargs.get("strict", False))))
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
    # Neither the passing block nor the failing root and head were traced non-strict again:
    # export's programs and failures answered torch.onnx's first strategy (its strict retry
    # it still makes itself, as no export-strict target was swept).
    assert "_WarningBlock" in captured_alone and "WarnsThenBranches" in captured_alone
    assert non_strict_captures == []


def _sweep_all(spec: ModelSpec) -> tuple[JobResult, Any]:
    """``onnx`` alone, and a prepared model swept by ``export`` and ``export-strict``."""
    alone = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "onnx", settings=SETTINGS)
    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    assert prepared.traces is not None
    prepared.traces.readers, prepared.traces.strict_readers = 1, 1  # as model_process sets them
    for target in execution_order(["export", "onnx", "export-strict"])[:2]:
        sweep_target(prepared, target, settings=SETTINGS)
    return alone, prepared


@pytest.mark.parametrize("factory", ["FallsBackToStrict", "FailsBothWays"])
def test_reuse__onnx_after_both_export_targets_traces_nothing_and_reaches_the_same_result(factory, captures):
    """Where non-strict failed, torch.onnx's strict retry is answered by ``export-strict``'s
    program (then converted) or failure (then the export failure is the ONNX result)."""
    alone, prepared = _sweep_all(_spec(factory, "onnx_reuse_cases"))
    assert (factory, True) in captures  # alone, torch.onnx retried the root strict itself
    del captures[:]
    after = sweep_target(prepared, "onnx", settings=SETTINGS)
    assert captures == []  # every capture, strict or not, came from the export targets
    assert _results(after) == _results(alone)
    # The module that exports strict only: the root, or (where the root fails) its block.
    fell_back = after.submodule("" if factory == "FallsBackToStrict" else "block")
    assert fell_back.verdict.value == "ok"
    assert any(w.startswith("capture fell back:") for w in fell_back.warnings)  # torch.onnx's note
    assert any("strict-only block traced" in w for w in fell_back.warnings)  # the captures' warnings
    if factory == "FailsBothWays":
        root = after.submodule("")
        assert root.verdict.value == "fail" and root.stage == "capture" and root.category


def test_reuse__a_strict_failure_torch_onnx_may_get_past_is_traced_again(captures):
    """torch.onnx's strict strategy swaps ``torch.jit.isinstance`` for the builtin: where
    ``export-strict`` failed on it, torch.onnx's own strict capture exports."""
    alone, prepared = _sweep_all(_spec("JitIsinstance", "onnx_reuse_cases"))
    del captures[:]
    after = sweep_target(prepared, "onnx", settings=SETTINGS)
    assert alone.verdict.value == "ok"
    assert _results(after) == _results(alone)
    assert captures == [("JitIsinstance", True)]  # the non-strict failure was replayed


def test_reuse__the_onnx_result_says_which_captures_it_reused():
    from tests.fixtures.models.onnx_reuse_cases import FallsBackToStrict

    module, call = FallsBackToStrict().eval(), Call(args=(torch.randn(2, 8),))
    options = TargetOptions(traces=TraceShelf(module_state, strict_readers=1))
    for name in ("export", "export-strict"):
        get_target(name).attempt(module, call, options=options)
    outcome = get_target("onnx").attempt(module, call, options=options)
    assert outcome.verdict.value == "ok"
    assert dict(outcome.extras) == {"reused_captures": ("export", "export-strict")}


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


def test_shelf__strict_captures_and_failures_are_kept_apart():
    module, call = torch.nn.Linear(2, 2), Call(args=(torch.ones(1, 2),))
    shelf = TraceShelf(module_state, readers=2, strict_readers=1)
    failed = SharedTrace(error=RuntimeError("no"), warnings=("UserWarning: w",))
    strict = SharedTrace(program=object(), strict=True)
    shelf.keep(module, call, shelf.state(module), failed)
    shelf.keep(module, call, shelf.state(module), strict)
    assert shelf.take(module, call, strict=True, failures=True) is strict
    assert shelf.take(module, call, strict=True) is None  # one reader: let go
    assert shelf.take(module, call, failures=True) is failed  # onnx replays the failure
    assert shelf.take(module, call) is None  # executorch never gets a failure; the last reader
    assert shelf.take(module, call, failures=True) is None
    # A producer no target reads keeps nothing.
    assert not TraceShelf(module_state).wanted(strict=True)
    shelf = TraceShelf(module_state)
    shelf.keep(module, call, shelf.state(module), strict)
    assert shelf.take(module, call, strict=True, failures=True) is None


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
    assert set(shared_captures(module, plain, TargetOptions(traces=shelf))) == {False}
    # torch.onnx passes a trailing dict as keyword arguments: another call than export's.
    assert shared_captures(module, trailing_dict, TargetOptions(traces=shelf)) == {}
    # With dynamic shapes the exporter traces under its own size settings.
    dynamic = TargetOptions(traces=shelf, dynamic_shapes=({0: torch.export.Dim("b")},))
    assert shared_captures(module, plain, dynamic) == {}
    assert shared_captures(module, plain, TargetOptions()) == {}
    # In training mode torch.onnx warns before it captures: its own capture says so.
    module.train()
    assert shared_captures(module, plain, TargetOptions(traces=shelf)) == {}


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


def test_execution_order__export_targets_run_before_the_onnx_target_that_reuses_them():
    assert execution_order(["onnx", "export-strict", "export"]) == ["export", "export-strict", "onnx"]
    assert execution_order(["onnx", "export-strict"]) == ["export-strict", "onnx"]
    assert trace_readers(["onnx", "export-strict", "export", "executorch"]) == (2, 1)
    assert trace_readers(["export-strict", "executorch"]) == (0, 0)
    assert execution_order(["onnx", "onnx-legacy"]) == ["onnx", "onnx-legacy"]
    assert execution_order(["export-strict", "export"]) == ["export-strict", "export"]
