"""Review suggestions on the pull request: one review of suggested changes, kept up to date.

What to suggest is decided by :mod:`exportwatch.render.review` (pure); here, a pure decision of
what to write (:func:`decide_review`) and the thin calls that do it through PyGithub:

* ``GET /repos/{o}/{r}/pulls/{pull_number}/comments`` (all pages): the suggestions already
  posted, ours = our hidden marker *and* this token's login (like the PR comment's author
  check; with ``GITHUB_TOKEN``, whose login ``GET /user`` will not say, ``github-actions[bot]``);
* ``GET /repos/{o}/{r}/pulls/{pull_number}`` (the head has not moved on since the sweep) and
  ``GET /repos/{o}/{r}/pulls/{pull_number}/files`` (each file's ``patch``: the lines a review
  comment may go on), only when the report holds a fix to suggest;
* ``POST /repos/{o}/{r}/pulls/{pull_number}/reviews``: ONE review (``event: COMMENT``, on the
  head commit) with every new suggestion, never one review per fix;
* ``PATCH /repos/{o}/{r}/pulls/comments/{comment_id}``: a suggestion posted before whose text
  changed is edited in place; one no longer wanted (the blocker is gone, the line changed) is
  *retired*: edited to say so, its suggestion block removed. Not deleted: the thread's replies
  stay in context, GitHub keeps the earlier text in the comment's edit history, and the reader
  sees why the suggestion went away. A retired comment is not written again, and an outdated
  one (GitHub no longer places it on a line of the diff; its suggestion cannot be committed) is
  left as it is.

Writes are bounded (:data:`MAX_REVIEW_WRITES` a publish: the review, then retirements, then
edits; what is left waits for the next push) and a write whose answer was lost is read back
before it is sent again. Everything here is optional: the caller turns any failure into a
warning, after the PR comment and the check run are written.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import requests
from github import GithubException

from exportwatch.github.client import (
    ACTIONS_BOT,
    ClientSettings,
    GitHubError,
    describe_failure,
    write_once,
)
from exportwatch.render.review import (
    MAX_DIFF_FILES,
    PullDiff,
    Suggestion,
    read_marker,
    retired_body,
    review_body,
)

log = logging.getLogger(__name__)

#: Writes one publish spends on the review: the one review POST, then at most this many minus
#: one edits of suggestions posted before (retirements first).
MAX_REVIEW_WRITES = 10


class CannotReview(GitHubError):
    """The review suggestions could not be read or written (the rest of publishing goes on)."""


@dataclass(frozen=True, kw_only=True)
class Posted:
    """A suggestion of ours already on the pull request."""

    id: int
    key: str
    path: str | None
    line: int | None  # where GitHub places it now; None: outdated (its line left the diff)
    body: str
    retired: bool


@dataclass(frozen=True, kw_only=True)
class ReviewPlan:
    """What to write: one review of new suggestions, edits in place, retirements."""

    create: tuple[Suggestion, ...] = ()
    update: tuple[tuple[int, str], ...] = ()  # (comment id, new body)
    retire: tuple[tuple[int, str], ...] = ()  # (comment id, retired body)
    unchanged: int = 0
    left_out: int = 0  # edits over the budget: the next push makes them

    @property
    def writes(self) -> int:
        return (1 if self.create else 0) + len(self.update) + len(self.retire)


def decide_review(
    posted: Sequence[Posted],
    wanted: Sequence[Suggestion],
    *,
    scope: str | None = None,
    sha: str | None = None,
    budget: int = MAX_REVIEW_WRITES,
) -> ReviewPlan:
    """What to write so that the PR shows exactly ``wanted``. Pure.

    A wanted suggestion whose key is posted *at its line* (GitHub still places it there) is
    edited if its text differs, else left alone; any other is new, and goes in the one review.
    A posted suggestion no longer wanted (or a second copy of one) is retired unless it is
    already retired or outdated. Within ``budget`` writes: the review first, then retirements
    (a suggestion that no longer holds must not stay one click from a commit), then edits.
    """
    by_key: dict[str, list[Posted]] = {}
    for p in sorted(posted, key=lambda p: p.id):
        by_key.setdefault(p.key, []).append(p)
    create: list[Suggestion] = []
    update: list[tuple[int, str]] = []
    kept: set[int] = set()
    unchanged = 0
    for want in wanted:
        here = next(
            (p for p in by_key.get(want.key, []) if p.path == want.path and p.line == want.line), None
        )
        if here is None:
            create.append(want)
            continue
        kept.add(here.id)
        if here.body == want.body:
            unchanged += 1
        else:
            update.append((here.id, want.body))
    retire = [
        (p.id, retired_body(p.key, scope=scope, sha=sha))
        for p in sorted(posted, key=lambda p: p.id)
        if p.id not in kept and not p.retired and p.line is not None
    ]
    room = max(budget - (1 if create else 0), 0)
    edits = [*retire, *update]
    left_out = max(len(edits) - room, 0)
    chosen = set(edits[:room])
    return ReviewPlan(
        create=tuple(create),
        update=tuple(u for u in update if u in chosen),
        retire=tuple(r for r in retire if r in chosen),
        unchanged=unchanged,
        left_out=left_out,
    )


# ============================================================================================
# Reading the pull request


@dataclass(frozen=True, kw_only=True)
class PullState:
    """What the pull request holds now: our suggestions, and its diff when it was read."""

    posted: tuple[Posted, ...] = ()
    diff: PullDiff | None = None  # None: not read (nothing to suggest) or the head moved on
    head_moved: str | None = None  # the PR's head, when it is no longer the swept commit
    comments: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)


def is_ours(comment: Any, *, scope: str | None, login: str) -> Posted | None:
    """``comment`` as a :class:`Posted` when it carries our marker (this scope) and is by
    ``login``; else None: another account's comment, a bot's included, is never touched."""
    marker = read_marker(comment.body)
    author = comment.user.login if comment.user else None
    if marker is None or marker.scope != scope or not author or author.lower() != login.lower():
        return None
    return Posted(
        id=comment.id,
        key=marker.key,
        path=comment.path,
        line=comment.line,
        body=comment.body,
        retired=marker.retired,
    )


def _ours(pr: Any, *, scope: str | None, login: str) -> tuple[list[Posted], dict[int, Any]]:
    posted: list[Posted] = []
    objects: dict[int, Any] = {}
    for comment in pr.get_review_comments():
        found = is_ours(comment, scope=scope, login=login)
        if found is not None:
            posted.append(found)
            objects[found.id] = comment
    return posted, objects


def read_pull(
    repo: Any, number: int, *, sha: str, scope: str | None, author_login: str | None, need_diff: bool
) -> PullState:
    """Our suggestions on PR ``number`` and, with ``need_diff``, its diff. When there is
    something to add or to retire, the PR's head must still be ``sha``: else ``head_moved``
    (a newer push has its own run, and its lines may differ). Raises :class:`CannotReview`."""
    login = author_login or ACTIONS_BOT
    try:
        pr = repo.get_pull(number)  # lazy: no request
        posted, objects = _ours(pr, scope=scope, login=login)
        if not need_diff and not any(p.line is not None and not p.retired for p in posted):
            return PullState(posted=tuple(posted), comments=objects)  # nothing to add or retire
        head = pr.head.sha
        if head != sha:
            log.info("PR #%s moved on to %s: no suggestions for %s", number, head[:12], sha[:12])
            return PullState(posted=tuple(posted), head_moved=head, comments=objects)
        if not need_diff:
            return PullState(posted=tuple(posted), comments=objects)
        files = itertools.islice(((f.filename, f.patch) for f in pr.get_files()), MAX_DIFF_FILES)
        return PullState(posted=tuple(posted), diff=PullDiff.of(files), comments=objects)
    except (GithubException, requests.RequestException) as exc:
        why = describe_failure(exc)
        raise CannotReview(f"cannot read PR #{number} for review suggestions: {why}") from exc


# ============================================================================================
# Writing


@dataclass(frozen=True, kw_only=True)
class ReviewOutcome:
    created: int = 0  # suggestions in the new review (0: none posted)
    updated: int = 0
    retired: int = 0
    unchanged: int = 0
    left_out: int = 0
    review_url: str | None = None
    warnings: tuple[str, ...] = ()


def write_review(
    repo: Any,
    number: int,
    plan: ReviewPlan,
    *,
    state: PullState,
    sha: str,
    scope: str | None,
    author_login: str | None,
    settings: ClientSettings | None = None,
) -> ReviewOutcome:
    """Carry out ``plan`` on PR ``number``: the review of new suggestions on ``sha``, then the
    retirements and edits. A refusal (401, 403) stops here with :class:`CannotReview`; another
    failure of one write is a warning and the others go on."""
    settings = settings or ClientSettings()
    login = author_login or ACTIONS_BOT
    pr = repo.get_pull(number)
    warnings: list[str] = []
    review_url: str | None = None
    created = 0
    if plan.create:
        comments = [{"path": s.path, "line": s.line, "side": "RIGHT", "body": s.body} for s in plan.create]
        keys = {s.key for s in plan.create}

        def landed() -> Any:
            posted, _ = _ours(pr, scope=scope, login=login)
            return True if keys <= {p.key for p in posted if not p.retired} else None

        try:
            review = write_once(
                lambda: pr.create_review(
                    commit=repo.get_commit(sha),  # lazy: the sha alone
                    body=review_body(len(comments)),
                    event="COMMENT",
                    comments=comments,
                ),
                landed=landed,
                settings=settings,
                what=f"POST review on PR #{number}",
            )
            review_url = getattr(review, "html_url", None)
            created = len(comments)
        except (GithubException, requests.RequestException) as exc:
            _refused(exc, number)
            warnings.append(f"cannot post the review of suggestions on PR #{number}: {describe_failure(exc)}")
    done = {"update": 0, "retire": 0}
    for what, edits in (("retire", plan.retire), ("update", plan.update)):
        for comment_id, body in edits:
            comment = state.comments.get(comment_id)
            if comment is None:
                continue
            try:
                write_once(
                    partial(_edit, comment, body),
                    landed=lambda: None,  # the same body again changes nothing: resend
                    settings=settings,
                    what=f"PATCH review comment {comment_id}",
                )
                done[what] += 1
            except (GithubException, requests.RequestException) as exc:
                _refused(exc, number)
                why = describe_failure(exc)
                warnings.append(f"cannot edit suggestion {comment_id} on PR #{number}: {why}")
    return ReviewOutcome(
        created=created,
        updated=done["update"],
        retired=done["retire"],
        unchanged=plan.unchanged,
        left_out=plan.left_out,
        review_url=review_url,
        warnings=tuple(warnings),
    )


def _edit(comment: Any, body: str) -> bool:
    comment.edit(body)
    return True


def _refused(exc: BaseException, number: int) -> None:
    """A refusal of the token (401, 403) ends the review's writes: the next would be refused too."""
    if isinstance(exc, GithubException) and exc.status in (401, 403):
        raise CannotReview(
            f"cannot post review suggestions on PR #{number}: {describe_failure(exc)} "
            "(does the workflow grant `pull-requests: write`?)"
        ) from exc
