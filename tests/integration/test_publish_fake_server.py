"""Real PyGithub against the local GitHub-compatible server: comments, checks, artifacts, faults.

Every request the bot sends is checked against GitHub's OpenAPI description by the server;
the ``fake`` fixture fails a test that sent anything GitHub would not accept.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.action.main import ModeOutcome, conclude
from exportwatch.diff import diff_reports, gate
from exportwatch.github.artifacts import download_artifact, find_run_artifact, safe_extract
from exportwatch.github.client import (
    ACTIONS_BOT,
    CannotCreateCheck,
    CannotPostComment,
    ClientSettings,
    NoArtifact,
    NoPullRequest,
    build_github,
    my_login,
)
from exportwatch.github.config import ActionConfig, CommentMode, Secret
from exportwatch.github.publish import (
    Annotation,
    CommentAction,
    create_check_run,
    find_pull_request,
    upsert_comment,
)
from tests.factories import base_report, failing, ok, report
from tests.fakegithub import APP_TOKEN, FakeGitHub

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)

REPO = "octo/vision"
HEAD = "1" * 40
MARKER = "<!-- exportwatch:comment -->"
FAST = ClientSettings(
    retries=3,
    backoff_factor=0.01,
    backoff_max=0.05,
    seconds_between_writes=0,
    timeout=10,
)


class Sleeps(list):
    """Records the waits the client asks for instead of sleeping (``ClientSettings.sleep``)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake():
    with FakeGitHub(prefix="/api/v3") as server:  # the GitHub Enterprise Server URL layout
        server.add_pull(REPO, 7, head_sha=HEAD)
        yield server
    assert server.violations == [], "requests GitHub's OpenAPI description does not allow"


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def settings(fake, sleeps):
    return replace(FAST, api_url=fake.api_url, sleep=sleeps, clock=lambda: 1_700_000_000.0)


@pytest.fixture
def repo(fake, settings):
    return build_github(Secret(fake.token), settings).get_repo(REPO)


def upsert(repo, body: str, **kwargs):
    options = {
        "marker": MARKER,
        "mode": CommentMode.ALWAYS,
        "changed": True,
        "author_login": "exportwatch-bot",
    }
    return upsert_comment(repo, 7, f"{MARKER}\n{body}", **(options | kwargs))


# ------------------------------------------------------------------------------ comments


def test_comment__created_then_updated_in_place_not_duplicated(fake, repo):
    first = upsert(repo, "first run")
    second = upsert(repo, "second run")
    assert (first.action, second.action) == (CommentAction.CREATE, CommentAction.UPDATE)
    assert first.comment_id == second.comment_id
    (comment,) = fake.comments(REPO, 7)
    assert comment["body"] == f"{MARKER}\nsecond run" and comment["user"] == "exportwatch-bot"
    assert second.url.endswith(f"/{REPO}/pull/7#issuecomment-{comment['id']}")


def test_comment__identical_body_is_not_rewritten(fake, repo):
    upsert(repo, "same")
    again = upsert(repo, "same")
    assert again.action is CommentAction.UNCHANGED
    assert len(fake.requests_to("issues/update-comment")) == 0


def test_comment__found_on_the_second_page_of_comments(fake, repo):
    for i in range(150):
        fake.add_comment(REPO, 7, f"review comment {i}", user="reviewer")
    ours = fake.add_comment(REPO, 7, f"{MARKER}\nold", user="exportwatch-bot")
    outcome = upsert(repo, "new")
    assert outcome.action is CommentAction.UPDATE and outcome.comment_id == ours
    pages = [r.query.get("page", ["1"])[0] for r in fake.requests_to("issues/list-comments")]
    assert pages == ["1", "2"]
    assert len(fake.comments(REPO, 7)) == 151


