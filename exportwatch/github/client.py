"""A PyGithub client built for CI, and the domain errors the rest of the action sees.

Retries follow GitHub's documented rules (docs.github.com, "Rate limits for the REST API",
exceeding the rate limit), in :class:`GitHubRetry`, a urllib3 ``Retry``:

* a rate limit (429, or 403 with ``Retry-After``, ``x-ratelimit-remaining: 0`` or a
  rate-limit message), for any method (GitHub did not act on the request): wait
  ``Retry-After`` when sent; else, with ``x-ratelimit-remaining: 0``, until
  ``x-ratelimit-reset``; else (a secondary limit) ``secondary_rate_wait`` (60 s), doubled on
  each further retry. A wait over ``retry_after_max`` is never shortened: the request fails at
  once with :class:`RateLimitWaitTooLong`, a clean publish failure;
* a 5xx, a read timeout or a dropped connection: retried for reads (GET, HEAD) only, with
  exponential backoff. A write that failed that way may have been applied, so it is *not*
  resent here: :func:`write_once` reads back first and writes again only if it did not land;
* a connection that could not be opened is retried for every method (nothing was sent).

Every wait goes through ``ClientSettings.sleep`` (tests pass a recorder and never sleep for
real). Writes are spaced by ``seconds_between_writes`` (GitHub's advice against secondary
rate limits). The objects are built lazily (``lazy=True``): ``repo.get_issue(7)`` costs no
request, so the bot calls only the endpoints listed in ``tests/fakegithub/vendor.py``.

Version-dependent keywords of PyGithub's ``Github`` are passed only when the installed version
takes them (:func:`supported_keywords`); the retry rules are ours, so neither PyGithub's
``max_rate_limit_wait`` nor urllib3's ``retry_after_max`` is needed.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from exportwatch.errors import UsageError
from exportwatch.github.config import Secret

log = logging.getLogger(__name__)

#: Statuses GitHub answers a rate limit with (docs: "403 or 429").
RATE_LIMIT_STATUSES = frozenset({403, 429})
#: Methods that may be resent after a 5xx or a timeout: they change nothing.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Who ``GITHUB_TOKEN`` writes as. ``GET /user`` is forbidden to it (and to GitHub App
#: installation tokens, which write as ``<app-slug>[bot]``).
ACTIONS_BOT = "github-actions[bot]"

T = TypeVar("T")


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


class RateLimitWaitTooLong(GithubException):
    """GitHub asked for a longer wait than ``retry_after_max``: give up rather than retry early."""

    def __init__(self, status: int, *, wait: float, cap: float, headers: Mapping[str, str]) -> None:
        message = f"rate limited: GitHub asks to wait {wait:.0f} s, over the {cap:.0f} s cap; not retried"
        super().__init__(status, {"message": message}, dict(headers))
        self.wait = wait


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    api_url: str = "https://api.github.com"
    retries: int = 5
    backoff_factor: float = 1.0  # 5xx / timeouts on reads: 1, 2, 4, ... seconds (capped below)
    backoff_max: float = 60.0
    retry_after_max: float = 300.0  # the longest single wait accepted; a longer one fails the call
    secondary_rate_wait: float = 60.0  # GitHub: "wait at least one minute"; doubled per retry
    seconds_between_requests: float = 0.0
    seconds_between_writes: float = 1.0  # GitHub: wait a second between writes
    timeout: int = 30  # seconds; PyGithub asserts an int
    per_page: int = 100
    write_attempts: int = 3  # a POST/PATCH whose answer was lost: at most this many sends
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)


# --------------------------------------------------------------------------------------------
# How long to wait (pure)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts too."""
    wanted = name.lower()
    return next((str(v).strip() for k, v in headers.items() if k.lower() == wanted), None)


