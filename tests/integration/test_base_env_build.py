"""Building the base's environment for real (venv, pip), without an export: the venv cache, and
an install that fails becoming a notice with head-only results, never a crash."""

from __future__ import annotations

import subprocess

import pytest

from exportwatch.baseline import base_env
from exportwatch.baseline.environment import InstallPlan
from exportwatch.diff import ChangeKind, diff_reports
from tests.integration.test_baseline import FILES, FakeSweeper, compare, make_repo

pytestmark = pytest.mark.slow  # real venvs and pip: seconds each


def test_build__keeps_a_finished_venv_for_the_same_plan_and_rebuilds_an_unfinished_one(tmp_path):
    plan = InstallPlan()
    first = base_env.build(plan, worktree=tmp_path, directory=tmp_path / "envs")
    assert not first.reused and (first.root / base_env.READY).is_file()
    probe = subprocess.run(
        [str(first.python), "-c", "import sys, yaml; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(first.root)  # its own prefix, HEAD's packages inherited
    again = base_env.build(plan, worktree=tmp_path, directory=tmp_path / "envs")
    assert again.reused and again.root == first.root
    (first.root / base_env.READY).unlink()  # an install that was interrupted
    rebuilt = base_env.build(plan, worktree=tmp_path, directory=tmp_path / "envs")
    assert not rebuilt.reused and (rebuilt.root / base_env.READY).is_file()
    other = base_env.build(InstallPlan(requirements=("pip",)), worktree=tmp_path, directory=tmp_path / "envs")
    assert other.root != first.root  # one venv per install plan


def test_compare__an_install_that_fails_is_a_notice_and_the_affected_models_have_no_base_result(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # nothing can be found: pip fails, quickly and offline
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    repo = make_repo(tmp_path / "repo", {**FILES, "requirements.txt": "shapelib==1.0\n"})
    repo.commit("bump shapelib", {"requirements.txt": "shapelib==2.0\n"})
    sweeper = FakeSweeper()
    result = compare(repo, sweeper, base_env_dir=tmp_path / "envs")
    assert sweeper.swept("base") == []  # the base never ran with HEAD's packages
    assert result.base.jobs == []
    assert not result.base.complete  # so the diff says its results are incomplete
    (note,) = [n for n in result.notes if n.startswith("the merge-base could not be reproduced")]
    assert "installing the base's requirements.txt failed:" in note
    assert "shapelib==1.0" in note and "compared as new" in note
    logs = list((tmp_path / "envs").glob("*.install.log"))
    assert len(logs) == 1 and str(logs[0]) in note and "shapelib" in logs[0].read_text()
    assert not list((tmp_path / "envs").glob(f"*/{base_env.READY}"))  # not kept as a finished venv
    reason = result.decision("alpha", "export").reason
    assert reason.startswith(
        "the dependency set changed (requirements.txt); not reproduced in the base's own"
    )
    changes = diff_reports(result.base, result.head)
    assert sorted(c.model for c in changes.top_level(ChangeKind.NEW)) == ["alpha", "beta", "gamma"]
    assert len(repo.worktrees()) == 1
