"""Two failures in one library helper (issue 28, item 1): torchvision's RPN and ``roi_heads``
both failing inside ``ops/boxes.py``'s NMS shared one fingerprint, so the second was hidden and
the root was "explained by" the wrong one. The helper's caller is now part of the fingerprint.

``helperlib`` lives under ``tests/fixtures/site-packages``: every frame of it, the modules that
call the helper included, is a library frame, as torchvision's are."""

from __future__ import annotations

import pytest

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import JobResult, Verdict, tree
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)
TARGETS = ["export", "export-strict"]


def sweep(factory: str, target: str) -> JobResult:
    spec = ModelSpec(
        name="model",
        factory=f"models.library_helper_cases:{factory}",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 4])]),
    )
    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    return sweep_target(prepared, target, settings=SETTINGS)


@pytest.mark.parametrize("target", TARGETS)
def test_library_helper__two_call_sites_are_two_failures_and_neither_hides_the_other(target: str) -> None:
    job = sweep("TwoCallSites", target)
    rpn, heads = job.submodule("rpn"), job.submodule("roi_heads")
    assert rpn.verdict == heads.verdict == Verdict.FAIL
    # Both point at the helper's line, in the library ...
    assert rpn.user_frame == heads.user_frame
    assert rpn.user_frame is not None and rpn.user_frame.library == "helperlib"
    assert rpn.user_frame.path == "helperlib/ops.py"
    # ... but were called from two places: two fingerprints, two origins.
    assert rpn.fingerprint != heads.fingerprint
    assert rpn.origin and heads.origin
    # The root fails at the first call site it reaches (the RPN's): explained by it, not heads.
    assert job.root.fingerprint == rpn.fingerprint and not job.root.origin
    groups = tree.group_failures(job)
    assert sorted(group.origins for group in groups) == [["roi_heads"], ["rpn"]]


@pytest.mark.parametrize("target", TARGETS)
def test_library_helper__one_call_site_used_twice_keeps_one_fingerprint(target: str) -> None:
    job = sweep("OneCallSiteTwice", target)
    first, second = job.submodule("first"), job.submodule("second")
    assert first.verdict == second.verdict == Verdict.FAIL
    assert second.same_as is None  # called with another shape: exported on its own
    assert first.fingerprint == second.fingerprint == job.root.fingerprint
    assert not job.root.origin
    assert [group.origins for group in tree.group_failures(job)] == [["first", "second"]]


@pytest.mark.parametrize("target", TARGETS)
def test_library_module_failing_in_its_own_code__keeps_one_fingerprint_with_the_parent_re_raising_it(
    target: str,
) -> None:
    # ``own`` fails in its forward, ``wrapped.helper`` in a helper of its own file; the modules
    # holding them are in another file of the library. Their callers are whichever ancestor is
    # exported, so no caller joins the fingerprint: parents stay explained by their children.
    job = sweep("HoldsFailingModules", target)
    own, helper = job.submodule("own"), job.submodule("wrapped.helper")
    assert own.verdict == helper.verdict == Verdict.FAIL
    assert own.user_frame is not None and own.user_frame.function == "forward"
    assert helper.user_frame is not None and helper.user_frame.function == "_branch"
    assert job.root.fingerprint == own.fingerprint  # the root meets ``own`` first
    assert job.submodule("wrapped").fingerprint == helper.fingerprint
    assert own.fingerprint != helper.fingerprint  # two lines: two failures, as ever
    assert sorted(s.path for s in job.submodules if s.origin) == ["own", "wrapped.helper"]
