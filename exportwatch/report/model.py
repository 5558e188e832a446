"""The versioned report contract: dataclasses that round-trip through JSON.

A report is the product's memory: diffs, base comparisons and shard merges all read it, so it
is plain data (no pickled exceptions, no torch objects) and carries a ``schema_version``.
This module must not import torch: the publish half of the fork-safe flow reads reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from exportwatch.errors import UsageError

SCHEMA_VERSION = 1
#: Caps that keep a report small enough to publish and to diff.
MAX_MESSAGE_CHARS = 500
MAX_DETAIL_CHARS = 8_000
#: Reports may come from untrusted pull-request runs: commands refuse larger files up front.
MAX_REPORT_BYTES = 64 * 1024 * 1024


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
    INTERRUPTED = "interrupted"  # the sweep was stopped (Ctrl-C, SIGTERM) while this ran: never a pass

    def __str__(self) -> str:
        return self.value


#: Verdicts that mean "the export works" for this cell.
PASSING = frozenset({Verdict.OK, Verdict.COVERED})
#: Verdicts that mean "this export does not work" (including infrastructure failures).
FAILING = frozenset(
    {
        Verdict.FAIL,
        Verdict.MISMATCH,
        Verdict.CRASH,
        Verdict.TIMEOUT,
        Verdict.OOM,
        Verdict.ERROR,
        Verdict.INTERRUPTED,
    }
)
#: Failures of the machine (or a sweep stopped) rather than of the model: kept apart in diffs.
INFRASTRUCTURE = frozenset({Verdict.CRASH, Verdict.TIMEOUT, Verdict.OOM, Verdict.INTERRUPTED})
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


@dataclass(kw_only=True, slots=True)
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


@dataclass(kw_only=True, slots=True)
class Mismatch:
    """A numeric disagreement between an exported program and eager PyTorch."""

    input_set: str
    output: str
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    message: str = ""


#: The blockers of one origin a report keeps (the count of all is kept too).
MAX_BLOCKERS = 20


class BlockerStatus(str, Enum):
    """What the search for every blocker of an origin (``draft_export``) came to."""

    FOUND = "found"
    NONE = "none"  # draft_export exported with no issue: the failure shown is the only one known
    FAILED = "failed"  # draft_export itself raised: the diagnosis shown is all there is

    def __str__(self) -> str:
        return self.value


@dataclass(kw_only=True, slots=True)
class CreatedAt:
    """Where an unbacked symbol (``u0``, ``zuf0``) was created: the ``.item()``, the ``nonzero``."""

    symbol: str
    frame: UserFrame | None = None


@dataclass(kw_only=True, slots=True)
class Blocker:
    """One issue ``draft_export`` met while exporting an origin; export stops at the first."""

    kind: str  # data-dependent / missing-fake-kernel / mismatched-fake-kernel / guard-added
    message: str
    expression: str | None = None  # the symbolic expression (``u0 > 2``)
    user_frame: UserFrame | None = None
    created: list[CreatedAt] = field(default_factory=list)
    occurrences: int = 1


class FixKind(str, Enum):
    """What a fix changes."""

    CHECK = "torch-check"  # a ``torch._check(...)`` after the line that created a value
    DYNAMIC_SHAPES = "dynamic-shapes"  # the ``dynamic_shapes`` for the manifest and the export call
    FAKE_KERNEL = "fake-kernel"  # a ``register_fake`` stub for a custom op
    LIBRARY = "library"  # a library case's known remedy (a transformers cache setting)

    def __str__(self) -> str:
        return self.value


class FixProof(str, Enum):
    """What re-exporting the module with a fix applied showed: a fix is shown only with one."""

    EXPORTS = "exports"  # the module exports with this change
    PAST_BLOCKER = "past-blocker"  # the re-export got past the blocker it addresses, then met another

    def __str__(self) -> str:
        return self.value


#: Fixes kept per origin, and the longest snippet one may carry.
MAX_FIXES = 10
MAX_SNIPPET_CHARS = 4_000


@dataclass(kw_only=True, slots=True)
class SourceEdit:
    """A change to one line of a repository file: what a review's suggested change replaces."""

    path: str  # repo-relative, POSIX separators
    line: int  # 1-based: the line the change replaces
    original: str  # that line as it was swept (a suggestion on a line that changed since is stale)
    replacement: str  # the text that takes its place (the line itself, then the added lines)


@dataclass(kw_only=True, slots=True)
class Fix:
    """One change that was applied and re-exported before it is shown, with what that proved."""

    kind: FixKind
    summary: str  # one line: "add `torch._check(n > 0)` after line 12 of model.py"
    snippet: str  # ready to paste: Python code, or YAML for the manifest (``language``)
    language: str = "python"
    edit: SourceEdit | None = None  # a change to a repository line (a suggested change in a review)
    blockers: list[int] = field(default_factory=list)  # indices into ``Blockers.found`` it addresses
    proof: FixProof = FixProof.EXPORTS
    next_blocker: str | None = None  # PAST_BLOCKER: the first line of what the re-export met next


