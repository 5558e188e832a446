"""One template for every export target: the flow is the base's, the steps are the target's.

A target takes one module and the inputs it was called with, tries to export it, verifies the
exported program against eager PyTorch on every input set, and returns a frozen
:class:`Outcome` instead of raising through layers (the shape of torch.onnx's capture
strategies: a concrete ``__call__`` owns the try/except, subclasses fill in the steps). The
sweep decides *what* to try; a target only knows *how* to export.

:meth:`Target.attempt` owns the flow, once for all targets::

    capture ─► check ─► (verify off? ok) ─► (no runtime here? ok, with a note) ─► load ─► run and
    compare on every input set ─► ok / mismatch          any failed step ─► fail at its stage
    failed or mismatched, with --keep-artifacts ─► keep what the attempt made

A target is a small class of hooks: :meth:`Target.capture` (required), :meth:`Target.check`,
:meth:`Target.unverifiable`, :meth:`Target.load` (required to verify), :meth:`Target.compare`
and :meth:`Target.keep`. A hook marks each step with ``with attempt.stage(Stage.X):``; an
exception inside is that step's failure, recorded with the exception itself (its traceback and
chain are what the diagnosis reads). Anything raised outside a stage is exportwatch's own bug
and escapes, so the sweep records ``error``, never a pass.

This module never imports torch (the sweep's parent imports the registry): the verification
loop imports :mod:`exportwatch.targets.verify` when it runs, inside the model's process.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from exportwatch.report import Mismatch, Verdict

log = logging.getLogger(__name__)

#: Warnings that are news about the libraries or the process, not about the user's model:
#: deprecations, and ``ResourceWarning``, which the garbage collector emits for whatever
#: unclosed file or socket it happens to collect during an attempt.
NOISE_WARNINGS: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
    ResourceWarning,
)


#: The phase a compiling target tells the sweep (``TargetOptions.report_phase``) while it
#: compiles: the progress line says "compiling…", a timeout says "while compiling".
COMPILE_PHASE = "compile"


class Stage(str, Enum):
    """The steps an export goes through; a failure records the one it died in.

    A ``str`` enum, so a report records ``"capture"`` exactly as before; a new target adds its
    own steps here (``lowering``, ``serialisation``) rather than inventing strings.
    """

    CAPTURE = "capture"  # torch.export (or the TorchScript tracer) building a graph
    TRANSLATION = "translation"  # aten/custom op → ONNX function
    OPTIMIZATION = "optimization"
    CHECKER = "checker"  # onnx.checker.check_model(full_check=True)
    RUNTIME = "runtime"  # running the exported program / ONNX Runtime session
    LOWERING = "lowering"  # ExecuTorch: to the edge dialect, partitioned to a backend
    SERIALISATION = "serialisation"  # ExecuTorch: out variants, memory plan, the .pte buffer
    LOAD = "load"  # ExecuTorch: the runtime loading the program; AOTInductor: the package
    COMPILE = "compile"  # AOTInductor: Inductor's codegen and the C++ compiler building the package
    ACCURACY = "accuracy"  # outputs compared with eager

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(kw_only=True)
class Call:
    """One forward call: positional and keyword arguments (tensors already on the device)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SharedTrace:
    """A static ``torch.export`` capture of one module and call, and what it warned.

    ``program`` is the ``ExportedProgram``, or None where the capture failed with ``error`` (the
    exception itself, as the capture raised it: the ``onnx`` target replays it where torch.onnx
    would have made the same capture). ``strict`` tells ``export-strict``'s from ``export``'s.
    """

    program: Any = None  # torch.export.ExportedProgram
    error: BaseException | None = field(default=None, compare=False, repr=False)
    warnings: tuple[str, ...] = ()
    strict: bool = False