def test_comment__with_our_marker_but_another_author_is_left_alone(fake, repo):
    theirs = fake.add_comment(REPO, 7, f"{MARKER}\nquoted by a human", user="mallory")
    outcome = upsert(repo, "ours")
    assert outcome.action is CommentAction.CREATE and outcome.comment_id != theirs
    bodies = {c["user"]: c["body"] for c in fake.comments(REPO, 7)}
    assert bodies == {"mallory": f"{MARKER}\nquoted by a human", "exportwatch-bot": f"{MARKER}\nours"}


def test_comment__on_change_posts_nothing_when_nothing_changed(fake, repo):
    outcome = upsert(repo, "no change", mode=CommentMode.ON_CHANGE, changed=False)
    assert outcome.action is CommentAction.SKIP
    assert fake.comments(REPO, 7) == []


def test_comment__on_change_still_updates_an_existing_comment(fake, repo):
    upsert(repo, "regression!", mode=CommentMode.ON_CHANGE, changed=True)
    outcome = upsert(repo, "fixed, nothing changed vs base", mode=CommentMode.ON_CHANGE, changed=False)
    assert outcome.action is CommentAction.UPDATE
    (comment,) = fake.comments(REPO, 7)
    assert "fixed" in comment["body"]


def test_comment__off_sends_no_request_at_all(fake, repo):
    outcome = upsert(repo, "x", mode=CommentMode.OFF)
    assert outcome.action is CommentAction.SKIP
    assert fake.requests == []


def test_comment__too_long_for_github_is_replaced_by_a_shortened_one_that_says_so(fake, repo):
    body = "\n".join(f"| model_{i} | ❌ fail |" for i in range(6_000))
    outcome = upsert(repo, body, full_report_url="https://example.test/run/1")
    assert outcome.shortened and outcome.action is CommentAction.CREATE
    (comment,) = fake.comments(REPO, 7)
    assert len(comment["body"]) <= 65_536 and comment["body"].startswith(MARKER)
    assert "too long for a comment" in comment["body"] and "https://example.test/run/1" in comment["body"]
    statuses = [r.json()["body"][:10] for r in fake.requests_to("issues/create-comment")]
    assert len(statuses) == 2  # refused with 422, then the short one


def test_comment__shortened_body_keeps_a_marker_the_renderer_put_last(fake, repo):
    body = "\n".join(f"| model_{i} | ❌ fail |" for i in range(6_000)) + f"\n{MARKER}\n"
    options = {"mode": CommentMode.ALWAYS, "changed": True, "author_login": "exportwatch-bot"}
    first = upsert_comment(repo, 7, body, marker=MARKER, **options)
    second = upsert_comment(repo, 7, body, marker=MARKER, **options)
    assert first.shortened and second.shortened and second.comment_id == first.comment_id
    (comment,) = fake.comments(REPO, 7)
    assert MARKER in comment["body"] and len(comment["body"]) <= 65_536


def test_comment__actions_token_cannot_read_user_and_updates_its_bot_comment(fake, settings):
    gh = build_github(Secret(fake.actions_token), settings)
    login = my_login(gh)
    assert login is None  # the Actions token (and an App token) cannot read /user
    repo = gh.get_repo(REPO)
    upsert(repo, "one", author_login=login, settings=settings)
    upsert(repo, "two", author_login=login, settings=settings)
    (comment,) = fake.comments(REPO, 7)
    assert comment["user"] == ACTIONS_BOT and comment["body"].endswith("two")


def test_comment__actions_token_leaves_another_apps_marked_comment_alone(fake, settings):
    theirs = fake.add_comment(REPO, 7, f"{MARKER}\nother app", user="other-app[bot]")
    gh = build_github(Secret(fake.actions_token), settings)
    outcome = upsert(gh.get_repo(REPO), "ours", author_login=my_login(gh), settings=settings)
    assert outcome.action is CommentAction.CREATE and outcome.comment_id != theirs
    bodies = {c["user"]: c["body"] for c in fake.comments(REPO, 7)}
    assert bodies == {"other-app[bot]": f"{MARKER}\nother app", ACTIONS_BOT: f"{MARKER}\nours"}
    assert not fake.requests_to("issues/update-comment"), "no edit of someone else's comment"


