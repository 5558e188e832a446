"""Mismatches grouped by cause, on a real sweep (issue 28, item 1): one module disagrees with
eager (``layers.1.attn`` bakes in a call count), its ancestors only pass that on. One origin,
the innermost; every mismatch carries a line (its module's ``return``)."""

from __future__ import annotations

import pytest

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import Verdict, tree
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)


@pytest.mark.parametrize("target", ["export", "onnx"])
def test_mismatch__one_cause_is_one_origin_the_innermost_module_with_its_line(target: str) -> None:
    spec = ModelSpec(
        name="stack",
        factory="models.sweep_cases:MismatchStack",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 4])]),
    )
    job = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), target, settings=SETTINGS)
    mismatching = [s.path for s in job.submodules if s.verdict == Verdict.MISMATCH]
    assert mismatching == ["", "layers.1", "layers.1.attn"]
    assert [s.path for s in job.submodules if s.origin] == ["layers.1.attn"]
    [group] = tree.group_failures(job)
    assert group.paths == mismatching and group.origins == ["layers.1.attn"]
    attn = job.submodule("layers.1.attn")
    assert attn.user_frame is not None
    assert attn.user_frame.path == "tests/fixtures/models/sweep_cases.py"
    assert attn.user_frame.source == "return x * next(_CALLS)"
    # The root's own account (its first output disagrees) is kept, with its own line.
    assert job.root.mismatch is not None and job.root.mismatch.output == "[0]"
    assert job.root.user_frame is not None and job.root.user_frame.source == "return x, x.sum()"
