"""Targets ``export`` / ``export-strict`` on real small models: export, then verify against eager."""

from __future__ import annotations

import random

import pytest
import torch
from torch.export import Dim

from exportwatch.report import Verdict
from exportwatch.targets import TARGET_NAMES, Call, Stage, TargetOptions, get_target
from exportwatch.targets.base import Outcome, Target
from exportwatch.targets.verify import NumericMismatchError

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)


def root_cause(exc: BaseException | None) -> BaseException | None:
    while exc is not None and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


class Exportable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor) -> dict[str, object]:
        hidden = self.linear(x).relu()
        return {"hidden": hidden, "parts": [hidden * scale, hidden.argmax(-1)]}


class DataDependentIf(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x + 1
        return x - 1


class RandomConstant(torch.nn.Module):
    """Non-strict export runs this Python once and keeps the draw as a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * random.random()


class BranchOnSize(torch.nn.Module):
    """Exported with a dynamic batch, the program guards ``batch >= 3``; batch 1 takes the other path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            return x + 1
        return x - 1


class ReshapeToEight(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(8, -1)


@pytest.fixture(scope="module", params=["export", "export-strict"])
def target(request: pytest.FixtureRequest) -> Target:
    return get_target(request.param)


@pytest.fixture(scope="module")
def non_strict() -> Target:
    return get_target("export")


def test_registry__knows_every_target_and_rejects_unknown_names() -> None:
    assert TARGET_NAMES == ("export", "export-strict", "onnx", "onnx-legacy", "executorch", "aoti")
    assert get_target("export-strict").name == "export-strict"
    with pytest.raises(ValueError, match="unknown target 'tflite'"):
        get_target("tflite")


def test_export__passes_an_exportable_model_verified_on_every_input_set(target: Target) -> None:
    x = torch.randn(2, 3)
    outcome = target.attempt(
        Exportable().eval(),
        Call(args=(x,), kwargs={"scale": torch.tensor(2.0)}),
        checks=[("scaled", Call(args=(x * 3,), kwargs={"scale": torch.tensor(-1.0)}))],
        options=TargetOptions(),
    )
    assert outcome == Outcome.ok([])


def test_export__fails_at_capture_on_a_data_dependent_if(target: Target) -> None:
    outcome = target.attempt(DataDependentIf(), Call(args=(torch.ones(3),)), options=TargetOptions())
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.CAPTURE
    expected = "GuardOnDataDependentSymNode" if target.name == "export" else "Unsupported"
    assert type(root_cause(outcome.error)).__name__ == expected


def test_export_non_strict__bakes_in_a_random_constant_that_the_extra_input_set_catches(
    non_strict: Target,
) -> None:
    # The example is all zeros, so eager and the exported program agree on it by construction.
    outcome = non_strict.attempt(
        RandomConstant(),
        Call(args=(torch.zeros(4),)),
        checks=[("ones", Call(args=(torch.ones(4),)))],
        options=TargetOptions(),
    )
    assert outcome.verdict == Verdict.MISMATCH
    assert outcome.stage == Stage.ACCURACY
    assert isinstance(root_cause(outcome.error), NumericMismatchError)
    assert outcome.mismatch is not None
    assert outcome.mismatch.input_set == "ones"
    assert outcome.mismatch.output == ""
    assert outcome.mismatch.max_abs_error is not None and outcome.mismatch.max_abs_error > 0


def test_export__skips_verification_when_it_is_switched_off(non_strict: Target) -> None:
    outcome = non_strict.attempt(
        RandomConstant(),
        Call(args=(torch.zeros(4),)),
        checks=[("ones", Call(args=(torch.ones(4),)))],
        options=TargetOptions(verify=False),
    )
    assert outcome.verdict == Verdict.OK


def test_export__reports_a_runtime_guard_failing_on_the_other_branch_as_a_mismatch(
    non_strict: Target,
) -> None:
    outcome = non_strict.attempt(
        BranchOnSize(),
        Call(args=(torch.randn(4, 3),)),
        checks=[("batch of one", Call(args=(torch.randn(1, 3),)))],
        options=TargetOptions(dynamic_shapes={"x": {0: Dim.AUTO}}),
    )
    assert outcome.verdict == Verdict.MISMATCH
    assert outcome.stage == Stage.RUNTIME
    assert isinstance(root_cause(outcome.error), AssertionError)
    assert outcome.mismatch is not None
    assert outcome.mismatch.input_set == "batch of one"
    assert "the exported program raised" in outcome.mismatch.message


def test_export__warns_when_a_dynamic_dim_was_specialised(target: Target) -> None:
    outcome = target.attempt(
        ReshapeToEight(),
        Call(args=(torch.randn(8, 3),)),
        options=TargetOptions(dynamic_shapes={"x": {0: Dim.AUTO}}),
    )
    assert outcome.verdict == Verdict.OK
    assert outcome.warnings == ("dynamic dim x.shape[0] (AUTO) was specialised to 8",)


def test_export__fails_at_capture_when_a_named_dim_is_forced_to_a_constant(non_strict: Target) -> None:
    outcome = non_strict.attempt(
        ReshapeToEight(),
        Call(args=(torch.randn(8, 3),)),
        options=TargetOptions(dynamic_shapes={"x": {0: Dim("batch")}}),
    )
    assert outcome.verdict == Verdict.FAIL
    assert outcome.stage == Stage.CAPTURE
    assert "batch" in str(outcome.error)


def test_export__notes_an_input_set_that_eager_rejects_instead_of_blaming_the_export(
    non_strict: Target,
) -> None:
    outcome = non_strict.attempt(
        Exportable().eval(),
        Call(args=(torch.randn(2, 3),), kwargs={"scale": torch.tensor(1.0)}),
        checks=[("wrong width", Call(args=(torch.randn(2, 5),), kwargs={"scale": torch.tensor(1.0)}))],
        options=TargetOptions(),
    )
    assert outcome.verdict == Verdict.OK
    assert len(outcome.warnings) == 1
    assert outcome.warnings[0].startswith("input set 'wrong width': eager forward raised RuntimeError")


class _WarnsTwice(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import warnings

        warnings.warn("unclosed <socket.socket fd=15>", ResourceWarning, stacklevel=1)  # the GC's
        warnings.warn("this layer is approximate", UserWarning, stacklevel=1)  # the model's
        return x + 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["export", "onnx"])
def test_warnings__the_models_own_are_kept_and_a_collected_sockets_are_not(name: str) -> None:
    outcome = get_target(name).attempt(
        _WarnsTwice().eval(), Call(args=(torch.ones(2, 3),)), options=TargetOptions()
    )
    assert outcome.verdict == Verdict.OK, outcome
    assert any("this layer is approximate" in w for w in outcome.warnings)
    assert not any("ResourceWarning" in w for w in outcome.warnings)
