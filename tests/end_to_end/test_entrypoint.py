"""The action as the runner starts it: ``entrypoint/entrypoint.sh`` with INPUT_* / GITHUB_* variables,
working directory = the workspace, against the local GitHub-compatible server.

No Docker engine here: the container would run this same script with the same environment
(inputs with their action.yml defaults, ``GITHUB_WORKSPACE`` as the working directory).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.factories import base_report, failing, ok, report
from tests.fakegithub import FakeGitHub, events
from tests.runner_files import parse_outputs

pytestmark = pytest.mark.slow

ENTRYPOINT = REPO_ROOT / "entrypoint" / "entrypoint.sh"
ACTION_INPUTS = yaml.safe_load((REPO_ROOT / "action.yml").read_text())["inputs"]
REPO = "acme/vision"
FORK = "forker/vision"

MODELS = """\
import os
from pathlib import Path

import torch

# Whatever the user's code can see, the test can read: the token must not be in it, nor in
# the environment of any process above it (readable through /proc/PID/environ).
def ancestors_environ():
    seen, pid = [], os.getpid()
    while pid > 1:
        try:
            seen.append(Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace"))
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return "\\n".join(seen)


SEEN = "\\n".join(f"{k}={v}" for k, v in os.environ.items()) + ancestors_environ()
Path(__file__).with_name("env-seen-by-user-code.txt").write_text(SEEN)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class Gated(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x).relu()
"""
REGRESSION = (
    "        return self.fc(x).relu()\n",
    "        y = self.fc(x)\n        if y.sum().item() > 0:  # data-dependent: export fails\n"
    "            return y.relu()\n        return -y\n",
)
MANIFEST = """\
version: 1
defaults:
  targets: [export]
  device: cpu
  timeout: 120
models:
  - name: mlp
    factory: models:MLP
    inputs:
      args: [{shape: [2, 4]}]
  - name: gated
    factory: models:Gated
    inputs:
      args: [{shape: [2, 4]}]
"""


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass(frozen=True)
class Checkout:
    path: Path
    base: str
    head: str


def make_checkout(root: Path) -> Checkout:
    """A repository whose head commit breaks the export of ``gated`` (base: it exports)."""
    root.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=root)
    git("config", "user.email", "dev@example.com", cwd=root)
    git("config", "user.name", "dev", cwd=root)
    (root / "models.py").write_text(MODELS)
    (root / "exportwatch.yml").write_text(MANIFEST)
    (root / ".gitignore").write_text("env-seen-by-user-code.txt\ninstall-env.txt\nexportwatch-report*\n")
    git("add", "-A", cwd=root)
    git("commit", "-qm", "base", cwd=root)
    base = git("rev-parse", "HEAD", cwd=root)
    git("checkout", "-qb", "feature", cwd=root)
    (root / "models.py").write_text(MODELS.replace(*REGRESSION))
    git("commit", "-qam", "gated: branch on the data", cwd=root)
    return Checkout(path=root, base=base, head=git("rev-parse", "HEAD", cwd=root))


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    outputs: dict[str, str]
    summary: str

    @property
    def log(self) -> str:
        return self.done.stdout + self.done.stderr


def run_action(
    workspace: Path,
    fake: FakeGitHub,
    *,
    event_name: str,
    payload: dict,
    sha: str,
    inputs: dict[str, str],
    token: str | None,
    extra_env: dict[str, str] | None = None,
) -> Run:
    """Start the entrypoint the way the runner starts a Docker action."""
    runner = workspace.parent / f"runner-{len(list(workspace.parent.glob('runner-*')))}"
    runner.mkdir()
    event_path = events.write(runner, payload)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(runner)),
        "PYTHONPATH": str(REPO_ROOT),
        "EXPORTWATCH_PYTHON": sys.executable,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": sha,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": fake.server_url,
        "GITHUB_RUN_ID": "777",
        "GITHUB_OUTPUT": str(runner / "output"),
        "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
        "GITHUB_WORKSPACE": str(workspace),
    }
    for name, spec in ACTION_INPUTS.items():  # the runner passes every input, defaults included
        value = inputs.get(name, str(spec.get("default", "")))
        if value == "${{ github.token }}":
            value = token or ""
        env[f"INPUT_{name.upper()}"] = value
    env.update(extra_env or {})  # last: a test's own setting wins over an input's default
    done = subprocess.run(
        [str(ENTRYPOINT)], cwd=workspace, env=env, capture_output=True, text=True, timeout=600
    )
    output_file, summary_file = runner / "output", runner / "summary.md"
    return Run(
        done=done,
        outputs=parse_outputs(output_file.read_text()) if output_file.exists() else {},
        summary=summary_file.read_text() if summary_file.exists() else "",
    )


def pr_payload(checkout: Checkout, *, head_repo: str = REPO) -> dict:
    return events.pull_request(
        repo=REPO, number=7, head_sha=checkout.head, base_sha=checkout.base, head_ref="feature",
        head_repo=head_repo,
    )  # fmt: skip


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        yield server
    assert server.violations == []


# ------------------------------------------------------------------------------ mode: full


def test_entrypoint__full_run_comments_checks_and_fails_the_gate_then_updates_the_same_comment(
    tmp_path, fake
):
    checkout = make_checkout(tmp_path / "workspace")
    fake.add_pull(REPO, 7, head_sha=checkout.head, base_sha=checkout.base)
    # the install step's own environment and its parent's (the action process)
    # (where the action is not dumpable without CAP_SYS_PTRACE, as under Docker, that read is refused)
    inputs = {
        "workers": "1",
        "install": "{ env; tr '\\0' '\\n' < /proc/$PPID/environ 2>/dev/null || true; } > install-env.txt",
    }

    first = run_action(
        checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout), sha=checkout.head,
        inputs=inputs, token=fake.token,
    )  # fmt: skip
    assert first.done.returncode == 1, first.log
    assert first.outputs["verdict"] == "failed"
    assert (first.outputs["regressions"], first.outputs["fixes"]) == ("1", "0")
    assert first.outputs["report-path"] == "exportwatch-report.json"
    (comment,) = fake.comments(REPO, 7)
    assert first.outputs["comment-url"].endswith(f"#issuecomment-{comment['id']}")
    assert "<!-- exportwatch:comment -->" in comment["body"]
    assert "gated" in comment["body"] and "regression" in comment["body"].lower()
    assert f"/{REPO}/blob/{checkout.head}/models.py#L" in comment["body"]
    assert "gated" in first.summary and "mlp" in first.summary
    (check,) = fake.check_runs(REPO)
    assert (check["head_sha"], check["conclusion"]) == (checkout.head, "failure")
    assert any(a["path"] == "models.py" and a["annotation_level"] == "failure" for a in check["annotations"])
    assert "::group::gated (cpu): regression" in first.done.stdout
    head = json.loads((checkout.path / "exportwatch-report.json").read_text())
    base = json.loads((checkout.path / "exportwatch-report.base.json").read_text())
    assert {j["model"]: j["verdict"] for j in head["jobs"]} == {"mlp": "ok", "gated": "fail"}
    assert {j["model"]: j["verdict"] for j in base["jobs"]} == {"mlp": "ok", "gated": "ok"}
    assert len(git("worktree", "list", cwd=checkout.path).splitlines()) == 1, "the base worktree is removed"
    # no stored baseline on the fake server: a notice, and the base is swept as before
    assert f"::notice::exportwatch: no stored baseline of {checkout.base[:12]}" in first.done.stdout
    assert {j["source"] for j in base["jobs"]} == {"swept"}

    second = run_action(
        checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout), sha=checkout.head,
        inputs=inputs | {"fail-on": "never"}, token=fake.token,
    )  # fmt: skip
    assert second.done.returncode == 0, second.log
    assert second.outputs["verdict"] == "passed"
    (updated,) = fake.comments(REPO, 7)
    assert updated["id"] == comment["id"], "updated in place, not duplicated"
    assert len(fake.check_runs(REPO)) == 2

    secrets_seen = [
        ("entrypoint log", first.log + second.log),
        ("outputs", json.dumps([first.outputs, second.outputs])),
        ("summary", first.summary + second.summary),
        ("reports", json.dumps([head, base])),
        ("install commands' environment", (checkout.path / "install-env.txt").read_text()),
        ("sweep's environment", (checkout.path / "env-seen-by-user-code.txt").read_text()),
    ]
    for where, text in secrets_seen:
        assert fake.token not in text, f"the token leaked into the {where}"


def test_entrypoint__base_results_come_from_main_runs_stored_baseline_and_the_cache_fills(tmp_path, fake):
    checkout = make_checkout(tmp_path / "workspace")
    cache = checkout.path / ".exportwatch-cache"

    # The push to main (config/workflows/exportwatch-baseline.yml) on the base commit.
    git("checkout", "-q", checkout.base, cwd=checkout.path)
    push = run_action(
        checkout.path, fake, event_name="push", payload=events.payload("push.branch"), sha=checkout.base,
        inputs={
            "mode": "sweep", "workers": "1", "github-token": "", "report-path": "exportwatch-baseline.json",
            "cache-dir": ".exportwatch-cache",
        },
        token=None,
    )  # fmt: skip
    assert push.done.returncode == 0, push.log
    warmed = sorted(cache.glob("*.json"))
    assert len(warmed) == 2, "main's run warms the cache"
    git("checkout", "-q", "feature", cwd=checkout.path)
    # What actions/upload-artifact stored (its name carries the commit), and the PR.
    fake.add_workflow_run(REPO, 8001, head_sha=checkout.base, head_branch="main", event="push")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.write(checkout.path / "exportwatch-baseline.json", "exportwatch-baseline.json")
    fake.add_artifact(REPO, 8001, f"exportwatch-baseline-{checkout.base}", buffer.getvalue())
    fake.add_pull(REPO, 7, head_sha=checkout.head, base_sha=checkout.base)

    pr = run_action(
        checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout), sha=checkout.head,
        inputs={"workers": "1", "cache-dir": ".exportwatch-cache"}, token=fake.token,
    )  # fmt: skip

    assert pr.done.returncode == 1, pr.log
    assert pr.outputs["regressions"] == "1"
    (listing,) = fake.requests_to("actions/list-artifacts-for-repo")
    assert listing.query["name"] == [f"exportwatch-baseline-{checkout.base}"]
    assert f"::notice::exportwatch: stored baseline of {checkout.base[:12]}" in pr.done.stdout
    base = json.loads((checkout.path / "exportwatch-report.base.json").read_text())
    # models.py changed, so nothing is reused: the stored baseline stands in for the base sweep
    assert {j["model"]: j["source"] for j in base["jobs"]} == {"mlp": "baseline", "gated": "baseline"}
    assert {j["model"]: j["verdict"] for j in base["jobs"]} == {"mlp": "ok", "gated": "ok"}
    assert "no model to sweep on the merge-base" in pr.log
    assert len(list(cache.glob("*.json"))) == 4, "the PR's head results join main's in the cache"
    seen = (checkout.path / "env-seen-by-user-code.txt").read_text()
    assert fake.token not in seen and fake.token not in pr.log


def test_entrypoint__bad_input_exits_2_naming_it_before_any_work(tmp_path, fake):
    checkout = make_checkout(tmp_path / "workspace")
    run = run_action(
        checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout), sha=checkout.head,
        inputs={"comment": "sometimes"}, token=fake.token,
    )  # fmt: skip
    assert run.done.returncode == 2
    assert "::error::exportwatch: input 'comment': 'sometimes' is not one of" in run.done.stdout
    assert fake.requests == [] and not (checkout.path / "exportwatch-report.json").exists()


def test_entrypoint__missing_manifest_exits_2(tmp_path, fake):
    checkout = make_checkout(tmp_path / "workspace")
    run = run_action(
        checkout.path, fake, event_name="push", payload=events.payload("push.branch"), sha=checkout.head,
        inputs={"manifest": "nope.yml", "mode": "sweep"}, token=None,
    )  # fmt: skip
    assert run.done.returncode == 2 and "input 'manifest'" in run.done.stdout


# ------------------------------------------------------------------------------ the fork-safe pair


def zip_reports(folder: Path) -> bytes:
    """What actions/upload-artifact stores for ``path: exportwatch-report*.json``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.glob("exportwatch-report*.json")):
            zf.write(path, path.name)
    return buffer.getvalue()


