"""The versioned report contract: dataclasses that round-trip through JSON.

A report is the product's memory: diffs, base comparisons and shard merges all read it, so it
is plain data (no pickled exceptions, no torch objects) and carries a ``schema_version``.
This module must not import torch: the publish half of the fork-safe flow reads reports.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import IO, Any

SCHEMA_VERSION = 1
#: Caps that keep a report small enough to publish and to diff.
MAX_MESSAGE_CHARS = 500
MAX_DETAIL_CHARS = 8_000
#: Reports may come from untrusted pull-request runs: commands refuse larger files up front.
MAX_REPORT_BYTES = 256 * 1024 * 1024


class Verdict(str, Enum):
    """What happened to one submodule (or, for the root, to the whole job)."""

    OK = "ok"
    FAIL = "fail"
    MISMATCH = "mismatch"  # exported, but the exported program disagrees with eager
    SKIPPED = "skipped"
    COVERED = "covered"  # an ancestor exported, so this subtree is proven exportable
    SAME_AS = "same-as"  # identical to an already-tried submodule; not re-exported
    CRASH = "crash"
    TIMEOUT = "timeout"
    OOM = "oom"
    NOT_CALLED = "not-called"
    ERROR = "error"  # exportwatch itself failed while checking this: a bug to report, never a pass

    def __str__(self) -> str:
        return self.value


#: Verdicts that mean "the export works" for this cell.
PASSING = frozenset({Verdict.OK, Verdict.COVERED})
#: Verdicts that mean "this export does not work" (including infrastructure failures).
FAILING = frozenset(
    {Verdict.FAIL, Verdict.MISMATCH, Verdict.CRASH, Verdict.TIMEOUT, Verdict.OOM, Verdict.ERROR}
)
#: Failures of the machine rather than of the model: kept apart in diffs.
INFRASTRUCTURE = frozenset({Verdict.CRASH, Verdict.TIMEOUT, Verdict.OOM})
#: Where to report a bug in exportwatch itself (the ``error`` verdict asks for one).
BUG_REPORT_URL = "https://github.com/exportwatch/exportwatch/issues"


class ResultSource(str, Enum):
    """Where a job result came from (base results may be reused rather than swept)."""

    SWEPT = "swept"
    REUSED = "reused"
    BASELINE = "baseline"
    CACHE = "cache"

    def __str__(self) -> str:
        return self.value


def cap(text: str | None, limit: int) -> str | None:
    """Cut ``text`` to ``limit`` characters, saying how much was cut."""
    if text is None or len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}\n… [{cut} more characters cut]"


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (exception messages often start with a blank)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


@dataclass(kw_only=True)
class UserFrame:
    """The line of code that led to a failure.

    In the repository: ``path`` is repo-relative and ``library`` is None. When no repository
    frame took part (a failure inside transformers, timm, an installed package of the user's),
    the innermost frame of that library: ``library`` names the distribution's top-level package
    and ``path`` is relative to the directory that holds it (``transformers/models/...``).
    """

    path: str
    line: int
    function: str
    source: str = ""
    library: str | None = None

    @property
    def in_repository(self) -> bool:
        return self.library is None


@dataclass(kw_only=True)
class Mismatch:
    """A numeric disagreement between an exported program and eager PyTorch."""

    input_set: str
    output: str
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    message: str = ""


@dataclass(kw_only=True)
class SubmoduleResult:
    """The verdict for one submodule path (``""`` is the root) of one job."""

    path: str
    module_type: str
    verdict: Verdict
    reason: str | None = None  # why skipped / not-called; human text
    same_as: str | None = None  # path of the identical submodule whose result this shares
    covered_by: str | None = None  # path of the ancestor whose export covered this one
    aliases: list[str] = field(default_factory=list)  # other names of the same module object
    calls: int = 0  # forward calls seen during input capture
    attempts: int = 0  # export attempts spent on this submodule
    stage: str | None = None  # capture / translation / optimization / checker / runtime / accuracy
    category: str | None = None
    fingerprint: str | None = None
    exception_type: str | None = None
    root_cause: str | None = None  # class of the innermost __cause__/__context__
    message: str | None = None  # first line, capped
    detail: str | None = None  # capped message + traceback
    user_frame: UserFrame | None = None
    hint: str | None = None
    origin: bool = False  # fails for its own reason: no failing descendant shares its fingerprint
    warnings: list[str] = field(default_factory=list)
    mismatch: Mismatch | None = None
    xfail: str | None = None  # reason, when the manifest expects this submodule to fail
    duration_s: float = 0.0


@dataclass(kw_only=True)
class JobResult:
    """One (model, target, device) job: the root's verdict and every submodule's."""

    model: str
    target: str
    device: str
    verdict: Verdict
    reason: str | None = None
    duration_s: float = 0.0
    attempts: int = 0
    content_hash: str | None = None
    dependencies: dict[str, str] = field(default_factory=dict)  # repo-relative path -> sha256
    source: ResultSource = ResultSource.SWEPT
    xfail: str | None = None
    peak_rss_mb: float | None = None
    parameters: int | None = None  # the model's parameter count: a cost estimate for sharding
    submodules: list[SubmoduleResult] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.target, self.device)

    @property
    def root(self) -> SubmoduleResult | None:
        return next((s for s in self.submodules if s.path == ""), None)

    def submodule(self, path: str) -> SubmoduleResult | None:
        return next((s for s in self.submodules if s.path == path), None)

    def failures(self) -> list[SubmoduleResult]:
        return [s for s in self.submodules if s.verdict in FAILING]

    def effective(self, sub: SubmoduleResult) -> SubmoduleResult:
        """Follow ``same-as`` links to the result that was actually computed."""
        return follow_same_as(sub, self.submodule)


def follow_same_as(
    sub: SubmoduleResult, lookup: Callable[[str], SubmoduleResult | None]
) -> SubmoduleResult:
    """The result ``sub`` shares, following ``same-as`` links (cycle-safe): the one same-as walk."""
    seen: set[str] = set()
    while sub.verdict == Verdict.SAME_AS and sub.same_as and sub.same_as not in seen:
        seen.add(sub.path)
        target = lookup(sub.same_as)
        if target is None:
            break
        sub = target
    return sub


def _is_descendant(path: str, ancestor: str) -> bool:
    return path != ancestor and (ancestor == "" or path.startswith(ancestor + "."))


def failure_identity(sub: SubmoduleResult) -> tuple[str | None, ...]:
    """What makes two failures the same: the fingerprint, else (for old reports) verdict and text."""
    if sub.fingerprint:
        return (sub.fingerprint,)
    return (sub.verdict.value, sub.category, sub.message)


def origin_paths(job: JobResult) -> set[str]:
    """The failing submodules whose failure is their own: the one definition of an origin.

    A failing submodule is an origin unless a failing descendant fails *for the same reason*
    (same fingerprint): a parent that only re-raises its child's failure is explained by the
    child, but a parent failing at its own interface (a cache object in its output) while its
    children fail for another reason is an origin too. ``same-as`` links are followed, so a
    copy is an origin exactly when the result it shares is. The deepest failing submodule of
    every chain is an origin, so every failing job has one, and a failing root is either an
    origin or explained by an origin with its fingerprint.
    """
    index = {s.path: s for s in job.submodules}
    resolved = {s.path: follow_same_as(s, index.get) for s in job.submodules}
    failing = {path: result for path, result in resolved.items() if result.verdict in FAILING}
    # A module shared under two parents is listed once, with its other paths as aliases: it is a
    # descendant of both parents.
    names = {s.path: [s.path, *s.aliases] for s in job.submodules}

    def below(other: str, path: str) -> bool:
        return any(_is_descendant(o, p) for o in names[other] for p in names[path])

    computed: set[str] = set()
    for path, result in failing.items():
        if index[path].verdict == Verdict.SAME_AS:
            continue
        identity = failure_identity(result)
        explained = any(
            below(other, path) and failure_identity(other_result) == identity
            for other, other_result in failing.items()
        )
        if not explained:
            computed.add(path)
    copies = {
        path
        for path, result in failing.items()
        if index[path].verdict == Verdict.SAME_AS and result.path in computed
    }
    return computed | copies


@dataclass(kw_only=True)
class Environment:
    python: str = ""
    platform: str = ""
    torch: str | None = None
    onnx: str | None = None
    onnxscript: str | None = None
    onnxruntime: str | None = None
    cuda: str | None = None


@dataclass(kw_only=True)
class Report:
    """A whole sweep: run metadata plus one JobResult per job."""

    schema_version: int = SCHEMA_VERSION
    tool_version: str = ""
    created_at: str = ""
    complete: bool = True
    manifest: str | None = None
    repository: str | None = None  # OWNER/REPO where known
    git_sha: str | None = None
    run_url: str | None = None
    shard: str | None = None  # "I/N" for a shard report
    plan: list[str] = field(default_factory=list)  # every planned job "model/target", manifest order
    duration_s: float = 0.0
    environment: Environment = field(default_factory=Environment)
    jobs: list[JobResult] = field(default_factory=list)

    def job(self, model: str, target: str, device: str) -> JobResult | None:
        return next((j for j in self.jobs if j.key == (model, target, device)), None)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ReportError(
                f"report schema_version {version!r} is not supported (this exportwatch reads "
                f"{SCHEMA_VERSION})"
            )
        return _build(cls, data)


class ReportError(ValueError):
    """A report file that cannot be read: wrong version, bad JSON or missing fields."""


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from a dict, recursing into the nested report types."""
    if not isinstance(data, dict):
        raise ReportError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in known:
            continue  # forward compatible: ignore fields added by newer minor versions
        kwargs[name] = _convert(cls, name, value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ReportError(f"invalid {cls.__name__}: {exc}") from exc


def _convert(cls: type, name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "verdict":
        try:
            return Verdict(value)
        except ValueError as exc:
            raise ReportError(f"unknown verdict {value!r}") from exc
    if (cls, name) == (JobResult, "source"):
        try:
            return ResultSource(value)
        except ValueError as exc:
            raise ReportError(f"unknown result source {value!r}") from exc
    nested = {
        (Report, "environment"): Environment,
        (SubmoduleResult, "user_frame"): UserFrame,
        (SubmoduleResult, "mismatch"): Mismatch,
    }.get((cls, name))
    if nested is not None:
        return _build(nested, value)
    if (cls, name) == (Report, "jobs"):
        return [_build(JobResult, v) for v in value]
    if (cls, name) == (JobResult, "submodules"):
        return [_build(SubmoduleResult, v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Files: a finished report is one JSON document; a sweep in progress streams JSON Lines.


def write_report(report: Report, path: Path) -> None:
    """Write atomically, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(report.to_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def base_report_path(head: Path) -> Path:
    """Where the base report goes beside the head's: ``x.json`` → ``x.base.json``.

    One convention for ``compare`` and the action (the upload glob ``x*.json`` takes both).
    """
    return head.with_name(f"{head.stem}.base{head.suffix or '.json'}")


def load_report(path: Path, *, max_bytes: int | None = None) -> Report:
    """Read a report (``.json``) or a partial sweep log (``.jsonl``)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReportError(f"{path}: cannot read report: {exc.strerror}") from exc
    if max_bytes is not None and size > max_bytes:
        raise ReportError(f"{path}: report is {size} bytes, over the {max_bytes}-byte limit")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return _from_jsonl(text)
        return Report.from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON: {exc}") from exc
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from exc


class JsonlLog:
    """Append-only log of a sweep in progress: a header line, then one line per finished job.

    Each line is flushed and fsynced before the next job starts, so a killed sweep leaves
    every finished result readable (``load_report(path)`` on the ``.jsonl`` file).
    """

    def __init__(self, path: Path, header: Report) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] = path.open("w", encoding="utf-8")
        head = header.to_dict()
        head.pop("jobs", None)
        head["complete"] = False
        self._write({"header": head})

    def append(self, job: JobResult) -> None:
        self._write({"job": _to_jsonable(asdict(job))})

    def _write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _from_jsonl(text: str) -> Report:
    header: dict[str, Any] | None = None
    jobs: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by a kill: everything before it is good
        if "header" in record:
            header = record["header"]
        elif "job" in record:
            jobs.append(record["job"])
    if header is None:
        raise ReportError("partial report has no header line")
    header = dict(header, jobs=jobs, complete=False)
    return Report.from_dict(header)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report (``config/report.schema.json``), shipped with the package."""
    from importlib import resources

    text = resources.files("exportwatch").joinpath("schemas/report.schema.json").read_text("utf-8")
    return json.loads(text)