def test_comment__app_token_that_cannot_name_itself_posts_its_own_instead_of_failing(fake, settings):
    """An App's token writes as <slug>[bot]; an earlier GITHUB_TOKEN comment is not its to edit."""
    older = fake.add_comment(REPO, 7, f"{MARKER}\nfrom GITHUB_TOKEN", user=ACTIONS_BOT)
    gh = build_github(Secret(APP_TOKEN), settings)
    assert my_login(gh) is None
    outcome = upsert(gh.get_repo(REPO), "from the app", author_login=None, settings=settings)
    assert outcome.action is CommentAction.CREATE and outcome.comment_id != older
    users = sorted(c["user"] for c in fake.comments(REPO, 7))
    assert users == ["exportwatch-app[bot]", ACTIONS_BOT]
    assert fake.comments(REPO, 7)[0]["body"] == f"{MARKER}\nfrom GITHUB_TOKEN", "left as it was"


def test_comment__refused_permission_is_a_domain_error_with_a_hint(fake, repo):
    fake.inject(
        "POST", r"/issues/7/comments$", 403, body={"message": "Resource not accessible by integration"}
    )
    with pytest.raises(CannotPostComment, match="pull-requests: write"):
        upsert(repo, "x")


# ------------------------------------------------------------------------------ check runs


def test_check_run__120_annotations_go_in_three_batches_appended_to_one_check(fake, repo):
    annotations = [
        Annotation(path=f"models/m{i}.py", start_line=i + 1, message=f"fails {i}") for i in range(120)
    ]
    outcome = create_check_run(
        repo, HEAD, name="exportwatch", conclusion="failure", title="2 regressions", summary="## details",
        annotations=annotations, details_url="https://example.test/run/1",
    )  # fmt: skip
    assert (outcome.annotations, outcome.requests) == (120, 3)
    (check,) = fake.check_runs(REPO)
    assert (check["status"], check["conclusion"], check["head_sha"]) == ("completed", "failure", HEAD)
    assert [a["start_line"] for a in check["annotations"]] == list(range(1, 121))
    batch_sizes = [len(r.json()["output"].get("annotations", [])) for r in fake.requests if r.method != "GET"]
    assert batch_sizes == [50, 50, 20]
    assert [r.operation_id for r in fake.requests] == ["checks/create", "checks/update", "checks/update"]


def test_check_run__without_checks_permission_is_a_domain_error_with_a_hint(fake, repo):
    fake.inject("POST", "/check-runs$", 403, body={"message": "Resource not accessible by integration"})
    with pytest.raises(CannotCreateCheck, match="checks: write"):
        create_check_run(repo, HEAD, name="x", conclusion="success", title="t", summary="s")
    assert len(fake.requests_to("checks/create")) == 1, "a permission 403 is not retried"


# ------------------------------------------------------------------------------ faults and retries


def test_faults__server_errors_are_retried_for_reads_and_a_failed_write_is_read_back_first(
    fake, repo, settings
):
    fake.fail_with_500("GET", r"/issues/7/comments$", times=2)
    fake.fail_with_500("POST", r"/issues/7/comments$", times=1)
    assert upsert(repo, "x", settings=settings).action is CommentAction.CREATE
    # reads retried; the POST's 500 may have been applied: list again, then post again
    assert [r.method for r in fake.requests] == ["GET", "GET", "GET", "POST", "GET", "POST"]
    assert len(fake.comments(REPO, 7)) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "lost",
    [{"status": 502}, {"status": 504, "delay": 1.6}, {"status": 502, "drop": True}],
    ids=["502", "timeout", "dropped-connection"],
)
def test_faults__a_comment_posted_whose_answer_was_lost_is_found_not_posted_twice(fake, settings, lost):
    repo = build_github(Secret(fake.token), replace(settings, timeout=1)).get_repo(REPO)
    fake.lost_answer("POST", r"/issues/7/comments$", **lost)
    outcome = upsert(repo, "exactly once", settings=settings)
    (comment,) = fake.comments(REPO, 7)
    assert outcome.comment_id == comment["id"] and comment["body"].endswith("exactly once")
    assert len(fake.requests_to("issues/create-comment")) == 1