class TraceShelf:
    """Captures one target made, kept for another target of the same model's process.

    The ``onnx`` exporter's capture strategies are non-strict ``torch.export`` of the same
    module and call, then ``strict=True`` where that failed; where the ``export`` and
    ``export-strict`` targets have just made those captures (or failed them), tracing again
    would build the same program (or raise the same error). A capture is handed on only while
    the module is in the state it was traced from (``state_of``: the sweep's description of its
    code, attributes and tensors' versions), so a forward that mutates its module is traced again.

    ``readers`` is how many later targets of the process take each of ``export``'s captures
    (``onnx``, ``aoti``, ``executorch``), ``strict_readers`` each of ``export-strict``'s (``onnx``): each
    gets the same entry, and the shelf lets it go after the last. A producer without readers
    keeps nothing. A failed capture is handed only to a reader that asks for failures.
    """

    def __init__(
        self, state_of: Callable[[Any], Hashable | None], *, readers: int = 1, strict_readers: int = 0
    ) -> None:
        self._state_of = state_of
        self.readers = readers
        self.strict_readers = strict_readers
        self._kept: dict[tuple[int, int, bool], tuple[Any, Any, Hashable, SharedTrace]] = {}
        self._taken: dict[tuple[int, int, bool], int] = {}

    def state(self, module: Any) -> Hashable | None:
        """The module's state now, or None when it cannot be told (then nothing is shared)."""
        try:
            return self._state_of(module)
        except Exception:  # a description that fails costs the reuse, never the result
            return None

    def _readers(self, strict: bool) -> int:
        return self.strict_readers if strict else self.readers

    def wanted(self, *, strict: bool) -> bool:
        """Whether a later target reads ``export-strict``'s captures (``strict``) or ``export``'s."""
        return self._readers(strict) > 0

    def keep(self, module: Any, call: Call, state: Hashable | None, trace: SharedTrace) -> None:
        """``trace`` was captured from ``module`` called as ``call``, in ``state``."""
        if state is not None and self._readers(trace.strict) > 0:  # module and call are held too
            key = (id(module), id(call), trace.strict)
            self._kept[key] = (module, call, state, trace)
            self._taken.pop(key, None)

    def take(
        self, module: Any, call: Call, *, strict: bool = False, failures: bool = False
    ) -> SharedTrace | None:
        """The capture of ``module`` and ``call``, if one was kept and the module is unchanged
        (a failed one only where ``failures``); each capture is handed on as many times as it
        has readers, then let go (no program held longer)."""
        key = (id(module), id(call), strict)
        kept = self._kept.get(key)
        if kept is None:
            return None
        self._taken[key] = self._taken.get(key, 0) + 1
        if self._taken[key] >= self._readers(strict):
            del self._kept[key], self._taken[key]
        trace = kept[3]
        if trace.program is None and not failures:
            return None
        state = self.state(module)
        return trace if state is not None and state == kept[2] else None


