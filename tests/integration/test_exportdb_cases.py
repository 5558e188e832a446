"""Verdicts and diagnoses on PyTorch ExportDB-style models that exportwatch once got wrong."""

from __future__ import annotations

import pytest

from exportwatch.manifest import DimSpec, InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import Verdict
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.integration.test_sweep import SETTINGS

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)


def _spec(factory: str, shape: list[int], *, dim: int, lo: int, hi: int, extra: list[int] | None = None):
    sets = {"other": InputsSpec(args=[TensorSpec(shape=extra)])} if extra else {}
    return ModelSpec(
        name=factory.rsplit(":", 1)[-1].lower(),
        factory=f"models/exportdb_cases.py:{factory}",
        inputs=InputsSpec(args=[TensorSpec(shape=shape)]),
        input_sets=sets,
        dims={"d": DimSpec(name="d", min=lo, max=hi)},
        dynamic_shapes=[{dim: "d"}],
    )


def _root(spec: ModelSpec, target: str):
    job = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), target, settings=SETTINGS)
    return job, job.submodule("")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["export", "onnx"])
def test_scalar_output__a_symint_output_is_compared_by_value_not_called_a_mismatch(target):
    job, root = _root(_spec("ScalarOutput", [3, 4], dim=1, lo=2, hi=64, extra=[3, 9]), target)
    assert job.verdict is Verdict.OK, root.message


@pytest.mark.slow
def test_runtime_assert__an_exported_program_refusing_an_input_set_is_a_runtime_error():
    _job, root = _root(_spec("SumsRows", [4, 8], dim=0, lo=2, hi=8, extra=[10, 8]), "export")
    assert root.verdict is Verdict.MISMATCH
    assert root.category == "runtime-error"
    assert "Guard failed" in root.message or "Expected input" in root.message
    assert "range" in root.hint and "baked" not in root.hint


def test_constraint_violations__differ_by_guard_and_say_it_in_the_headline():
    _, specialised = _root(_spec("SpecialisesDim", [4, 8], dim=0, lo=2, hi=64), "export")
    _, bounded = _root(_spec("BoundsDim", [4, 8], dim=0, lo=2, hi=64), "export")
    assert specialised.category == bounded.category == "constraint-violation"
    assert specialised.fingerprint != bounded.fingerprint
    assert "specialized it to be a constant (4)" in specialised.message
    assert "suggested fix: d = 4" in specialised.message
    assert "<= 16" in bounded.message and "Dim('d', max=16)" in bounded.message
    # No repository or library frame raised: the module's forward is shown, and it is ours.
    assert bounded.user_frame is not None and bounded.user_frame.path.endswith("exportdb_cases.py")
