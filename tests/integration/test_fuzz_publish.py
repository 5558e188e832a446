"""The fuzz harness, on real processes and the wire: fuzzed reports and artifacts end cleanly.

The in-process harness (``tests/unit/test_fuzz_report_inputs.py``) runs hundreds of examples;
here a few of them run the way users and the runner run them: ``exportwatch diff`` in a child
process with a 1 GiB address space, and the action's ``mode: publish`` downloading a fuzzed
artifact from the local fake GitHub server (in-process, then ``python -m exportwatch.action``).
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exportwatch.action import main as action
from exportwatch.github.client import ClientSettings
from exportwatch.render import FORMATS
from tests import hostile_inputs as h
from tests.conftest import REPO_ROOT
from tests.factories import base_report, failing, ok
from tests.fakegithub import FakeGitHub, events
from tests.unit.test_fuzz_report_inputs import ZIP_DAMAGE, artifact, mutated_json, valid_report

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]  # about 20 s: real processes and HTTP per example

REPO = "octo/vision"
HEAD_SHA = "a" * 40
ADDRESS_SPACE = 1 << 30
FAST = ClientSettings(
    retries=1, backoff_factor=0.01, backoff_max=0.05, secondary_rate_wait=0.1, retry_after_max=1,
    seconds_between_writes=0, timeout=10,
)  # fmt: skip
SLOW_OK = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture(scope="module")
def good_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "base.json"
    path.write_text(base_report(ok("cnn"), failing("vit", "onnx")).to_json(), encoding="utf-8")
    return path


@settings(SLOW_OK, max_examples=8)
@given(fuzzed=mutated_json(valid_report()), fmt=st.sampled_from(FORMATS))
def test_fuzz__diff_in_a_real_process_under_1_gib(tmp_path, good_base, fuzzed, fmt):
    path = tmp_path / "head.json"
    path.write_bytes(fuzzed)
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "diff", str(good_base), str(path), "--format", fmt],
        cwd=REPO_ROOT, preexec_fn=capped, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode in (0, 1, 2), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr[-2000:]
    if done.returncode == 2:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], lines[:3]


@pytest.fixture(scope="module")
def fake():
    with FakeGitHub() as server:
        server.add_pull(REPO, 7, head_sha=HEAD_SHA)
        yield server
    assert server.violations == []


def publish_env(fake: FakeGitHub, tmp: Path, run_id: int) -> dict[str, str]:
    """The runner's environment for ``mode: publish`` in a ``workflow_run`` workflow."""
    event = events.write(tmp, events.workflow_run(repo=REPO, run_id=run_id, head_sha=HEAD_SHA))
    return {
        "INPUT_MODE": "publish",
        "INPUT_GITHUB-TOKEN": fake.token,
        "INPUT_COMMENT": "always",
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": fake.server_url,
        "GITHUB_RUN_ID": str(run_id + 1),
        "GITHUB_OUTPUT": str(tmp / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
        "GITHUB_WORKSPACE": str(tmp),
    }


RUN_IDS = iter(range(10_000, 1_000_000))


def assert_publish_ended_cleanly(code: int, log: str) -> None:
    assert code in (0, 1, 2), log[-2000:]
    assert "Traceback" not in log and "internal error" not in log, log[-2000:]
    if code == 2:
        errors = [line for line in log.splitlines() if line.startswith("::error::")]
        assert len(errors) == 1, log[-2000:]


@settings(SLOW_OK, max_examples=20)
@given(
    head=st.one_of(st.just(json.dumps(valid_report()).encode()), mutated_json(valid_report())),
    damage=st.one_of(st.just("none"), ZIP_DAMAGE),
)
def test_fuzz__publish_mode_downloads_a_fuzzed_artifact_and_ends_cleanly(tmp_path, fake, head, damage):
    run_id = next(RUN_IDS)
    fake.add_workflow_run(REPO, run_id, head_sha=HEAD_SHA)
    fake.add_artifact(
        REPO, run_id, "exportwatch-report", artifact(head, json.dumps(valid_report()).encode(), damage)
    )
    work = tmp_path / str(run_id)
    work.mkdir()
    out = io.StringIO()
    code = action.main(
        env=publish_env(fake, work, run_id), out=out, settings=replace(FAST, api_url=fake.api_url)
    )
    event(
        f"exit {code}: {[line[:70] for line in out.getvalue().splitlines() if line.startswith('::error::')]}"
    )
    assert_publish_ended_cleanly(code, out.getvalue())


@pytest.mark.parametrize(
    "archive",
    [
        pytest.param(lambda: h.encrypted(h.zip_bytes({h.REPORT_NAME: b"{}"})), id="encrypted"),
        pytest.param(lambda: h.zip_bytes({h.REPORT_NAME: h.deep_json(100_000).encode()}), id="deep nesting"),
        pytest.param(
            lambda: h.zip_bytes(
                {h.REPORT_NAME: json.dumps(valid_report()).replace('"0.1.0"', '"\\ud800"').encode()}
            ),
            id="lone surrogate",
        ),
    ],
)
def test_publish__the_action_entry_point_refuses_a_hostile_artifact_in_one_line(tmp_path, fake, archive):
    run_id = next(RUN_IDS)
    fake.add_workflow_run(REPO, run_id, head_sha=HEAD_SHA)
    fake.add_artifact(REPO, run_id, "exportwatch-report", archive())
    comments = len(fake.comments(REPO, 7))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    env |= publish_env(fake, tmp_path, run_id)
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch.action"],
        cwd=tmp_path, env=env, preexec_fn=capped, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert_publish_ended_cleanly(done.returncode, done.stdout + done.stderr)
    assert len(fake.comments(REPO, 7)) == comments, "a refused artifact is never published"
