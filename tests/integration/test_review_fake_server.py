"""Review suggestions end to end through the action's publish step: real PyGithub over HTTP
against the local fake GitHub, which refuses (422) a review comment on a line outside the diff
like GitHub does, and checks every request against GitHub's OpenAPI description."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.action import main as action
from exportwatch.action.main import ModeOutcome, conclude
from exportwatch.diff import diff_reports, gate
from exportwatch.github.client import ClientSettings
from exportwatch.github.config import ActionConfig
from exportwatch.github.publish import MAX_API_WRITES_PER_PUBLISH
from exportwatch.github.review import MAX_REVIEW_WRITES
from exportwatch.render.review import MAX_SUGGESTIONS, suggestion_marker
from exportwatch.report.model import FixProof
from tests.factories import base_report, ok, report
from tests.fakegithub import FakeGitHub, events
from tests.review_cases import ROUTER, check_fix, regressed, router_line, router_patch
from tests.unit.test_fuzz_report_inputs import artifact

pytestmark = pytest.mark.quick  # each publish ~0.4 s; the tests of two or more are slow

REPO = "octo/vision"
HEAD = "1" * 40
NEXT = "2" * 40
FAST = ClientSettings(
    retries=1, backoff_factor=0.01, backoff_max=0.05, secondary_rate_wait=0.1, retry_after_max=1,
    seconds_between_writes=0, timeout=10,
)  # fmt: skip


@pytest.fixture
def fake():
    with FakeGitHub() as server:
        server.add_pull(REPO, 7, head_sha=HEAD, files={ROUTER: router_patch(), "README.md": None})
        yield server
    assert server.violations == [], "requests GitHub's OpenAPI description does not allow"


def config_for(fake: FakeGitHub, tmp: Path, **inputs: str) -> ActionConfig:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "INPUT_GITHUB-TOKEN": fake.token,
        "INPUT_COMMENT": "always",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": fake.server_url,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_OUTPUT": str(tmp / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
        "GITHUB_WORKSPACE": str(tmp),
    }
    return ActionConfig.from_env(env | {f"INPUT_{k.upper()}": v for k, v in inputs.items()})


def publish(fake, tmp: Path, *fixes, sha: str = HEAD, **inputs: str) -> tuple[int, str]:
    base, head = regressed(*fixes)
    changes = diff_reports(base, head)
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=sha)
    out = io.StringIO()
    code = conclude(
        config_for(fake, tmp, **inputs), outcome, out=out, settings=replace(FAST, api_url=fake.api_url)
    )
    return code, out.getvalue()


def writes(fake: FakeGitHub) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]


def suggested(body: str) -> str | None:
    block = re.search(r"^(`{3,})suggestion\n(.*?)\n\1$", body, flags=re.DOTALL | re.MULTILINE)
    return block[2] if block else None


def test_review__first_push_posts_one_review_with_a_suggestion_per_fix_on_its_line(fake, tmp_path):
    code, log = publish(fake, tmp_path, check_fix(20), check_fix(22), check_fix(90))
    assert code == 1, log  # the gate: a regression
    (review,) = fake.reviews(REPO, 7)
    assert (
        review["state"] == "COMMENTED" and review["commit_id"] == HEAD and review["user"] == "exportwatch-bot"
    )
    comments = sorted(fake.review_comments(REPO, 7), key=lambda c: c["line"])
    assert [(c["path"], c["line"], c["review_id"]) for c in comments] == [
        (ROUTER, 20, review["id"]),
        (ROUTER, 22, review["id"]),
    ], "line 90 is not in the diff: no suggestion there (GitHub would refuse it)"
    for comment in comments:
        line = comment["line"]
        assert suggested(comment["body"]) == f"{router_line(line)}\n    torch._check(value{line} > 0)"
        assert comment["body"].startswith("<!-- exportwatch:suggestion key=")
    assert len(fake.comments(REPO, 7)) == 1 and len(fake.check_runs(REPO)) == 1, "comment and check as ever"
    # The sticky comment keeps every snippet, and says which ones the review suggests.
    sticky = fake.comments(REPO, 7)[0]["body"]
    pointers = [line for line in sticky.splitlines() if "one-click change in this PR's review" in line]
    assert len(pointers) == 2, sticky
    assert all(sticky.count(f"torch._check(value{n} > 0)") == 2 for n in (20, 22, 90)), "summary + snippet"
    assert not any("value90" in line for line in pointers)


@pytest.mark.slow  # two or three publishes
def test_review__second_push_with_the_same_fixes_writes_nothing_more(fake, tmp_path):
    publish(fake, tmp_path / "1", check_fix(20), check_fix(22))
    before = fake.review_comments(REPO, 7)
    fake.push(REPO, 7, head_sha=NEXT, files={ROUTER: router_patch()})
    publish(fake, tmp_path / "2", check_fix(20), check_fix(22), sha=NEXT)
    assert len(fake.reviews(REPO, 7)) == 1, "no second review"
    after = fake.review_comments(REPO, 7)
    assert [(c["id"], c["body"]) for c in after] == [(c["id"], c["body"]) for c in before]
    assert not fake.requests_to("pulls/update-review-comment")


@pytest.mark.slow  # two or three publishes
def test_review__a_fix_whose_text_changed_is_edited_in_place(fake, tmp_path):
    publish(fake, tmp_path / "1", check_fix(20, proof=FixProof.PAST_BLOCKER, next_blocker="no fake kernel"))
    (before,) = fake.review_comments(REPO, 7)
    fake.push(REPO, 7, head_sha=NEXT, files={ROUTER: router_patch()})
    publish(fake, tmp_path / "2", check_fix(20), sha=NEXT)
    (after,) = fake.review_comments(REPO, 7)
    assert after["id"] == before["id"] and len(fake.reviews(REPO, 7)) == 1
    assert "no fake kernel" in before["body"] and "the module exports" in after["body"]


@pytest.mark.slow  # two or three publishes
def test_review__a_fix_that_disappeared_is_retired_not_deleted(fake, tmp_path):
    publish(fake, tmp_path / "1", check_fix(20), check_fix(22))
    fake.push(REPO, 7, head_sha=NEXT, files={ROUTER: router_patch()})
    publish(fake, tmp_path / "2", check_fix(22), sha=NEXT)
    comments = {c["line"]: c for c in fake.review_comments(REPO, 7)}
    assert set(comments) == {20, 22}, "nothing deleted"
    retired = comments[20]["body"]
    assert suggested(retired) is None and "no longer suggests" in retired and NEXT[:12] in retired
    assert suggested(comments[22]["body"]) is not None
    assert len(fake.reviews(REPO, 7)) == 1 and len(fake.requests_to("pulls/update-review-comment")) == 1
    fake.push(REPO, 7, head_sha="3" * 40, files={ROUTER: router_patch()})
    publish(fake, tmp_path / "3", check_fix(22), sha="3" * 40)
    assert len(fake.requests_to("pulls/update-review-comment")) == 1, "a retired one is not written again"


@pytest.mark.slow  # two or three publishes
def test_review__a_suggestion_whose_line_changed_is_outdated_and_a_new_one_is_posted(fake, tmp_path):
    publish(fake, tmp_path / "1", check_fix(20))
    changed = router_patch().replace(f"+{router_line(20)}", "+    value20 = x[20].amax().item()")
    fake.push(REPO, 7, head_sha=NEXT, files={ROUTER: changed})
    publish(fake, tmp_path / "2", check_fix(20, original="    value20 = x[20].amax().item()"), sha=NEXT)
    old, new = sorted(fake.review_comments(REPO, 7), key=lambda c: c["id"])
    assert old["line"] is None and suggested(old["body"]) is not None, "GitHub's outdated one is left alone"
    assert new["line"] == 20 and "amax" in suggested(new["body"])
    assert len(fake.reviews(REPO, 7)) == 2


def test_review__no_fix_in_the_diff_posts_no_review(fake, tmp_path):
    _, log = publish(fake, tmp_path, check_fix(90), check_fix(21, original="    something else"))
    assert fake.reviews(REPO, 7) == [] and not fake.requests_to("pulls/create-review"), log


def test_review__another_accounts_comment_with_our_marker_is_never_edited(fake, tmp_path):
    base, head = regressed(check_fix(20))
    from exportwatch.render.review import candidates

    key = candidates(diff_reports(base, head))[0].key
    theirs = fake.add_review_comment(
        REPO, 7, path=ROUTER, line=21, body=suggestion_marker(key) + "\nquoted by a human", user="mallory"
    )
    publish(fake, tmp_path, check_fix(20))
    by_id = {c["id"]: c for c in fake.review_comments(REPO, 7)}
    assert by_id[theirs]["body"].endswith("quoted by a human")
    assert len(by_id) == 2 and not fake.requests_to("pulls/update-review-comment")


def test_review__turned_off_it_reads_and_writes_nothing(fake, tmp_path):
    publish(fake, tmp_path, check_fix(20), **{"review-suggestions": "false"})
    used = {r.operation_id for r in fake.requests}
    assert not used & {"pulls/list-files", "pulls/list-review-comments", "pulls/create-review"}


def test_review__a_head_that_moved_on_gets_no_suggestions_from_an_older_run(fake, tmp_path):
    fake.push(REPO, 7, head_sha=NEXT, files={ROUTER: router_patch()})
    publish(fake, tmp_path, check_fix(20), sha=HEAD)
    assert fake.reviews(REPO, 7) == [] and not fake.requests_to("pulls/list-files")


@pytest.mark.slow  # two publishes
@pytest.mark.parametrize("late", [(22,), ()], ids=["another-fix", "no-fix"])
def test_review__an_older_run_finishing_late_neither_adds_nor_retires(fake, tmp_path, late):
    fake.push(REPO, 7, head_sha=NEXT, files={ROUTER: router_patch()})
    publish(fake, tmp_path / "1", check_fix(20), sha=NEXT)  # the newer push's run, done first
    publish(fake, tmp_path / "2", *(check_fix(n) for n in late), sha=HEAD)  # HEAD's run, late
    (comment,) = fake.review_comments(REPO, 7)
    assert comment["line"] == 20 and "no longer suggests" not in comment["body"]
    assert not fake.requests_to("pulls/update-review-comment") and len(fake.reviews(REPO, 7)) == 1


@pytest.mark.slow  # two or three publishes
def test_review__writes_stay_under_the_cap_however_many_fixes(fake, tmp_path):
    lines = range(1, 80)
    fake.push(REPO, 7, head_sha=HEAD, files={ROUTER: router_patch(lines)})
    publish(fake, tmp_path / "1", *(check_fix(n) for n in range(40, 79)))
    assert len(fake.review_comments(REPO, 7)) == MAX_SUGGESTIONS
    fake.requests.clear()
    publish(fake, tmp_path / "2", *(check_fix(n) for n in range(3, 40)))
    sent = writes(fake)
    assert len(sent) <= MAX_API_WRITES_PER_PUBLISH, sent
    review_writes = [w for w in sent if "/pulls/" in w]
    assert len(review_writes) == MAX_REVIEW_WRITES, review_writes
    retired = [c for c in fake.review_comments(REPO, 7) if "no longer suggests" in c["body"]]
    assert len(retired) == MAX_REVIEW_WRITES - 1, "retirements first; the rest wait for the next push"


def test_review__a_github_outage_on_the_review_leaves_comment_check_summary_and_verdict(fake, tmp_path):
    fake.fail_with_500("POST", r"/pulls/7/reviews$", times=100)
    code, log = publish(fake, tmp_path, check_fix(20))
    assert code == 1, "the gate decides"
    assert "::warning::exportwatch: cannot post the review of suggestions on PR #7" in log, log
    assert len(fake.comments(REPO, 7)) == 1 and len(fake.check_runs(REPO)) == 1
    assert (tmp_path / "summary.md").read_text()
    assert fake.reviews(REPO, 7) == []


def test_review__a_refused_token_is_one_warning(fake, tmp_path):
    fake.inject(
        "POST", r"/pulls/7/reviews$", 403, times=5, body={"message": "Resource not accessible by integration"}
    )
    code, log = publish(fake, tmp_path, check_fix(20), **{"fail-on-publish-error": "true"})
    assert code == 1, "the comment and check run landed: the gate decides"
    (warning,) = [line for line in log.splitlines() if "review" in line and line.startswith("::warning::")]
    assert "pull-requests: write" in warning


def test_review__a_lost_answer_is_read_back_not_posted_twice(fake, tmp_path):
    fake.lost_answer("POST", r"/pulls/7/reviews$")
    publish(fake, tmp_path, check_fix(20), check_fix(22))
    assert len(fake.reviews(REPO, 7)) == 1 and len(fake.review_comments(REPO, 7)) == 2
    assert len(fake.requests_to("pulls/create-review")) == 1


def test_review__the_fork_safe_publish_job_suggests_from_the_artifact_alone(fake, tmp_path):
    """``mode: publish`` in a ``workflow_run``: the PR comes from the API, the fixes from the
    untrusted artifact, and the suggestions land the same way (no code of the PR runs)."""
    base, head = regressed(check_fix(20))
    fake.add_workflow_run(REPO, 500, head_sha=HEAD)
    fake.add_artifact(
        REPO, 500, "exportwatch-report", artifact(head.to_json().encode(), base.to_json().encode(), "none")
    )
    event = events.write(tmp_path, events.workflow_run(repo=REPO, run_id=500, head_sha=HEAD))
    env = {
        "INPUT_MODE": "publish",
        "INPUT_GITHUB-TOKEN": fake.token,
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_SERVER_URL": fake.server_url,
        "GITHUB_RUN_ID": "501",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_WORKSPACE": str(tmp_path),
    }
    out = io.StringIO()
    code = action.main(env=env, out=out, settings=replace(FAST, api_url=fake.api_url))
    assert code == 1, out.getvalue()
    (comment,) = fake.review_comments(REPO, 7)
    assert comment["line"] == 20 and suggested(comment["body"]) is not None


def test_review__a_report_without_fixes_costs_one_read_and_no_write(fake, tmp_path):
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn")))
    outcome = ModeOutcome(changes=changes, result=gate(changes, "regression"), pr_number=7, sha=HEAD)
    conclude(
        config_for(fake, tmp_path), outcome, out=io.StringIO(), settings=replace(FAST, api_url=fake.api_url)
    )
    assert len(fake.requests_to("pulls/list-review-comments")) == 1
    assert not fake.requests_to("pulls/list-files") and not fake.requests_to("pulls/get")
    assert not [w for w in writes(fake) if "/pulls/" in w]
