"""The sweep strategy, run in-process on real torch.export exports of small models."""

from __future__ import annotations

import pytest
import torch

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import Verdict
from exportwatch.targets.base import Call
from exportwatch.worker.walk import PreparedModel, SweepSettings, capture_calls, prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)


def spec_for(factory: str, *shapes: list[int], **fields) -> ModelSpec:
    args = [TensorSpec(shape=list(s)) for s in shapes]
    return ModelSpec(
        name=factory.rsplit(":", 1)[-1].lower(), factory=factory, inputs=InputsSpec(args=args), **fields
    )


SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)


def sweep(factory: str, *shapes: list[int], target: str = "export", **fields):
    prepared = prepare_model(spec_for(factory, *shapes, **fields), device="cpu", settings=SETTINGS)
    return sweep_target(prepared, target, settings=SETTINGS)


def verdicts(job) -> dict[str, str]:
    return {s.path: s.verdict.value for s in job.submodules}


@pytest.mark.slow
def test_sweep__finds_the_one_bad_block_among_eight_identical_ones():
    job = sweep("exportwatch.examples.models:StackedEncoder", [2, 16])
    found = verdicts(job)
    assert found[""] == "fail"
    assert found["encoder"] == "fail"
    assert found["encoder.5"] == "fail"
    assert job.submodule("encoder.5").exception_type.endswith("GuardOnDataDependentSymNode")
    # The other blocks were exported once and shared (same-as), not skipped by type.
    assert found["encoder.0"] == "ok"
    for index in (1, 2, 3, 4, 6, 7):
        assert found[f"encoder.{index}"] == "same-as"
        assert job.submodule(f"encoder.{index}").same_as == "encoder.0"
    assert job.effective(job.submodule("encoder.3")).verdict == Verdict.OK


@pytest.mark.slow
def test_sweep__reports_every_submodule_with_an_explicit_verdict():
    job = sweep("exportwatch.examples.models:StackedEncoder", [2, 16])
    from exportwatch.examples.models import StackedEncoder

    model = StackedEncoder()
    assert {s.path for s in job.submodules} == {p for p, _ in model.named_modules()}
    assert all(s.verdict is not None for s in job.submodules)


def test_sweep__covers_descendants_of_an_exportable_root_without_exporting_them():
    job = sweep("exportwatch.examples.models:TinyCNN", [2, 3, 16, 16])
    assert job.verdict == Verdict.OK
    assert job.attempts == 1
    children = [s for s in job.submodules if s.path]
    assert children and all(s.verdict == Verdict.COVERED and s.covered_by == "" for s in children)


@pytest.mark.slow
def test_sweep__dedups_by_what_is_exported_not_by_type():
    """Same class, different attribute: tried separately (type dedup would miss block 5)."""
    job = sweep("exportwatch.examples.models:StackedEncoder", [2, 16])
    tried = [s.path for s in job.submodules if s.attempts]
    assert "encoder.0" in tried and "encoder.5" in tried
    assert "encoder.1" not in tried


def test_sweep__reports_a_shared_module_once_with_its_aliases():
    job = sweep("models.sweep_cases:SharedTwice", [2, 4], target="export")
    paths = [s.path for s in job.submodules]
    assert "first" in paths and "second" not in paths
    first = job.submodule("first")
    assert first.aliases == ["second"]
    assert first.calls == 2


def test_sweep__exports_each_distinct_call_signature_of_a_module_called_twice():
    job = sweep("models.sweep_cases:CalledTwiceOneFails", [2, 4], target="export")
    inner = job.submodule("inner")
    assert inner.calls == 2
    assert inner.verdict == Verdict.FAIL
    assert inner.attempts == 2  # the 2-D call exported; the 3-D call failed
    assert any("call 2 of 2" in w for w in inner.warnings)


