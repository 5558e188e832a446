"""Publish mode when the sweep's reports cannot be fetched: the job summary still says what
happened and how to try again (no comment and no check run can say it)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.action import main as action
from exportwatch.github.client import ClientSettings
from tests.fakegithub import FakeGitHub, events

pytestmark = pytest.mark.quick

REPO = "octo/vision"
HEAD_SHA = "a" * 40
FAST = ClientSettings(
    retries=1, backoff_factor=0.01, backoff_max=0.05, secondary_rate_wait=0.1, retry_after_max=1,
    seconds_between_writes=0, timeout=10,
)  # fmt: skip


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        server.add_pull(REPO, 7, head_sha=HEAD_SHA)
        yield server


def publish(fake: FakeGitHub, tmp: Path, run_id: int) -> tuple[int, str]:
    event = events.write(tmp, events.workflow_run(repo=REPO, run_id=run_id, head_sha=HEAD_SHA))
    env = {
        "INPUT_MODE": "publish",
        "INPUT_GITHUB-TOKEN": fake.token,
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
    out = io.StringIO()
    code = action.main(env=env, out=out, settings=replace(FAST, api_url=fake.api_url))
    return code, out.getvalue()


def test_publish__github_down_at_the_artifact_still_writes_a_summary_saying_how_to_rerun(fake, tmp_path):
    fake.add_workflow_run(REPO, 300, head_sha=HEAD_SHA)
    fake.fail_with_500("GET", r"/actions/runs/300", times=1_000)
    code, log = publish(fake, tmp_path, 300)
    assert code == 2
    assert [line for line in log.splitlines() if line.startswith("::error::")], log
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## exportwatch: nothing published")
    assert f"{fake.server_url}/{REPO}/actions/runs/300" in summary  # the sweep's run
    assert "`gh run rerun 301 --failed`" in summary  # this (publish) run


def test_publish__a_missing_artifact_still_writes_a_summary_naming_it(fake, tmp_path):
    fake.add_workflow_run(REPO, 310, head_sha=HEAD_SHA)  # no artifact uploaded (or expired)
    code, _ = publish(fake, tmp_path, 310)
    assert code == 2
    summary = (tmp_path / "summary.md").read_text()
    assert "`exportwatch-report`" in summary and "re-run the sweep's workflow" in summary


def test_publish__a_job_summary_that_cannot_be_written_still_posts_the_comment_and_exits_2(fake, tmp_path):
    from tests.factories import base_report, failing, ok, report
    from tests.unit.test_fuzz_report_inputs import artifact

    head, base = report(failing("cnn")), base_report(ok("cnn"))  # a regression: always commented
    fake.add_workflow_run(REPO, 320, head_sha=HEAD_SHA)
    fake.add_artifact(
        REPO, 320, "exportwatch-report", artifact(head.to_json().encode(), base.to_json().encode(), "none")
    )
    (tmp_path / "summary.md").mkdir()  # the step summary cannot be appended to: a write error
    comments_before = len(fake.comments(REPO, 7))
    code, log = publish(fake, tmp_path, 320)
    assert code == 2, log  # the step's own files are not whole: never a pass
    assert len(fake.comments(REPO, 7)) == comments_before + 1, "the PR still gets its comment"
    errors = [line for line in log.splitlines() if line.startswith("::error::") and "summary.md" in line]
    assert len(errors) == 1 and "Traceback" not in log, log
