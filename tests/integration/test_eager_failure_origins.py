"""A model whose own eager forward raises (finding 7 of issue 25): the root is ``model-error``
and no submodule is exported with inputs recorded in the failed run, so none is an origin."""

from __future__ import annotations

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import FAILING, Verdict, tree
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import NOT_REACHED, SKIPPED_BY_MODEL_ERROR, prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)


def sweep(factory: str, shape: list[int], *, target: str = "export"):
    spec = ModelSpec(name="model", factory=factory, inputs=InputsSpec(args=[TensorSpec(shape=shape)]))
    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    return sweep_target(prepared, target, settings=SETTINGS)


def test_wrong_input_shape__makes_the_root_the_only_origin_and_skips_its_submodules():
    # StackedEncoder's first Linear wants 16 features: [4, 8] breaks the eager forward there.
    job = sweep("exportwatch.examples.models:StackedEncoder", [4, 8])
    root = job.root
    assert root.verdict == Verdict.FAIL and root.category == "model-error"
    assert root.origin
    assert job.attempts == 0  # nothing was exported with inputs of the failed run
    below = [s for s in job.submodules if s.path]
    assert below and all(s.verdict == Verdict.SKIPPED for s in below)
    assert not any(s.origin for s in below)
    assert job.submodule("embed").reason == SKIPPED_BY_MODEL_ERROR  # called, then raised
    assert job.submodule("encoder.3").reason == NOT_REACHED


def test_wrong_input_shape__groups_the_failure_under_one_model_error_hint():
    job = sweep("exportwatch.examples.models:StackedEncoder", [4, 8])
    groups = tree.group_failures(job)
    assert [(g.category, g.origins) for g in groups] == [("model-error", [""])]


def test_eager_failure_after_a_child_ran__does_not_export_the_child_either():
    # ``ok`` completed before ``bad`` raised, but its inputs still come from the failed run.
    job = sweep("models.sweep_cases:EagerFails", [2, 4], target="export-strict")
    assert job.root.category == "model-error"
    assert {s.path: s.verdict for s in job.submodules if s.verdict in FAILING} == {"": Verdict.FAIL}
    assert job.submodule("ok").verdict == Verdict.SKIPPED
    assert job.submodule("bad").reason == SKIPPED_BY_MODEL_ERROR
