"""A bug in exportwatch's own heuristics degrades a result; it never costs a job its verdict.

Each test breaks one heuristic (dedup, diagnosis, origin marking, a target's bookkeeping) on a
real torch.export sweep and checks what survives. Before these guarantees, a closure that holds
itself made every transformers model end as ``crash`` with 0 attempts.

The example models register a custom op, whose registration reads its source with ``inspect``;
once the fixtures' namespace package ``models`` is imported, torch.package's patched
``inspect.getfile`` raises on it, so the examples are imported first, whatever the test order.
"""

from __future__ import annotations

import pytest

import exportwatch.examples.models  # noqa: F401 - first: see below
from exportwatch import diagnose
from exportwatch.diff import ChangeKind, diff_reports, gate
from exportwatch.report import Report, Verdict, tree
from exportwatch.worker import walk as sweep
from exportwatch.worker.walk import dedup_key
from tests.integration.test_sweep import SETTINGS, spec_for, verdicts
from tests.integration.test_sweep import sweep as run_sweep

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)


def test_dedup__describes_a_closure_that_holds_itself_without_recursing():
    from exportwatch.worker.inputs import load_callable
    from tests.conftest import FIXTURES

    SelfReferencingBlock = load_callable(
        "models/exportdb_cases.py:SelfReferencingBlock", root=FIXTURES
    )
    block = SelfReferencingBlock()
    assert len(dedup_key(block, [])) == 64
    # Described by identity where it refers back to itself: two blocks never look the same.
    assert dedup_key(block, []) == dedup_key(block, [])
    assert dedup_key(block, []) != dedup_key(SelfReferencingBlock(), [])


def test_sweep__a_model_whose_attributes_refer_to_themselves_is_swept():
    job = run_sweep("models/exportdb_cases.py:SelfReferencingStack", [2, 4])
    assert job.verdict is Verdict.OK
    assert verdicts(job)["blocks.1"] == "covered"


@pytest.mark.slow
def test_sweep__a_dedup_key_that_raises_exports_the_module_on_its_own(monkeypatch):
    real = sweep.dedup_key

    def broken(module, calls):
        if type(module).__name__ == "GatedBlock":
            raise RuntimeError("cannot describe this module")
        return real(module, calls)

    monkeypatch.setattr(sweep, "dedup_key", broken)
    job = run_sweep("exportwatch.examples.models:StackedEncoder", [2, 16])
    found = verdicts(job)
    assert found["encoder.5"] == "fail" and found[""] == "fail"
    # No dedup for the blocks: each was exported, none is same-as, each says why.
    assert all(found[f"encoder.{i}"] in ("ok", "fail") for i in range(8))
    assert any("could not compare this module" in w for w in job.submodule("encoder.0").warnings)


@pytest.mark.slow
def test_sweep__a_diagnosis_that_raises_keeps_the_verdict_and_the_raw_exception(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a rule blew up")

    monkeypatch.setattr(diagnose, "diagnose_exception", broken)
    job = run_sweep("exportwatch.examples.models:StackedEncoder", [2, 16])
    bad = job.submodule("encoder.5")
    assert bad.verdict is Verdict.FAIL
    assert bad.category == "unknown"
    assert "GuardOnDataDependentSymNode" in bad.exception_type
    assert "could not diagnose this failure" in bad.detail and "a rule blew up" in bad.detail


@pytest.mark.slow
def test_sweep__origin_marking_that_raises_keeps_every_verdict(monkeypatch):
    def broken(job):
        raise KeyError("origins")

    monkeypatch.setattr(tree, "mark_origins", broken)
    job = run_sweep("exportwatch.examples.models:StackedEncoder", [2, 16])
    assert job.verdict is Verdict.FAIL and verdicts(job)["encoder.5"] == "fail"


class _RaisesOn:
    """A target whose bookkeeping raises for one module type: exportwatch's own bug."""

    def __init__(self, real, type_name):
        self.real, self.type_name = real, type_name

    def attempt(self, module, call, **kwargs):
        if type(module).__name__ == self.type_name:
            raise IndexError("list index out of range (a bug in verification bookkeeping)")
        return self.real.attempt(module, call, **kwargs)


def _sweep_with_broken_target(monkeypatch, type_name):
    real_get = sweep.get_target
    monkeypatch.setattr(sweep, "get_target", lambda name: _RaisesOn(real_get(name), type_name))
    prepared = sweep.prepare_model(
        spec_for("exportwatch.examples.models:StackedEncoder", [2, 16]), device="cpu", settings=SETTINGS
    )
    return sweep.sweep_target(prepared, "export", settings=SETTINGS)


@pytest.mark.slow
def test_sweep__an_exception_escaping_a_target_is_error_for_that_module_only(monkeypatch):
    job = _sweep_with_broken_target(monkeypatch, "Linear")
    found = verdicts(job)
    assert found["embed"] == "error" and found["head"] == "error"
    assert found["encoder.5"] == "fail"  # the rest of the sweep still ran
    embed = job.submodule("embed")
    assert embed.category == "internal-error"
    assert "exportwatch internal error: IndexError" in embed.message
    assert "report it" in embed.hint


def test_sweep__an_error_at_the_root_makes_the_job_error_not_crash_and_the_gate_fails(monkeypatch):
    job = _sweep_with_broken_target(monkeypatch, "StackedEncoder")
    assert job.verdict is Verdict.ERROR
    assert verdicts(job)["encoder.5"] == "fail"  # children were still tried
    base = Report(jobs=[job.__class__(model=job.model, target="export", device="cpu", verdict=Verdict.OK)])
    changes = diff_reports(base, Report(jobs=[job]))
    root = changes.cells[(job.model, "export", "cpu", "")]
    assert root.kind is ChangeKind.ERROR
    for policy in ("regression", "new-failure", "any-failure"):
        verdict = gate(changes, policy)
        assert not verdict.passed
        assert any("could not complete" in reason and "report it" in reason for reason in verdict.reasons)
    assert gate(changes, "regression", allow_errors=True).passed or any(
        c.kind is ChangeKind.REGRESSION for c in changes.top_level()
    )
    assert gate(changes, "never").passed


@pytest.mark.parametrize("policy", ["regression", "new-failure"])
def test_gate__an_error_is_never_gated_as_a_pass_unless_allowed(policy):
    from tests.factories import job, report, sub

    head = report(job("cnn", "export", sub("", "error", message="exportwatch internal error: KeyError")))
    base = report(job("cnn", "export", sub("", "ok")))
    changes = diff_reports(base, head)
    assert not gate(changes, policy).passed
    assert gate(changes, policy, allow_errors=True).passed
    from exportwatch.render.common import headline

    assert "could not check" in headline(changes, gate(changes, policy)).text


def test_dedup__bound_methods_of_different_instances_are_different_exports():
    job = run_sweep("models/exportdb_cases.py:TwoPolicies", [2, 4])
    found = verdicts(job)
    assert found["a"] == "ok"
    assert found["b"] == "fail"  # not "same-as a": its policy is strict
    assert job.submodule("b").origin