def test_sweep__captures_inputs_by_value_per_call():
    """In-place ops after a call must not change what was captured for it."""

    class InPlace(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = torch.nn.Identity()

        def forward(self, x):
            self.inner(x)
            x.add_(100)
            self.inner(x)
            return x

    x = torch.zeros(2)
    capture = capture_calls(InPlace(), {"example": Call(args=(x,))})
    inner = next(calls for calls in capture.calls.values() if len(calls["example"]) == 2)
    model_calls = inner["example"]
    assert torch.equal(model_calls[0].args[0], torch.zeros(2))
    assert torch.equal(model_calls[1].args[0], torch.full((2,), 100.0))


def test_sweep__walks_through_containers_and_marks_uncalled_modules():
    job = sweep("models.sweep_cases:WithContainer", [2, 4])
    found = verdicts(job)
    assert found["layers"] == "not-called"
    assert job.submodule("layers").reason == "container without forward"
    assert found["layers.0"] == "ok"
    assert found["layers.1"] == "fail"
    assert found["unused"] == "not-called"


def test_sweep__skips_submodules_when_the_eager_forward_raises():
    job = sweep("models.sweep_cases:EagerFails", [2, 4])
    root = job.root
    assert root.verdict == Verdict.FAIL
    assert root.category == "model-error"
    assert "mat1 and mat2" in root.message or "shapes cannot be multiplied" in root.message
    # Both ran before the error, on inputs derived from the failing call: neither is tried, and
    # neither becomes an origin of what is the model's (or the manifest's) error.
    assert job.submodule("ok").verdict == Verdict.SKIPPED
    assert job.submodule("bad").verdict == Verdict.SKIPPED
    assert [s.path for s in job.submodules if s.origin] == [""]


# PyTorch's own test/export/test_tools.py, re-expressed; the verdicts match report_exportability.


def test_sweep__list_input_exports_like_report_exportability():
    from models.sweep_cases import ListInput
    from torch._export.tools import report_exportability

    spec = ModelSpec(
        name="list_input",
        factory="models.sweep_cases:ListInput",
        inputs=InputsSpec(args=[[TensorSpec(shape=[3])], TensorSpec(shape=[3])]),
    )
    job = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "export", settings=SETTINGS)
    theirs = report_exportability(ListInput(), ([torch.ones(3)], torch.ones(3)), strict=False)
    assert theirs == {"": None}
    assert verdicts(job) == {"": "ok"}


@pytest.mark.slow
@pytest.mark.parametrize("target,strict", [("export", False), ("export-strict", True)])
def test_sweep__op_without_meta_kernel_fails_root_and_leaf_like_report_exportability(target, strict):
    from models.sweep_cases import MissingMetaModel
    from torch._export.tools import report_exportability

    job = sweep("models.sweep_cases:MissingMetaModel", [2, 3], target=target)
    theirs = report_exportability(MissingMetaModel(), (torch.ones(2, 3),), strict=strict)
    ours = verdicts(job)
    for name, error in theirs.items():
        assert ours[name] == ("ok" if error is None else "fail"), name
    assert ours == {"": "fail", "submod_1": "fail", "submod_2": "ok"}


def test_sweep__xfail_entries_are_recorded_on_job_and_submodule():
    job = sweep(
        "exportwatch.examples.models:CustomOpModel",
        [2, 8],
        xfail="no fake kernel yet",
        xfail_submodules={"scale": "tracked"},
    )
    assert job.xfail == "no fake kernel yet"
    assert job.submodule("scale").xfail == "tracked"
    assert job.submodule("scale").verdict == Verdict.FAIL


def test_sweep__prepared_model_is_shared_by_targets():
    prepared = prepare_model(
        spec_for("exportwatch.examples.models:NumpyPostprocess", [2, 8]), device="cpu", settings=SETTINGS
    )
    assert isinstance(prepared, PreparedModel)
    non_strict = sweep_target(prepared, "export", settings=SETTINGS)
    strict = sweep_target(prepared, "export-strict", settings=SETTINGS)
    assert non_strict.submodule("post").verdict == Verdict.FAIL
    assert strict.verdict == Verdict.OK


def test_sweep__does_not_dedup_modules_whose_function_attributes_differ():
    job = sweep("models.sweep_cases:FunctionAttributes", [2, 4])
    assert verdicts(job) == {"": "fail", "a": "ok", "b": "fail"}


def test_sweep__does_not_dedup_a_module_whose_forward_was_replaced_on_the_instance():
    job = sweep("models.sweep_cases:ReplacedForward", [2, 4])
    assert verdicts(job) == {"": "fail", "a": "ok", "b": "fail"}


def test_sweep__dedups_by_attribute_content_and_shared_objects():
    job = sweep("models.sweep_cases:ConfigDicts", [2, 4])
    found = verdicts(job)
    assert found["blocks.1"] == "fail"  # {"check": True} differs from the shared config
    assert found["blocks.0"] == "ok"
    assert (found["blocks.2"], job.submodule("blocks.2").same_as) == ("same-as", "blocks.0")
    assert (found["blocks.3"], job.submodule("blocks.3").same_as) == ("same-as", "blocks.0")


def test_sweep__an_uncalled_module_is_not_called_whether_or_not_the_root_exports():
    job = sweep("models.sweep_cases:WithUnused", [2, 4])
    assert job.verdict == Verdict.OK
    assert verdicts(job) == {"": "ok", "used": "covered", "unused": "not-called"}


def test_sweep__counts_every_export_attempt_of_a_module_called_with_several_shapes():
    job = sweep("models.sweep_cases:TwoShapesUnderFailingRoot", [2, 4])
    assert job.root.verdict == Verdict.FAIL
    reduce = job.submodule("reduce")
    assert (reduce.verdict, reduce.calls, reduce.attempts) == (Verdict.OK, 2, 2)
    assert job.attempts == 3  # the root once, the child once per input signature