def test_faults__an_update_whose_answer_was_lost_is_read_back_not_resent(fake, repo, settings):
    upsert(repo, "first", settings=settings)
    fake.lost_answer("PATCH", r"/issues/comments/\d+$")
    outcome = upsert(repo, "second", settings=settings)
    assert outcome.action is CommentAction.UPDATE
    (comment,) = fake.comments(REPO, 7)
    assert comment["body"].endswith("second") and len(fake.requests_to("issues/update-comment")) == 1


@pytest.mark.parametrize("lost", [{"status": 502}, {"status": 502, "drop": True}], ids=["502", "dropped"])
def test_faults__a_check_run_created_whose_answer_was_lost_exists_once(fake, repo, settings, lost):
    fake.lost_answer("POST", "/check-runs$", **lost)
    annotations = [Annotation(path="models/a.py", start_line=i + 1, message="x") for i in range(70)]
    outcome = create_check_run(
        repo, HEAD, name="exportwatch", conclusion="failure", title="t", summary="s",
        annotations=annotations, settings=settings,
    )  # fmt: skip
    (check,) = fake.check_runs(REPO)
    assert outcome.check_run_id == check["id"] and len(check["annotations"]) == 70
    assert len(fake.requests_to("checks/create")) == 1
    (lookup,) = fake.requests_to("checks/list-for-ref")
    assert lookup.query["check_name"] == ["exportwatch"]


def test_faults__an_annotation_batch_whose_answer_was_lost_is_not_appended_twice(fake, repo, settings):
    fake.lost_answer("PATCH", r"/check-runs/\d+$")
    annotations = [Annotation(path="models/a.py", start_line=i + 1, message="x") for i in range(120)]
    create_check_run(
        repo, HEAD, name="exportwatch", conclusion="failure", title="t", summary="s",
        annotations=annotations, settings=settings,
    )  # fmt: skip
    (check,) = fake.check_runs(REPO)
    assert [a["start_line"] for a in check["annotations"]] == list(range(1, 121))
    assert len(fake.requests_to("checks/update")) == 2 and fake.requests_to("checks/get")


def test_faults__a_secondary_rate_limit_waits_for_retry_after(fake, repo, settings, sleeps):
    fake.secondary_rate_limit("POST", r"/issues/7/comments$", retry_after=7)
    upsert(repo, "x", settings=settings)
    assert len(fake.requests_to("issues/create-comment")) == 2
    assert sleeps == [7.0], "Retry-After: 7 was not honoured"


def test_faults__a_secondary_rate_limit_without_retry_after_waits_a_minute_then_doubles(
    fake, repo, settings, sleeps
):
    fault = fake.secondary_rate_limit("POST", r"/issues/7/comments$", times=2)
    fault.headers.clear()  # GitHub sometimes sends only the message
    assert upsert(repo, "x", settings=settings).action is CommentAction.CREATE
    assert len(fake.requests_to("issues/create-comment")) == 3
    assert sleeps == [60.0, 120.0]


def test_faults__429_waits_for_retry_after(fake, repo, settings, sleeps):
    fake.too_many_requests("GET", r"/issues/7/comments$", retry_after=3)
    upsert(repo, "x", settings=settings)
    assert len(fake.requests_to("issues/list-comments")) == 2 and sleeps == [3.0]


def test_faults__429_without_retry_after_waits_at_least_a_minute(fake, repo, settings, sleeps):
    fake.too_many_requests("POST", r"/issues/7/comments$", retry_after=None)
    upsert(repo, "x", settings=settings)
    assert len(fake.requests_to("issues/create-comment")) == 2 and sleeps == [60.0]


