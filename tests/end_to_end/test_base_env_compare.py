"""The PR that bumps a requirement: the merge-base is swept in its own environment.

``shapelib`` is a tiny local library built here as two wheels: 1.0 exports fine, 2.0 calls
``.item()`` on a tensor in a branch (data-dependent: ``torch.export`` cannot trace it). main
pins ``shapelib==1.0``; the PR bumps it to 2.0 and touches no model. ``exportwatch compare``
runs from a HEAD venv that has 2.0 on top of the interpreter running the tests, itself a venv
or not (made as the base's is, by ``base_env.create_venv``: torch and exportwatch are that
interpreter's); the base must be swept in a venv built from main's ``requirements.txt``, with
1.0, so the diff shows the regression instead of nothing. pip finds the wheels through
``PIP_FIND_LINKS`` with ``PIP_NO_INDEX`` (no network), as a user's pip configuration would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

import exportwatch
from exportwatch.baseline import base_env
from exportwatch.report import Verdict, load_report

pytestmark = pytest.mark.slow

SHAPELIB_1 = "def scale(x):\n    return x * 2.0\n"
SHAPELIB_2 = """\
def scale(x):
    if x.sum().item() > 0:  # data-dependent: torch.export cannot trace this branch
        return x * 2.0
    return x
"""

MODEL = """\
import torch
import shapelib


class Net(torch.nn.Module):
    def forward(self, x):
        return shapelib.scale(x) + 1


def make():
    return Net()
"""

MANIFEST = """\
version: 1
models:
  - name: net
    factory: nets/net.py:make
    targets: [export]
    inputs: {args: [{shape: [2, 3]}]}
"""


def write_wheel(dest: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel, written by hand (no build backend, no network)."""
    info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for rel, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for rel, text in files.items():
            archive.writestr(rel, text)
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def commit(root: Path, message: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def pip_env(wheels: Path) -> dict[str, str]:
    return dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_DISABLE_PIP_VERSION_CHECK="1")


def test_compare__sweeps_the_base_in_a_venv_of_its_own_requirements_and_shows_the_regression(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "shapelib", "1.0", {"shapelib/__init__.py": SHAPELIB_1})
    write_wheel(wheels, "shapelib", "2.0", {"shapelib/__init__.py": SHAPELIB_2})

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "exportwatch tests")
    git(repo, "config", "user.email", "tests@example.com")
    git(repo, "config", "commit.gpgsign", "false")
    commit(repo, "base", {
        "exportwatch.yml": MANIFEST, "nets/__init__.py": "", "nets/net.py": MODEL,
        "requirements.txt": "shapelib==1.0\n",
    })  # fmt: skip
    git(repo, "checkout", "-q", "-b", "bump")
    commit(repo, "bump shapelib", {"requirements.txt": "shapelib==2.0\n"})

    head_env = tmp_path / "head-env"
    python = base_env.create_venv(head_env, log_path=tmp_path / "head-env.log", cwd=tmp_path)
    where = subprocess.run(
        [str(python), "-c", "import exportwatch; print(exportwatch.__file__)"], capture_output=True, text=True
    )
    # This very exportwatch, not one the system's Python happens to have (or lack).
    assert where.stdout.strip() == exportwatch.__file__, where.stderr
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(repo / "requirements.txt")],
                   check=True, env=pip_env(wheels))  # fmt: skip

    envs = tmp_path / "base-envs"
    done = subprocess.run(
        [str(python), "-m", "exportwatch", "compare", "exportwatch.yml", "--base", "main", "--no-fetch",
         "-o", str(tmp_path / "head.json"), "--workers", "1", "--base-env-dir", str(envs), "-q",
         "--format", "json", "--fail-on", "regression"],
        cwd=repo, capture_output=True, text=True, env=pip_env(wheels), timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the gate fails: a regression
    head = load_report(tmp_path / "head.json")
    base = load_report(tmp_path / "head.base.json")
    assert head.job("net", "export", "cpu").verdict is Verdict.FAIL  # shapelib 2.0's .item()
    base_job = base.job("net", "export", "cpu")
    assert base_job is not None and base_job.verdict is Verdict.OK, done.stderr  # swept with shapelib 1.0
    assert str(base_job.source) == "swept"
    assert "the base was swept in its own environment: shapelib 1.0 (HEAD: 2.0)" in done.stderr
    assert "differs between the merge-base and HEAD (requirements.txt)" in done.stderr
    data = json.loads(done.stdout)
    assert "regression" in json.dumps(data)
    # Each side recorded the library the model imports, so the upgrade owns the regression ...
    assert (base.environment.packages["shapelib"], head.environment.packages["shapelib"]) == ("1.0", "2.0")
    assert data["upgrade"]["summary"] == "shapelib 1.0 → 2.0: 1 regression in 1 model"
    assert data["upgrade"]["models"] == ["net"]
    # ... and the PR comment leads with it and lists the model that broke.
    comment = subprocess.run(
        [str(python), "-m", "exportwatch", "diff", str(tmp_path / "head.base.json"),
         str(tmp_path / "head.json"), "--format", "markdown"],
        cwd=repo, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert comment.returncode == 1, comment.stderr
    heading = next(line for line in comment.stdout.splitlines() if line.startswith("### "))
    assert "shapelib 1.0 → 2.0: 1 regression in 1 model" in heading
    assert "**Changed by the upgrade** (the same code on both sides): `net`." in comment.stdout
    # The venv is kept for the next run with the same dependency set; HEAD's venv is untouched.
    assert [p.name for p in envs.iterdir() if (p / ".exportwatch-ready").is_file()]
    script = "import importlib.metadata as m; print(m.version('shapelib'))"
    version = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "2.0"
    assert len(git(repo, "worktree", "list", "--porcelain").split("worktree ")) == 2  # the worktree is gone