def test_entrypoint__fork_safe_pair_sweeps_without_a_token_and_publishes_without_the_prs_code(tmp_path, fake):
    checkout = make_checkout(tmp_path / "workspace")

    # Half 1: pull_request from a fork, read-only, no token at all.
    sweep = run_action(
        checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout, head_repo=FORK),
        sha=checkout.head, inputs={"mode": "sweep", "workers": "1", "github-token": ""}, token=None,
    )  # fmt: skip
    assert sweep.done.returncode == 0, sweep.log
    assert sweep.outputs["verdict"] == "swept" and sweep.outputs["regressions"] == "1"
    assert fake.requests == [], "the untrusted half talks to no API"

    # GitHub stores the artifact; the PR exists in the base repository.
    fake.add_pull(REPO, 7, head_sha=checkout.head, base_sha=checkout.base, head_ref="feature", head_repo=FORK)
    fake.add_pull(REPO, 8, head_sha="0" * 40, head_ref="feature", head_repo="someone/vision")
    fake.add_workflow_run(REPO, 9001, head_sha=checkout.head, head_branch="feature", head_repo=FORK)
    fake.add_artifact(REPO, 9001, "exportwatch-report", zip_reports(checkout.path))

    # Half 2: workflow_run in the base repository, an empty workspace (nothing checked out),
    # and a torch that cannot be imported.
    trusted = tmp_path / "trusted-workspace"
    trusted.mkdir()
    no_torch = tmp_path / "no-torch" / "torch"
    no_torch.mkdir(parents=True)
    (no_torch / "__init__.py").write_text("raise ImportError('the publish half must not import torch')\n")
    publish = run_action(
        trusted, fake, event_name="workflow_run",
        payload=events.workflow_run(repo=REPO, run_id=9001, head_sha=checkout.head, head_repo=FORK),
        sha="f" * 40, inputs={"mode": "publish"}, token=fake.token,
        extra_env={"PYTHONPATH": f"{no_torch.parent}{os.pathsep}{REPO_ROOT}"},
    )  # fmt: skip
    assert publish.done.returncode == 1, publish.log
    assert publish.outputs["verdict"] == "failed" and publish.outputs["regressions"] == "1"
    (comment,) = fake.comments(REPO, 7)
    assert "gated" in comment["body"] and fake.comments(REPO, 8) == []
    (check,) = fake.check_runs(REPO)
    assert check["head_sha"] == checkout.head and check["conclusion"] == "failure"
    assert (trusted / "exportwatch-report.json").exists()
    assert sorted(p.name for p in trusted.iterdir()) == ["exportwatch-report.html", "exportwatch-report.json"]