@dataclass(kw_only=True, slots=True)
class Blockers:
    """Every blocker found for one origin (at most ``MAX_BLOCKERS`` kept, ``total`` counted)."""

    status: BlockerStatus
    found: list[Blocker] = field(default_factory=list)
    total: int = 0
    note: str | None = None  # why none were found, or why the search failed
    duration_s: float = 0.0
    fixes: list[Fix] = field(default_factory=list)  # each proven by a re-export (at most MAX_FIXES)
    #: Every fix shown applied at once (two or more): what that re-export proved; None if not run or failed.
    fixes_together: FixProof | None = None
    fixes_dropped: int = 0  # proposed, but not proven by a re-export (or no time left): not shown


@dataclass(kw_only=True, slots=True)
class Delegation:
    """How much of one submodule's lowered program a backend runs (the ``executorch`` target).

    Stored per submodule so a later diff can gate on a coverage drop or a newly non-delegated
    operator; ``compute_nodes`` counts operator calls only (no ``getitem``).
    """

    backend: str  # "xnnpack", or "portable" (no delegate: nothing is delegated by design)
    delegated_nodes: int = 0
    compute_nodes: int = 0
    subgraphs: int = 0  # delegated subgraphs (lowered_module calls)
    #: Operators left to the portable kernels: ``aten.cumsum`` -> how many calls.
    not_delegated: dict[str, int] = field(default_factory=dict)
    #: Where each of those operators is first called: ``aten.cumsum`` -> ``head.proj``, the
    #: submodule's path below this one ("" for this module's own code), from the graph's
    #: ``nn_module_stack``; an operator whose module is not known is left out.
    not_delegated_in: dict[str, str] = field(default_factory=dict)

    @property
    def coverage(self) -> float | None:
        """Delegated share of the compute nodes, 0..1; None for a program with none."""
        return self.delegated_nodes / self.compute_nodes if self.compute_nodes else None


@dataclass(kw_only=True, slots=True)
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
    #: The distinct inputs it was called with, ``(f32[2, 8, 32], mask=bool[2, 8])`` (at most 4).
    inputs: list[str] = field(default_factory=list)
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
    delegation: Delegation | None = None  # the `executorch` target's backend coverage
    #: For an origin of the ``export`` target: every issue ``draft_export`` found (None: not searched).
    blockers: Blockers | None = None


@dataclass(kw_only=True, slots=True)
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
    #: Seconds spent compiling, over every submodule attempted (the ``aoti`` target); part of
    #: ``duration_s``, and of the time the job's timeout allows.
    compile_s: float | None = None
    #: The manifest's ``executorch: {coverage_threshold: ...}`` for this model (percentage
    #: points): the diff's threshold for this job's coverage drops, instead of its own.
    coverage_threshold: float | None = None
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


def follow_same_as(sub: SubmoduleResult, lookup: Callable[[str], SubmoduleResult | None]) -> SubmoduleResult:
    """The result ``sub`` shares, following ``same-as`` links (cycle-safe): the one same-as walk."""
    seen: set[str] = set()
    while sub.verdict == Verdict.SAME_AS and sub.same_as and sub.same_as not in seen:
        seen.add(sub.path)
        target = lookup(sub.same_as)
        if target is None:
            break
        sub = target
    return sub


@dataclass(kw_only=True, slots=True)
class Environment:
    python: str = ""
    platform: str = ""
    torch: str | None = None
    onnx: str | None = None
    onnxscript: str | None = None
    onnxruntime: str | None = None
    cuda: str | None = None
    #: Versions of the installed distributions the models' code imports (``transformers``,
    #: ``timm``): an upgrade of one of them can change a result as much as torch's.
    packages: dict[str, str] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
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
    def from_dict(cls, data: Any) -> Report:
        """Build a report from parsed JSON, checking every field's type on the way.

        A wrong value is a :class:`ReportError` that names its field (``jobs[3].verdict:
        missing``), never an ``AttributeError`` three stages later: ``report.validate`` does it.
        """
        from exportwatch.report.validate import validate_document

        return validate_document(data, strict=False)


class ReportError(UsageError, ValueError):
    """A report file that cannot be read: wrong version, bad JSON or missing fields."""


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in the words of JSON rather than Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut for a one-line message (a hostile value can be megabytes)."""
    if isinstance(value, list | dict):
        return f"({_json_kind(value)} of {len(value)})"
    text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "…"
