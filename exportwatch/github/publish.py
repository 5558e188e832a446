"""Publishing: the PR comment, the check run, step outputs, the job summary, and PR lookup.

Each operation is split in two: a pure function that decides what to do (returns an enum or a
plain value, tested without a network) and a thin function that does it through PyGithub and
turns GitHub's failures into the domain errors of :mod:`exportwatch.github.client`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import requests
from github import GithubException

from exportwatch.errors import WriteError
from exportwatch.github.client import (
    ACTIONS_BOT,
    CannotCreateCheck,
    CannotPostComment,
    ClientSettings,
    NoPullRequest,
    describe,
    describe_failure,
    write_once,
)
from exportwatch.github.config import MAX_ANNOTATIONS_CEILING, CommentMode
from exportwatch.github.review import MAX_REVIEW_WRITES
from exportwatch.render.escape import UNSAFE_CHARACTERS, md_code, md_text, repository_path
from exportwatch.report.io import write_all

log = logging.getLogger(__name__)

#: Issue comments: GitHub answers 422 "Body is too long (maximum is 65536 characters)".
MAX_COMMENT_CHARS = 65_536
#: Check-run ``output.summary`` / ``output.text``: documented as 65535 characters, enforced as
#: UTF-8 bytes ("summary exceeds a maximum bytesize of 65535", github/docs#35252).
MAX_CHECK_TEXT_BYTES = 65_535
MAX_ANNOTATIONS_PER_REQUEST = 50
#: The writes (POST / PATCH) one publish sends, whatever the report holds: the comment, once
#: more shortened if GitHub refuses it as too long; the check run, with the first 50 annotations;
#: one update per further 50, at most ``MAX_ANNOTATIONS_CEILING`` (500) in all; the review of
#: suggested changes and the edits of earlier suggestions (``github.review.MAX_REVIEW_WRITES``).
#: Each write is sent at most ``ClientSettings.write_attempts`` times when its answer is lost.
MAX_API_WRITES_PER_PUBLISH = (
    2 + 1 + (-(-MAX_ANNOTATIONS_CEILING // MAX_ANNOTATIONS_PER_REQUEST) - 1) + MAX_REVIEW_WRITES
)
#: GitHub's limit on one step's job summary ("Job summaries are limited to 1MiB"): over it, the
#: step's summary is refused whole and the run's page shows none.
MAX_STEP_SUMMARY_BYTES = 1024 * 1024
#: Annotation ``message`` and ``raw_details``: "64 KB"; 64,000 bytes is under it however counted.
MAX_ANNOTATION_BYTES = 64_000
MAX_ANNOTATION_TITLE_CHARS = 255
#: GitHub refuses a whole check run for one annotation character above U+FFFF (an emoji).
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


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
    """Ours = carries the hidden marker *and* was written by exactly this login. Pure.

    Any other account's comment is left alone, a bot's included: a comment quoting our marker,
    or another app's, cannot be edited by this token (GitHub answers 403)."""
    if not body or marker not in body or not author:
        return False
    return author.lower() == author_login.lower()


