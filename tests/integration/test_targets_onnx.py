"""Targets ``onnx`` (dynamo) and ``onnx-legacy`` (TorchScript) on real small models.

Each case asserts the verdict, the stage the attempt died in and the root cause's class (the
innermost ``__cause__``), because the exporters' own first lines are generic.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from onnxscript import opset18 as op
from torch.export import Dim

from exportwatch.report import Verdict
from exportwatch.targets import Call, Stage, TargetOptions, get_target, onnx_legacy
from exportwatch.targets import onnx as onnx_target
from exportwatch.targets.base import Target
from exportwatch.targets.onnx import OnnxModel, cause_chain, root_cause
from exportwatch.targets.verify import NumericMismatchError

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)


def root_cause_name(error: BaseException | None) -> str:
    assert error is not None
    return type(root_cause(error)).__name__


# ---------------------------------------------------------------------------------------------
# Small models, one per way an export goes wrong.


class Exportable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, object]:
        hidden = self.linear(x).relu()
        return {"hidden": hidden, "parts": [hidden.sum(-1), mask * 2]}


class DataDependentIf(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x + 1
        return x - 1


class Eigh(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigh(x)[0]


class HistcMinEqualsMax(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.histc(x, bins=4, min=0, max=0)


@torch.library.custom_op("exportwatch_test::triple", mutates_args=())
def triple(x: torch.Tensor) -> torch.Tensor:
    return x * 3


@triple.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class UsesCustomOp(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triple(x) + 1


def doubles_instead_of_triples(x):  # an onnxscript translation that is simply wrong
    return op.Mul(x, op.Constant(value_float=2.0))


class AddsEightRowWeight(torch.nn.Module):
    """Broadcasting against an (8, 3) weight forces any dynamic batch to 8."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class SumOverBatch(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0)