@dataclass(kw_only=True)
class TargetOptions:
    """Per-attempt settings the sweep passes to a target."""

    dynamic_shapes: Any = None  # torch.export-style spec; only ever set for the root
    verify: bool = True
    rtol: float | None = None  # None: a default chosen by dtype
    atol: float | None = None
    opset: int | None = None
    artifacts_dir: Path | None = None  # where to keep artifacts of failing attempts
    artifact_name: str = "model"  # file-name stem for kept artifacts
    #: ``torch.onnx.export(custom_translation_table=...)`` for the ``onnx`` target:
    #: {torch op overload: onnxscript function}. Not serialisable; set by code, not YAML.
    onnx_custom_translations: dict[Any, Any] | None = None
    #: The ``executorch`` target's partitioner (the manifest's ``executorch: {backend: ...}``).
    executorch_backend: str = "xnnpack"
    #: Told when the attempt moves on (``"verification"``, :data:`COMPILE_PHASE`), so a timeout
    #: can name the phase and the progress line can say "compiling…".
    report_phase: Callable[[str], None] = field(default=lambda phase: None, repr=False)
    #: Captures shared between this model's targets (None: every target captures its own).
    traces: TraceShelf | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one export attempt came to: plain data, except the exception it failed with.

    ``error`` is the live exception, kept as an opaque field outside equality and ``repr``:
    the diagnosis reads what no snapshot taken here would keep whole (the ``__cause__`` /
    ``__context__`` chain, duck-typed attributes such as ``gb_type`` or ``cond``, traceback
    frames and the FX node in their locals), and it runs in the same process right after the
    attempt, which turns the exception into a ``Diagnosis``. An Outcome never crosses a process.
    """

    verdict: Verdict  # OK, FAIL or MISMATCH
    stage: Stage | None = None  # where it failed (None on success)
    error: BaseException | None = field(default=None, compare=False, repr=False)
    warnings: tuple[str, ...] = ()
    mismatch: Mismatch | None = None
    #: Facts a target attaches for the report beyond the verdict, by name: ``delegation``
    #: (``executorch``'s coverage), ``compile_s`` (``aoti``'s compile time).
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def ok(cls, warnings: Sequence[str] = (), extras: Mapping[str, Any] | None = None) -> Outcome:
        return cls(verdict=Verdict.OK, warnings=tuple(warnings), extras=_frozen(extras))

    @classmethod
    def failed(
        cls,
        stage: Stage,
        error: BaseException,
        warnings: Sequence[str] = (),
        extras: Mapping[str, Any] | None = None,
    ) -> Outcome:
        return cls(
            verdict=Verdict.FAIL, stage=stage, error=error, warnings=tuple(warnings), extras=_frozen(extras)
        )


def _frozen(extras: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(extras or {}))


class StageFailed(Exception):
    """A step of an attempt failed: ``error`` (the original exception, untouched) in ``stage``.

    Raised by :meth:`Attempt.stage` (or by a hook that decides the stage from the exception)
    and caught only by :meth:`Target.attempt`; it never leaves a target.
    """

    def __init__(self, stage: Stage, error: BaseException) -> None:
        super().__init__(f"{stage}: {type(error).__name__}")
        self.stage = stage
        self.error = error


_SO_FAR: Any = object()  # Attempt.stage(keep=...) default: keep what the attempt made so far


class _StageGuard:
    """``with attempt.stage(...)``: an exception inside becomes :class:`StageFailed`.

    A class, not a generator: a generator context manager would add its own frame to the
    exception's traceback, and the traceback is evidence for the diagnosis.
    """

    def __init__(self, attempt: Attempt, stage: Stage | Callable[[BaseException], Stage], keep: Any) -> None:
        self._attempt = attempt
        self._stage = stage
        self._keep = keep

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if error is None or not isinstance(error, Exception) or isinstance(error, StageFailed):
            return  # success, KeyboardInterrupt and friends, or an inner stage's failure
        if self._keep is not _SO_FAR:
            self._attempt.artifact = self._keep
        stage = self._stage if isinstance(self._stage, Stage) else self._stage(error)
        raise StageFailed(stage, error)


class Attempt:
    """One attempt in progress, handed to every hook: what it is about and what it made so far.

    Mutable, and private to one call of :meth:`Target.attempt`: ``notes`` (warnings for the
    report, in order), ``artifact`` (what :meth:`Target.keep` saves if the attempt fails),
    ``extras`` (facts for the Outcome). Resources a hook opens (:meth:`hold`, :meth:`scratch`)
    are closed when the attempt ends, after any artifacts were kept.
    """

    def __init__(
        self,
        *,
        target: str,
        module: Any,
        example: Call,
        checks: Sequence[tuple[str, Call]],
        options: TargetOptions,
    ) -> None:
        self.target = target
        self.module = module
        self.example = example
        self.checks = checks
        self.options = options
        self.notes: list[str] = []
        self.artifact: Any = None
        self.extras: dict[str, Any] = {}
        self._resources = contextlib.ExitStack()
        self._scratch: Path | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc: object) -> None:
        self._resources.close()

    def stage(self, stage: Stage | Callable[[BaseException], Stage], *, keep: Any = _SO_FAR) -> _StageGuard:
        """Mark a step: an exception inside fails the attempt at ``stage`` (or at the stage
        ``stage(exception)`` names); ``keep`` replaces the artifact to keep when it does."""
        return _StageGuard(self, stage, keep)

    def hold(self, resource: contextlib.AbstractContextManager[Any]) -> Any:
        """Enter ``resource`` until the attempt ends (a temporary file a later step reads)."""
        return self._resources.enter_context(resource)

    def scratch(self) -> Path:
        """A temporary directory for this attempt, made on first use, removed at its end."""
        if self._scratch is None:
            made = tempfile.TemporaryDirectory(prefix=f"exportwatch-{self.target}-")
            self._scratch = Path(self.hold(made))
        return self._scratch

    def attach(self, name: str, value: Any) -> None:
        """A fact for the Outcome's ``extras`` (kept whatever the verdict)."""
        self.extras[name] = value

    def ok(self) -> Outcome:
        return Outcome.ok(self.notes, self.extras)

    def failed(self, stage: Stage, error: BaseException) -> Outcome:
        return Outcome.failed(stage, error, self.notes, self.extras)

    def mismatched(self, stage: Stage, error: BaseException, mismatch: Mismatch) -> Outcome:
        return Outcome(
            verdict=Verdict.MISMATCH,
            stage=stage,
            error=error,
            warnings=tuple(self.notes),
            mismatch=mismatch,
            extras=_frozen(self.extras),
        )


#: What a target's ``load`` returns: runs one input set, returns the outputs to compare.
Runner = Callable[[Call], Any]
Exported = TypeVar("Exported")