def with_marker(body: str, marker: str) -> str:
    return body if marker in body else f"{marker}\n{body}"


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8: how GitHub measures check-run text and annotations."""
    return len(text.encode("utf-8", "surrogatepass"))


def cap_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes (never half a character)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    return data[: max(max_bytes, 0)].decode("utf-8", "ignore")


def shorten_body(
    body: str, *, limit: int = MAX_COMMENT_CHARS, note: str, size: Callable[[str], int] = len
) -> str:
    """Cut ``body`` at a line boundary so that it, the closing tags and ``note`` fit in ``limit``
    as ``size`` measures (``len``: characters, for comments; :func:`utf8_size`: bytes, for
    check-run text). The result is always within ``limit``: the cut is measured after the
    closers are added, and shrinks until it fits (down to the note alone, itself cut if need be).

    Closes what the cut left open (a code fence, ``<details>`` blocks) so the rest of the
    comment still renders. A safety net only: the renderer truncates by priority first.
    """
    if size(body) <= limit:
        return body
    cut = min(len(body), max(limit, 0))
    while cut > 0:
        kept = body[:cut]
        if "\n" in kept:
            kept = kept[: kept.rfind("\n")]
        fence, depth = _open_blocks(kept)
        closers = ([fence] if fence else []) + ["</details>"] * depth
        short = "\n".join([kept, *closers, "", note])
        over = size(short) - limit
        if over <= 0:
            return short
        # each character dropped frees at least one unit; new closers may need more: loop
        cut = min(cut - 1, len(kept) - over)
    return note if size(note) <= limit else _cap(note, limit, size)


def _cap(text: str, limit: int, size: Callable[[str], int]) -> str:
    while text and size(text) > limit:
        text = text[: len(text) - max(size(text) - limit, 1)]
    return text


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
    author_login: str | None,
    full_report_url: str | None = None,
    settings: ClientSettings | None = None,
) -> CommentOutcome:
    """Create or update our one comment on the PR (found by marker and author, all pages).

    ``GET /repos/{o}/{r}/issues/{n}/comments`` (paginated), then
    ``POST /repos/{o}/{r}/issues/{n}/comments`` or ``PATCH /repos/{o}/{r}/issues/comments/{id}``.

    ``author_login`` None: the token cannot say who it is (``GET /user`` refused). Then only a
    comment by :data:`~exportwatch.github.client.ACTIONS_BOT` (``GITHUB_TOKEN``'s account) is
    taken as ours, and if GitHub refuses to let us edit it, we are someone else (an App's
    token): a new comment is posted and theirs is left alone.

    A write whose answer is lost (5xx, timeout) is followed by a re-read, never a blind resend
    (:func:`~exportwatch.github.client.write_once`). A 422 "body too long" is retried once
    with a shortened body that says where the full result is. Raises :class:`CannotPostComment`.
    """
    settings = settings or ClientSettings()
    body = with_marker(body, marker)
    login = author_login or ACTIONS_BOT
    try:
        issue = repo.get_issue(pr_number)

        def ours() -> Any:
            return next(
                (
                    c
                    for c in issue.get_comments()
                    if is_our_comment(
                        body=c.body,
                        author=c.user.login if c.user else None,
                        marker=marker,
                        author_login=login,
                    )
                ),
                None,
            )

        existing = ours() if mode != CommentMode.OFF else None
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
            nonlocal existing, action

            def landed() -> Any:
                found = ours()
                return found if found is not None and found.body == text else None

            if existing is not None:
                try:
                    return write_once(
                        lambda: _edited(existing, text),
                        landed=landed,
                        settings=settings,
                        what="PATCH comment",
                    )
                except GithubException as exc:
                    if author_login is not None or exc.status not in (403, 404):
                        raise
                    log.info(
                        "the %s comment is not ours to edit (%s): posting our own", ACTIONS_BOT, exc.status
                    )
                    existing, action = None, CommentAction.CREATE
            return write_once(
                lambda: issue.create_comment(text), landed=landed, settings=settings, what="POST comment"
            )

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
    except (GithubException, requests.RequestException) as exc:
        hint = ""
        if isinstance(exc, GithubException) and exc.status in (401, 403, 404):
            hint = " (does the workflow grant `pull-requests: write`?)"
        raise CannotPostComment(f"cannot comment on PR #{pr_number}: {describe_failure(exc)}{hint}") from exc


def _edited(comment: Any, text: str) -> Any:
    comment.edit(text)
    return comment


# ============================================================================================
# The check run


def annotation_text(text: str, *, one_line: bool = False) -> str:
    """Text GitHub stores in an annotation: no control or invisible characters (tab and newline
    kept unless ``one_line``), and no character above U+FFFF (GitHub refuses the whole check
    run for one), each replaced by U+FFFD. Pure."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if one_line:
        text = " ".join(text.split())
    return _ASTRAL.sub("\ufffd", UNSAFE_CHARACTERS.sub("", text))


@dataclass(frozen=True, kw_only=True)
class Annotation:
    """A check-run annotation on a line of the user's code.

    ``path`` is repository-relative (:func:`repository_path`); None when the report named no
    file of the repository: such an annotation goes to the log without a file, never to the
    check run (GitHub requires a path there)."""

    path: str | None
    start_line: int
    message: str
    end_line: int | None = None
    level: str = "failure"  # notice | warning | failure
    title: str | None = None
    raw_details: str | None = None

    def to_api(self) -> dict[str, Any]:
        """The API's shape, within GitHub's limits: message and raw_details in UTF-8 bytes."""
        data: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line or self.start_line,
            "annotation_level": self.level,
            "message": cap_utf8(annotation_text(self.message), MAX_ANNOTATION_BYTES) or "(no message)",
        }
        title = annotation_text(self.title or "", one_line=True)[:MAX_ANNOTATION_TITLE_CHARS]
        if title:
            data["title"] = title
        details = cap_utf8(annotation_text(self.raw_details or ""), MAX_ANNOTATION_BYTES)
        if details:
            data["raw_details"] = details
        return data