class NumpyRoundTrip(torch.nn.Module):
    """Non-strict capture cannot call .numpy() on a fake tensor; strict (dynamo) traces it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy() * 2)


class RaisesInForward(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("this model cannot be traced")


@pytest.fixture(scope="module")
def dynamo() -> Target:
    return get_target("onnx")


@pytest.fixture(scope="module")
def legacy() -> Target:
    return get_target("onnx-legacy")


X = torch.randn(2, 3)


# ---------------------------------------------------------------------------------------------
# onnx (dynamo exporter)


@pytest.mark.slow
def test_onnx__passes_an_exportable_model_verified_on_every_input_set_and_keeps_no_artifacts(
    dynamo: Target, tmp_path: Path
) -> None:
    outcome = dynamo.attempt(
        Exportable().eval(),
        Call(args=(X,), kwargs={"mask": torch.ones(2)}),
        checks=[("other", Call(args=(X * 3,), kwargs={"mask": torch.zeros(2)}))],
        options=TargetOptions(artifacts_dir=tmp_path, artifact_name="exportable"),
    )
    assert outcome.verdict == Verdict.OK, outcome
    assert outcome.warnings == ()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_onnx__fails_at_capture_on_a_data_dependent_if_and_keeps_the_exporter_report(
    dynamo: Target, tmp_path: Path
) -> None:
    outcome = dynamo.attempt(
        DataDependentIf(),
        Call(args=(X,)),
        options=TargetOptions(artifacts_dir=tmp_path, artifact_name="m__onnx__root"),
    )
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.CAPTURE
    assert type(outcome.error).__name__ == "TorchExportError"
    assert root_cause_name(outcome.error) == "GuardOnDataDependentSymNode"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m__onnx__root.report.md"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "example", "root", "op_name"),
    [
        (Eigh(), torch.randn(3, 3), "DispatchError", "aten._linalg_eigh.default"),
        (HistcMinEqualsMax(), torch.randn(10), "NotImplementedError", "aten.histc.default"),
    ],
    ids=["eigh", "histc-min-equals-max"],
)
def test_onnx__fails_at_translation_on_an_op_without_an_onnx_function_and_names_it(
    dynamo: Target, model: torch.nn.Module, example: torch.Tensor, root: str, op_name: str
) -> None:
    outcome = dynamo.attempt(model, Call(args=(example,)), options=TargetOptions())
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.TRANSLATION
    assert type(outcome.error).__name__ == "ConversionError"
    assert root_cause_name(outcome.error) == root
    assert f"no ONNX translation for {op_name}" in outcome.warnings


@pytest.mark.slow
def test_onnx__fails_at_translation_on_a_custom_op_without_a_translation(dynamo: Target) -> None:
    outcome = dynamo.attempt(UsesCustomOp(), Call(args=(X,)), options=TargetOptions())
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.TRANSLATION
    assert root_cause_name(outcome.error) == "DispatchError"
    assert "no ONNX translation for exportwatch_test.triple.default" in outcome.warnings


@pytest.mark.slow
def test_onnx__reports_a_wrong_custom_translation_as_an_accuracy_mismatch_and_keeps_the_model(
    dynamo: Target, tmp_path: Path
) -> None:
    outcome = dynamo.attempt(
        UsesCustomOp(),
        Call(args=(torch.ones(2, 3),)),
        options=TargetOptions(
            onnx_custom_translations={torch.ops.exportwatch_test.triple.default: doubles_instead_of_triples},
            artifacts_dir=tmp_path,
            artifact_name="custom",
        ),
    )
    assert outcome.verdict == Verdict.MISMATCH
    assert outcome.stage == Stage.ACCURACY
    assert isinstance(root_cause(outcome.error), NumericMismatchError)
    assert outcome.mismatch is not None
    assert outcome.mismatch.input_set == "example"
    assert outcome.mismatch.max_abs_error == pytest.approx(1.0)  # 3x+1 = 4 vs 2x+1 = 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.onnx", "custom.report.md"]
    kept = onnx.load(str(tmp_path / "custom.onnx"))
    assert [i.name for i in kept.graph.input] == ["x"]


@pytest.mark.slow
def test_onnx__does_not_leak_a_custom_translation_into_the_next_attempt(dynamo: Target) -> None:
    table = {torch.ops.exportwatch_test.triple.default: doubles_instead_of_triples}
    with_table = dynamo.attempt(
        UsesCustomOp(), Call(args=(X,)), options=TargetOptions(onnx_custom_translations=table)
    )
    without = dynamo.attempt(UsesCustomOp(), Call(args=(X,)), options=TargetOptions())
    assert (with_table.stage, without.stage) == (Stage.ACCURACY, Stage.TRANSLATION)


def test_onnx__records_the_optimization_stage_when_the_optimizer_fails(
    dynamo: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch.onnx._internal.exporter._onnx_program import ONNXProgram

    def broken_optimizer(self: ONNXProgram) -> None:
        raise RuntimeError("constant folding blew up")

    monkeypatch.setattr(ONNXProgram, "optimize", broken_optimizer)
    outcome = dynamo.attempt(SumOverBatch().eval(), Call(args=(X,)), options=TargetOptions())
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.OPTIMIZATION
    assert str(outcome.error) == "constant folding blew up"


@pytest.mark.slow
def test_onnx__warns_when_the_exporter_specialised_a_dynamic_dim(dynamo: Target) -> None:
    outcome = dynamo.attempt(
        AddsEightRowWeight().eval(),
        Call(args=(torch.randn(8, 3),)),
        options=TargetOptions(dynamic_shapes={"x": {0: Dim("batch")}}),
    )
    assert outcome.verdict == Verdict.OK
    assert outcome.warnings == (
        "dynamic dim x.shape[0] (batch) was specialised to 8 in the ONNX graph (input 'x')",
    )


@pytest.mark.slow
def test_onnx__keeps_a_dynamic_dim_dynamic_and_verifies_another_batch_size(dynamo: Target) -> None:
    outcome = dynamo.attempt(
        SumOverBatch().eval(),
        Call(args=(torch.randn(8, 3),)),
        checks=[("batch of 4", Call(args=(torch.randn(4, 3),)))],
        options=TargetOptions(dynamic_shapes={"x": {0: Dim("batch")}}),
    )
    assert outcome.verdict == Verdict.OK
    assert outcome.warnings == ()


@pytest.mark.slow
def test_onnx__reports_onnx_runtime_rejecting_an_input_set_as_a_runtime_mismatch(dynamo: Target) -> None:
    outcome = dynamo.attempt(
        SumOverBatch().eval(),
        Call(args=(torch.randn(8, 3),)),
        checks=[("batch of 4", Call(args=(torch.randn(4, 3),)))],
        options=TargetOptions(),
    )
    assert outcome.verdict == Verdict.MISMATCH
    assert outcome.stage == Stage.RUNTIME
    assert root_cause_name(outcome.error) == "InvalidArgument"
    assert outcome.mismatch is not None
    assert outcome.mismatch.input_set == "batch of 4"


@pytest.mark.slow
def test_onnx__notes_a_fallback_between_capture_strategies(dynamo: Target) -> None:
    outcome = dynamo.attempt(NumpyRoundTrip().eval(), Call(args=(X,)), options=TargetOptions())
    assert outcome.verdict == Verdict.OK
    assert outcome.warnings == (
        "capture fell back: torch.export.export(..., strict=False) failed, "
        "torch.export.export(..., strict=True) succeeded",
    )


@pytest.mark.slow
def test_onnx__exports_at_the_requested_opset(dynamo: Target, tmp_path: Path) -> None:
    outcome = dynamo.attempt(
        UsesCustomOp(),
        Call(args=(X,)),
        options=TargetOptions(
            opset=20,
            onnx_custom_translations={torch.ops.exportwatch_test.triple.default: doubles_instead_of_triples},
            artifacts_dir=tmp_path,
        ),
    )
    assert outcome.verdict == Verdict.MISMATCH
    kept = onnx.load(str(tmp_path / "model.onnx"))
    assert {o.domain: o.version for o in kept.opset_import}[""] == 20


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ["onnx", "onnx-legacy"])
def test_onnx__checks_and_runs_a_model_through_external_data_when_it_is_too_big_for_protobuf(
    target_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_target, "EXTERNAL_DATA_THRESHOLD_BYTES", -1)
    monkeypatch.setattr(onnx_legacy, "EXTERNAL_DATA_THRESHOLD_BYTES", -1)
    outcome = get_target(target_name).attempt(
        Exportable().eval(),
        Call(args=(X,), kwargs={"mask": torch.ones(2)}),
        options=TargetOptions(),
    )
    assert outcome.verdict == Verdict.OK, outcome


def test_onnx_checker__rejects_a_model_that_fails_full_type_checking() -> None:
    node = helper.make_node("Add", ["a", "b"], ["c"])
    graph = helper.make_graph(
        [node],
        "broken",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("b", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with OnnxModel(onnx, model) as checked:
        error = checked.check()
    assert error is not None
    assert "type" in str(error).lower()


# ---------------------------------------------------------------------------------------------
# onnx-legacy (TorchScript exporter)


def test_onnx_legacy__passes_an_exportable_model_with_keyword_inputs_and_nested_outputs(
    legacy: Target,
) -> None:
    outcome = legacy.attempt(
        Exportable().eval(),
        Call(args=(X,), kwargs={"mask": torch.ones(2)}),
        checks=[("other", Call(args=(X * 3,), kwargs={"mask": torch.zeros(2)}))],
        options=TargetOptions(),
    )
    assert outcome.verdict == Verdict.OK, outcome
    assert outcome.warnings == ()


def test_onnx_legacy__bakes_in_a_data_dependent_branch_that_the_second_input_set_catches(
    legacy: Target, tmp_path: Path
) -> None:
    outcome = legacy.attempt(
        DataDependentIf(),
        Call(args=(torch.ones(3),)),
        checks=[("negative", Call(args=(-torch.ones(3),)))],
        options=TargetOptions(artifacts_dir=tmp_path, artifact_name="branch"),
    )
    assert outcome.verdict == Verdict.MISMATCH
    assert outcome.stage == Stage.ACCURACY
    assert isinstance(root_cause(outcome.error), NumericMismatchError)
    assert outcome.mismatch is not None
    assert outcome.mismatch.input_set == "negative"
    assert outcome.mismatch.max_abs_error == pytest.approx(2.0)  # ORT gives 0 where eager gives -2
    assert any(
        w.startswith("TracerWarning: Converting a tensor to a Python boolean") for w in outcome.warnings
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branch.onnx"]


@pytest.mark.parametrize(
    ("model", "example"),
    [(Eigh(), torch.randn(3, 3)), (UsesCustomOp(), X)],
    ids=["eigh", "custom-op"],
)
def test_onnx_legacy__fails_at_translation_on_an_unsupported_operator(
    legacy: Target, model: torch.nn.Module, example: torch.Tensor
) -> None:
    outcome = legacy.attempt(model, Call(args=(example,)), options=TargetOptions())
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.TRANSLATION
    assert root_cause_name(outcome.error) == "UnsupportedOperatorError"


def test_onnx_legacy__fails_at_capture_when_tracing_the_model_raises(legacy: Target) -> None:
    outcome = legacy.attempt(RaisesInForward(), Call(args=(X,)), options=TargetOptions())
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.CAPTURE
    assert root_cause_name(outcome.error) == "ValueError"


def test_onnx_legacy__turns_dynamic_shapes_into_dynamic_axes_and_verifies_another_batch_size(
    legacy: Target,
) -> None:
    outcome = legacy.attempt(
        SumOverBatch().eval(),
        Call(args=(torch.randn(8, 3),)),
        checks=[("batch of 4", Call(args=(torch.randn(4, 3),)))],
        options=TargetOptions(dynamic_shapes={"x": {0: Dim("batch")}}),
    )
    assert outcome.verdict == Verdict.OK
    assert outcome.warnings == ()


def test_cause_chain__walks_causes_then_contexts_outermost_first() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        chain = cause_chain(outer)
    assert [type(e).__name__ for e in chain] == ["RuntimeError", "KeyError"]


# ---------------------------------------------------------------------------------------------
# Optional dependencies, in a fresh interpreter where imports can be made to fail.


_MISSING_DEPENDENCY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import exportwatch.targets as targets
    result = {"onnx_imported_by_package": "onnx" in sys.modules or "onnxscript" in sys.modules}
    sys.modules["onnxscript"] = None
    try:
        targets.get_target("onnx")
    except targets.MissingDependency as exc:
        result["missing_onnxscript"] = str(exc)
    del sys.modules["onnxscript"]
    sys.modules["onnxruntime"] = None
    import torch
    outcome = targets.get_target("onnx").attempt(
        torch.nn.Linear(3, 2).eval(), targets.Call(args=(torch.randn(2, 3),)), options=targets.TargetOptions()
    )
    result["verdict"] = str(outcome.verdict)
    result["warnings"] = outcome.warnings
    print(json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def missing_dependency_run() -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", _MISSING_DEPENDENCY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # shares missing_dependency_run: a fresh interpreter, about 4 s
def test_targets__importing_the_registry_does_not_import_onnx(
    missing_dependency_run: dict[str, object],
) -> None:
    assert missing_dependency_run["onnx_imported_by_package"] is False


@pytest.mark.slow  # shares missing_dependency_run
def test_get_target__names_the_extra_to_install_when_onnxscript_is_missing(
    missing_dependency_run: dict[str, object],
) -> None:
    assert missing_dependency_run["missing_onnxscript"] == (
        "target 'onnx' needs onnxscript: pip install 'exportwatch[onnx]'"
    )


@pytest.mark.slow  # shares missing_dependency_run
def test_onnx__without_onnxruntime_still_exports_and_says_which_stages_it_skipped(
    missing_dependency_run: dict[str, object],
) -> None:
    assert missing_dependency_run["verdict"] == "ok"
    assert missing_dependency_run["warnings"] == [
        "onnxruntime is not installed: skipped stages runtime, accuracy (pip install 'exportwatch[onnx]')"
    ]


def test_onnx_legacy__refuses_an_object_input_instead_of_freezing_it_into_a_silent_ok(
    legacy: Target,
) -> None:
    from exportwatch.examples.models import BatchModel, make_batch_inputs

    args, kwargs = make_batch_inputs()
    outcome = legacy.attempt(BatchModel().eval(), Call(args=args, kwargs=kwargs), options=TargetOptions())
    assert outcome.verdict is Verdict.FAIL
    assert outcome.stage == Stage.CAPTURE
    assert isinstance(outcome.error, onnx_legacy.UnsupportedLegacyInput)
    assert "Batch" in str(outcome.error)
