"""``ActionConfig``: the action's inputs and the runner's environment, parsed and validated.

The runner hands a Docker action its inputs as ``INPUT_<NAME>`` variables, upper-cased with
hyphens kept (``INPUT_GITHUB-TOKEN``); the composite variant sets the same names itself. Each
field has one small parser; a bad value raises :class:`ActionConfigError` naming the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from exportwatch.diff import DEFAULT_COVERAGE_THRESHOLD, Policy
from exportwatch.errors import UsageError
from exportwatch.manifest import KNOWN_DEVICES, KNOWN_TARGETS


class ActionConfigError(UsageError):
    """An input or runner variable with a value the action cannot use (exit code 2)."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        self.field_path = name
        super().__init__(f"{name}: {message}")


class Secret:
    """A string that never shows itself in ``repr``, ``str``, f-strings or logs.

    :meth:`handed_over` makes one whose value is read only when first needed (``reveal``,
    ``bool``, ``==``): the action's token stays on the entrypoint's descriptor until then."""

    __slots__ = ("_read", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._read: Callable[[], str] | None = None

    @classmethod
    def handed_over(cls, read: Callable[[], str]) -> Secret:
        secret = cls("")
        secret._read = read
        return secret

    def reveal(self) -> str:
        if self._read is not None:
            read, self._read = self._read, None
            self._value = read()
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.reveal() == self.reveal()

    def __hash__(self) -> int:
        return hash(("Secret", self.reveal()))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


class Mode(str, Enum):
    FULL = "full"  # sweep head (and base), diff, render, publish
    SWEEP = "sweep"  # sweep only and write the report(s); no token needed (untrusted half)
    PUBLISH = "publish"  # download a sweep's artifact and publish it; never imports torch
    MERGE = "merge"  # merge downloaded shard reports, then diff and publish; never imports torch

    def __str__(self) -> str:
        return self.value


class CommentMode(str, Enum):
    ALWAYS = "always"
    ON_CHANGE = "on-change"
    OFF = "off"

    def __str__(self) -> str:
        return self.value


FAIL_ON_POLICIES = tuple(policy.value for policy in Policy)  # the gate's own list
#: The artifact config/workflows/exportwatch-baseline.yml uploads on every push to main;
#: ``{sha}`` stands for the commit whose report it holds.
DEFAULT_BASELINE_ARTIFACT = "exportwatch-baseline-{sha}"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
#: ``max-annotations``: distinct failures annotated on the check run by default (one request).
DEFAULT_MAX_ANNOTATIONS = 50
#: The highest ``max-annotations`` accepted: it bounds the check run's writes (50 a request)
#: whatever the report holds (``github.publish.MAX_API_WRITES_PER_PUBLISH``).
MAX_ANNOTATIONS_CEILING = 500


# --------------------------------------------------------------------------------------------
# One parser per kind of field. Each takes the raw string and the name to blame.


def _nonempty_text(raw: str, name: str) -> str:
    value = raw.strip()
    if not value:
        raise ActionConfigError(name, "must not be empty")
    return value


def _optional_text(raw: str, name: str) -> str | None:
    return raw.strip() or None


def _block(raw: str, name: str) -> str:
    """Multi-line text (shell commands): keep inner newlines, drop surrounding blank space."""
    return raw.strip("\n").rstrip()


def _secret(raw: str, name: str) -> Secret | None:
    value = raw.strip()
    if any(c.isspace() for c in value):
        raise ActionConfigError(name, "the token contains whitespace; pass the token alone")
    return Secret(value) if value else None


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ActionConfigError(name, f"{raw.strip()!r} is not one of: {', '.join(options)}")
        return value

    return parse


def _flag(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("", "false", "no", "0", "off"):
        return False
    if value in ("true", "yes", "1", "on"):
        return True
    raise ActionConfigError(name, f"{raw.strip()!r} is not true or false")


def _flag_on(raw: str, name: str) -> bool:
    """A flag whose default is on: empty (an input passed through unset) reads as ``true``."""
    return True if not raw.strip() else _flag(raw, name)


def _enum(cls: type[Enum]) -> Callable[[str, str], Any]:
    options = tuple(m.value for m in cls)
    choose = _choice(options)

    def parse(raw: str, name: str) -> Any:
        return cls(choose(raw, name))

    return parse


def _base_env(raw: str, name: str) -> str:
    """``compare --base-env``: empty is the default, ``auto``."""
    return _choice(("auto", "venv", "never", "head"))(raw.strip() or "auto", name)


def _file_list(raw: str, name: str) -> tuple[str, ...]:
    """Paths separated by commas or whitespace, in order, without repeats."""
    return tuple(dict.fromkeys(f for f in re.split(r"[\s,]+", raw.strip()) if f))


def _targets(raw: str, name: str) -> tuple[str, ...]:
    items = tuple(t for t in re.split(r"[\s,]+", raw.strip()) if t)
    unknown = [t for t in items if t not in KNOWN_TARGETS]
    if unknown:
        raise ActionConfigError(
            name, f"unknown target(s) {', '.join(unknown)}; known: {', '.join(KNOWN_TARGETS)}"
        )
    return tuple(dict.fromkeys(items))


def _device(raw: str, name: str) -> str | None:
    value = raw.strip().lower()
    if not value:
        return None
    return _choice(KNOWN_DEVICES)(value, name)


def _positive_int(raw: str, name: str) -> int | None:
    value = raw.strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ActionConfigError(name, f"{value!r} is not a positive whole number")
    return int(value)


def _annotation_cap(raw: str, name: str) -> int:
    """``max-annotations``: 0 (none) to :data:`MAX_ANNOTATIONS_CEILING`; empty is the default."""
    value = raw.strip()
    if not value:
        return DEFAULT_MAX_ANNOTATIONS
    if not value.isdigit() or int(value) > MAX_ANNOTATIONS_CEILING:
        raise ActionConfigError(name, f"{value!r} is not a whole number from 0 to {MAX_ANNOTATIONS_CEILING}")
    return int(value)


def _flag_or_auto(raw: str, name: str) -> bool | None:
    """``true``, ``false`` or ``auto`` (None: the mode decides); empty is ``auto``."""
    value = raw.strip().lower()
    if value in ("", "auto"):
        return None
    if value not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        raise ActionConfigError(name, f"{raw.strip()!r} is not true, false or auto")
    return _flag(value, name)


def _coverage_points(raw: str, name: str) -> float:
    """``coverage-threshold``: percentage points, 0 to 100; empty is the default."""
    value = raw.strip().lower().removesuffix("%").strip()
    if not value:
        return DEFAULT_COVERAGE_THRESHOLD
    try:
        points = float(value)
    except ValueError:
        points = -1.0
    if not 0 <= points <= 100:  # NaN fails too
        raise ActionConfigError(name, f"{raw.strip()!r} is not a number of points from 0 to 100")
    return points


def _seconds(raw: str, name: str) -> float | None:
    value = raw.strip().lower().removesuffix("s")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ActionConfigError(name, f"{raw.strip()!r} is not a positive number of seconds")
    return seconds


def _shard(raw: str, name: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", value)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ActionConfigError(name, f"{value!r} is not a shard like 1/4 (I/N with 1 <= I <= N)")
    return value


def _path(raw: str, name: str) -> Path:
    value = raw.strip()
    if not value:
        raise ActionConfigError(name, "must not be empty")
    if "\x00" in value:
        raise ActionConfigError(name, "contains a NUL character")
    return Path(value)


def _optional_path(raw: str, name: str) -> Path | None:
    return _path(raw, name) if raw.strip() else None


def _repository(raw: str, name: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
        raise ActionConfigError(name, f"{value!r} is not OWNER/REPO")
    return value


def _sha(raw: str, name: str) -> str | None:
    value = raw.strip().lower()
    if not value:
        return None
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", value):
        raise ActionConfigError(name, f"{value!r} is not a commit sha")
    return value


def _url(raw: str, name: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ActionConfigError(name, f"{value!r} is not an http(s) URL")
    return value


def _run_id(raw: str, name: str) -> int | None:
    value = raw.strip()
    if not value:
        return None
    if not value.isdigit():
        raise ActionConfigError(name, f"{value!r} is not a run id")
    return int(value)


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ActionConfig:
    """Everything the action needs to know, from inputs (``INPUT_*``) and the runner (``GITHUB_*``)."""

    # inputs (action.yml)
    manifest: Path = Path("exportwatch.yml")
    github_token: Secret | None = None
    targets: tuple[str, ...] = ()
    device: str | None = None
    fail_on: str = "regression"
    allow_errors: bool = False
    fail_on_coverage_drop: bool = False  # a delegation coverage drop fails the step too
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD  # points lost before it is a drop
    comment: CommentMode = CommentMode.ON_CHANGE
    mode: Mode = Mode.FULL
    install: str = ""
    working_directory: Path = Path(".")
    workers: int | None = None
    timeout: float | None = None
    blockers: bool = True  # draft_export on each failing export origin: every blocker, not the first
    report_path: Path = Path("exportwatch-report.json")
    base: str | None = None
    shard: str | None = None
    artifact: str = "exportwatch-report"
    shards: Path = Path("exportwatch-shards")
    cache_dir: Path | None = None
    baseline_artifact: str | None = DEFAULT_BASELINE_ARTIFACT
    html_artifact: str | None = None  # the artifact the HTML report is uploaded in: links to it
    base_env: str = "auto"  # compare --base-env: where the base is swept when dependencies changed
    dependency_files: tuple[str, ...] = ()  # compare --dependency-file: what defines the environment
    max_annotations: int = DEFAULT_MAX_ANNOTATIONS  # distinct failures annotated on the check run
    fail_on_publish_error: bool | None = None  # None (auto): only mode publish fails, see below
    review_suggestions: bool = True  # verified fixes as suggested changes in a PR review
    # runner
    event_name: str | None = None
    event_path: Path | None = None
    repository: str | None = None
    sha: str | None = None
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    run_id: int | None = None
    output_path: Path | None = None
    summary_path: Path | None = None
    workspace: Path = Path(".")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionConfig:
        values: dict[str, Any] = {}
        for name, (source, parser) in _SOURCES.items():
            raw = _lookup(env, source)
            if raw is None:
                continue
            values[name] = parser(raw, _display_name(source))
        return cls(**values)

    # Derived places ----------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The directory the sweep runs in (``working-directory`` inside the workspace)."""
        return (self.workspace / self.working_directory).resolve()

    @property
    def report_file(self) -> Path:
        """``report-path`` on disk: relative paths are relative to the workspace."""
        return self.workspace / self.report_path

    @property
    def cache_path(self) -> Path | None:
        """``cache-dir`` on disk (absolute): relative paths are relative to the workspace."""
        return (self.workspace / self.cache_dir).resolve() if self.cache_dir else None

    @property
    def run_url(self) -> str | None:
        if self.repository and self.run_id is not None:
            return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"
        return None

    @property
    def fails_when_nothing_published(self) -> bool:
        """``fail-on-publish-error``: given, as given; ``auto``, only in ``mode: publish``, whose
        one purpose is publishing (its token can write); elsewhere the sweep's verdict is the job's
        point, and a fork's read-only token refuses every write (docs/action.md says why)."""
        if self.fail_on_publish_error is not None:
            return self.fail_on_publish_error
        return self.mode is Mode.PUBLISH

    def require(self, *names: str) -> None:
        """Raise when any named field is unset, naming the input or variable to set."""
        for name in names:
            if getattr(self, name) in (None, ""):
                source = _SOURCES[name][0]
                raise ActionConfigError(
                    _display_name(source),
                    f"is required in mode {self.mode}"
                    + (" (pass github-token: ${{ github.token }})" if name == "github_token" else ""),
                )


def _display_name(source: str) -> str:
    return f"input '{source.removeprefix('INPUT_').lower()}'" if source.startswith("INPUT_") else source


def _lookup(env: Mapping[str, str], source: str) -> str | None:
    if source in env:
        return env[source]
    if source.startswith("INPUT_") and "-" in source:
        # Some launchers cannot set names with hyphens; accept underscores as well.
        return env.get(source.replace("-", "_"))
    return None


_SOURCES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "manifest": ("INPUT_MANIFEST", _path),
    "github_token": ("INPUT_GITHUB-TOKEN", _secret),
    "targets": ("INPUT_TARGETS", _targets),
    "device": ("INPUT_DEVICE", _device),
    "fail_on": ("INPUT_FAIL-ON", _choice(FAIL_ON_POLICIES)),
    "allow_errors": ("INPUT_ALLOW-ERRORS", _flag),
    "fail_on_coverage_drop": ("INPUT_FAIL-ON-COVERAGE-DROP", _flag),
    "coverage_threshold": ("INPUT_COVERAGE-THRESHOLD", _coverage_points),
    "comment": ("INPUT_COMMENT", _enum(CommentMode)),
    "mode": ("INPUT_MODE", _enum(Mode)),
    "install": ("INPUT_INSTALL", _block),
    "working_directory": ("INPUT_WORKING-DIRECTORY", lambda raw, name: Path(raw.strip() or ".")),
    "workers": ("INPUT_WORKERS", _positive_int),
    "timeout": ("INPUT_TIMEOUT", _seconds),
    "blockers": ("INPUT_BLOCKERS", _flag_on),
    "report_path": ("INPUT_REPORT-PATH", _path),
    "base": ("INPUT_BASE", _optional_text),
    "shard": ("INPUT_SHARD", _shard),
    "artifact": ("INPUT_ARTIFACT", _nonempty_text),
    "shards": ("INPUT_SHARDS", _path),
    "cache_dir": ("INPUT_CACHE-DIR", _optional_path),
    "baseline_artifact": ("INPUT_BASELINE-ARTIFACT", _optional_text),
    "base_env": ("INPUT_BASE-ENV", _base_env),
    "dependency_files": ("INPUT_DEPENDENCY-FILES", _file_list),
    "html_artifact": ("INPUT_HTML-ARTIFACT", _optional_text),
    "max_annotations": ("INPUT_MAX-ANNOTATIONS", _annotation_cap),
    "fail_on_publish_error": ("INPUT_FAIL-ON-PUBLISH-ERROR", _flag_or_auto),
    "review_suggestions": ("INPUT_REVIEW-SUGGESTIONS", _flag_on),
    "event_name": ("GITHUB_EVENT_NAME", _optional_text),
    "event_path": ("GITHUB_EVENT_PATH", _optional_path),
    "repository": ("GITHUB_REPOSITORY", _repository),
    "sha": ("GITHUB_SHA", _sha),
    "api_url": ("GITHUB_API_URL", _url),
    "server_url": ("GITHUB_SERVER_URL", _url),
    "run_id": ("GITHUB_RUN_ID", _run_id),
    "output_path": ("GITHUB_OUTPUT", _optional_path),
    "summary_path": ("GITHUB_STEP_SUMMARY", _optional_path),
    "workspace": ("GITHUB_WORKSPACE", lambda raw, name: Path(raw.strip() or ".")),
}

#: The action inputs this config reads (``action.yml`` must declare exactly these).
INPUT_NAMES: tuple[str, ...] = tuple(
    source.removeprefix("INPUT_").lower() for source, _ in _SOURCES.values() if source.startswith("INPUT_")
)