def retry_after_seconds(headers: Mapping[str, str], *, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or an HTTP date), or None."""
    value = _header(headers, "Retry-After")
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def is_rate_limited(status: int, headers: Mapping[str, str], message: str | None = None) -> bool:
    """A 429, or a 403 that GitHub marks as a rate limit (header or message). Pure."""
    if status == 429:
        return True
    if status != 403:
        return False
    if _header(headers, "Retry-After") or _header(headers, "x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in (message or "").lower()


def rate_limit_wait(
    headers: Mapping[str, str], *, attempt: int, now: float, settings: ClientSettings
) -> float:
    """Seconds to wait before retry ``attempt`` (1-based) of a rate-limited request. Pure.

    ``Retry-After`` first; else ``x-ratelimit-remaining: 0`` waits until ``x-ratelimit-reset``
    (plus a second: the reset is a whole second); else a secondary limit: at least
    ``secondary_rate_wait``, doubling with each retry.
    """
    after = retry_after_seconds(headers, now=now)
    if after is not None:
        return after
    reset = _header(headers, "x-ratelimit-reset")
    if _header(headers, "x-ratelimit-remaining") == "0" and reset and reset.isdigit():
        return max(int(reset) - now, 0.0) + 1.0
    return settings.secondary_rate_wait * 2 ** max(attempt - 1, 0)


def error_backoff(attempt: int, settings: ClientSettings) -> float:
    """Seconds before retry ``attempt`` (1-based) after a 5xx or a timeout. Pure."""
    return min(settings.backoff_factor * 2 ** max(attempt - 1, 0), settings.backoff_max)


def _response_message(response: Any) -> tuple[Any, str | None]:
    """The JSON body of a small error response and its ``message`` (reads the body)."""
    try:
        data = json.loads(response.data or b"null")
    except ValueError:
        return None, None
    return data, (data.get("message") if isinstance(data, dict) else None)


class GitHubRetry(Retry):
    """urllib3 ``Retry`` with GitHub's rate-limit rules, read-only retries of 5xx and timeouts,
    and every wait through ``settings.sleep`` (see the module docstring)."""

    def __init__(self, *, settings: ClientSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or ClientSettings()
        self.wait = 0.0

    def new(self, **kw: Any) -> GitHubRetry:
        retry = super().new(**kw)
        assert isinstance(retry, GitHubRetry)
        retry.settings = self.settings
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code in RATE_LIMIT_STATUSES:
            return True  # increment() tells a rate limit from a refusal
        return 500 <= status_code < 600 and method.upper() in READ_METHODS

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> GitHubRetry:
        settings = self.settings
        body_read, data = False, None
        if response is not None and response.status in RATE_LIMIT_STATUSES:
            message = None
            if not is_rate_limited(response.status, response.headers):
                body_read = True
                data, message = _response_message(response)
                if not is_rate_limited(response.status, response.headers, message):
                    # a permission refusal: not retried; the body is read, so raise it here
                    raise GithubException(response.status, data, dict(response.headers))
            attempt = 1 + sum(1 for h in self.history if h.status in RATE_LIMIT_STATUSES)
            wait = rate_limit_wait(response.headers, attempt=attempt, now=settings.clock(), settings=settings)
        elif response is not None:
            after = retry_after_seconds(response.headers, now=settings.clock())
            wait = after if after is not None else error_backoff(1 + len(self.history), settings)
        else:
            wait = error_backoff(1 + len(self.history), settings)
        if wait > settings.retry_after_max and response is not None:
            log.warning(
                "%s %s: GitHub asks to wait %.0f s, over the %.0f s cap",
                method,
                url,
                wait,
                settings.retry_after_max,
            )
            raise RateLimitWaitTooLong(
                response.status, wait=wait, cap=settings.retry_after_max, headers=response.headers
            )
        try:
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError:
            if body_read:  # the response reaching PyGithub would have lost its body
                raise GithubException(response.status, data, dict(response.headers)) from None
            raise
        assert isinstance(retry, GitHubRetry)
        retry.wait = wait
        log.info("%s %s: retrying in %.1f s", method, url, wait)
        return retry

    def sleep(self, response: Any = None) -> None:
        if self.wait > 0:
            self.settings.sleep(self.wait)


def make_retry(settings: ClientSettings) -> GitHubRetry:
    return GitHubRetry(
        settings=settings,
        total=settings.retries,
        allowed_methods=READ_METHODS,  # read errors (timeouts) are retried for these only
        raise_on_status=False,  # the last response reaches PyGithub, which raises GithubException
        respect_retry_after_header=False,  # increment() and sleep() do it, capped
    )


def supported_keywords(function: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``options`` that ``function`` accepts: an older PyGithub lacks some keywords."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return dict(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    dropped = sorted(set(options) - set(parameters))
    if dropped:
        log.info("this PyGithub does not take %s: left out", ", ".join(dropped))
    return {k: v for k, v in options.items() if k in parameters}


def build_github(token: Secret, settings: ClientSettings | None = None) -> Github:
    settings = settings or ClientSettings()
    options: dict[str, Any] = {
        "auth": Auth.Token(token.reveal()),
        "base_url": settings.api_url,
        "retry": make_retry(settings),
        "timeout": settings.timeout,
        "per_page": settings.per_page,
        "seconds_between_requests": settings.seconds_between_requests or None,
        "seconds_between_writes": settings.seconds_between_writes or None,
        "lazy": True,
        "user_agent": "exportwatch",
    }
    return Github(**supported_keywords(Github.__init__, options))


def my_login(gh: Github) -> str | None:
    """Who the token speaks for (``GET /user``), or None when GitHub will not say.

    ``GITHUB_TOKEN`` and GitHub App installation tokens may not read ``/user``; the caller then
    treats only :data:`ACTIONS_BOT` as a guess, never any other account.
    """
    try:
        return gh.get_user().login
    except GithubException as exc:
        if exc.status in (401, 403):
            log.info("GET /user refused (%s): the token's login is unknown", exc.status)
            return None
        raise


def describe(exc: GithubException) -> str:
    """A one-line reason from a PyGithub error (status and GitHub's message)."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = data.get("message") or exc.message or ""
    details = [  # GitHub sends objects ({"code": ...}) or plain strings (a review's 422)
        e if isinstance(e, str) else e.get("message") or e.get("code")
        for e in data.get("errors") or []
        if isinstance(e, str) or (isinstance(e, dict) and (e.get("message") or e.get("code")))
    ]
    parts = [str(exc.status), str(message), *map(str, details)]
    return " ".join(": ".join(p for p in parts if p and p != "None").split())


def describe_failure(exc: BaseException) -> str:
    """One line for any failure of a GitHub call: GitHub's reason, or the kind of network error."""
    if isinstance(exc, GithubException):
        return describe(exc)
    return type(exc).__name__


# --------------------------------------------------------------------------------------------
# Writes whose answer was lost


def is_ambiguous(exc: BaseException) -> bool:
    """A write that may or may not have been applied: a 5xx answer, a timeout, a lost connection."""
    if isinstance(exc, GithubException):
        return isinstance(exc.status, int) and exc.status >= 500
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def write_once(
    write: Callable[[], T], *, landed: Callable[[], T | None], settings: ClientSettings, what: str
) -> T:
    """Send a non-idempotent write; after an ambiguous failure read back (``landed``) and
    send again only when it did not land, at most ``settings.write_attempts`` times in all."""
    attempts = max(settings.write_attempts, 1)
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as exc:
            if not is_ambiguous(exc) or attempt == attempts:
                raise
            log.warning("%s: %s; reading back before writing again", what, describe_failure(exc))
        settings.sleep(error_backoff(attempt, settings))
        found = landed()
        if found is not None:
            log.info("%s: it went through after all", what)
            return found
    raise AssertionError("unreachable")  # pragma: no cover
