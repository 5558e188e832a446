"""A PyGithub client built for CI, and the domain errors the rest of the action sees.

Retries: urllib3 ``Retry`` through PyGithub's ``GithubRetry``, with exponential backoff on
5xx and 429, ``Retry-After`` honoured (urllib3 sleeps for it on any retried status), and 403
retried only when it is a rate limit (``Retry-After`` present, or a rate-limit message; a
secondary limit without ``Retry-After`` waits ``secondary_rate_wait``). Writes are spaced by
``seconds_between_writes`` (GitHub's advice against secondary rate limits).

The objects are built lazily (``lazy=True``): ``repo.get_issue(7)`` costs no request, so the
bot calls only the endpoints listed in ``tests/fakegithub/vendor.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from github import Auth, Github, GithubException, GithubRetry

from exportwatch.errors import UsageError
from exportwatch.github.config import Secret

log = logging.getLogger(__name__)

RETRIED_STATUSES = (429, *range(500, 600))  # GithubRetry adds 403 (rate limits only)
RETRIED_METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"})
#: GitHub's login for the Actions token (``GET /user`` is forbidden to it).
#: Who the token speaks for when ``GET /user`` is refused, as the Actions token and GitHub App
#: installation tokens are: some ``…[bot]`` account (github-actions[bot], my-app[bot]). No person
#: can hold such a login, so "any bot" is still never someone else's comment.
ANY_BOT = "[bot]"


class GitHubError(UsageError):
    """Base of the action's GitHub errors; the message never contains the token."""


class CannotPostComment(GitHubError):
    pass


class CannotCreateCheck(GitHubError):
    pass


class NoArtifact(GitHubError):
    """The artifact is missing, expired, too large, or unsafe to extract."""


class NoPullRequest(GitHubError):
    """No open pull request matches the triggering run's head repository and commit."""


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    api_url: str = "https://api.github.com"
    retries: int = 5
    backoff_factor: float = 1.0  # sleeps 0, 2, 4, 8, ... seconds between tries (capped below)
    backoff_max: float = 60.0
    retry_after_max: float = 300.0  # never sleep longer than this for one Retry-After
    secondary_rate_wait: float = 60.0  # a secondary rate limit without Retry-After
    seconds_between_requests: float = 0.0
    seconds_between_writes: float = 1.0  # GitHub: wait a second between writes
    timeout: int = 30
    per_page: int = 100


def make_retry(settings: ClientSettings) -> GithubRetry:
    return GithubRetry(
        total=settings.retries,
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.backoff_max,
        retry_after_max=settings.retry_after_max,
        respect_retry_after_header=True,
        status_forcelist=list(RETRIED_STATUSES),
        allowed_methods=RETRIED_METHODS,
        raise_on_status=False,  # the last response reaches PyGithub, which raises GithubException
        secondary_rate_wait=settings.secondary_rate_wait,
        max_rate_limit_wait=settings.retry_after_max,
    )


def build_github(token: Secret, settings: ClientSettings | None = None) -> Github:
    settings = settings or ClientSettings()
    return Github(
        auth=Auth.Token(token.reveal()),
        base_url=settings.api_url,
        retry=make_retry(settings),
        timeout=settings.timeout,
        per_page=settings.per_page,
        seconds_between_requests=settings.seconds_between_requests or None,
        seconds_between_writes=settings.seconds_between_writes or None,
        lazy=True,
        user_agent="exportwatch",
    )


def my_login(gh: Github) -> str:
    """Who the token speaks for: ``GET /user``, or the Actions bot when that is forbidden."""
    try:
        return gh.get_user().login
    except GithubException as exc:
        if exc.status in (401, 403):
            # The Actions token and App tokens may not read /user; they write as a [bot].
            log.info("GET /user refused (%s); our comment is the marked one by a [bot] account", exc.status)
            return ANY_BOT
        raise


def describe(exc: GithubException) -> str:
    """A one-line reason from a PyGithub error (status and GitHub's message)."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = data.get("message") or exc.message or ""
    details = [
        e.get("message") or e.get("code")
        for e in data.get("errors") or []
        if isinstance(e, dict) and (e.get("message") or e.get("code"))
    ]
    parts = [str(exc.status), str(message), *map(str, details)]
    return ": ".join(p for p in parts if p and p != "None")
