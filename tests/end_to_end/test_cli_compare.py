"""`exportwatch compare` as a user runs it: real exports of tiny models, a real git history.

One module-scoped repository: ``main`` has two exportable models sharing a helper; ``feature``
breaks one of them with a data-dependent branch. The first run sweeps for real (HEAD, then only
the changed model on the merge-base); the second finds everything in the cache and must not
start a single worker.
"""

from __future__ import annotations

import json
import subprocess

import jsonschema
import pytest

from exportwatch.cli.main import main
from exportwatch.report import load_report
from exportwatch.sweep import workers
from tests.conftest import REPO_ROOT

MODEL = """\
import torch
from nets.helper import scale


class Net(torch.nn.Module):
    def forward(self, x):
        return x * scale()


def make():
    return Net()
"""

BROKEN = """\
import torch
from nets.helper import scale


class Net(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot trace this
            return x * scale()
        return x


def make():
    return Net()
"""

MANIFEST = """\
version: 1
models:
  - name: steady
    factory: nets.steady:make
    inputs: {args: [{shape: [2, 3]}]}
  - name: fragile
    factory: nets/fragile.py:make
    inputs: {args: [{shape: [2, 3]}]}
"""


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare") / "repo"
    files = {
        "exportwatch.yml": MANIFEST,
        "nets/__init__.py": "",
        "nets/helper.py": "def scale():\n    return 2.0\n",
        "nets/steady.py": MODEL,
        "nets/fragile.py": MODEL,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "exportwatch tests")
    git(root, "config", "user.email", "tests@example.com")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two exportable models")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "nets/fragile.py").write_text(BROKEN)
    git(root, "commit", "-qam", "fragile gets a data-dependent branch")
    return root


@pytest.fixture(scope="module")
def first_run(feature_repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    args = ["compare", str(feature_repo / "exportwatch.yml"), "--base", "main", "-o", str(out / "head.json"),
            "--cache-dir", str(out / "cache"), "--workers", "1", "--format", "json",
            "--rendered", str(out / "changes.json"), "-q"]
    return main(args), out, args


def test_cli_compare__reports_the_regression_and_exits_1(first_run):
    code, out, _ = first_run
    assert code == 1
    changes = json.loads((out / "changes.json").read_text())
    assert "fragile" in json.dumps(changes)
    assert load_report(out / "head.json").job("fragile", "export", "cpu").verdict.value == "fail"
    assert load_report(out / "head.base.json").job("fragile", "export", "cpu").verdict.value == "ok"


def test_cli_compare__sweeps_only_the_changed_model_on_the_base_and_reuses_the_other(first_run, feature_repo):
    _, out, _ = first_run
    base = load_report(out / "head.base.json")
    assert {j.model: j.source.value for j in base.jobs} == {"steady": "reused", "fragile": "swept"}
    assert base.git_sha == git(feature_repo, "rev-parse", "main")
    assert sorted(base.job("steady", "export", "cpu").dependencies) == [
        "nets/__init__.py", "nets/helper.py", "nets/steady.py",
    ]
    worktrees = git(feature_repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 1


def test_cli_compare__reports_match_the_published_schema(first_run):
    _, out, _ = first_run
    schema = json.loads((REPO_ROOT / "config" / "report.schema.json").read_text())
    for name in ("head.json", "head.base.json"):
        jsonschema.validate(json.loads((out / name).read_text()), schema)


def test_cli_compare__second_run_is_served_from_the_cache_without_starting_a_worker(first_run, monkeypatch):
    code, out, args = first_run

    def no_worker(self, units):
        raise AssertionError("a fully cached compare must not spawn a worker")

    monkeypatch.setattr(workers.WorkerPool, "_start_launcher", no_worker)
    assert main(args) == code
    head = load_report(out / "head.json")
    base = load_report(out / "head.base.json")
    assert {j.source.value for j in head.jobs} == {"cache"}
    assert {j.model: j.source.value for j in base.jobs} == {"steady": "reused", "fragile": "cache"}
    assert base.job("fragile", "export", "cpu").verdict.value == "ok"
