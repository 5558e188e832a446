"""Building the base's environment for real (venv, pip), without an export: the venv cache, and
an install that fails becoming a notice with head-only results, never a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from exportwatch.baseline import base_env
from exportwatch.baseline.environment import InstallPlan
from exportwatch.diff import ChangeKind, diff_reports
from tests.conftest import REPO_ROOT
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


#: An editable install as setuptools writes it: a ``.pth`` import hook that puts a finder on
#: ``sys.meta_path``, so the package is importable only where that ``.pth`` file was processed.
EDITABLE_FINDER = """\
import importlib.util, sys
SOURCE = {source!r}
class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "probe_editable":
            return importlib.util.spec_from_file_location(name, SOURCE)
        return None
def install():
    sys.meta_path.append(_Finder)
"""

#: Run by the outer venv's python: the base venv exportwatch builds from there.
BUILD_FROM_VENV = """\
import sys
from pathlib import Path
from exportwatch.baseline import base_env
from exportwatch.baseline.environment import InstallPlan
where = Path(sys.argv[1])
print(base_env.build(InstallPlan(), worktree=where, directory=where / "envs").python)
"""


def test_build__the_base_venv_sees_the_editable_installs_of_the_venv_exportwatch_runs_in(tmp_path):
    outer = tmp_path / "user-venv"  # the user's venv, with their own package installed editable
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    purelib = subprocess.run(
        [str(outer / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    source = tmp_path / "src" / "probe_editable.py"
    source.parent.mkdir()
    source.write_text("WHERE = 'editable'\n")
    Path(purelib, "probe_editable_finder.py").write_text(EDITABLE_FINDER.format(source=str(source)))
    Path(purelib, "__editable__.probe_editable-1.0.pth").write_text(
        "import probe_editable_finder; probe_editable_finder.install()\n"
    )
    # exportwatch and its dependencies from this interpreter, on PYTHONPATH for the build only.
    here = [str(REPO_ROOT), *(p for p in sys.path if p and Path(p).is_dir()), sysconfig.get_path("purelib")]
    built = subprocess.run(
        [str(outer / "bin" / "python"), "-c", BUILD_FROM_VENV, str(tmp_path)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(here)},
    )  # fmt: skip
    base_python = built.stdout.strip().splitlines()[-1]
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [base_python, "-c", "import sys, probe_editable; print(probe_editable.WHERE, sys.prefix)"],
        capture_output=True, text=True, check=False, env=clean,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr  # before: No module named 'probe_editable'
    assert probe.stdout.split() == ["editable", str(Path(base_python).parents[1])]


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
