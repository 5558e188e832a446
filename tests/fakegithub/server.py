"""A small, stateful, GitHub-compatible REST server for tests (stdlib ``http.server``).

It serves only the operations exportwatch calls, checks every request against GitHub's
published OpenAPI description (vendored subset) and answers like GitHub: pagination with
``Link`` headers, ``422`` for bodies over 65,536 characters, check-run text over its byte
limits, annotations GitHub refuses (characters above U+FFFF, over 64 KB) or invalid requests,
``302`` to a blob URL for artifact downloads, ``422`` for a review comment on a line that is
not in the pull request's diff (each pull request's diff is modelled from the ``patch`` of each
file, ``add_pull(..., files={path: patch})``; :meth:`FakeGitHub.push` moves the head and marks
review comments whose line left the diff outdated). Faults are injected per method and path: N× 500,
rate limits (403 or 429, with or without ``Retry-After`` and ``x-ratelimit-*``), and writes
that GitHub applies but whose answer is lost (a 502, a timeout, a dropped connection).

    with FakeGitHub() as gh:
        gh.add_pull("octo/repo", 7, head_sha=..., base_sha=...)
        client = Github(auth=Auth.Token(gh.token), base_url=gh.api_url)

``gh.violations`` lists every request that did not match the OpenAPI description; the
``fake_github`` fixture fails the test if it is not empty.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakegithub.openapi import OpenAPISubset

MAX_COMMENT_CHARS = 65_536
DEFAULT_TOKEN = "ghp_fAkEtOkEn0123456789abcdefABCDEF0123"
ACTIONS_TOKEN = "ghs_aCtIoNsToKeN0123456789abcdefABCDEF01"
APP_TOKEN = "ghs_aPpInStAlLaTiOnToKeN0123456789abcdef"
MAX_CHECK_TEXT_BYTES = 65_535  # GitHub: "summary exceeds a maximum bytesize of 65535"
MAX_ANNOTATION_BYTES = 64 * 1024
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID ABCD:1234."
)
_OPENAPI = OpenAPISubset()


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    used: int = 0
    apply: bool = False  # carry the request out, then answer with the fault (a lost answer)
    delay: float = 0.0  # seconds before answering (longer than the client's timeout: a timeout)
    drop: bool = False  # close the connection without any answer


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the API prefix
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    operation_id: str | None
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Repo:
    full_name: str
    id: int
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {issue, body, user, ...}
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    review_comments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {pull, path, line, ...}
    reviews: dict[int, dict[str, Any]] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[int, dict[str, Any]] = field(default_factory=dict)


class FakeGitHub:
    """The server plus its state. Thread-safe; start with ``with`` or :meth:`start`."""

    def __init__(self, *, prefix: str = "", artifact_redirect: bool = True) -> None:
        self.prefix = prefix.rstrip("/")  # "/api/v3" to play GitHub Enterprise Server
        self.artifact_redirect = artifact_redirect
        self.token = DEFAULT_TOKEN
        self.actions_token = ACTIONS_TOKEN
        #: token -> (login, may read GET /user). The Actions token may not, like GITHUB_TOKEN.
        self.users: dict[str, tuple[str, bool]] = {
            DEFAULT_TOKEN: ("exportwatch-bot", True),
            ACTIONS_TOKEN: ("github-actions[bot]", False),
            APP_TOKEN: ("exportwatch-app[bot]", False),  # a GitHub App installation token
        }
        self.repos: dict[str, Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self._ids = iter(range(1_000, 10**9))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server_url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.server_url + self.prefix

    # ---------------------------------------------------------------- state helpers

    def next_id(self) -> int:
        return next(self._ids)

    def repo(self, full_name: str) -> Repo:
        with self.lock:
            if full_name.lower() not in self.repos:
                self.repos[full_name.lower()] = Repo(full_name=full_name, id=self.next_id())
            return self.repos[full_name.lower()]

    def add_pull(
        self,
        repo: str,
        number: int,
        *,
        head_sha: str,
        base_sha: str = "b" * 40,
        head_ref: str = "feature",
        base_ref: str = "main",
        head_repo: str | None = None,
        state: str = "open",
        files: dict[str, str | None] | None = None,
    ) -> None:
        """``files``: path -> its diff's ``patch`` (None: a binary or too large a diff)."""
        with self.lock:
            self.repo(repo).pulls[number] = {
                "number": number,
                "state": state,
                "head_sha": head_sha,
                "head_ref": head_ref,
                "head_repo": head_repo or repo,
                "base_sha": base_sha,
                "base_ref": base_ref,
                "files": dict(files or {}),
            }

    def push(self, repo: str, number: int, *, head_sha: str, files: dict[str, str | None]) -> None:
        """A new head for PR ``number`` with this diff. A review comment stays on its line when
        that line is still on the diff's RIGHT side with the same text; else it is outdated
        (``line`` and ``position`` null), as GitHub shows it."""
        with self.lock:
            pull = self.repo(repo).pulls[number]
            pull.update(head_sha=head_sha, files=dict(files))
            for comment in self.repo(repo).review_comments.values():
                if comment["pull"] != number or comment["line"] is None:
                    continue
                now = right_side_lines(files.get(comment["path"])).get(comment["line"])
                if now is None or now != comment["text"]:
                    comment["line"] = None
                else:
                    comment["commit_id"] = head_sha

    def add_review_comment(
        self, repo: str, number: int, *, path: str, line: int, body: str, user: str
    ) -> int:
        """A review comment someone already wrote on a line of the diff."""
        with self.lock:
            pull = self.repo(repo).pulls[number]
            text = right_side_lines(pull["files"].get(path)).get(line)
            assert text is not None, f"{path}:{line} is not on the diff"
            return self._new_review_comment(
                self.repo(repo), pull, review_id=None, path=path, line=line, body=body, user=user, text=text
            )

    def _new_review_comment(  # type: ignore[no-untyped-def]
        self, repo: Repo, pull, *, review_id, path, line, body, user, text
    ) -> int:
        cid = self.next_id()
        now = _now()
        repo.review_comments[cid] = {
            "id": cid,
            "pull": pull["number"],
            "review_id": review_id,
            "path": path,
            "line": line,
            "original_line": line,
            "text": text,  # the line's text when commented: a push that changes it outdates the comment
            "side": "RIGHT",
            "body": body,
            "user": user,
            "commit_id": pull["head_sha"],
            "original_commit_id": pull["head_sha"],
            "created_at": now,
            "updated_at": now,
        }
        return cid

    def review_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.repo(repo).review_comments.values() if c["pull"] == number]

    def reviews(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.repo(repo).reviews.values() if r["pull"] == number]

    def add_comment(self, repo: str, number: int, body: str, *, user: str) -> int:
        with self.lock:
            cid = self.next_id()
            now = _now()
            self.repo(repo).comments[cid] = {
                "id": cid,
                "issue": number,
                "body": body,
                "user": user,
                "created_at": now,
                "updated_at": now,
            }
            return cid

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.repo(repo).comments.values() if c["issue"] == number]

    def check_runs(self, repo: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(c) for c in self.repo(repo).check_runs.values()]

    def add_workflow_run(
        self,
        repo: str,
        run_id: int,
        *,
        head_sha: str,
        head_branch: str = "feature",
        head_repo: str | None = None,
        event: str = "pull_request",
        conclusion: str | None = "success",
    ) -> None:
        with self.lock:
            self.repo(repo).runs[run_id] = {
                "id": run_id,
                "head_sha": head_sha,
                "head_branch": head_branch,
                "head_repo": head_repo or repo,
                "event": event,
                "conclusion": conclusion,
            }

    def add_artifact(
        self,
        repo: str,
        run_id: int,
        name: str,
        data: bytes,
        *,
        expired: bool = False,
        size: int | None = None,
    ) -> int:
        """``data`` is the zip archive; ``size`` overrides the size the listing reports."""
        with self.lock:
            aid = self.next_id()
            self.repo(repo).artifacts[aid] = {
                "id": aid,
                "run_id": run_id,
                "name": name,
                "data": data,
                "expired": expired,
                "size": len(data) if size is None else size,
            }
            return aid

    # ---------------------------------------------------------------- faults

    def inject(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        apply: bool = False,
        delay: float = 0.0,
        drop: bool = False,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``method`` and ``path`` (a regex
        searched in the path without prefix) with ``status``; with ``apply``, after carrying
        the request out (GitHub did the write, the answer was lost)."""
        fault = Fault(
            method=method.upper(),
            path=re.compile(path),
            status=status,
            times=times,
            headers=headers or {},
            body=body or {"message": HTTPStatus(status).phrase},
            apply=apply,
            delay=delay,
            drop=drop,
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def fail_with_500(self, method: str, path: str, *, times: int = 1) -> Fault:
        return self.inject(method, path, 500, times=times, body={"message": "Server Error"})

    def secondary_rate_limit(self, method: str, path: str, *, retry_after: int = 1, times: int = 1) -> Fault:
        return self.inject(
            method,
            path,
            403,
            times=times,
            headers={"Retry-After": str(retry_after)},
            body={
                "message": SECONDARY_RATE_LIMIT_MESSAGE,
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
        )

    def too_many_requests(
        self, method: str, path: str, *, retry_after: int | None = 1, times: int = 1
    ) -> Fault:
        return self.inject(
            method,
            path,
            429,
            times=times,
            headers={"Retry-After": str(retry_after)} if retry_after is not None else {},
            body={"message": "Too Many Requests"},
        )

    def primary_rate_limit(
        self, method: str, path: str, *, reset: int, status: int = 403, times: int = 1
    ) -> Fault:
        """The hourly limit spent: ``x-ratelimit-remaining: 0`` and when it resets (epoch seconds)."""
        return self.inject(
            method,
            path,
            status,
            times=times,
            headers={
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(reset),
            },
            body={
                "message": "API rate limit exceeded for installation ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
        )

    def lost_answer(
        self,
        method: str,
        path: str,
        *,
        status: int = 502,
        delay: float = 0.0,
        drop: bool = False,
        times: int = 1,
    ) -> Fault:
        """The write is carried out, but the client gets a ``status`` (or, with ``delay``, a
        timeout; with ``drop``, a closed connection) instead of the answer."""
        return self.inject(
            method, path, status, times=times, apply=True, delay=delay, drop=drop,
            body={"message": "Server Error"} if status >= 500 else None,
        )  # fmt: skip

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.used < fault.times and fault.path.search(path):
                    fault.used += 1
                    return fault
        return None

    def requests_to(self, operation_id: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.operation_id == operation_id]

    # ---------------------------------------------------------------- representations

    def _rewrite(self, node: Any) -> Any:
        """Point the example's URLs at this server."""
        if isinstance(node, dict):
            return {k: self._rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._rewrite(v) for v in node]
        if isinstance(node, str):
            return node.replace("https://api.github.com", self.api_url).replace(
                "https://github.com", self.server_url
            )
        return node

    def _template(self, operation_id: str) -> Any:
        return self._rewrite(_OPENAPI.operation(operation_id).example())

    def _user(self, login: str) -> dict[str, Any]:
        user = self._template("users/get-authenticated")
        user.update(
            login=login,
            id=abs(hash(login)) % 10**8,
            type="Bot" if login.endswith("[bot]") else "User",
            url=f"{self.api_url}/users/{login}",
            html_url=f"{self.server_url}/{login}",
        )
        return user

    def _repo_json(self, full_name: str) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        return {
            "id": self.repo(full_name).id,
            "name": name,
            "full_name": full_name,
            "owner": {"login": owner, "id": abs(hash(owner)) % 10**8, "type": "User"},
            "url": f"{self.api_url}/repos/{full_name}",
            "html_url": f"{self.server_url}/{full_name}",
            "fork": False,
            "private": False,
        }

    def _comment_json(self, repo: Repo, c: dict[str, Any]) -> dict[str, Any]:
        out = self._template("issues/create-comment")
        out.update(
            id=c["id"],
            node_id=f"IC_{c['id']}",
            body=c["body"],
            user=self._user(c["user"]),
            created_at=c["created_at"],
            updated_at=c["updated_at"],
            url=f"{self.api_url}/repos/{repo.full_name}/issues/comments/{c['id']}",
            html_url=f"{self.server_url}/{repo.full_name}/pull/{c['issue']}#issuecomment-{c['id']}",
            issue_url=f"{self.api_url}/repos/{repo.full_name}/issues/{c['issue']}",
        )
        return out

    def _pull_json(self, repo: Repo, p: dict[str, Any]) -> dict[str, Any]:
        out = self._template("pulls/get")
        number = p["number"]
        head_owner = p["head_repo"].split("/")[0]
        out.update(
            number=number,
            id=number * 1000 + repo.id,
            state=p["state"],
            url=f"{self.api_url}/repos/{repo.full_name}/pulls/{number}",
            html_url=f"{self.server_url}/{repo.full_name}/pull/{number}",
            issue_url=f"{self.api_url}/repos/{repo.full_name}/issues/{number}",
            comments_url=f"{self.api_url}/repos/{repo.full_name}/issues/{number}/comments",
        )
        out["head"] = {
            "label": f"{head_owner}:{p['head_ref']}",
            "ref": p["head_ref"],
            "sha": p["head_sha"],
            "user": {"login": head_owner},
            "repo": self._repo_json(p["head_repo"]) if p["head_repo"] else None,
        }
        out["base"] = {
            "label": f"{repo.full_name.split('/')[0]}:{p['base_ref']}",
            "ref": p["base_ref"],
            "sha": p["base_sha"],
            "user": {"login": repo.full_name.split("/")[0]},
            "repo": self._repo_json(repo.full_name),
        }
        return out

    def _file_json(self, repo: Repo, pull: dict[str, Any], path: str, patch: str | None) -> dict[str, Any]:
        out = copy.deepcopy(self._template("pulls/list-files")[0])
        lines = (patch or "").split("\n")
        added = sum(1 for line in lines if line.startswith("+"))
        removed = sum(1 for line in lines if line.startswith("-"))
        out.update(
            filename=path,
            status="modified",
            additions=added,
            deletions=removed,
            changes=added + removed,
            blob_url=f"{self.server_url}/{repo.full_name}/blob/{pull['head_sha']}/{path}",
            raw_url=f"{self.server_url}/{repo.full_name}/raw/{pull['head_sha']}/{path}",
            contents_url=f"{self.api_url}/repos/{repo.full_name}/contents/{path}?ref={pull['head_sha']}",
        )
        if patch is None:
            out.pop("patch", None)  # GitHub leaves it out for a binary file or a large diff
        else:
            out["patch"] = patch
        return out

    def _review_comment_json(self, repo: Repo, c: dict[str, Any]) -> dict[str, Any]:
        out = self._template("pulls/update-review-comment")
        number = c["pull"]
        out.update(
            id=c["id"],
            node_id=f"PRRC_{c['id']}",
            url=f"{self.api_url}/repos/{repo.full_name}/pulls/comments/{c['id']}",
            html_url=f"{self.server_url}/{repo.full_name}/pull/{number}#discussion_r{c['id']}",
            pull_request_url=f"{self.api_url}/repos/{repo.full_name}/pulls/{number}",
            pull_request_review_id=c["review_id"],
            path=c["path"],
            line=c["line"],
            original_line=c["original_line"],
            position=c["line"],  # null once outdated, like the line
            original_position=c["original_line"],
            side=c["side"],
            start_line=None,
            original_start_line=None,
            start_side=None,
            commit_id=c["commit_id"],
            original_commit_id=c["original_commit_id"],
            body=c["body"],
            user=self._user(c["user"]),
            created_at=c["created_at"],
            updated_at=c["updated_at"],
            diff_hunk=f"@@ -{c['original_line']} +{c['original_line']} @@",
        )
        out.pop("in_reply_to_id", None)
        return out

    def _review_json(self, repo: Repo, r: dict[str, Any]) -> dict[str, Any]:
        out = self._template("pulls/create-review")
        number = r["pull"]
        out.update(
            id=r["id"],
            node_id=f"PRR_{r['id']}",
            user=self._user(r["user"]),
            body=r["body"],
            state=r["state"],
            commit_id=r["commit_id"],
            html_url=f"{self.server_url}/{repo.full_name}/pull/{number}#pullrequestreview-{r['id']}",
            pull_request_url=f"{self.api_url}/repos/{repo.full_name}/pulls/{number}",
        )
        return out

    def _check_json(self, repo: Repo, c: dict[str, Any]) -> dict[str, Any]:
        out = self._template("checks/create")
        out.update(
            id=c["id"],
            name=c["name"],
            external_id=c.get("external_id"),
            head_sha=c["head_sha"],
            status=c["status"],
            conclusion=c["conclusion"],
            url=f"{self.api_url}/repos/{repo.full_name}/check-runs/{c['id']}",
            html_url=f"{self.server_url}/{repo.full_name}/runs/{c['id']}",
            details_url=c.get("details_url"),
        )
        out["output"] = {
            "title": c["output"].get("title"),
            "summary": c["output"].get("summary"),
            "text": c["output"].get("text"),
            "annotations_count": len(c["annotations"]),
            "annotations_url": f"{self.api_url}/repos/{repo.full_name}/check-runs/{c['id']}/annotations",
        }
        return out

    def _run_json(self, repo: Repo, r: dict[str, Any]) -> dict[str, Any]:
        out = self._template("actions/get-workflow-run")
        base = f"{self.api_url}/repos/{repo.full_name}/actions/runs/{r['id']}"
        out.update(
            id=r["id"],
            head_sha=r["head_sha"],
            head_branch=r["head_branch"],
            event=r["event"],
            status="completed",
            conclusion=r["conclusion"],
            url=base,
            html_url=f"{self.server_url}/{repo.full_name}/actions/runs/{r['id']}",
            artifacts_url=f"{base}/artifacts",
            pull_requests=[],  # what GitHub sends for runs from forks: nothing to trust anyway
            repository=self._repo_json(repo.full_name),
            head_repository=self._repo_json(r["head_repo"]),
        )
        return out

    def _artifact_json(self, repo: Repo, a: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(self._template("actions/list-workflow-run-artifacts")["artifacts"][0])
        run = repo.runs.get(a["run_id"], {})
        out.update(
            id=a["id"],
            node_id=f"MDg6QXJ0aWZhY3Q{a['id']}",
            name=a["name"],
            size_in_bytes=a["size"],
            expired=a["expired"],
            url=f"{self.api_url}/repos/{repo.full_name}/actions/artifacts/{a['id']}",
            archive_download_url=f"{self.api_url}/repos/{repo.full_name}/actions/artifacts/{a['id']}/zip",
            workflow_run={
                "id": a["run_id"],
                "repository_id": repo.id,
                "head_repository_id": repo.id,
                "head_branch": run.get("head_branch"),
                "head_sha": run.get("head_sha"),
            },
        )
        return out


_REVIEW_STATES = {"COMMENT": "COMMENTED", "APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def right_side_lines(patch: str | None) -> dict[int, str]:
    """The lines a review comment may go on (side RIGHT): line number -> text. The fake's own
    reading of a unified diff, written apart from exportwatch's (``render.review.parse_patch``)."""
    lines: dict[int, str] = {}
    line = 0
    remaining = 0
    for raw in (patch or "").split("\n"):
        match = _HUNK.match(raw)
        if match:
            line, remaining = int(match[3]), int(match[4] if match[4] is not None else 1)
            continue
        if remaining <= 0 or raw.startswith("-") or raw.startswith("\\"):
            continue
        lines[line] = raw[1:]
        line, remaining = line + 1, remaining - 1
    return lines


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status = status
        self.payload = {"message": message, **extra}


def _validation_failed(resource: str, field_name: str, message: str) -> _HTTPError:
    return _HTTPError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "code": "custom", "field": field_name, "message": message}],
        documentation_url="https://docs.github.com/rest",
    )