def annotation_batches(
    annotations: Sequence[Annotation], size: int = MAX_ANNOTATIONS_PER_REQUEST
) -> list[list[dict[str, Any]]]:
    """Split into request-sized batches; always at least one (possibly empty) batch. Pure.

    Annotations without a repository path are left out (see :class:`Annotation`)."""
    payload = [a.to_api() for a in annotations if repository_path(a.path) == a.path and a.path]
    return [payload[i : i + size] for i in range(0, len(payload), size)] or [[]]


def more_annotations_note(left_out: int, *, annotated: int) -> str:
    """The check summary's last line when failures went unannotated: "and N more". Pure."""
    if left_out <= 0:
        return ""
    return (
        f"*{annotated} distinct failure(s) annotated, and {left_out} more: the job summary and "
        "the report list them all (input `max-annotations`).*"
    )


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
    settings: ClientSettings | None = None,
    external_id: str | None = None,
    left_out: int = 0,
) -> CheckOutcome:
    """Create a completed check run; annotations beyond the first 50 go in updates.

    At most ``MAX_ANNOTATIONS_CEILING`` annotations are sent (the rest are counted with
    ``left_out``, the failures the caller did not annotate): the summary ends "and N more".

    ``POST /repos/{o}/{r}/check-runs``, then ``PATCH /repos/{o}/{r}/check-runs/{id}`` per batch.
    A write whose answer is lost is read back before it is sent again: the check run by its
    ``external_id`` among ``GET /repos/{o}/{r}/commits/{ref}/check-runs`` of this name, a batch
    by the run's annotation count (``GET /repos/{o}/{r}/check-runs/{id}``; GitHub appends
    annotations, so a resent batch would show twice).
    """
    settings = settings or ClientSettings()
    external_id = external_id or f"exportwatch-{secrets.token_hex(8)}"
    placed = [a for a in annotations if a.path and repository_path(a.path) == a.path]
    left_out += max(len(placed) - MAX_ANNOTATIONS_CEILING, 0)
    more = more_annotations_note(left_out, annotated=min(len(placed), MAX_ANNOTATIONS_CEILING))
    summary = shorten_body(
        summary,
        limit=MAX_CHECK_TEXT_BYTES - (utf8_size(more) + 2 if more else 0),
        note="*(cut: see the job summary)*",
        size=utf8_size,
    ) + (f"\n\n{more}" if more else "")
    batches = annotation_batches(placed[:MAX_ANNOTATIONS_CEILING])
    output: dict[str, Any] = {"title": annotation_text(title, one_line=True)[:255], "summary": summary}
    extra = {"details_url": details_url} if details_url else {}

    def create() -> Any:
        return repo.create_check_run(
            name=name,
            head_sha=sha,
            external_id=external_id,
            status="completed",
            conclusion=conclusion,
            output={**output, **({"annotations": batches[0]} if batches[0] else {})},
            **extra,
        )

    def created() -> Any:
        runs = repo.get_commit(sha).get_check_runs(check_name=name)
        return next((r for r in runs if r.external_id == external_id), None)

    try:
        check = write_once(create, landed=created, settings=settings, what=f"POST check run {name!r}")
        sent = len(batches[0])
        for batch in batches[1:]:
            sent += len(batch)

            def append(batch: list[dict[str, Any]] = batch) -> bool:
                check.edit(output={**output, "annotations": batch})
                return True

            def appended(expected: int = sent) -> bool | None:
                count = repo.get_check_run(check.id).output.annotations_count
                return True if count >= expected else None

            write_once(append, landed=appended, settings=settings, what=f"PATCH check run {check.id}")
    except (GithubException, requests.RequestException) as exc:
        status = exc.status if isinstance(exc, GithubException) else None
        hint = " (does the workflow grant `checks: write`?)" if status in (403, 404) else ""
        raise CannotCreateCheck(f"cannot create check run {name!r}: {describe_failure(exc)}{hint}") from exc
    return CheckOutcome(
        check_run_id=check.id,
        url=check.html_url,
        annotations=sum(len(b) for b in batches),
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
    _append(path, format_outputs(mapping), what="the step's outputs, GITHUB_OUTPUT")
    return True


def append_summary(path: Path | None, markdown: str, *, artifact: str | None = None) -> bool:
    """Append to ``GITHUB_STEP_SUMMARY``, kept with what the step wrote before within GitHub's
    1 MiB (:func:`cut_summary`; ``artifact`` is where the cut line says the full report is)."""
    if path is None:
        return False
    try:
        written = path.stat().st_size if path.is_file() else 0
    except OSError:
        written = 0  # the append below says what is wrong
    text = cut_summary(markdown, max_bytes=MAX_STEP_SUMMARY_BYTES - written, artifact=artifact)
    _append(path, text, what="the job summary, GITHUB_STEP_SUMMARY")
    return True


def summary_cut_line(artifact: str | None) -> str:
    """The line that ends a job summary cut to fit GitHub's limit. Pure."""
    where = f"the artifact {md_code(artifact)}" if artifact else "the report artifact"
    return f"**✂ cut here: the full report is in {where}** (GitHub shows at most 1 MiB of a job summary)"


def cut_summary(markdown: str, *, max_bytes: int, artifact: str | None) -> str:
    """``markdown`` ending in a newline, within ``max_bytes`` UTF-8 bytes: else cut at a line
    boundary (never inside a line, so never inside an escaped construct), what the cut left
    open closed (a code fence, ``<details>``), then :func:`summary_cut_line`. Pure."""
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    if utf8_size(text) <= max_bytes:
        return text
    note = summary_cut_line(artifact)
    return shorten_body(text, limit=max(max_bytes - 1, 0), note=note, size=utf8_size) + "\n"


def _append(path: Path, text: str, *, what: str) -> None:
    """Append all of ``text`` or nothing: a write cut short (a full disk, ``ulimit -f``) is cut
    off again, so the runner never reads half an output heredoc, and is one :class:`WriteError`."""
    data = text.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise WriteError(path, exc, what=what) from None
    size: int | None = None
    try:
        size = os.fstat(fd).st_size
        write_all(fd, data)
    except OSError as exc:
        if size is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
        raise WriteError(path, exc, what=what) from None
    finally:
        os.close(fd)


def unpublished_summary(
    problem: str, *, artifact: str, sweep_run_url: str | None, publish_run_url: str | None
) -> str:
    """The job summary of a publish that could not read the sweep's reports (the artifact is
    missing, expired, refused or GitHub is down): what happened and how to try again, so the
    run's page says it even though no comment and no check run could be written. Pure.

    ``problem`` is the error's one line; it may quote GitHub's answer, so it is escaped.
    """
    sweep = f"[the sweep's run]({sweep_run_url})" if sweep_run_url else "the sweep's run"
    last = (publish_run_url or "").rstrip("/").rsplit("/", 1)[-1]
    run_id = last if last.isdigit() else "RUN_ID"
    lines = [
        "## exportwatch: nothing published",
        "",
        f"The reports in artifact {md_code(artifact)} of {sweep} could not be read, so no PR comment "
        "and no check run were written, and the pull request shows no exportwatch result.",
        "",
        f"> {md_text(problem, limit=1000)}",
        "",
        "**To try again:** when GitHub answers again (an error 5xx, a rate limit, a network "
        f"failure), re-run this job{f' ([this run]({publish_run_url}))' if publish_run_url else ''}: "
        f'"Re-run jobs" → "Re-run failed jobs", or `gh run rerun {run_id} --failed`. When the '
        "artifact is gone (expired, never uploaded), re-run the sweep's workflow instead: "
        "publishing runs again when it finishes.",
    ]
    return "\n".join(lines) + "\n"


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
