"""Event payloads for tests: real examples from ``@octokit/webhooks-examples``, adjusted.

    payload("pull_request.opened", {"pull_request.head.repo.full_name": "fork/hello"})
    fork_pull_request(number=7, head_sha=..., base_sha=...)

The vendored examples hold no pull request from a fork; :func:`fork_pull_request` derives one
from the real ``opened`` example by changing only what a fork changes (the head repository).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "vendor" / "webhooks-examples"


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def payload(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the vendored example ``name`` with dotted-path ``overrides`` applied."""
    data = copy.deepcopy(_load(name))
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value
    return data


def pull_request(
    *,
    repo: str,
    number: int,
    head_sha: str,
    base_sha: str,
    head_ref: str = "feature",
    base_ref: str = "main",
    head_repo: str | None = None,
    action: str = "opened",
) -> dict[str, Any]:
    name = "pull_request.synchronize" if action == "synchronize" else "pull_request.opened"
    head_repo = head_repo or repo
    return payload(
        name,
        {
            "number": number,
            "pull_request.number": number,
            "pull_request.head.sha": head_sha,
            "pull_request.head.ref": head_ref,
            "pull_request.head.label": f"{head_repo.split('/')[0]}:{head_ref}",
            "pull_request.head.repo.full_name": head_repo,
            "pull_request.head.repo.fork": head_repo != repo,
            "pull_request.base.sha": base_sha,
            "pull_request.base.ref": base_ref,
            "pull_request.base.repo.full_name": repo,
            "repository.full_name": repo,
        },
    )


def fork_pull_request(
    *, repo: str = "Codertocat/Hello-World", fork: str = "forker/Hello-World", **kwargs: Any
) -> dict[str, Any]:
    return pull_request(repo=repo, head_repo=fork, **kwargs)


def workflow_run(
    *,
    repo: str,
    run_id: int,
    head_sha: str,
    head_branch: str = "feature",
    head_repo: str | None = None,
    event: str = "pull_request",
    conclusion: str = "success",
) -> dict[str, Any]:
    return payload(
        "workflow_run.completed",
        {
            "workflow_run.id": run_id,
            "workflow_run.head_sha": head_sha,
            "workflow_run.head_branch": head_branch,
            "workflow_run.event": event,
            "workflow_run.conclusion": conclusion,
            "workflow_run.status": "completed",
            "workflow_run.head_repository.full_name": head_repo or repo,
            "workflow_run.repository.full_name": repo,
            "repository.full_name": repo,
        },
    )


def write(tmp: Path, data: dict[str, Any], name: str = "event.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
