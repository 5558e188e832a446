"""The runner's fact about workflow chains: ``workflow_run`` follows the untrusted run's
*conclusion*. A regression must conclude that run ``success`` (with the reports uploaded), the
publish workflow's ``if:`` must accept it, and the trusted half must then comment and fail its
check run. A sweep half that gates itself would hide every regression from the pull request.

The example workflows are read from ``config/workflows`` and their steps played as a runner
would: ``run:`` scripts in bash with the step's environment, ``${{ … }}`` and ``if:`` evaluated
(``tests/runner_files.py``), artifacts uploaded and downloaded by name and pattern, the action
started through its entrypoint (``tests/end_to_end/test_entrypoint.py``), GitHub's API served by
the local fake server. Only installs and ``setup-python`` are not played (this Python has
exportwatch; an ``exportwatch`` command on PATH runs it).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import itertools
import os
import re
import subprocess
import sys
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.end_to_end.test_entrypoint import FORK, REPO, Checkout, make_checkout, pr_payload, run_action
from tests.fakegithub import FakeGitHub, events
from tests.runner_files import evaluate, job_runs

pytestmark = pytest.mark.slow

WORKFLOWS = REPO_ROOT / "config" / "workflows"
PUBLISH = WORKFLOWS / "exportwatch-fork-publish.yml"
#: Steps this test does not play: the runner's Python setup and installs (exportwatch is here).
INSTALL = re.compile(r"^\s*python -m pip install\b")
#: Inputs changed from the workflow's: the fixture repository is not a package; one worker.
OVERRIDES = {"install": "", "workers": "1"}
UPLOAD_RUN_ID = 9100
#: A matrix's legs played at once (each a sweep: a process and its workers).
MATRIX_AT_ONCE = 4


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def substitute(value: str, context: dict[str, Any]) -> str:
    """``${{ … }}`` inside a string (``with:``, ``env:``, names), as the runner expands it."""

    def one(match: re.Match[str]) -> str:
        result = evaluate(match.group(1), context)
        return "" if result is None else str(result)

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


@dataclass
class Runner:
    """One workflow run: its artifacts, and what each job and step concluded."""

    root: Path
    fake: FakeGitHub
    checkout: Checkout
    event: dict[str, Any]
    artifacts: dict[str, dict[str, bytes]] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    bin: Path = field(init=False)
    one_action_at_a_time: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.bin = self.root / "bin"
        self.bin.mkdir(parents=True)
        command = self.bin / "exportwatch"  # what `pip install exportwatch` puts on PATH
        command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m exportwatch "$@"\n')
        command.chmod(0o755)

    def run_workflow(self, workflow: dict[str, Any]) -> str:
        """Play every job (``needs`` in order, matrix expanded); the run's conclusion."""
        results: dict[str, str] = {}
        for name, job in workflow["jobs"].items():
            needs = job.get("needs", [])
            needed = [results[n] for n in ([needs] if isinstance(needs, str) else needs)]
            status = "failure" if "failure" in needed else "success"
            if not job_runs(job.get("if"), {"github": {"event": self.event}}, status=status):
                results[name] = "skipped"
                continue
            started = []
            for index, matrix in enumerate(expand(job.get("strategy", {}).get("matrix"))):
                context = {
                    "github": {"event": self.event, "sha": self.checkout.head},
                    "matrix": matrix, "strategy": {"job-index": index}, "runner": {"os": "Linux"},
                    "env": workflow.get("env", {}),
                }  # fmt: skip
                workspace = self.root / f"{name}-{index}"
                workspace.mkdir()
                started.append(
                    functools.partial(
                        self.run_job, job, context, workspace=workspace, env=workflow.get("env", {})
                    )
                )
            # A matrix's legs run at once, as on the runners (each in its own workspace).
            with ThreadPoolExecutor(max_workers=MATRIX_AT_ONCE) as pool:
                legs = list(pool.map(lambda play: play(), started))
            results[name] = "failure" if "failure" in legs else "success"
        return "failure" if "failure" in results.values() else "success"

    def run_job(self, job: dict[str, Any], context: dict[str, Any], *, workspace: Path, env: dict) -> str:
        status = "success"
        for step in job["steps"]:
            if not job_runs(step.get("if"), context, status=status):
                continue
            if not self.run_step(step, context, workspace=workspace, env={**env, **job.get("env", {})}):
                status = "failure"
        return status

    def run_step(self, step: dict[str, Any], context: dict[str, Any], *, workspace: Path, env: dict) -> bool:
        uses = step.get("uses", "")
        given = {k: substitute(v, context) for k, v in step.get("with", {}).items()}
        if uses.startswith("actions/checkout@"):
            ref = given.get("ref") or self.checkout.head  # default: the PR (its head, here)
            git("clone", "-q", "--no-checkout", str(self.checkout.path), ".", cwd=workspace)
            git("checkout", "-q", ref, cwd=workspace)
            return True
        if uses.startswith("actions/setup-python@") or INSTALL.match(step.get("run", "")):
            return True
        if uses.startswith("actions/upload-artifact@"):
            files = sorted(p for p in workspace.glob(given["path"]) if p.is_file())
            if not files and given.get("if-no-files-found", "warn") == "error":
                self.logs.append(f"upload {given['name']}: no files match {given['path']}")
                return False
            self.artifacts[given["name"]] = {p.name: p.read_bytes() for p in files}
            return True
        if uses.startswith("actions/download-artifact@"):
            dest = workspace / given.get("path", ".")
            for name, files in self.artifacts.items():
                if fnmatch.fnmatchcase(name, given.get("pattern", given.get("name", ""))):
                    folder = dest / name if "pattern" in given else dest
                    folder.mkdir(parents=True, exist_ok=True)
                    for file_name, data in files.items():
                        (folder / file_name).write_bytes(data)
            return True
        if uses.startswith("exportwatch/exportwatch@"):
            with self.one_action_at_a_time:  # run_action numbers its runner folders
                run = run_action(
                    workspace, self.fake, event_name="pull_request", payload=self.event,
                    sha=self.checkout.head, inputs=given | OVERRIDES,
                    token=None if given.get("github-token") == "" else self.fake.token,
                )  # fmt: skip
            self.logs.append(run.log)
            return run.done.returncode == 0
        assert "run" in step, f"a step this test cannot play yet: {step}"
        step_env = {k: substitute(v, context) for k, v in {**env, **step.get("env", {})}.items()}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workspace, capture_output=True, text=True, timeout=600,
            env={
                "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/"),
                "PYTHONPATH": str(REPO_ROOT), "GITHUB_WORKSPACE": str(workspace),
                "GITHUB_STEP_SUMMARY": str(workspace / "step-summary.md"), **step_env,
            },
        )  # fmt: skip
        self.logs.append(f"$ {step['run']}\n{done.stdout}{done.stderr}(exit {done.returncode})")
        return done.returncode == 0