@pytest.mark.parametrize("status", [403, 429])
def test_faults__a_spent_primary_limit_waits_until_its_reset(fake, repo, settings, sleeps, status):
    now = settings.clock()
    fake.primary_rate_limit("GET", r"/issues/7/comments$", reset=int(now) + 42, status=status)
    upsert(repo, "x", settings=settings)
    assert sleeps == [43.0]  # until x-ratelimit-reset, plus the second it may fall in


@pytest.mark.parametrize(
    "arm",
    [
        lambda fake: fake.too_many_requests("POST", r"/issues/7/comments$", retry_after=900),
        lambda fake: fake.secondary_rate_limit("POST", r"/issues/7/comments$", retry_after=301),
        lambda fake: fake.primary_rate_limit("POST", r"/issues/7/comments$", reset=1_700_000_000 + 3_600),
    ],
    ids=["429-retry-after", "403-retry-after", "403-reset"],
)
def test_faults__a_wait_over_the_cap_fails_cleanly_and_is_never_cut_short(fake, repo, settings, sleeps, arm):
    arm(fake)
    with pytest.raises(CannotPostComment, match=r"over the 300 s cap; not retried") as caught:
        upsert(repo, "x", settings=replace(settings, retry_after_max=300))
    assert "\n" not in str(caught.value)
    assert sleeps == [] and len(fake.requests_to("issues/create-comment")) == 1
    assert fake.comments(REPO, 7) == []


def test_faults__a_persistent_outage_ends_in_a_domain_error_not_a_hang(fake, repo, settings, sleeps):
    fake.fail_with_500("GET", ".*", times=100)
    started = time.monotonic()
    with pytest.raises(CannotPostComment, match="500"):
        upsert(repo, "x", settings=settings)
    assert time.monotonic() - started < 10
    assert len(fake.requests) == FAST.retries + 1
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff (capped at backoff_max=0.05)


# ------------------------------------------------------------------------------ the PR of a workflow run


def test_pull_request__found_for_a_fork_from_head_repository_branch_and_sha(fake, repo):
    fake.add_pull(REPO, 9, head_sha="f" * 40, head_ref="main", head_repo="forker/vision")
    fake.add_pull(REPO, 10, head_sha="e" * 40, head_ref="main", head_repo="other/vision")
    found = find_pull_request(repo, head_repo="forker/vision", head_branch="main", head_sha="f" * 40)
    assert found.number == 9 and found.head_repo == "forker/vision"
    (listing,) = fake.requests_to("pulls/list")
    assert listing.query["head"] == ["forker:main"] and listing.query["state"] == ["open"]


def test_pull_request__falls_back_to_the_commits_pulls(fake, repo):
    found = find_pull_request(repo, head_repo=REPO, head_branch=None, head_sha=HEAD)
    assert found.number == 7
    assert fake.requests_to("repos/list-pull-requests-associated-with-commit")


def test_pull_request__whose_head_moved_on_is_not_chosen(fake, repo):
    with pytest.raises(NoPullRequest, match="pushed to since"):
        find_pull_request(repo, head_repo=REPO, head_branch="feature", head_sha="9" * 40)


# ------------------------------------------------------------------------------ artifacts


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_artifact__listed_downloaded_through_the_redirect_and_extracted(fake, repo, tmp_path):
    fake.add_workflow_run(REPO, 55, head_sha=HEAD, head_repo="forker/vision", head_branch="main")
    fake.add_artifact(REPO, 55, "exportwatch-report", zipped({"old.json": b"{}"}), expired=True)
    fake.add_artifact(REPO, 55, "exportwatch-report", zipped({"exportwatch-report.json": b'{"a": 1}'}))
    info = find_run_artifact(repo, 55, "exportwatch-report")
    assert (info.head_sha, info.head_repository, info.head_branch) == (HEAD, "forker/vision", "main")
    archive = download_artifact(info.artifact, tmp_path / "a.zip", token=Secret(fake.token), settings=FAST)
    (extracted,) = safe_extract(archive, tmp_path / "files")
    assert extracted.name == "exportwatch-report.json" and extracted.read_bytes() == b'{"a": 1}'
    api, blob = fake.requests[-2:]
    assert api.operation_id == "actions/download-artifact" and "Authorization" in api.headers
    assert blob.path.startswith("/_blobs/") and "Authorization" not in blob.headers


