"""Fixes proven before they are shown (issue 28, item 3): real sweeps of
``tests/fixtures/models/fix_cases.py``; each test applies what the report shows the way a user
would (the suggested change to a copy of the file, the fake-kernel stub executed) and exports."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from exportwatch.diagnose import fixes as propose
from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import JobResult, Report, Verdict
from exportwatch.report.model import BlockerStatus, FixKind, FixProof, SourceEdit
from exportwatch.report.validate import validate_report
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)
CASES = "tests/fixtures/models/fix_cases.py"
OP = "exportwatch_blockers::scale"


def sweep(factory: str) -> JobResult:
    spec = ModelSpec(
        name="model",
        factory=f"models.fix_cases:{factory}",
        inputs=InputsSpec(args=[TensorSpec(shape=[8])]),
    )
    return sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "export", settings=SETTINGS)


def apply_edits(edits: list[SourceEdit], tmp_path: Path, name: str) -> ModuleType:
    """A copy of the file with each suggested change applied as GitHub would (the line replaced),
    imported as a module of its own."""
    (path,) = {edit.path for edit in edits}
    lines = (REPO_ROOT / path).read_text().splitlines()
    for edit in sorted(edits, key=lambda e: e.line, reverse=True):
        assert lines[edit.line - 1] == edit.original
        lines[edit.line - 1 : edit.line] = edit.replacement.split("\n")
    copy = tmp_path / f"{name}.py"
    copy.write_text("\n".join(lines) + "\n")
    spec = importlib.util.spec_from_file_location(name, copy)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def stub_registered(snippet: str) -> Iterator[None]:
    """The fake-kernel stub as shown, pasted and run; unregistered afterwards."""
    from torch._library.custom_ops import _maybe_get_opdef

    opdef = _maybe_get_opdef(OP)
    assert opdef is not None and opdef._abstract_fn is None
    exec(compile(snippet, "<pasted stub>", "exec"), {"torch": torch})
    try:
        yield
    finally:
        opdef._abstract_fn = None


def exports(module: ModuleType, factory: str) -> bool:
    torch.manual_seed(0)
    try:
        torch.export.export(getattr(module, factory)(), (torch.rand(8),), strict=False)
    except Exception:
        return False
    return True


def test_fixes__two_data_dependent_problems_and_a_custom_op_each_get_a_fix_that_works_when_applied(
    tmp_path: Path,
) -> None:
    before = hashlib.sha256((REPO_ROOT / CASES).read_bytes()).hexdigest()
    job = sweep("Router")
    root = job.root
    assert root is not None and root.verdict == Verdict.FAIL
    found = root.blockers
    assert found is not None and found.status is BlockerStatus.FOUND
    assert [b.kind for b in found.found] == ["data-dependent", "missing-fake-kernel", "data-dependent"]
    top, kernel, count = found.fixes
    # each torch._check goes after the line that made its value, with that line's indentation
    assert top.kind is FixKind.CHECK and top.blockers == [0]
    assert top.edit == SourceEdit(
        path=CASES,
        line=16,
        original="        top = x.abs().max().item()",
        replacement="        top = x.abs().max().item()\n        torch._check(top > 0.5)",
    )
    assert count.kind is FixKind.CHECK and count.blockers == [2] and count.edit is not None
    assert count.edit.line == 19 and count.edit.replacement.endswith("\n        torch._check(count > 2)")
    assert kernel.kind is FixKind.FAKE_KERNEL and kernel.blockers == [1] and kernel.edit is None
    assert kernel.snippet.startswith(f'@torch.library.register_fake("{OP}")')
    # alone, each gets past its own blocker and names the next; together they export
    assert [f.proof for f in found.fixes] == [FixProof.PAST_BLOCKER] * 3
    assert "fake kernel" in (top.next_blocker or "") and "zuf0 > 0.5" in (kernel.next_blocker or "")
    assert found.fixes_together is FixProof.EXPORTS and found.fixes_dropped == 0
    # the user's tree is untouched, the live code restored, the op still without a fake kernel
    assert hashlib.sha256((REPO_ROOT / CASES).read_bytes()).hexdigest() == before
    from models import fix_cases

    assert fix_cases.Router.forward.__code__.co_filename == str(REPO_ROOT / CASES)
    assert not exports(fix_cases, "Router")
    # applied as shown (the suggested changes to a copy, the stub pasted), the module exports
    patched = apply_edits([top.edit, count.edit], tmp_path, "router_fixed")
    assert not exports(patched, "Router")  # the custom op still has no fake kernel
    with stub_registered(kernel.snippet):
        assert exports(patched, "Router")
        assert not exports(apply_edits([top.edit], tmp_path, "router_top"), "Router")


def test_fixes__a_value_made_in_a_helper_gets_its_check_where_the_caller_binds_it(tmp_path: Path) -> None:
    root = sweep("Helper").root
    assert root is not None and root.blockers is not None
    (fix,) = root.blockers.fixes
    assert fix.kind is FixKind.CHECK and fix.proof is FixProof.EXPORTS and fix.next_blocker is None
    assert fix.edit is not None and fix.edit.replacement.endswith("torch._check(n > 2)")
    assert exports(apply_edits([fix.edit], tmp_path, "helper_fixed"), "Helper")
    # and it round-trips through the report
    report = Report(
        jobs=[JobResult(model="m", target="export", device="cpu", verdict=Verdict.FAIL, submodules=[root])]
    )
    again = validate_report(report.to_json(), strict=True)
    assert again.jobs[0].root is not None and again.jobs[0].root.blockers == root.blockers


def test_fixes__no_fix_is_shown_when_the_value_has_no_name_to_check() -> None:
    root = sweep("NoName").root
    assert root is not None and root.blockers is not None and root.blockers.found
    assert root.blockers.fixes == [] and root.blockers.fixes_dropped == 0


def test_fixes__a_proposal_the_re_export_disproves_is_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = propose.propose_checks

    def wrong(*args: object, **kwargs: object) -> list[propose.Proposal]:
        made = real(*args, **kwargs)  # type: ignore[arg-type]
        # the check that did NOT hold for the example: the re-export must refuse it
        return [
            propose.Proposal(
                kind=p.kind,
                summary=p.summary,
                snippet=p.snippet,
                edit=SourceEdit(
                    path=p.edit.path,
                    line=p.edit.line,
                    original=p.edit.original,
                    replacement=p.edit.replacement.replace(">", "<="),
                ),
                blockers=p.blockers,
            )
            for p in made
            if p.edit is not None
        ]

    monkeypatch.setattr(propose, "propose_checks", wrong)
    root = sweep("Helper").root
    assert root is not None and root.blockers is not None
    assert root.blockers.fixes == [] and root.blockers.fixes_dropped == 1
