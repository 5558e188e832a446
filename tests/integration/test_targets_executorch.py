"""The ``executorch`` target on small real models: lowered, serialised, loaded and run in the
ExecuTorch runtime in this process, compared with eager; one real failure per ExecuTorch step,
each swept end to end with its category. Needs the ``executorch`` extra (skipped without it;
CI runs these in ``.ci/executorch-leg``)."""

from __future__ import annotations

import io
from typing import Any

import pytest

pytest.importorskip("executorch", reason="needs the executorch extra: pip install -e '.[executorch]'")

import torch

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec, load_manifest
from exportwatch.report import Delegation, Verdict, load_report, write_report
from exportwatch.targets import Call, Stage, TargetOptions, get_target
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import REPO_ROOT
from tests.integration.test_sweep import SETTINGS

pytestmark = pytest.mark.executorch

CASES = "models/executorch_cases.py"


def _spec(factory: str, shape: list[int], **fields: Any) -> ModelSpec:
    return ModelSpec(
        name=factory.lower(),
        factory=f"{CASES}:{factory}",
        inputs=InputsSpec(args=[TensorSpec(shape=shape)]),
        **fields,
    )


def _sweep(spec: ModelSpec, *targets: str) -> dict[str, Any]:
    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    return {target: sweep_target(prepared, target, settings=SETTINGS) for target in targets}


def test_executorch__partial_xnnpack_coverage_passes_on_two_input_sets_and_names_the_left_op():
    spec = _spec(
        "ConvLinearCumsum",
        [2, 3, 8, 8],
        input_sets={"other": InputsSpec(args=[TensorSpec(shape=[2, 3, 8, 8])], seed=7)},
    )
    job = _sweep(spec, "executorch")["executorch"]
    root = job.root
    assert root.verdict == Verdict.OK, root.message
    assert root.delegation == Delegation(
        backend="xnnpack",
        delegated_nodes=4,
        compute_nodes=5,
        subgraphs=1,
        not_delegated={"aten.cumsum": 1},
        not_delegated_in={"aten.cumsum": ""},  # called in the root's own forward
    )
    assert root.delegation.coverage == pytest.approx(0.8)
    # Below a root that lowers, submodules are covered by it, not lowered again.
    conv = job.submodule("conv")
    assert conv.verdict == Verdict.COVERED and conv.delegation is None


def test_executorch__portable_backend_delegates_nothing_and_still_runs():
    job = _sweep(_spec("ConvLinearCumsum", [2, 3, 8, 8], executorch_backend="portable"), "executorch")
    root = job["executorch"].root
    assert root.verdict == Verdict.OK
    assert root.delegation is not None
    assert root.delegation.backend == "portable"
    assert root.delegation.delegated_nodes == 0 and root.delegation.subgraphs == 0
    assert root.delegation.not_delegated["aten.convolution"] == 1


@pytest.mark.parametrize(
    ("factory", "shape", "fields", "verdict", "stage", "category", "operator"),
    [
        ("NonCoreOperator", [2, 8], {}, Verdict.FAIL, "lowering", "executorch-lowering", "aten.median.dim"),
        (
            "NoOutVariant",
            [2, 8],
            {},
            Verdict.FAIL,
            "serialisation",
            "executorch-missing-out-variant",
            "exportwatch_et::double",
        ),
        (
            "NoRuntimeKernel",
            [2, 8],
            {},
            Verdict.FAIL,
            "load",
            "executorch-operator-missing",
            "exportwatch_et::triple.out",
        ),
        (
            "Wide",
            [4, 512],
            {"rtol": 0.0, "atol": 0.0},
            Verdict.MISMATCH,
            "accuracy",
            "numeric-mismatch",
            None,
        ),
    ],
    ids=["lowering", "missing-out-variant", "operator-missing-at-load", "numeric-mismatch"],
)
def test_executorch__each_step_fails_with_its_own_category(
    factory, shape, fields, verdict, stage, category, operator
):
    job = _sweep(_spec(factory, shape, **fields), "executorch")["executorch"]
    root = job.root
    assert (root.verdict, root.stage, root.category) == (verdict, stage, category), root.message
    assert root.fingerprint and root.hint
    if category.startswith("executorch-") and category != "executorch-run-error":
        # The user's line, read from the graph node of the operator the error names.
        assert root.user_frame is not None and root.user_frame.path.endswith("executorch_cases.py")
        assert root.user_frame.function == "forward"
    if operator:
        assert operator in (root.message or "") or operator in (root.detail or "")


def test_executorch__the_failing_submodule_is_the_origin_and_its_parent_keeps_coverage():
    job = _sweep(_spec("NonCoreOperator", [2, 8]), "executorch")["executorch"]
    assert job.submodule("pick").category == "executorch-lowering"
    assert job.submodule("pick").origin
    frame = job.submodule("pick").user_frame  # the user's line, read from the graph node
    assert frame is not None and frame.path.endswith("executorch_cases.py")
    assert "torch.median" in frame.source
    # Below a root that fails, each submodule is lowered on its own, with its own coverage.
    scale = job.submodule("scale")
    assert scale.verdict == Verdict.OK
    assert scale.delegation == Delegation(
        backend="xnnpack", delegated_nodes=1, compute_nodes=1, subgraphs=1, not_delegated={}
    )
    assert job.root.delegation is None  # the lowering itself failed: nothing to count


