"""Publishing: the PR comment, the check run, step outputs, the job summary, and PR lookup.

Each operation is split in two: a pure function that decides what to do (returns an enum or a
plain value, tested without a network) and a thin function that does it through PyGithub and
turns GitHub's failures into the domain errors of :mod:`exportwatch.github.client`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from github import GithubException

from exportwatch.github.client import (
    ANY_BOT,
    CannotCreateCheck,
    CannotPostComment,
    NoPullRequest,
    describe,
)
from exportwatch.github.config import CommentMode

log = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 65_536  # GitHub rejects longer issue comments with 422
MAX_CHECK_TEXT_CHARS = 65_535  # check run output.summary / output.text
MAX_ANNOTATIONS_PER_REQUEST = 50
MAX_ANNOTATION_MESSAGE_CHARS = 64 * 1024 - 1


# ============================================================================================
# The PR comment


class CommentAction(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"  # ours exists with exactly this body: no write needed
    SKIP = "skip"  # nothing to write (comment: off, or on-change with no change and no comment)

    def __str__(self) -> str:
        return self.value


def decide_comment_action(
    *, mode: CommentMode, changed: bool, existing_body: str | None, body: str
) -> CommentAction:
    """What to do with the PR comment. Pure.

    ``on-change`` posts a new comment only when something changed, but always refreshes a
    comment that already exists (so it never shows a stale result).
    """
    if mode == CommentMode.OFF:
        return CommentAction.SKIP
    if existing_body is not None:
        return CommentAction.UNCHANGED if existing_body == body else CommentAction.UPDATE
    if mode == CommentMode.ALWAYS or changed:
        return CommentAction.CREATE
    return CommentAction.SKIP


def is_our_comment(*, body: str | None, author: str | None, marker: str, author_login: str) -> bool:
    """Ours = carries the hidden marker *and* was written by the same login as this token
    (or, when the token cannot say who it is, by a ``[bot]`` account: see ``client.ANY_BOT``)."""
    if not body or marker not in body:
        return False
    login = (author or "").lower()
    if author_login == ANY_BOT:
        return login.endswith(ANY_BOT)
    return login == author_login.lower()


def with_marker(body: str, marker: str) -> str:
    return body if marker in body else f"{marker}\n{body}"


def shorten_body(body: str, *, limit: int = MAX_COMMENT_CHARS, note: str) -> str:
    """Cut ``body`` at a line boundary so that it plus ``note`` fits in ``limit`` characters.

    Closes what the cut left open (a code fence, ``<details>`` blocks) so the rest of the
    comment still renders. A safety net only: the renderer truncates by priority first.
    """
    if len(body) <= limit:
        return body
    room = limit - len(note) - 200  # 200: closing tags and separators
    kept = body[: max(room, 0)]
    if "\n" in kept:
        kept = kept[: kept.rfind("\n")]
    fence, depth = _open_blocks(kept)
    closers = [fence] if fence else []
    closers.extend(["</details>"] * depth)
    return "\n".join([kept, *closers, "", note])


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _open_blocks(markdown: str) -> tuple[str | None, int]:
    """The code fence left open at the end (its exact opening run), and how many ``<details>``
    are open outside code. A fence closes only on a run of the same character at least as long
    (CommonMark), so a ```` ``` ```` line inside a ```````` ```` ```````` block is content."""
    fence: str | None = None
    depth = 0
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match[1]
            continue
        if fence is not None:
            if (
                match
                and match[1][0] == fence[0]
                and len(match[1]) >= len(fence)
                and not line[match.end() :].strip()
            ):
                fence = None
            continue
        depth += len(re.findall(r"<details\b", line, flags=re.IGNORECASE))
        depth -= len(re.findall(r"</details\s*>", line, flags=re.IGNORECASE))
        depth = max(depth, 0)
    return fence, depth


def _too_long(exc: GithubException) -> bool:
    return exc.status == 422 and "too long" in describe(exc).lower()


@dataclass(frozen=True, kw_only=True)
class CommentOutcome:
    action: CommentAction
    url: str | None = None
    comment_id: int | None = None
    shortened: bool = False  # GitHub refused the full body as too long; a shorter one was posted


def upsert_comment(
    repo: Any,
    pr_number: int,
    body: str,
    *,
    marker: str,
    mode: CommentMode,
    changed: bool,
    author_login: str,
    full_report_url: str | None = None,
) -> CommentOutcome:
    """Create or update our one comment on the PR (found by marker and author, all pages).

    ``GET /repos/{o}/{r}/issues/{n}/comments`` (paginated), then
    ``POST /repos/{o}/{r}/issues/{n}/comments`` or ``PATCH /repos/{o}/{r}/issues/comments/{id}``.

    A 422 "body too long" is retried once with a shortened body that says where the full
    result is. Raises :class:`CannotPostComment`.
    """
    body = with_marker(body, marker)
    try:
        issue = repo.get_issue(pr_number)
        existing = None
        if mode != CommentMode.OFF:
            existing = next(
                (
                    c
                    for c in issue.get_comments()
                    if is_our_comment(
                        body=c.body,
                        author=c.user.login if c.user else None,
                        marker=marker,
                        author_login=author_login,
                    )
                ),
                None,
            )
        action = decide_comment_action(
            mode=mode, changed=changed, existing_body=existing.body if existing else None, body=body
        )
        log.info("PR #%s comment: %s", pr_number, action)
        if action == CommentAction.SKIP:
            return CommentOutcome(action=action)
        # UNCHANGED and UPDATE are decided only from an existing comment's body (existing_body
        # is None without one), so in those two cases ``existing`` is the comment found above.
        if action == CommentAction.UNCHANGED:
            assert existing is not None
            return CommentOutcome(action=action, url=existing.html_url, comment_id=existing.id)

        def write(text: str) -> Any:
            if action == CommentAction.UPDATE:
                assert existing is not None
                existing.edit(text)
                return existing
            return issue.create_comment(text)

        shortened = False
        try:
            comment = write(body)
        except GithubException as exc:
            if not _too_long(exc):
                raise
            where = f"the [job summary]({full_report_url})" if full_report_url else "the job summary"
            note = f"**The full result is too long for a comment; see {where}.**"
            log.warning("comment refused as too long (%d characters); posting a shortened one", len(body))
            # the renderer may put the marker last: a cut body must still carry it
            short = with_marker(shorten_body(body, limit=MAX_COMMENT_CHARS - 1_000, note=note), marker)
            if len(short) >= len(body):  # GitHub counts differently from us: fall back hard
                short = f"{marker}\n{note}"
            comment = write(short)
            shortened = True
        return CommentOutcome(action=action, url=comment.html_url, comment_id=comment.id, shortened=shortened)
    except GithubException as exc:
        hint = ""
        if exc.status in (401, 403, 404):
            hint = " (does the workflow grant `pull-requests: write`?)"
        raise CannotPostComment(f"cannot comment on PR #{pr_number}: {describe(exc)}{hint}") from exc


# ============================================================================================
# The check run


@dataclass(frozen=True, kw_only=True)
class Annotation:
    """A check-run annotation on a line of the user's code (repository-relative path)."""

    path: str
    start_line: int
    message: str
    end_line: int | None = None
    level: str = "failure"  # notice | warning | failure
    title: str | None = None
    raw_details: str | None = None

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line or self.start_line,
            "annotation_level": self.level,
            "message": self.message[:MAX_ANNOTATION_MESSAGE_CHARS],
        }
        if self.title:
            data["title"] = self.title[:255]
        if self.raw_details:
            data["raw_details"] = self.raw_details[:MAX_ANNOTATION_MESSAGE_CHARS]
        return data


def annotation_batches(
    annotations: Sequence[Annotation], size: int = MAX_ANNOTATIONS_PER_REQUEST
) -> list[list[dict[str, Any]]]:
    """Split into request-sized batches; always at least one (possibly empty) batch. Pure."""
    payload = [a.to_api() for a in annotations]
    return [payload[i : i + size] for i in range(0, len(payload), size)] or [[]]


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    check_run_id: int
    url: str | None
    annotations: int
    requests: int


def create_check_run(
    repo: Any,
    sha: str,
    *,
    name: str,
    conclusion: str,
    title: str,
    summary: str,
    annotations: Sequence[Annotation] = (),
    details_url: str | None = None,
) -> CheckOutcome:
    """Create a completed check run; annotations beyond the first 50 go in updates.

    ``POST /repos/{o}/{r}/check-runs``, then ``PATCH /repos/{o}/{r}/check-runs/{id}`` per batch.
    """
    summary = shorten_body(summary, limit=MAX_CHECK_TEXT_CHARS, note="*(cut: see the job summary)*")
    batches = annotation_batches(annotations)
    output: dict[str, Any] = {"title": title[:255], "summary": summary}
    extra = {"details_url": details_url} if details_url else {}
    try:
        check = repo.create_check_run(
            name=name,
            head_sha=sha,
            status="completed",
            conclusion=conclusion,
            output={**output, **({"annotations": batches[0]} if batches[0] else {})},
            **extra,
        )
        for batch in batches[1:]:
            check.edit(output={**output, "annotations": batch})
    except GithubException as exc:
        hint = " (does the workflow grant `checks: write`?)" if exc.status in (403, 404) else ""
        raise CannotCreateCheck(f"cannot create check run {name!r}: {describe(exc)}{hint}") from exc
    return CheckOutcome(
        check_run_id=check.id,
        url=check.html_url,
        annotations=len(annotations),
        requests=len(batches),
    )


# ============================================================================================
# Step outputs and the job summary (plain files the runner reads after the step)


def format_outputs(mapping: Mapping[str, object], *, delimiter: str | None = None) -> str:
    """``GITHUB_OUTPUT`` text: every value in heredoc form with a random delimiter. Pure but for
    the random delimiter, which callers (and tests) may pass."""
    lines = []
    for name, value in mapping.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise ValueError(f"invalid output name {name!r}")
        text = "" if value is None else str(value)
        mark = delimiter or f"ghadelimiter_{secrets.token_hex(16)}"
        while mark in text or mark in name:  # never let a value end the heredoc
            mark = f"ghadelimiter_{secrets.token_hex(16)}"
        lines.append(f"{name}<<{mark}\n{text}\n{mark}\n")
    return "".join(lines)


def write_outputs(path: Path | None, mapping: Mapping[str, object]) -> bool:
    """Append outputs to ``GITHUB_OUTPUT``; without one (local runs) log them. True if written."""
    if path is None:
        for name, value in mapping.items():
            log.info("output %s=%s", name, value)
        return False
    with path.open("a", encoding="utf-8") as handle:
        handle.write(format_outputs(mapping))
    return True


def append_summary(path: Path | None, markdown: str) -> bool:
    """Append to ``GITHUB_STEP_SUMMARY`` (GitHub shows up to 1 MiB per step)."""
    if path is None:
        return False
    with path.open("a", encoding="utf-8") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True


# ============================================================================================
# Which pull request a workflow_run belongs to (asked of the API, never of the artifact)


@dataclass(frozen=True, kw_only=True)
class PullRef:
    number: int
    head_sha: str
    head_ref: str | None
    head_repo: str | None
    base_sha: str | None
    base_ref: str | None
    html_url: str | None = None


def choose_pull_request(
    candidates: Iterable[PullRef], *, head_repo: str | None, head_sha: str
) -> PullRef | None:
    """The open PR whose head is exactly the run's commit, from the run's repository. Pure.

    A PR whose head moved on since the run is *not* chosen: its newer commit gets its own run,
    and a comment about an older commit must not overwrite the newer one.
    """
    for pr in candidates:
        same_repo = head_repo is None or (pr.head_repo or "").lower() == head_repo.lower()
        if same_repo and pr.head_sha == head_sha:
            return pr
    return None


def _pull_ref(pr: Any) -> PullRef:
    head_repo = pr.head.repo.full_name if pr.head.repo is not None else None
    return PullRef(
        number=pr.number,
        head_sha=pr.head.sha,
        head_ref=pr.head.ref,
        head_repo=head_repo,
        base_sha=pr.base.sha,
        base_ref=pr.base.ref,
        html_url=pr.html_url,
    )


def find_pull_request(repo: Any, *, head_repo: str | None, head_branch: str | None, head_sha: str) -> PullRef:
    """Find the open PR for a triggering run from its head repository, branch and sha.

    First ``GET /repos/{o}/{r}/pulls?head=OWNER:BRANCH&state=open`` (works for forks), then
    ``GET /repos/{o}/{r}/commits/{sha}/pulls``. Raises :class:`NoPullRequest`.
    """
    try:
        if head_repo and head_branch:
            owner = head_repo.split("/", 1)[0]
            listed = (_pull_ref(p) for p in repo.get_pulls(state="open", head=f"{owner}:{head_branch}"))
            found = choose_pull_request(listed, head_repo=head_repo, head_sha=head_sha)
            if found:
                return found
        by_commit = (_pull_ref(p) for p in repo.get_commit(head_sha).get_pulls() if p.state == "open")
        found = choose_pull_request(by_commit, head_repo=head_repo, head_sha=head_sha)
    except GithubException as exc:
        raise NoPullRequest(f"cannot look up the pull request for {head_sha[:12]}: {describe(exc)}") from exc
    if found is None:
        raise NoPullRequest(
            f"no open pull request has head {head_repo or '?'}@{head_sha[:12]}"
            + (f" (branch {head_branch})" if head_branch else "")
            + "; it may have been closed or pushed to since the run"
        )
    return found