class Target(ABC, Generic[Exported]):
    """One way of exporting a module: hooks for the steps, one flow for all (:meth:`attempt`).

    ``Exported`` is what :meth:`capture` hands the later steps (an ``ExportedProgram``, an ONNX
    model and its session's source, …); the flow never looks inside it.
    """

    name: ClassVar[str]
    #: Optional packages this target needs, with the extra that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    #: Who ran the exported program, for the message when it raises on an input set.
    runner_name: ClassVar[str] = "the exported program"

    def prepare(self) -> None:
        """Pay one-off start-up costs (imports, first-trace warm-up) before the first timed job.

        A worker calls this once after it starts, so the first job's duration is comparable
        with every later one. The default: one throwaway attempt on a tiny model.
        """
        import torch

        tiny = torch.nn.Linear(2, 2).eval()
        with torch.no_grad():
            self.attempt(tiny, Call(args=(torch.ones(1, 2),)), options=TargetOptions())

    def attempt(
        self,
        module: Any,
        example: Call,
        *,
        checks: Sequence[tuple[str, Call]] = (),
        options: TargetOptions,
    ) -> Outcome:
        """Export ``module`` with ``example``; verify against eager on ``example`` and ``checks``.

        ``checks`` are (input-set name, call) pairs from the manifest's extra input sets.
        Never raises for an export problem: the problem is the Outcome. Not a hook: a target
        changes a step, never the flow.
        """
        with Attempt(target=self.name, module=module, example=example, checks=checks, options=options) as job:
            outcome = self._flow(job)
            if outcome.verdict in (Verdict.FAIL, Verdict.MISMATCH) and options.artifacts_dir is not None:
                try:
                    self.keep(job, options.artifacts_dir)
                except Exception:  # artifacts are a courtesy: never turn a result into a crash
                    log.exception("could not keep %s artifacts in %s", self.name, options.artifacts_dir)
            return outcome

    def _flow(self, job: Attempt) -> Outcome:
        try:
            exported = self.capture(job)
            self.check(job, exported)
            if not job.options.verify:
                return job.ok()
            skipped = self.unverifiable(job)
            if skipped is not None:
                job.notes.append(skipped)
                return job.ok()
            job.options.report_phase("verification")
            return self._verify(job, exported)
        except StageFailed as failed:
            return job.failed(failed.stage, failed.error)

    def _verify(self, job: Attempt, exported: Exported) -> Outcome:
        """Run the exported program on every input set the eager module accepts; the first
        that raises or disagrees decides. The one verification loop of every target."""
        from exportwatch.targets.verify import NumericMismatchError, Tolerance, eager_references

        run = self.load(job, exported)
        tolerance = Tolerance(rtol=job.options.rtol, atol=job.options.atol)
        for set_name, call, expected in eager_references(job.module, job.example, job.checks, job.notes):
            try:
                actual = run(call)
            except Exception as exc:
                raised = Mismatch(
                    input_set=set_name,
                    output="",
                    message=f"input set {set_name!r}: {self.runner_name} raised "
                    f"{type(exc).__name__}: {first_line(exc)}",
                )
                return job.mismatched(Stage.RUNTIME, exc, raised)
            mismatch = self.compare(expected, actual, input_set=set_name, tolerance=tolerance)
            if mismatch is not None:
                return job.mismatched(Stage.ACCURACY, NumericMismatchError(mismatch), mismatch)
        return job.ok()

    # -----------------------------------------------------------------------------------------
    # The hooks

    @abstractmethod
    def capture(self, job: Attempt) -> Exported:
        """Export ``job.module`` called as ``job.example``: every step up to a finished program.

        Mark each step with ``job.stage``; add warnings to ``job.notes``; set ``job.artifact``
        to what should be kept if a later step fails. A target that starts from an earlier
        target's capture takes it here from ``job.options.traces``.
        """

    def check(self, job: Attempt, exported: Exported) -> None:
        """A static check of the exported program before it runs (default: none)."""
        return None

    def unverifiable(self, job: Attempt) -> str | None:
        """Why this machine cannot run the exported program (a runtime not installed), as a
        note for the report; None (the default) when it can."""
        return None

    def load(self, job: Attempt, exported: Exported) -> Runner:
        """A runner of the exported program (mark a load that may fail ``Stage.RUNTIME``).

        Required where verification is on; the default says the target cannot verify.
        """
        raise NotImplementedError(f"target {self.name!r} does not say how to run what it exported")

    def compare(self, expected: Any, actual: Any, *, input_set: str, tolerance: Any) -> Mismatch | None:
        """Eager outputs vs the runner's, for one input set (default: the pytrees leaf by leaf)."""
        from exportwatch.targets.verify import compare_outputs

        return compare_outputs(expected, actual, input_set=input_set, tolerance=tolerance)

    def keep(self, job: Attempt, directory: Path) -> None:
        """Save ``job.artifact`` (and anything else worth a look) under ``directory`` after a
        failed or mismatched attempt, named after ``job.options.artifact_name``; errors here
        are logged, never the result. The default keeps nothing."""
        return None


def first_line(value: object) -> str:
    """The first non-empty line of ``str(value)``, capped at 300 characters (for notes)."""
    for line in str(value).splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""
