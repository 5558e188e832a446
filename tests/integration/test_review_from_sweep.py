"""Issue 28, item 4, end to end: a real sweep of ``blocker_cases.ThreeBlockers`` in a git
repository whose pull request adds its data-dependent lines; the action publishes to the local
fake GitHub, whose pull request has that commit's real diff. The review holds one suggested change
per verified source fix, and each, committed the way GitHub commits a suggestion (the line
replaced by the block), gets the module past the blocker it addresses; all of them together,
and the module exports."""

from __future__ import annotations

import importlib.util
import inspect
import io
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
import torch

from exportwatch.action.main import ModeOutcome, conclude
from exportwatch.diagnose.blockers import read_draft
from exportwatch.diff import diff_reports, gate
from exportwatch.github.client import ClientSettings
from exportwatch.github.config import ActionConfig
from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec
from exportwatch.report import Report
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import _interned_strings, prepare_model, sweep_target
from tests.fakegithub import FakeGitHub

REPO = "octo/vision"
FILE = "prmodels_review/three.py"
FAST = ClientSettings(retries=1, backoff_factor=0.01, backoff_max=0.05, seconds_between_writes=0, timeout=30)


def _sources() -> tuple[str, str]:
    """The file before the pull request (no data-dependent lines) and after it: the classes of
    ``tests/fixtures/models/blocker_cases.py`` as they are, the custom op imported from there."""
    from models import blocker_cases

    head_classes = "\n\n".join(
        inspect.getsource(getattr(blocker_cases, name))
        for name in ("TwoDataDependent", "CustomOpWithoutFake", "ThreeBlockers")
    )
    header = (
        "from __future__ import annotations\n\nimport torch\nfrom models.blocker_cases import scale_no_fake\n"
        "from torch import nn\n\n\n"
    )
    head = header + head_classes
    body = inspect.getsource(blocker_cases.TwoDataDependent.forward).split("\n", 1)[1]
    base = head.replace(body, "        return x\n", 1)
    assert base != head
    return base, head


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def _suggestion(body: str) -> str:
    block = re.search(r"^(`{3,})suggestion\n(.*?)\n\1$", body, flags=re.DOTALL | re.MULTILINE)
    assert block, body
    return block[2]


def _committed(text: str, suggestions: list[tuple[int, str]]) -> str:
    """``text`` with each suggestion committed as GitHub does: its line replaced by the block."""
    lines = text.split("\n")
    for line, block in sorted(suggestions, reverse=True):
        lines[line - 1 : line] = block.split("\n")
    return "\n".join(lines)


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _blocker_lines(module: ModuleType, repo: Path) -> list[str]:
    """The source lines of the blockers draft_export still meets in ``TwoDataDependent``."""
    torch.manual_seed(0)
    program = torch.export.draft_export(module.TwoDataDependent(), (torch.rand(8),), strict=False)
    found = read_draft(program, repo_root=repo, interned=_interned_strings())
    return [b.user_frame.source.strip() for b in found if b.user_frame]


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        yield server
    assert server.violations == []


def test_review__each_verified_source_fix_of_a_real_sweep_is_a_suggestion_that_gets_past_its_blocker(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo = tmp_path / "repo"
    (repo / "prmodels_review").mkdir(parents=True)
    (repo / "prmodels_review" / "__init__.py").write_text("")
    base_text, head_text = _sources()
    (repo / FILE).write_text(base_text)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    (repo / FILE).write_text(head_text)
    _git(repo, "commit", "-qam", "the pull request")
    sha = _git(repo, "rev-parse", "HEAD").strip()
    diff = _git(repo, "diff", "HEAD~1", "HEAD", "--", FILE)
    patch = diff[diff.index("@@") :].rstrip("\n")  # GitHub's files[].patch: the hunks only
    fake.add_pull(REPO, 7, head_sha=sha, files={FILE: patch})

    settings = SweepSettings(manifest_root=repo, repo_root=repo)
    spec = ModelSpec(
        name="three",
        factory="prmodels_review.three:ThreeBlockers",
        inputs=InputsSpec(args=[TensorSpec(shape=[8])]),
    )
    job = sweep_target(prepare_model(spec, device="cpu", settings=settings), "export", settings=settings)
    fixes = [
        fix
        for sub in job.submodules
        if sub.blockers is not None
        for fix in sub.blockers.fixes
        if fix.edit is not None
    ]
    assert len(fixes) >= 2, [s.blockers for s in job.submodules if s.blockers]
    blockers = {
        id(fix): sub.blockers.found for sub in job.submodules if sub.blockers for fix in sub.blockers.fixes
    }

    head = Report(repository=REPO, git_sha=sha, jobs=[job])
    changes = diff_reports(None, head)
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=sha)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = ActionConfig.from_env(
        {
            "INPUT_GITHUB-TOKEN": fake.token,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": fake.api_url,
            "GITHUB_SERVER_URL": fake.server_url,
            "GITHUB_STEP_SUMMARY": str(workspace / "summary.md"),
            "GITHUB_WORKSPACE": str(workspace),
        }
    )
    conclude(config, outcome, out=io.StringIO(), settings=replace(FAST, api_url=fake.api_url))

    assert len(fake.reviews(REPO, 7)) == 1, "one review"
    comments = fake.review_comments(REPO, 7)
    assert sorted((c["path"], c["line"]) for c in comments) == sorted((FILE, f.edit.line) for f in fixes)
    by_line = {c["line"]: _suggestion(c["body"]) for c in comments}
    for fix in fixes:
        assert by_line[fix.edit.line] == fix.edit.replacement
        assert head_text.split("\n")[fix.edit.line - 1] == fix.edit.original

    before = _blocker_lines(_module(repo / FILE, "prmodels_review_before"), repo)
    assert len(set(before)) >= 2, before
    for n, fix in enumerate(fixes):
        addressed = [blockers[id(fix)][i].user_frame.source.strip() for i in fix.blockers]
        assert all(line in before for line in addressed), (addressed, before)
        copy = repo / "prmodels_review" / f"committed_{n}.py"  # in the repository: its frames count
        copy.write_text(_committed(head_text, [(fix.edit.line, by_line[fix.edit.line])]))
        after = _blocker_lines(_module(copy, f"prmodels_review_committed_{n}"), repo)
        assert not set(addressed) & set(after), f"{fix.summary}: still blocked at {after}"

    every = repo / "prmodels_review" / "committed_all.py"
    every.write_text(_committed(head_text, list(by_line.items())))
    patched = _module(every, "prmodels_review_committed_all")
    torch.manual_seed(0)
    torch.export.export(patched.TwoDataDependent(), (torch.rand(8),), strict=False)  # raises if blocked
