"""Event payloads (real examples from @octokit/webhooks-examples) → the small Event dataclass."""

from __future__ import annotations

import pytest

from exportwatch.github.event import Event, EventError, load_event, parse_event
from tests.fakegithub import events


def test_event__same_repo_pull_request_opened_gives_number_shas_and_refs():
    event = parse_event("pull_request", events.payload("pull_request.opened"))
    assert event.pr_number == 2
    assert event.repository == "Codertocat/Hello-World"
    assert event.head_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert event.base_sha == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    assert (event.head_ref, event.base_ref) == ("changes", "master")
    assert event.head_repo == "Codertocat/Hello-World"
    assert event.is_fork is False and event.is_pull_request


def test_event__synchronize_reads_like_opened():
    event = parse_event("pull_request", events.payload("pull_request.synchronize"))
    assert event.pr_number == 2 and event.head_sha and not event.is_fork


def test_event__pull_request_from_a_fork_is_marked_as_fork():
    data = events.fork_pull_request(number=7, head_sha="c" * 40, base_sha="d" * 40)
    event = parse_event("pull_request", data)
    assert event.is_fork and event.head_repo == "forker/Hello-World"
    assert event.repository == "Codertocat/Hello-World"


def test_event__pull_request_whose_fork_was_deleted_counts_as_a_fork():
    data = events.payload("pull_request.opened", {"pull_request.head.repo": None})
    event = parse_event("pull_request_target", data)
    assert event.is_fork and event.head_repo is None


def test_event__workflow_run_gives_the_triggering_runs_head_and_ignores_listed_prs():
    event = parse_event("workflow_run", events.payload("workflow_run.completed.with_pull_requests"))
    assert event.workflow_run is not None
    assert event.workflow_run.id == 289782451
    assert event.workflow_run.head_sha == event.head_sha == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert event.workflow_run.head_repository == "octo-org/octo-repo"
    assert event.pr_number is None  # the PR is found through the API, never from a payload


def test_event__workflow_run_from_a_fork_is_marked_as_fork():
    data = events.workflow_run(repo="octo/repo", run_id=9, head_sha="e" * 40, head_repo="forker/repo")
    event = parse_event("workflow_run", data)
    assert event.is_fork and event.workflow_run.event == "pull_request"
    assert event.workflow_run.conclusion == "success"


def test_event__push_gives_before_and_after():
    event = parse_event("push", events.payload("push.branch"))
    assert event.head_ref == "refs/heads/master"
    assert event.head_sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert event.base_sha is None  # "before" is all zeros on a new branch
    assert not event.is_pull_request


def test_event__other_events_only_know_their_name_and_repository():
    event = parse_event("workflow_dispatch", {"repository": {"full_name": "o/r"}, "inputs": {}})
    assert event == Event(name="workflow_dispatch", repository="o/r")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("pull_request", [], "not a JSON object"),
        ("pull_request", {"number": 1}, "no pull_request"),
        ("pull_request", {"pull_request": {"head": {}, "base": {}}}, "number"),
        ("pull_request", {"number": 1, "pull_request": {"base": {"sha": "a", "ref": "m"}}}, "head.sha"),
        ("workflow_run", {"workflow_run": {"id": "x"}}, "run id"),
    ],
)
def test_event__payload_without_needed_fields_raises_event_error(name, data, message):
    with pytest.raises(EventError, match=message):
        parse_event(name, data)


def test_event__load_reads_the_file_and_reports_bad_json(tmp_path):
    path = events.write(tmp_path, events.payload("pull_request.opened"))
    assert load_event("pull_request", path).pr_number == 2
    path.write_text("{not json")
    with pytest.raises(EventError, match="not valid JSON"):
        load_event("pull_request", path)
    with pytest.raises(EventError, match="cannot read"):
        load_event("pull_request", tmp_path / "missing.json")


def test_event__local_runs_without_event_give_an_empty_event():
    assert load_event(None, None) == Event(name="")
