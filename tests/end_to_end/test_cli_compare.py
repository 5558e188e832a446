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


def commit_main_and_branch(root, files, message):
    """``files`` committed on ``main`` in a new repository at ``root``; ``feature`` checked out."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "exportwatch tests")
    git(root, "config", "user.email", "tests@example.com")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    git(root, "checkout", "-q", "-b", "feature")


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
    commit_main_and_branch(root, files, "two exportable models")
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


HELPER_OK = "def scale(x):\n    return x * 2\n"
HELPER_BRANCHES = (
    "def scale(x):\n"
    "    if x.sum() > 0:  # data-dependent: torch.export cannot trace this\n"
    "        return x * 2\n"
    "    return x\n"
)
USES_HELPER = """\
import torch
from helperlib import scale


class Net(torch.nn.Module):
    def forward(self, x):
        return scale(x)


def make():
    return Net()
"""


def test_cli_compare__head_and_base_share_one_fork_server_and_each_imports_its_own_code(
    tmp_path, monkeypatch
):
    root = tmp_path / "repo"
    files = {
        "exportwatch.yml": "version: 1\nmodels:\n  - name: net\n    factory: nets.net:make\n"
        "    inputs: {args: [{shape: [2, 3]}]}\n",
        "nets/__init__.py": "",
        "src/helperlib/__init__.py": HELPER_OK,  # a src layout: importable through a sys.path entry
        "nets/net.py": USES_HELPER,
    }
    commit_main_and_branch(root, files, "an exportable model")
    (root / "src/helperlib/__init__.py").write_text(HELPER_BRANCHES)
    git(root, "commit", "-qam", "the helper branches on data")
    monkeypatch.syspath_prepend(str(root / "src"))  # as an editable install of the repo would

    servers: list[object] = []
    real_init = workers._ForkServer.__init__

    def counting_init(self, *args, **kwargs):
        servers.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(workers._ForkServer, "__init__", counting_init)
    out = tmp_path / "out"
    code = main(["compare", str(root / "exportwatch.yml"), "--base", "main", "-o", str(out / "head.json"),
                 "--workers", "1", "--format", "json", "--rendered", str(out / "changes.json"), "-q"])
    head, base = load_report(out / "head.json"), load_report(out / "head.base.json")
    assert base.job("net", "export", "cpu").source.value == "swept"
    # The base's model process imported the base's helperlib (its worktree's src), not HEAD's.
    verdicts = [report.job("net", "export", "cpu").verdict.value for report in (head, base)]
    assert verdicts == ["fail", "ok"]
    assert code == 1
    assert len(servers) == 1  # both sides on one warm fork server