def expand(matrix: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """The matrix's combinations in the runner's order (the first key varies slowest)."""
    if not matrix:
        return [{}]
    keys = [k for k in matrix if k not in ("include", "exclude")]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(matrix[k] for k in keys))]


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def publish(runner: Runner, *, workflow_name: str, conclusion: str, tmp_path: Path) -> None:
    """The trusted half, as GitHub starts it after the untrusted run: its ``if:``, then the action."""
    workflow = load(PUBLISH)
    assert workflow_name in workflow[True]["workflow_run"]["workflows"]  # YAML 1.1 reads `on` as True
    payload = events.workflow_run(
        repo=REPO, run_id=UPLOAD_RUN_ID, head_sha=runner.checkout.head, head_repo=FORK, conclusion=conclusion
    )
    (job,) = workflow["jobs"].values()
    assert job_runs(job["if"], {"github": {"event": payload}}), (
        f"publish skips a run that concluded {conclusion}"
    )
    (step,) = job["steps"]
    fake = runner.fake
    fake.add_pull(REPO, 7, head_sha=runner.checkout.head, base_sha=runner.checkout.base, head_repo=FORK)
    fake.add_workflow_run(
        REPO, UPLOAD_RUN_ID, head_sha=runner.checkout.head, head_branch="feature", head_repo=FORK
    )
    fake.add_artifact(
        REPO, UPLOAD_RUN_ID, step["with"]["artifact"], zipped(runner.artifacts[step["with"]["artifact"]])
    )
    trusted = tmp_path / "trusted-workspace"
    trusted.mkdir()
    run = run_action(
        trusted, fake, event_name="workflow_run", payload=payload, sha="f" * 40, inputs=step["with"],
        token=fake.token,
    )  # fmt: skip
    assert run.done.returncode == 1, run.log  # the trusted half gates
    assert run.outputs["verdict"] == "failed" and run.outputs["regressions"] == "1"
    (comment,) = fake.comments(REPO, 7)
    assert "gated" in comment["body"] and "regression" in comment["body"].lower()
    (check,) = fake.check_runs(REPO)
    assert (check["head_sha"], check["conclusion"]) == (runner.checkout.head, "failure")


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        yield server
    assert server.violations == []