def test_artifact__served_directly_without_a_redirect_also_downloads(fake, repo, tmp_path):
    fake.artifact_redirect = False
    fake.add_workflow_run(REPO, 56, head_sha=HEAD)
    fake.add_artifact(REPO, 56, "exportwatch-report", zipped({"r.json": b"{}"}))
    info = find_run_artifact(repo, 56, "exportwatch-report")
    archive = download_artifact(info.artifact, tmp_path / "a.zip", token=Secret(fake.token), settings=FAST)
    assert zipfile.ZipFile(archive).namelist() == ["r.json"]


def test_artifact__missing_name_says_which_artifacts_exist(fake, repo):
    fake.add_workflow_run(REPO, 57, head_sha=HEAD)
    fake.add_artifact(REPO, 57, "coverage", zipped({}))
    with pytest.raises(NoArtifact, match="no artifact named 'exportwatch-report' \\(it has: coverage\\)"):
        find_run_artifact(repo, 57, "exportwatch-report")


def test_artifact__larger_than_the_cap_is_refused_before_downloading(fake, repo, tmp_path):
    fake.add_workflow_run(REPO, 58, head_sha=HEAD)
    fake.add_artifact(REPO, 58, "exportwatch-report", zipped({"r.json": b"{}"}), size=10**9)
    info = find_run_artifact(repo, 58, "exportwatch-report")
    with pytest.raises(NoArtifact, match="over the"):
        download_artifact(info.artifact, tmp_path / "a.zip", token=Secret(fake.token), settings=FAST)
    assert not fake.requests_to("actions/download-artifact")


def test_artifact__whose_real_size_exceeds_the_cap_is_cut_off_and_removed(fake, repo, tmp_path):
    fake.add_workflow_run(REPO, 59, head_sha=HEAD)
    fake.add_artifact(REPO, 59, "exportwatch-report", zipped({"r.json": b"x" * 50_000}), size=10)
    info = find_run_artifact(repo, 59, "exportwatch-report")
    with pytest.raises(NoArtifact, match="over the 1000-byte limit"):
        download_artifact(
            info.artifact, tmp_path / "a.zip", token=Secret(fake.token), settings=FAST, max_bytes=1_000
        )
    assert not (tmp_path / "a.zip").exists()


# ------------------------------------------------------------------------------ the action's publish step


def action_config(fake: FakeGitHub, tmp_path: Path, *, token: str | None = None) -> ActionConfig:
    return ActionConfig.from_env(
        {
            "INPUT_GITHUB-TOKEN": token or fake.token,
            "INPUT_COMMENT": "always",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": fake.api_url,
            "GITHUB_SERVER_URL": fake.server_url,
            "GITHUB_RUN_ID": "4242",
            "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_WORKSPACE": str(tmp_path),
        }
    )


def regression_changes():
    changes = diff_reports(base_report(ok("cnn")), report(failing("cnn")))
    return changes, gate(changes, "regression")


def test_action__outputs_and_summary_are_written_even_when_the_api_is_down(fake, tmp_path):
    for method in ("GET", "POST", "PATCH"):
        fake.fail_with_500(method, ".*", times=1_000)
    config = action_config(fake, tmp_path)
    changes, result = regression_changes()
    out = io.StringIO()
    outcome = ModeOutcome(changes=changes, result=result, pr_number=7, sha=HEAD)
    code = conclude(config, outcome, out=out, settings=replace(FAST, api_url=fake.api_url))
    assert code == 1, "the gate decides the exit code, not the API"
    outputs = (tmp_path / "output").read_text()
    assert "verdict<<" in outputs and "\nfailed\n" in outputs and "comment-url<<" in outputs
    assert "regression" in (tmp_path / "summary.md").read_text().lower()
    log = out.getvalue()
    assert "::warning::exportwatch: cannot comment on PR #7" in log
    assert "::error file=models/cnn.py,line=42" in log, "annotations fall back to the log"