def _check_output(output: dict[str, Any]) -> None:
    """Refuse a check-run output as GitHub does: text over its byte limit, a bad annotation."""
    for key in ("summary", "text"):
        value = output.get(key)
        if isinstance(value, str) and len(value.encode("utf-8")) > MAX_CHECK_TEXT_BYTES:
            raise _validation_failed(
                "CheckRun", key, f"{key} exceeds a maximum bytesize of {MAX_CHECK_TEXT_BYTES}"
            )
    for annotation in output.get("annotations") or []:
        for key in ("message", "title", "raw_details", "path"):
            value = annotation.get(key)
            if not isinstance(value, str):
                continue
            if any(ord(ch) > 0xFFFF for ch in value):
                raise _validation_failed(
                    "CheckRun", "annotations", f"{key} has characters GitHub cannot store"
                )
            if key in ("message", "raw_details") and len(value.encode("utf-8")) > MAX_ANNOTATION_BYTES:
                raise _validation_failed("CheckRun", "annotations", f"{key} is over 64 KB")
            if key == "title" and len(value) > 255:
                raise _validation_failed("CheckRun", "annotations", "title is over 255 characters")


Route = tuple[str, re.Pattern[str], Callable[..., tuple[int, Any, dict[str, str]]]]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet (and never print request lines with tokens)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(url.query, keep_blank_values=True)
        headers = {k: v for k, v in self.headers.items()}

        if url.path.startswith("/_blobs/"):
            self._record(method, url.path, query, headers, body, None)
            self._blob(url.path)
            return

        if not url.path.startswith(fake.prefix + "/"):
            self._record(method, url.path, query, headers, body, None)
            fake.violations.append(f"{method} {url.path}: outside the API prefix {fake.prefix!r}")
            self._send(404, {"message": "Not Found"})
            return
        path = url.path[len(fake.prefix) :]
        op, problems = _OPENAPI.check(method, path, query, body, headers.get("Content-Type", ""))
        self._record(method, path, query, headers, body, op.operation_id if op else None)
        if problems:
            with fake.lock:
                fake.violations.extend(problems)
            self._send(404 if op is None else 422, {"message": "Invalid request.", "errors": problems})
            return

        login = self._authenticate()
        if login is None:
            self._send(401, {"message": "Bad credentials"})
            return

        fault = fake._take_fault(method, path)
        if fault is not None and not fault.apply:
            self._send(fault.status, fault.body, fault.headers)
            return

        try:
            status, payload, extra_headers = self._route(method, path, query, body, login, op.operation_id)
        except _HTTPError as exc:
            self._send(exc.status, exc.payload)
            return
        if fault is not None:  # applied: now lose the answer
            time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                return
            self._send(fault.status, fault.body, fault.headers)
            return
        self._send(status, payload, extra_headers)

    def _record(self, method, path, query, headers, body, operation_id) -> None:  # type: ignore[no-untyped-def]
        with self.fake.lock:
            self.fake.requests.append(
                RecordedRequest(method, path, query, headers, body, time.monotonic(), operation_id)
            )

    def _authenticate(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        user = self.fake.users.get(token.strip())
        return user[0] if user else None

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, bytes):
            data, content_type = payload, "application/zip"
        else:
            data = b"" if payload is None else json.dumps(payload).encode()
            content_type = "application/json; charset=utf-8"
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _blob(self, path: str) -> None:
        aid = int(path.rsplit("/", 1)[1])
        for repo in self.fake.repos.values():
            if aid in repo.artifacts:
                data = repo.artifacts[aid]["data"]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        self._send(404, {"message": "BlobNotFound"})

    # ------------------------------------------------------------------ operations

    def _route(self, method, path, query, body, login, operation_id):  # type: ignore[no-untyped-def]
        fake = self.fake
        parts = path.strip("/").split("/")
        payload = json.loads(body) if body else {}
        with fake.lock:
            if operation_id == "users/get-authenticated":
                _name, can_read = next(v for v in fake.users.values() if v[0] == login)
                if not can_read:
                    raise _HTTPError(403, "Resource not accessible by integration")
                return 200, fake._user(login), {}

            repo = fake.repo(f"{parts[1]}/{parts[2]}")
            handler = getattr(self, "_op_" + operation_id.replace("/", "_").replace("-", "_"))
            return handler(repo, parts, query, payload, login)

    def _paginate(self, items: list[Any], query: dict[str, list[str]], path: str):  # type: ignore[no-untyped-def]
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = max(int(query.get("page", ["1"])[0]), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(n: int, rel: str) -> str:
            params = {k: v[0] for k, v in query.items()}
            params.update(per_page=str(per_page), page=str(n))
            return f'<{self.fake.api_url}{path}?{urlencode(params)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def _issue_exists(self, repo: Repo, number: int) -> None:
        if number not in repo.pulls:
            raise _HTTPError(404, "Not Found")

    def _op_issues_list_comments(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        number = int(parts[4])
        self._issue_exists(repo, number)
        items = sorted((c for c in repo.comments.values() if c["issue"] == number), key=lambda c: c["id"])
        chunk, headers = self._paginate(
            [self.fake._comment_json(repo, c) for c in items], query, "/" + "/".join(parts)
        )
        return 200, chunk, headers

    def _op_issues_create_comment(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        number = int(parts[4])
        self._issue_exists(repo, number)
        text = payload["body"]
        if len(text) > MAX_COMMENT_CHARS:
            raise _validation_failed("IssueComment", "data", "Body is too long (maximum is 65536 characters)")
        cid = self.fake.add_comment(repo.full_name, number, text, user=login)
        return 201, self.fake._comment_json(repo, repo.comments[cid]), {}

    def _op_issues_update_comment(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        comment = repo.comments.get(int(parts[5]))
        if comment is None:
            raise _HTTPError(404, "Not Found")
        if comment["user"] != login:
            raise _HTTPError(403, "You cannot edit a comment written by another user")
        text = payload["body"]
        if len(text) > MAX_COMMENT_CHARS:
            raise _validation_failed("IssueComment", "data", "Body is too long (maximum is 65536 characters)")
        comment.update(body=text, updated_at=_now())
        return 200, self.fake._comment_json(repo, comment), {}

    def _op_pulls_get(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        pull = repo.pulls.get(int(parts[4]))
        if pull is None:
            raise _HTTPError(404, "Not Found")
        return 200, self.fake._pull_json(repo, pull), {}

    def _op_pulls_list(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        items = []
        for pull in sorted(repo.pulls.values(), key=lambda p: -p["number"]):
            if state != "all" and pull["state"] != state:
                continue
            if head:
                owner, _, ref = head.partition(":")
                if pull["head_repo"].split("/")[0].lower() != owner.lower() or pull["head_ref"] != ref:
                    continue
            items.append(self.fake._pull_json(repo, pull))
        chunk, headers = self._paginate(items, query, "/" + "/".join(parts))
        return 200, chunk, headers

    def _op_repos_list_pull_requests_associated_with_commit(  # type: ignore[no-untyped-def]
        self, repo, parts, query, payload, login
    ):
        sha = parts[4]
        items = [self.fake._pull_json(repo, p) for p in repo.pulls.values() if p["head_sha"] == sha]
        chunk, headers = self._paginate(items, query, "/" + "/".join(parts))
        return 200, chunk, headers

    def _pull(self, repo: Repo, number: int) -> dict[str, Any]:
        pull = repo.pulls.get(number)
        if pull is None:
            raise _HTTPError(404, "Not Found")
        return pull

    def _op_pulls_list_files(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        pull = self._pull(repo, int(parts[4]))
        items = [self.fake._file_json(repo, pull, path, patch) for path, patch in pull["files"].items()]
        chunk, headers = self._paginate(items, query, "/" + "/".join(parts))
        return 200, chunk, headers

    def _op_pulls_list_review_comments(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        number = int(parts[4])
        self._pull(repo, number)
        mine = [c for c in repo.review_comments.values() if c["pull"] == number]
        items = sorted(mine, key=lambda c: c["id"])
        chunk, headers = self._paginate(
            [self.fake._review_comment_json(repo, c) for c in items], query, "/" + "/".join(parts)
        )
        return 200, chunk, headers

    def _op_pulls_create_review(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        """Like GitHub: a ``COMMENT`` or ``REQUEST_CHANGES`` review needs a body; the commit
        must be the PR's head; each comment's ``line`` must be on its ``side`` of the diff (the
        fake knows the RIGHT side only, the side exportwatch comments on). All or nothing."""
        pull = self._pull(repo, int(parts[4]))
        event = payload.get("event")
        body = payload.get("body") or ""
        if event in ("COMMENT", "REQUEST_CHANGES") and not body.strip():
            raise _validation_failed("PullRequestReview", "body", "Body is required for this event")
        if len(body) > MAX_COMMENT_CHARS:
            raise _validation_failed("PullRequestReview", "body", "Body is too long")
        commit = payload.get("commit_id", pull["head_sha"])
        if commit != pull["head_sha"]:
            raise _validation_failed("PullRequestReview", "commit_id", "is not part of the pull request")
        placed = []
        for comment in payload.get("comments") or []:
            if "line" not in comment or comment.get("side", "RIGHT") != "RIGHT" or "start_line" in comment:
                raise _HTTPError(422, "Unprocessable Entity: the fake takes single-line RIGHT-side comments")
            if comment["path"] not in pull["files"]:
                raise _HTTPError(422, "Unprocessable Entity", errors=["Path could not be resolved"])
            text = right_side_lines(pull["files"][comment["path"]]).get(comment["line"])
            if text is None:
                why = "Pull request review thread line must be part of the diff"
                raise _HTTPError(422, "Unprocessable Entity", errors=[why])
            if len(comment["body"]) > MAX_COMMENT_CHARS:
                raise _validation_failed("PullRequestReviewComment", "body", "Body is too long")
            placed.append((comment, text))
        rid = self.fake.next_id()
        repo.reviews[rid] = {
            "id": rid,
            "pull": pull["number"],
            "user": login,
            "body": body,
            "state": _REVIEW_STATES.get(event or "", "PENDING"),
            "commit_id": commit,
            "comments": [],
        }
        for comment, text in placed:
            cid = self.fake._new_review_comment(
                repo, pull, review_id=rid, path=comment["path"], line=comment["line"],
                body=comment["body"], user=login, text=text,
            )  # fmt: skip
            repo.reviews[rid]["comments"].append(cid)
        return 200, self.fake._review_json(repo, repo.reviews[rid]), {}

    def _op_pulls_update_review_comment(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        comment = repo.review_comments.get(int(parts[5]))
        if comment is None:
            raise _HTTPError(404, "Not Found")
        if comment["user"] != login:
            raise _HTTPError(403, "You cannot edit a comment written by another user")
        if len(payload["body"]) > MAX_COMMENT_CHARS:
            raise _validation_failed("PullRequestReviewComment", "body", "Body is too long")
        comment.update(body=payload["body"], updated_at=_now())
        return 200, self.fake._review_comment_json(repo, comment), {}

    def _op_checks_create(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        output = payload.get("output") or {}
        _check_output(output)
        cid = self.fake.next_id()
        repo.check_runs[cid] = {
            "id": cid,
            "name": payload["name"],
            "external_id": payload.get("external_id"),
            "head_sha": payload["head_sha"],
            "status": "completed" if payload.get("conclusion") else payload.get("status", "queued"),
            "conclusion": payload.get("conclusion"),
            "details_url": payload.get("details_url"),
            "output": {k: v for k, v in output.items() if k != "annotations"},
            "annotations": list(output.get("annotations") or []),
            "requests": 1,
        }
        return 201, self.fake._check_json(repo, repo.check_runs[cid]), {}

    def _op_checks_update(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        check = repo.check_runs.get(int(parts[4]))
        if check is None:
            raise _HTTPError(404, "Not Found")
        output = payload.get("output") or {}
        _check_output(output)
        check["output"].update({k: v for k, v in output.items() if k != "annotations"})
        check["annotations"].extend(output.get("annotations") or [])  # GitHub appends
        for key in ("name", "status", "conclusion", "details_url"):
            if key in payload:
                check[key] = payload[key]
        if payload.get("conclusion"):
            check["status"] = "completed"
        check["requests"] += 1
        return 200, self.fake._check_json(repo, check), {}

    def _op_checks_get(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        check = repo.check_runs.get(int(parts[4]))
        if check is None:
            raise _HTTPError(404, "Not Found")
        return 200, self.fake._check_json(repo, check), {}

    def _op_checks_list_for_ref(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        ref = parts[4]
        name = query.get("check_name", [None])[0]
        items = [
            self.fake._check_json(repo, c)
            for c in sorted(repo.check_runs.values(), key=lambda c: -c["id"])
            if c["head_sha"] == ref and (name is None or c["name"] == name)
        ]
        chunk, headers = self._paginate(items, query, "/" + "/".join(parts))
        return 200, {"total_count": len(items), "check_runs": chunk}, headers

    def _op_actions_get_workflow_run(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        run = repo.runs.get(int(parts[5]))
        if run is None:
            raise _HTTPError(404, "Not Found")
        return 200, self.fake._run_json(repo, run), {}

    def _artifact_listing(self, repo, parts, query, run_id):  # type: ignore[no-untyped-def]
        name = query.get("name", [None])[0]
        items = [
            self.fake._artifact_json(repo, a)
            for a in sorted(repo.artifacts.values(), key=lambda a: -a["id"])
            if (run_id is None or a["run_id"] == run_id) and (name is None or a["name"] == name)
        ]
        chunk, headers = self._paginate(items, query, "/" + "/".join(parts))
        return 200, {"total_count": len(items), "artifacts": chunk}, headers

    def _op_actions_list_workflow_run_artifacts(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        run_id = int(parts[5])
        if run_id not in repo.runs:
            raise _HTTPError(404, "Not Found")
        return self._artifact_listing(repo, parts, query, run_id)

    def _op_actions_list_artifacts_for_repo(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        return self._artifact_listing(repo, parts, query, None)

    def _op_actions_download_artifact(self, repo, parts, query, payload, login):  # type: ignore[no-untyped-def]
        artifact = repo.artifacts.get(int(parts[5]))
        if artifact is None or parts[6] != "zip":
            raise _HTTPError(404, "Not Found")
        if artifact["expired"]:
            raise _HTTPError(410, "Artifact has expired")
        if self.fake.artifact_redirect:
            location = f"{self.fake.server_url}/_blobs/{artifact['id']}?sig=signed"
            return 302, None, {"Location": location}
        return 200, artifact["data"], {}