def test_runner_workflow_chain__sharded_sweep_concludes_success_on_a_regression_and_publish_fails_the_check(
    tmp_path, fake
):
    checkout = make_checkout(tmp_path / "repo")
    event = pr_payload(checkout, head_repo=FORK)
    runner = Runner(root=tmp_path / "runner", fake=fake, checkout=checkout, event=event)
    workflow = load(WORKFLOWS / "exportwatch-sharded.yml")

    conclusion = runner.run_workflow(workflow)

    assert conclusion == "success", "\n".join(runner.logs)
    assert fake.requests == [], "the untrusted half talks to no API"
    assert set(runner.artifacts["exportwatch-report"]) == {
        "exportwatch-report.json",
        "exportwatch-report.base.json",
    }
    summary = (tmp_path / "runner" / "merge-0" / "step-summary.md").read_text()
    assert "gated" in summary and "regression" in summary.lower()
    publish(runner, workflow_name=workflow["name"], conclusion=conclusion, tmp_path=tmp_path)


def test_runner_workflow_chain__fork_sweep_concludes_success_on_a_regression_and_publish_fails_the_check(
    tmp_path, fake
):
    checkout = make_checkout(tmp_path / "repo")
    event = pr_payload(checkout, head_repo=FORK)
    runner = Runner(root=tmp_path / "runner", fake=fake, checkout=checkout, event=event)
    workflow = load(WORKFLOWS / "exportwatch-fork-sweep.yml")

    conclusion = runner.run_workflow(workflow)

    assert conclusion == "success", "\n".join(runner.logs)
    assert fake.requests == [], "the untrusted half talks to no API"
    assert set(runner.artifacts["exportwatch-report"]) == {
        "exportwatch-report.json",
        "exportwatch-report.base.json",
    }
    publish(runner, workflow_name=workflow["name"], conclusion=conclusion, tmp_path=tmp_path)


def test_runner_workflow_chain__publish_skips_what_the_sweep_run_could_not_upload():
    """A run that concluded ``failure`` stopped before its upload step; a cancelled one too."""
    (job,) = load(PUBLISH)["jobs"].values()
    for conclusion, runs in [("success", True), ("failure", False), ("cancelled", False), ("skipped", False)]:
        payload = events.workflow_run(repo=REPO, run_id=1, head_sha="a" * 40, conclusion=conclusion)
        assert job_runs(job["if"], {"github": {"event": payload}}) is runs, conclusion
    push = events.workflow_run(repo=REPO, run_id=1, head_sha="a" * 40, event="push")
    assert not job_runs(job["if"], {"github": {"event": push}})