def test_action__a_github_client_that_cannot_be_built_never_changes_the_exit_code(fake, tmp_path):
    """An older PyGithub refusing a keyword, a URL it rejects: a warning, not exit 3."""
    config = action_config(fake, tmp_path)
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn")))
    out = io.StringIO()
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=HEAD)
    code = conclude(config, outcome, out=out, settings=replace(FAST, api_url="ftp://example.test"))
    assert code == 0
    outputs = (tmp_path / "output").read_text()
    assert "comment-url<<" in outputs and "\npassed\n" in outputs
    assert (tmp_path / "summary.md").read_text()
    assert "::warning::exportwatch: cannot publish to GitHub: AssertionError" in out.getvalue()
    assert fake.requests == []


def test_action__a_comment_failure_never_turns_a_passing_gate_red(fake, tmp_path):
    fake.inject(
        "POST", r"/comments$", 403, times=10, body={"message": "Resource not accessible by integration"}
    )
    config = action_config(fake, tmp_path)
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn")))
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=HEAD)
    code = conclude(config, outcome, out=io.StringIO(), settings=replace(FAST, api_url=fake.api_url))
    assert code == 0
    assert len(fake.check_runs(REPO)) == 1


def test_action__token_never_reaches_logs_outputs_or_the_summary(fake, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # PyGithub and urllib3 log requests at DEBUG
    fake.secondary_rate_limit("POST", r"/issues/7/comments$", retry_after=0)
    fake.fail_with_500("POST", "/check-runs$", times=1)
    fake.add_workflow_run(REPO, 60, head_sha=HEAD)
    fake.add_artifact(REPO, 60, "exportwatch-report", zipped({"r.json": b"{}"}))
    config = action_config(fake, tmp_path)
    changes, result = regression_changes()
    out = io.StringIO()
    settings = replace(FAST, api_url=fake.api_url)
    conclude(
        config, ModeOutcome(changes=changes, result=result, pr_number=7, sha=HEAD), out=out, settings=settings
    )
    repo = build_github(config.github_token, settings).get_repo(REPO)
    info = find_run_artifact(repo, 60, "exportwatch-report")
    download_artifact(info.artifact, tmp_path / "a.zip", token=config.github_token, settings=settings)
    logging.getLogger("test").info("config: %s / %r", config, config)
    captured = capsys.readouterr()
    assert len(fake.comments(REPO, 7)) == 1 and len(fake.check_runs(REPO)) == 1
    assert "DEBUG" in {r.levelname for r in caplog.records}
    places = {
        "log records": caplog.text,
        "action log": out.getvalue(),
        "stdout/stderr": captured.out + captured.err,
        "outputs": (tmp_path / "output").read_text(),
        "summary": (tmp_path / "summary.md").read_text(),
        "comment": fake.comments(REPO, 7)[0]["body"],
        "check run": str(fake.check_runs(REPO)),
    }
    for where, text in places.items():
        assert fake.token not in text, f"the token leaked into the {where}"


def test_fake_server__flags_requests_that_github_would_reject(fake):
    import requests

    response = requests.post(
        f"{fake.api_url}/repos/{REPO}/check-runs",
        json={"name": "x", "head_sha": HEAD, "output": {"title": "t"}},
        headers={"Authorization": f"token {fake.token}"},
        timeout=5,
    )
    assert response.status_code == 422
    assert any("summary" in v for v in fake.violations)
    fake.violations.clear()
    response = requests.get(f"{fake.api_url}/repos/{REPO}/issues/7/reactions", timeout=5)
    assert response.status_code == 404 and fake.violations
    fake.violations.clear()