def test_executorch__starts_from_the_export_targets_capture(monkeypatch):
    captures: list[str] = []
    real = torch.export.export

    def counting(module: Any, *args: Any, **kwargs: Any) -> Any:
        captures.append(type(module).__name__)
        return real(module, *args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counting)
    prepared = prepare_model(_spec("ConvLinearCumsum", [2, 3, 8, 8]), device="cpu", settings=SETTINGS)
    assert prepared.traces is not None
    sweep_target(prepared, "export", settings=SETTINGS)
    exported = list(captures)
    job = sweep_target(prepared, "executorch", settings=SETTINGS)
    assert "ConvLinearCumsum" in exported
    assert captures == exported  # not one capture more: the lowering took export's program
    assert job.root.verdict == Verdict.OK


def test_executorch__keeps_the_pte_of_a_failed_load(tmp_path):
    model = prepare_model(_spec("NoRuntimeKernel", [2, 8]), device="cpu", settings=SETTINGS).model
    outcome = get_target("executorch").attempt(
        model,
        Call(args=(torch.ones(2, 8),)),
        options=TargetOptions(artifacts_dir=tmp_path, artifact_name="m"),
    )
    assert outcome.stage == Stage.LOAD
    assert type(outcome.error).__name__ == "OperatorMissingError"
    assert (tmp_path / "m.pte").read_bytes()[4:8] == b"ET12"


def test_executorch__coverage_survives_the_report_round_trip(tmp_path):
    from tests.factories import report

    job = _sweep(_spec("ConvLinearCumsum", [2, 3, 8, 8]), "executorch")["executorch"]
    write_report(report(job), tmp_path / "r.json")
    again = load_report(tmp_path / "r.json")
    assert again.jobs[0].root.delegation == job.root.delegation


def test_executorch__an_input_beyond_the_exported_range_is_a_run_error(tmp_path):
    """The root exported with a dynamic batch of at most 8: the runtime refuses 12 rows (eager
    takes them), so running the loaded program fails on that input set."""
    manifest = tmp_path / "exportwatch.yml"
    manifest.write_text(
        "version: 1\n"
        "models:\n"
        "  - name: wide\n"
        f"    factory: {CASES}:Wide\n"
        "    inputs: {args: [{shape: [4, 512]}]}\n"
        "    input_sets: {twelve-rows: {args: [{shape: [12, 512]}]}}\n"
        "    dims: {batch: {min: 2, max: 8}}\n"
        "    dynamic_shapes: [{0: batch}]\n"
        "    targets: [executorch]\n",
        encoding="utf-8",
    )
    (spec,) = load_manifest(manifest).models
    root = _sweep(spec, "executorch")["executorch"].root
    assert (root.verdict, root.stage, root.category) == (Verdict.MISMATCH, "runtime", "executorch-run-error")
    assert root.mismatch is not None and root.mismatch.input_set == "twelve-rows"
    assert "set_inputs" in (root.message or "")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_example_manifest__partial_coverage_its_own_threshold_and_lowering_on_the_progress_line(tmp_path):
    """config/example.executorch.yml swept as ``exportwatch sweep`` sweeps it, with a terminal
    for the progress: ``age_estimator`` lowers with XNNPACK but for its cumsum, its job carries
    the manifest's coverage threshold, and while the executorch target lowered, the live line
    said ``lowering…`` (the phase from the model's process, through the pool and the runner)."""
    from exportwatch.sweep.options import SweepOptions
    from exportwatch.sweep.progress import Progress
    from exportwatch.sweep.runner import SweepRequest, run_sweep

    said: list[tuple[str, str, str, str | None]] = []

    class Recording(Progress):
        def phase(self, model: str, target: str, name: str) -> None:
            super().phase(model, target, name)
            said.append((model, target, name, self.doing(model, target)))

    stream = _Terminal()
    manifest = load_manifest(REPO_ROOT / "config" / "example.executorch.yml")
    request = SweepRequest.of(manifest, output=tmp_path / "r.json", options=SweepOptions(workers=2))
    report = run_sweep(request, progress=Recording(total=request.plan.total, stream=stream)).report

    assert {(j.model, j.target): j.verdict for j in report.jobs} == {
        (model, target): Verdict.OK
        for model in ("tiny_cnn", "age_estimator")
        for target in ("export", "executorch")
    }
    age = report.job("age_estimator", "executorch", "cpu")
    assert age is not None and age.root is not None and age.root.delegation is not None
    assert age.root.delegation.not_delegated == {"aten.cumsum": 1}
    assert 0 < age.root.delegation.coverage < 1
    assert age.coverage_threshold == 10.0
    tiny = report.job("tiny_cnn", "executorch", "cpu")
    assert tiny is not None and tiny.root is not None and tiny.root.delegation is not None
    assert tiny.root.delegation.coverage == 1.0 and tiny.coverage_threshold is None
    assert report.job("age_estimator", "export", "cpu").coverage_threshold is None  # type: ignore[union-attr]

    assert ("age_estimator", "executorch", "lowering", "lowering…") in said
    assert "age_estimator · executorch (" in stream.getvalue()
    assert "lowering…" in stream.getvalue()
    lowered = said.index(("age_estimator", "executorch", "lowering", "lowering…"))
    assert ("age_estimator", "executorch", "verification", "verifying…") in said[lowered:]
