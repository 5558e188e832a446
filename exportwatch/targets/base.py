"""The small interface every export target implements.

A target takes one module and the inputs it was called with, tries to export it, verifies the
exported program against eager PyTorch on every input set, and returns an :class:`Outcome`
instead of raising through layers (the pattern of torch.onnx's capture strategies). The sweep
decides *what* to try; a target only knows *how* to export.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from exportwatch.report import Mismatch, Verdict

#: Warnings that are news about the libraries or the process, not about the user's model:
#: deprecations, and ``ResourceWarning``, which the garbage collector emits for whatever
#: unclosed file or socket it happens to collect during an attempt.
NOISE_WARNINGS: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
    ResourceWarning,
)


class Stage:
    """Names of the steps an export goes through; a failure records the one it died in."""

    CAPTURE = "capture"  # torch.export (or the TorchScript tracer) building a graph
    TRANSLATION = "translation"  # aten/custom op → ONNX function
    OPTIMIZATION = "optimization"
    CHECKER = "checker"  # onnx.checker.check_model(full_check=True)
    RUNTIME = "runtime"  # running the exported program / ONNX Runtime session
    ACCURACY = "accuracy"  # outputs compared with eager


@dataclass(kw_only=True)
class Call:
    """One forward call: positional and keyword arguments (tensors already on the device)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SharedTrace:
    """A non-strict ``torch.export`` capture of one module and call, and what it warned."""

    program: Any  # torch.export.ExportedProgram
    warnings: tuple[str, ...] = ()


class TraceShelf:
    """Captures one target made, kept for another target of the same model's process.

    The ``onnx`` exporter's first capture strategy is non-strict ``torch.export`` of the same
    module and call; where the ``export`` target has just made that capture, tracing again
    would build the same program. A capture is handed on only while the module is in the state
    it was traced from (``state_of``: the sweep's description of its code, attributes and
    tensors' versions), so a forward that mutates its module is traced again.
    """

    def __init__(self, state_of: Callable[[Any], Hashable | None]) -> None:
        self._state_of = state_of
        self._kept: dict[tuple[int, int], tuple[Any, Any, Hashable, SharedTrace]] = {}

    def state(self, module: Any) -> Hashable | None:
        """The module's state now, or None when it cannot be told (then nothing is shared)."""
        try:
            return self._state_of(module)
        except Exception:  # a description that fails costs the reuse, never the result
            return None

    def keep(self, module: Any, call: Call, state: Hashable | None, trace: SharedTrace) -> None:
        """``trace`` was captured from ``module`` called as ``call``, in ``state``."""
        if state is not None:  # module and call are held too, so their ids stay theirs
            self._kept[(id(module), id(call))] = (module, call, state, trace)

    def take(self, module: Any, call: Call) -> SharedTrace | None:
        """The capture of ``module`` and ``call``, if one was kept and the module is unchanged;
        each capture is handed on once (the shelf holds no program longer than needed)."""
        kept = self._kept.pop((id(module), id(call)), None)  # handed on once, then let go
        if kept is None:
            return None
        state = self.state(module)
        return kept[3] if state is not None and state == kept[2] else None


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
    #: Told when the attempt moves on (``"verification"``), so a timeout can name the phase.
    report_phase: Callable[[str], None] = field(default=lambda phase: None, repr=False)
    #: Captures shared between this model's targets (None: every target captures its own).
    traces: TraceShelf | None = field(default=None, repr=False)


@dataclass(kw_only=True)
class Outcome:
    """What one export attempt came to."""

    verdict: Verdict  # OK, FAIL or MISMATCH
    stage: str | None = None  # where it failed (None on success)
    error: BaseException | None = None  # live exception; the worker turns it into data
    warnings: list[str] = field(default_factory=list)
    mismatch: Mismatch | None = None

    @classmethod
    def ok(cls, warnings: Sequence[str] = ()) -> Outcome:
        return cls(verdict=Verdict.OK, warnings=list(warnings))

    @classmethod
    def failed(cls, stage: str, error: BaseException, warnings: Sequence[str] = ()) -> Outcome:
        return cls(verdict=Verdict.FAIL, stage=stage, error=error, warnings=list(warnings))


class Target(ABC):
    """One way of exporting a module (torch.export strict/non-strict, ONNX dynamo/legacy)."""

    name: ClassVar[str]
    #: Optional packages this target needs, with the extra that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    def prepare(self) -> None:
        """Pay one-off start-up costs (imports, first-trace warm-up) before the first timed job.

        A worker calls this once after it starts, so the first job's duration is comparable
        with every later one. The default does nothing.
        """
        return None

    @abstractmethod
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
        Never raises for an export problem: the problem is the Outcome.
        """
