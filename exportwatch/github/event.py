"""The event payload (``GITHUB_EVENT_PATH``) reduced to what the action needs.

Supported: ``pull_request`` / ``pull_request_target`` (a PR, maybe from a fork),
``workflow_run`` (the trusted half of the fork-safe flow) and ``push`` (baselines). Any other
event parses to an :class:`Event` that only knows its name and repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exportwatch.errors import UsageError

PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})
MAX_EVENT_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB


class EventError(UsageError, ValueError):
    """An event payload that cannot be read or lacks a field the action needs."""


@dataclass(frozen=True, kw_only=True)
class WorkflowRunRef:
    """The run that triggered a ``workflow_run`` event (GitHub's word, not the artifact's)."""

    id: int
    name: str | None
    event: str | None  # what triggered *that* run: pull_request, push, ...
    conclusion: str | None
    head_sha: str
    head_branch: str | None
    head_repository: str | None  # OWNER/REPO the head commit lives in (the fork, for forks)


@dataclass(frozen=True, kw_only=True)
class Event:
    name: str
    repository: str | None = None  # OWNER/REPO the workflow runs in (the base repository)
    pr_number: int | None = None
    base_sha: str | None = None
    base_ref: str | None = None
    head_sha: str | None = None
    head_ref: str | None = None
    head_repo: str | None = None
    is_fork: bool = False
    workflow_run: WorkflowRunRef | None = None

    @property
    def is_pull_request(self) -> bool:
        return self.pr_number is not None


def load_event(name: str | None, path: Path | None) -> Event:
    """Read and parse the payload file; no file (local runs) gives a bare :class:`Event`."""
    if not name:
        return Event(name="")
    if path is None:
        return Event(name=name)
    try:
        size = path.stat().st_size
        if size > MAX_EVENT_BYTES:
            raise EventError(f"{path}: event payload is {size} bytes, over {MAX_EVENT_BYTES}")
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EventError(f"GITHUB_EVENT_PATH {path}: cannot read: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"GITHUB_EVENT_PATH {path}: not valid JSON: {exc}") from exc
    return parse_event(name, payload)


def parse_event(name: str, payload: Any) -> Event:
    if not isinstance(payload, dict):
        raise EventError(f"{name} event payload is not a JSON object")
    repository = _get(payload, "repository", "full_name", required=False)
    if name in PULL_REQUEST_EVENTS:
        return _pull_request(name, payload, repository)
    if name == "workflow_run":
        return _workflow_run(payload, repository)
    if name == "push":
        return Event(
            name=name,
            repository=repository,
            base_sha=_zero_is_none(payload.get("before")),
            head_sha=_zero_is_none(payload.get("after")),
            head_ref=payload.get("ref"),
            head_repo=repository,
        )
    return Event(name=name, repository=repository)


def _pull_request(name: str, payload: dict[str, Any], repository: str | None) -> Event:
    pr = payload.get("pull_request")
    if not isinstance(pr, dict):
        raise EventError(f"{name} event has no pull_request object")
    number = payload.get("number", pr.get("number"))
    if not isinstance(number, int) or isinstance(number, bool):
        raise EventError(f"{name} event has no pull request number")
    base_repo = _get(pr, "base", "repo", "full_name", required=False) or repository
    head_repo_obj = _get(pr, "head", "repo", required=False)
    head_repo = head_repo_obj.get("full_name") if isinstance(head_repo_obj, dict) else None
    return Event(
        name=name,
        repository=repository or base_repo,
        pr_number=number,
        base_sha=_get(pr, "base", "sha"),
        base_ref=_get(pr, "base", "ref"),
        head_sha=_get(pr, "head", "sha"),
        head_ref=_get(pr, "head", "ref"),
        head_repo=head_repo,
        # A deleted fork leaves head.repo null: still a fork as far as trust goes.
        is_fork=head_repo is None or head_repo != base_repo,
    )


def _workflow_run(payload: dict[str, Any], repository: str | None) -> Event:
    run = payload.get("workflow_run")
    if not isinstance(run, dict):
        raise EventError("workflow_run event has no workflow_run object")
    run_id = run.get("id")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        raise EventError("workflow_run event has no run id")
    head_repo = _get(run, "head_repository", "full_name", required=False)
    run_repo = _get(run, "repository", "full_name", required=False) or repository
    ref = WorkflowRunRef(
        id=run_id,
        name=run.get("name"),
        event=run.get("event"),
        conclusion=run.get("conclusion"),
        head_sha=_get(run, "head_sha"),
        head_branch=run.get("head_branch"),
        head_repository=head_repo,
    )
    return Event(
        name="workflow_run",
        repository=repository,
        head_sha=ref.head_sha,
        head_ref=ref.head_branch,
        head_repo=head_repo,
        is_fork=head_repo is None or head_repo != run_repo,
        workflow_run=ref,
    )


def _get(obj: Any, *keys: str, required: bool = True) -> Any:
    node = obj
    for key in keys:
        if not isinstance(node, dict) or node.get(key) is None:
            if required:
                raise EventError(f"event payload has no {'.'.join(keys)}")
            return None
        node = node[key]
    return node


def _zero_is_none(sha: Any) -> str | None:
    if not isinstance(sha, str) or not sha.strip("0"):
        return None
    return sha