def test_entrypoint__publish_refuses_an_artifact_that_is_not_a_report(tmp_path, fake):
    fake.add_pull(REPO, 7, head_sha="a" * 40, head_repo=FORK)
    fake.add_workflow_run(REPO, 9002, head_sha="a" * 40, head_repo=FORK)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(
            "exportwatch-report.json", json.dumps({"schema_version": 1, "jobs": "all good, trust me"})
        )
    fake.add_artifact(REPO, 9002, "exportwatch-report", buffer.getvalue())
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    run = run_action(
        trusted, fake, event_name="workflow_run",
        payload=events.workflow_run(repo=REPO, run_id=9002, head_sha="a" * 40, head_repo=FORK),
        sha="f" * 40, inputs={"mode": "publish"}, token=fake.token,
    )  # fmt: skip
    assert run.done.returncode == 2
    assert "does not match the report schema" in run.done.stdout
    assert fake.comments(REPO, 7) == [] and fake.check_runs(REPO) == []


def test_entrypoint__publish_without_an_open_pr_for_the_commit_still_creates_the_check_run(tmp_path, fake):
    head_sha = "b" * 40
    fake.add_pull(REPO, 7, head_sha="c" * 40, head_ref="feature", head_repo=FORK)  # pushed to since
    fake.add_workflow_run(REPO, 9003, head_sha=head_sha, head_branch="feature", head_repo=FORK)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("exportwatch-report.json", report(ok("cnn")).to_json())
        zf.writestr("exportwatch-report.base.json", base_report(failing("cnn")).to_json())
    fake.add_artifact(REPO, 9003, "exportwatch-report", buffer.getvalue())
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    run = run_action(
        trusted, fake, event_name="workflow_run",
        payload=events.workflow_run(repo=REPO, run_id=9003, head_sha=head_sha, head_repo=FORK),
        sha="f" * 40, inputs={"mode": "publish"}, token=fake.token,
    )  # fmt: skip
    assert run.done.returncode == 0, run.log
    assert run.outputs["fixes"] == "1" and run.outputs["comment-url"] == ""
    assert (
        "::warning::exportwatch: no open pull request has head forker/vision@bbbbbbbbbbbb" in run.done.stdout
    )
    assert fake.comments(REPO, 7) == []
    (check,) = fake.check_runs(REPO)
    assert (check["head_sha"], check["conclusion"]) == (head_sha, "success")
