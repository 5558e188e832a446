"""A module the model uses only through another method than ``forward`` (issue 28, item 1:
encodec's quantizer via ``.encode`` read as ``not-called``, i.e. dead code). The sweep now says
which method the model used it through, and exports it through that method where the manifest's
``methods`` asks, so a failure inside it has the quantizer, not the root, as its origin."""

from __future__ import annotations

import torch
from torch import nn

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import JobResult, Verdict
from exportwatch.sweep.settings import SweepSettings
from exportwatch.targets.base import Call
from exportwatch.worker.capture import EXAMPLE_SET, capture_calls
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)
ENCODE_LINE = "if scores.max() > 100:  # data-dependent: the origin of the codec's failure"


def sweep(methods: dict[str, str], target: str = "export") -> JobResult:
    spec = ModelSpec(
        name="codec",
        factory="models.sweep_cases:Codec",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 4])]),
        methods=methods,
    )
    return sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), target, settings=SETTINGS)


def test_module_used_through_another_method__says_so_instead_of_reading_as_dead_code() -> None:
    job = sweep({})
    quantizer = job.submodule("quantizer")
    assert quantizer.verdict == Verdict.NOT_CALLED
    assert quantizer.reason is not None
    assert "used through `.encode` of `quantizer`" in quantizer.reason
    assert "methods: {quantizer: encode}" in quantizer.reason  # how to have it exported
    assert job.root.origin  # nothing below was tried through encode: the root is the origin


def test_module_used_through_another_method__is_exported_through_it_where_the_manifest_asks() -> None:
    job = sweep({"quantizer": "encode"})
    quantizer = job.submodule("quantizer")
    assert quantizer.verdict == Verdict.FAIL
    assert quantizer.module_type == "models.sweep_cases.Quantizer"
    assert quantizer.calls == 1 and quantizer.inputs == ["(f32[2, 4])"]
    assert any("exported through `.encode`" in note for note in quantizer.warnings)
    assert quantizer.user_frame is not None and quantizer.user_frame.source == ENCODE_LINE
    # The failure is the quantizer's own; the root only re-raises it.
    assert quantizer.origin and not job.root.origin
    assert job.root.fingerprint == quantizer.fingerprint
    assert job.submodule("quantizer.codebook").verdict == Verdict.OK


def test_module_exported_through_a_method__points_an_interface_failure_at_that_method() -> None:
    spec = ModelSpec(
        name="packer",
        factory="models.sweep_cases:UsesPacker",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 4])]),
        methods={"packer": "pack"},
    )
    job = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "export", settings=SETTINGS)
    packer = job.submodule("packer")
    assert packer.verdict == Verdict.FAIL and packer.category == "unsupported-type"
    assert packer.origin
    # The traceback holds only torch's frames: the line is the method's return, not exportwatch's.
    assert packer.user_frame is not None
    assert (packer.user_frame.function, packer.user_frame.source) == ("pack", "return Packed(x * 2)")


def test_a_submodule_the_model_does_not_have__is_named_in_a_warning() -> None:
    job = sweep({"quantiser": "encode"})
    assert "manifest `methods` names submodule 'quantiser', which the model does not have" in (
        job.root.warnings
    )
    assert job.submodule("quantizer").verdict == Verdict.NOT_CALLED


def test_a_method_the_manifest_names_but_the_model_never_calls__leaves_the_module_not_called() -> None:
    job = sweep({"quantizer": "decode"})
    quantizer = job.submodule("quantizer")
    assert quantizer.verdict == Verdict.NOT_CALLED
    assert quantizer.reason is not None and "`.encode`" in quantizer.reason


class _Counter(nn.Module):
    def bump(self, x: torch.Tensor) -> torch.Tensor:
        return self._twice(x) + 1

    def _twice(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class _UsesCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.counter = _Counter()
        self.unused = nn.LSTM(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.counter.bump(x)


def test_capture__records_the_outermost_method_only_and_leaves_the_instance_as_it_was() -> None:
    model = _UsesCounter()
    capture = capture_calls(model, {EXAMPLE_SET: Call(args=(torch.ones(3),), kwargs={})})
    assert list(capture.method_calls) == [id(model.counter)]  # not torch's LSTM
    assert list(capture.method_calls[id(model.counter)]) == ["bump"]  # not the _twice it calls
    [call] = capture.method_calls[id(model.counter)]["bump"]
    assert torch.equal(call.args[0], torch.ones(3))
    assert "bump" not in vars(model.counter) and "_twice" not in vars(model.counter)


class _Scaled(nn.Module):
    def scale(self) -> float:
        return 2.0


class _ShadowsAMethod(_Scaled):
    """A subclass that turns its base's method into a property: nothing to wrap there."""

    @property
    def scale(self) -> float:  # type: ignore[override]
        return 3.0

    def apply_scale(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class _UsesShadowing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scaler = _ShadowsAMethod()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaler.apply_scale(x)


def test_capture__steps_over_a_method_a_subclass_made_a_property() -> None:
    model = _UsesShadowing()
    capture = capture_calls(model, {EXAMPLE_SET: Call(args=(torch.ones(2),), kwargs={})})
    assert list(capture.method_calls[id(model.scaler)]) == ["apply_scale"]
    assert model.scaler.scale == 3.0 and "apply_scale" not in vars(model.scaler)
