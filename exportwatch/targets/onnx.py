"""Target ``onnx``: the dynamo-based ``torch.onnx.export(..., dynamo=True)``, told truthfully.

The exporter itself never says *where* it failed (every error reads ``TorchExportError`` or
``ConversionError``), its own checker is a no-op, and ``verify=True`` never raises on a wrong
model. So this target runs the exporter with verification off and does each later step itself,
recording the stage it died in: capture → translation → optimization → checker → runtime →
accuracy. The ONNX Runtime helpers here are shared with the ``onnx-legacy`` target.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch.utils import _pytree as pytree

from exportwatch import compat
from exportwatch.report import Mismatch
from exportwatch.targets.base import (
    NOISE_WARNINGS,
    Attempt,
    Call,
    Runner,
    SharedTrace,
    Stage,
    StageFailed,
    Target,
    TargetOptions,
    first_line,
)
from exportwatch.targets.verify import (
    DynamicDim,
    clone_tree,
    compare_flat,
    flatten_with_paths,
    requested_dynamic_dims,
    slot_tree,
)

log = logging.getLogger(__name__)

#: Models whose initializers exceed this are checked and run from a file with external data:
#: protobuf cannot serialise a message over 2 GiB.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000
_NOISY_LOG = re.compile(r"torchvision is not installed|Skipping constant argument|has None output")


# ---------------------------------------------------------------------------------------------
# Lazy, once-per-process imports: onnxscript's first import costs seconds, so a worker pays it
# on its first ONNX job only, and importing exportwatch never pays it.


@dataclass(frozen=True)
class OnnxModules:
    onnx: ModuleType
    errors: ModuleType  # compat.onnx_exporter_errors()
    ort: ModuleType | None  # onnxruntime, optional


@functools.cache
def onnx_modules() -> OnnxModules:
    """Import onnx once; onnxruntime if installed (onnxscript: see :func:`dynamo_exporter`)."""
    import onnx
    import torch.onnx  # noqa: F401

    return OnnxModules(onnx=onnx, errors=compat.onnx_exporter_errors(), ort=_import_onnxruntime())


@functools.cache
def dynamo_exporter() -> ModuleType:
    """onnxscript: its first import costs about a second; paid once per process."""
    import onnxscript

    return onnxscript


def _import_onnxruntime() -> ModuleType | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


# ---------------------------------------------------------------------------------------------
# Warnings, prints and log records the exporter emits while it runs.


@dataclass
class Captured:
    """What a call printed, warned and logged."""

    stdout: str = ""
    warnings: list[str] = field(default_factory=list)
    #: The warnings caught so far, in order (``warnings.WarningMessage``, or a line replayed).
    _caught: list[Any] = field(default_factory=list, repr=False)

    def notes(self) -> list[str]:
        return list(dict.fromkeys(self.warnings))

    def replay(self, lines: Sequence[str]) -> None:
        """Warnings an earlier capture recorded (``"UserWarning: ..."``), in the order they would
        have come had this call made that capture itself, at this point."""
        self._caught.extend(lines)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        # A record that cannot format is not worth losing the export over.
        with contextlib.suppress(Exception):
            message = first_line(record.getMessage())
            if not _NOISY_LOG.search(message):
                self.sink.append(f"{record.name}: {message}")


@contextlib.contextmanager
def capture_exporter_output(logger_name: str) -> Iterator[Captured]:
    """Collect stdout (the exporter's progress prints), warnings and WARNING+ log records."""
    captured = Captured()
    buffer = io.StringIO()
    records: list[str] = []
    handler = _ListHandler(records)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buffer):
            warnings.simplefilter("always")
            captured._caught = caught
            yield captured
    finally:
        logger.removeHandler(handler)
        captured.stdout = buffer.getvalue()
        for w in caught:
            if isinstance(w, str):  # replayed from an earlier capture, already a line
                captured.warnings.append(w)
            elif not issubclass(w.category, NOISE_WARNINGS):
                captured.warnings.append(f"{w.category.__name__}: {first_line(w.message)}")
        captured.warnings.extend(records)


# ---------------------------------------------------------------------------------------------
# The target.


@dataclass(frozen=True)
class OnnxExport:
    """What an ONNX target's capture hands on: the model to check and run, and how to feed it."""

    onnx_model: OnnxModel
    #: Built only when the model is run (after the checker, and only where it is verified).
    feeder: Callable[[], InputFeeder]


class OnnxTarget(Target[OnnxExport]):
    """The steps both ONNX targets share: the full checker, then ONNX Runtime on every input set
    (skipped with a note where onnxruntime is not installed); outputs compared as flat tensors."""

    requires: ClassVar[tuple[str, ...]] = ("onnx",)
    extra = "onnx"
    runner_name = "ONNX Runtime"

    def check(self, job: Attempt, exported: OnnxExport) -> None:
        error = exported.onnx_model.check()
        if error is not None:
            raise StageFailed(Stage.CHECKER, error)

    def unverifiable(self, job: Attempt) -> str | None:
        return MISSING_ORT_NOTE if onnx_modules().ort is None else None

    def load(self, job: Attempt, exported: OnnxExport) -> Runner:
        ort = onnx_modules().ort
        assert ort is not None  # unverifiable() said so otherwise
        feeder = exported.feeder()
        with job.stage(Stage.RUNTIME):
            session = exported.onnx_model.session(ort)
        session_inputs = [i.name for i in session.get_inputs()]
        return lambda call: session.run(None, feeder.feed(call, session_inputs))

    def compare(self, expected: Any, actual: Any, *, input_set: str, tolerance: Any) -> Mismatch | None:
        return compare_flat(
            onnx_output_leaves(expected, len(actual)), list(actual), input_set=input_set, tolerance=tolerance
        )


class OnnxDynamo(OnnxTarget):
    """``torch.onnx.export(module, args, kwargs=..., dynamo=True)`` + checker + ORT verification.

    The exporter runs with its own optimisation and verification off; this target runs each
    later step itself, so a failure names its stage.
    """

    name = "onnx"
    requires = ("onnx", "onnxscript")

    def capture(self, job: Attempt) -> OnnxExport:
        mods = onnx_modules()
        dynamo_exporter()
        module, example, options = job.module, job.example, job.options
        args, kwargs = clone_tree(tuple(example.args)), clone_tree(dict(example.kwargs))
        shelved = shared_captures(module, example, options)
        report_dir = job.scratch() if options.artifacts_dir is not None else None
        try:
            with (
                capture_exporter_output("torch.onnx") as captured,
                _reuse_torchlib_registry(),
                _captures_answered_from(shelved, job, captured),
            ):
                program = torch.onnx.export(
                    module,
                    args,
                    kwargs=kwargs,
                    dynamo=True,
                    opset_version=options.opset,
                    dynamic_shapes=options.dynamic_shapes,
                    custom_translation_table=options.onnx_custom_translations,
                    optimize=False,
                    verify=False,
                    report=report_dir is not None,
                    artifacts_dir=report_dir or ".",
                )
        except Exception as exc:
            job.notes.extend(captured.notes())
            job.notes.extend(capture_fallback_notes(captured.stdout))
            stage = export_error_stage(exc, mods.errors)
            if stage == Stage.TRANSLATION:
                op = untranslated_op(exc)
                if op:
                    job.notes.append(f"no ONNX translation for {op}")
            raise StageFailed(stage, exc) from None
        # Typed ``ONNXProgram | None``: None is the legacy (dynamo=False) exporter's return only.
        assert program is not None
        job.artifact = program
        job.notes.extend(captured.notes())
        job.notes.extend(capture_fallback_notes(captured.stdout, compat.onnx_capture_strategy(program)))

        try:
            with capture_exporter_output("onnxscript") as captured:
                program.optimize()
        except Exception as exc:
            job.notes.extend(captured.notes())
            raise StageFailed(Stage.OPTIMIZATION, exc) from None
        with job.stage(Stage.TRANSLATION, keep=None):
            model = program.model_proto  # IR → protobuf; fails on values ONNX cannot hold
        ep = program.exported_program
        job.notes.extend(specialised_onnx_dims(model, module, ep, options.dynamic_shapes))
        onnx_model = job.hold(OnnxModel(mods.onnx, model))
        return OnnxExport(onnx_model=onnx_model, feeder=lambda: _DynamoFeeder.build(ep, example))

    def keep(self, job: Attempt, directory: Path) -> None:
        """The .onnx (when the exporter got that far) and the exporter's markdown report."""
        directory.mkdir(parents=True, exist_ok=True)
        stem = job.options.artifact_name
        if job.artifact is not None:
            save_model(job.artifact.model_proto, directory / f"{stem}.onnx", onnx_modules().onnx)
        reports = sorted(job.scratch().glob("*.md"))
        if reports:
            shutil.copyfile(reports[-1], directory / f"{stem}.report.md")


def shared_captures(module: Any, example: Call, options: TargetOptions) -> dict[bool, SharedTrace]:
    """The ``export`` (key ``False``) and ``export-strict`` (``True``) targets' captures of this
    module and call, programs or failures, where each is exactly what the exporter's capture
    strategy of that strictness would make itself: static shapes (with dynamic ones, the
    exporter traces under its own size settings); no trailing dict argument (the exporter passes
    it as keyword arguments); a module in eval mode (in training mode the exporter warns, before
    capturing); a module whose ``repr`` works (each capture strategy prints it first, and one
    that raises fails the export). The export targets kept no capture whose code asked
    ``is_in_onnx_export()``, no failure that changed the module, no strict failure that
    ``torch.jit.isinstance`` may explain (torch.onnx swaps it for the builtin)."""
    if options.traces is None or options.dynamic_shapes is not None:
        return {}
    if not example.kwargs and example.args and isinstance(example.args[-1], dict):
        return {}
    if getattr(module, "training", False):
        return {}
    try:
        repr(module)
    except Exception:
        return {}
    shelf = options.traces
    taken = {strict: shelf.take(module, example, strict=strict, failures=True) for strict in (False, True)}
    return {strict: trace for strict, trace in taken.items() if trace is not None}


@contextlib.contextmanager
def _captures_answered_from(
    shelved: dict[bool, SharedTrace], job: Attempt, captured: Captured
) -> Iterator[None]:
    """While torch.onnx exports ``job.module``: each ``torch.export.export`` its capture
    strategies make of that module and call, static, with a strictness on the shelf, is answered
    with the shelved capture (the program returned, or the failure raised again, its warnings
    replayed) instead of traced again. torch.onnx runs the rest of its own flow as it would: its
    strategies in order and what it prints, the first failure it raises, the strategy it records,
    and any strategy that does not call ``torch.export.export`` (``draft_export``) for real.

    Each shelved capture answers once, and only while the module is in the state the shelf
    checked (a real capture in between may have changed it). Reused captures are attached to
    the Outcome as ``reused_captures`` (``export`` / ``export-strict``)."""
    if not shelved:
        yield
        return
    module, example = job.module, job.example
    structure = pytree.tree_structure((tuple(example.args), dict(example.kwargs)))
    shelf = job.options.traces
    assert shelf is not None  # shared_captures took them from it
    start = shelf.state(module)
    traced_since: list[bool] = []  # a real capture ran: check the module's state again
    reused: list[str] = []
    real = torch.export.export

    def export(*args: Any, **kwargs: Any) -> Any:
        trace = _answer(args, kwargs)
        if trace is None:
            traced_since.append(True)
            return real(*args, **kwargs)
        del shelved[trace.strict]
        reused.append("export-strict" if trace.strict else "export")
        job.attach("reused_captures", tuple(reused))
        captured.replay(trace.warnings)
        if trace.error is not None:
            raise trace.error
        return trace.program

    def _answer(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SharedTrace | None:
        mod = args[0] if args else kwargs.get("mod")
        trace = shelved.get(bool(kwargs.get("strict", False)))
        if trace is None or mod is not module or kwargs.get("dynamic_shapes") is not None:
            return None
        call_args = args[1] if len(args) > 1 else kwargs.get("args", ())
        call_kwargs = args[2] if len(args) > 2 else kwargs.get("kwargs")
        if pytree.tree_structure((tuple(call_args), dict(call_kwargs or {}))) != structure:
            return None
        if traced_since and shelf.state(module) != start:
            return None
        return trace

    torch.export.export = export
    try:
        yield
    finally:
        torch.export.export = real


MISSING_ORT_NOTE = (
    "onnxruntime is not installed: skipped stages runtime, accuracy (pip install 'exportwatch[onnx]')"
)


# ---------------------------------------------------------------------------------------------
# Stage detection.


def export_error_stage(exc: BaseException, errors: ModuleType) -> Stage:
    """Which stage ``torch.onnx.export`` died in, from its wrapper exception classes."""
    torch_export_error = getattr(errors, "TorchExportError", None)
    conversion_error = getattr(errors, "ConversionError", None)
    if torch_export_error is not None and isinstance(exc, torch_export_error):
        return Stage.CAPTURE
    if conversion_error is not None and isinstance(exc, conversion_error):
        return Stage.TRANSLATION
    # Not wrapped: raised by the opset converter or the argument handling around the exporter.
    return Stage.TRANSLATION if _raised_under(exc, "onnxscript") else Stage.CAPTURE


def _raised_under(exc: BaseException, package: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if f"/{package}/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False


_DISPATCH_RE = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)', overload='([^']+)'\)>")
_NODE_RE = re.compile(r"target=torch\.ops\.([\w.]+)\]")


def untranslated_op(exc: BaseException) -> str | None:
    """The aten/custom op the translation failed on (``aten._linalg_eigh.default``), if named."""
    for link in cause_chain(exc):
        text = str(link)
        match = _DISPATCH_RE.search(text)
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    for link in cause_chain(exc):
        match = _NODE_RE.search(str(link))
        if match:
            return match.group(1)
    return None


def cause_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its ``__cause__``s (then ``__context__``s), outermost first."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        chain.append(link)
        seen.add(id(link))
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return chain


def root_cause(exc: BaseException) -> BaseException:
    return cause_chain(exc)[-1]


_STRATEGY_RE = re.compile(r"with `(torch\.export\.[^`]*)`\.\.\. (✅|❌)\s*$")


def capture_fallback_notes(stdout: str, strategy: str | None = None) -> list[str]:
    """A note when the exporter fell back from its first capture strategy to another one."""
    results = [(m.group(1), m.group(2) == "✅") for m in map(_STRATEGY_RE.search, stdout.splitlines()) if m]
    failed = [name for name, ok in results if not ok]
    succeeded = [name for name, ok in results if ok]
    if failed and succeeded:
        return [f"capture fell back: {', '.join(failed)} failed, {succeeded[0]} succeeded"]
    if strategy and strategy != "TorchExportNonStrictStrategy" and not failed:
        return [f"capture fell back to {strategy}"]
    return []


# ---------------------------------------------------------------------------------------------
# Dynamic dims the exporter specialised.


def specialised_onnx_dims(model: Any, module: Any, ep: Any, dynamic_shapes: Any) -> list[str]:
    """A warning per requested dynamic dim that is a fixed number in the ONNX graph's inputs."""
    if dynamic_shapes is None or ep is None:
        return []
    names = user_input_names(ep)
    if names is None:
        return []
    args, kwargs = slot_tree(ep.call_spec.in_spec)
    dims = requested_dynamic_dims(
        getattr(module, "forward", module), args, kwargs, dynamic_shapes, len(names)
    )
    located = [(names[d.leaf], d) for d in dims if names[d.leaf] is not None]
    return specialised_input_dims(model, located)


def specialised_input_dims(model: Any, located: Sequence[tuple[str | None, DynamicDim]]) -> list[str]:
    """Compare requested dynamic dims with the ONNX graph input shapes (dim_value = fixed)."""
    inputs = {i.name: i for i in model.graph.input}
    out: list[str] = []
    for input_name, dim in located:
        value_info = inputs.get(input_name or "")
        if value_info is None:
            continue
        shape = value_info.type.tensor_type.shape.dim
        if dim.dim >= len(shape):
            continue
        entry = shape[dim.dim]
        if entry.HasField("dim_value"):
            out.append(
                f"dynamic dim {dim.label} ({dim.name}) was specialised to {entry.dim_value} "
                f"in the ONNX graph (input {input_name!r})"
            )
    return out


def user_input_names(ep: Any) -> list[str | None] | None:
    """ONNX input name per leaf of ``ep.call_spec.in_spec`` (None for constant inputs)."""
    from torch.export.graph_signature import InputKind, TensorArgument

    names: list[str | None] = [
        spec.arg.name if isinstance(spec.arg, TensorArgument) else None
        for spec in ep.graph_signature.input_specs
        if spec.kind == InputKind.USER_INPUT
    ]
    in_spec = ep.call_spec.in_spec
    if in_spec is None or in_spec.num_leaves != len(names):
        return None
    return names


# ---------------------------------------------------------------------------------------------
# Checker and ONNX Runtime, shared with onnx-legacy.


class OnnxModel:
    """A ModelProto in memory, or on disk with external data when it is too big for protobuf."""

    def __init__(self, onnx: ModuleType, model: Any, *, path: Path | None = None) -> None:
        self.onnx = onnx
        self.model = model
        self.path = path
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> OnnxModel:
        if self.path is None and initializer_bytes(self.model) > EXTERNAL_DATA_THRESHOLD_BYTES:
            self._tmp = tempfile.TemporaryDirectory(prefix="exportwatch-onnx-")
            self.path = Path(self._tmp.name) / "model.onnx"
            self.onnx.save_model(
                self.model,
                str(self.path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location="model.onnx.data",
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def check(self) -> Exception | None:
        """``onnx.checker.check_model(full_check=True)``: the check the exporter skips."""
        try:
            if self.path is not None:
                self.onnx.checker.check_model(str(self.path), full_check=True)
            else:
                self.onnx.checker.check_model(self.model, full_check=True)
        except Exception as exc:
            return exc
        return None

    def session(self, ort: ModuleType) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings about unused initializers are noise
        source = str(self.path) if self.path is not None else self.model.SerializeToString()
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def initializer_bytes(model: Any) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


Feed = dict[str, Any]


class InputFeeder:
    """Turns an input set into ONNX Runtime feeds, or explains why it cannot."""

    def feed(self, call: Call, session_inputs: Sequence[str]) -> Feed:
        raise NotImplementedError


@dataclass
class _DynamoFeeder(InputFeeder):
    """Flatten (args, kwargs) like torch.export did; name each tensor leaf by its placeholder."""

    names: list[str | None] | None
    kwarg_order: list[str]
    structure: pytree.TreeSpec

    @classmethod
    def build(cls, ep: Any, example: Call) -> _DynamoFeeder:
        structure = pytree.tree_structure((tuple(example.args), dict(example.kwargs)))
        return cls(names=user_input_names(ep), kwarg_order=list(example.kwargs), structure=structure)

    def feed(self, call: Call, session_inputs: Sequence[str]) -> Feed:
        kwargs = {k: call.kwargs[k] for k in self.kwarg_order if k in call.kwargs}
        kwargs.update({k: v for k, v in call.kwargs.items() if k not in kwargs})
        leaves, structure = pytree.tree_flatten((tuple(call.args), kwargs))
        if structure != self.structure:
            raise InputStructureError("the input set's structure differs from the example's")
        if self.names is not None:
            feed = {
                n: leaf
                for n, leaf in zip(self.names, leaves, strict=True)
                if n is not None and n in session_inputs
            }
            if len(feed) == len(session_inputs):
                return {k: to_numpy(v) for k, v in feed.items()}
        # Fall back to torch.onnx's own rule: tensor leaves in order.
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        return {n: to_numpy(t) for n, t in zip(session_inputs, tensors, strict=False)}


class InputStructureError(ValueError):
    """A check input set whose pytree structure differs from the example's."""


def to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_complex():
            value = torch.view_as_real(value.resolve_conj())
        return value.numpy()
    return value


def tensor_leaves_with_paths(tree: Any) -> list[tuple[str, Any]]:
    """Eager outputs as ONNX sees them: tensor leaves only (complex as real pairs)."""
    out: list[tuple[str, Any]] = []
    for path, leaf in flatten_with_paths(tree):
        if isinstance(leaf, torch.Tensor):
            out.append((path, torch.view_as_real(leaf.resolve_conj()) if leaf.is_complex() else leaf))
    return out


#: Python scalars an exported program returns as 0-d tensors (a SymInt from a shape, say).
_SCALAR_OUTPUTS = (bool, int, float, torch.SymInt, torch.SymFloat, torch.SymBool)


def onnx_output_leaves(tree: Any, produced: int) -> list[tuple[str, Any]]:
    """Eager outputs to compare with the ``produced`` outputs of an ONNX model.

    The exporter turns a computed scalar output (``x.shape[1] + 1``) into a 0-d tensor but drops
    constant ones, so scalars are compared by value when the counts say they were exported, and
    left out when only the tensors were.
    """
    with_scalars: list[tuple[str, Any]] = []
    for path, leaf in flatten_with_paths(tree):
        if isinstance(leaf, torch.Tensor):
            real = torch.view_as_real(leaf.resolve_conj()) if leaf.is_complex() else leaf
            with_scalars.append((path, real))
        elif isinstance(leaf, _SCALAR_OUTPUTS):
            with_scalars.append((path, _concrete(leaf)))
    if len(with_scalars) == produced:
        return with_scalars
    return tensor_leaves_with_paths(tree)


def _concrete(value: Any) -> Any:
    if isinstance(value, torch.SymBool):
        return bool(value)
    if isinstance(value, torch.SymInt):
        return int(value)
    if isinstance(value, torch.SymFloat):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------
# Artifacts of failing attempts.


def save_model(model: Any, path: Path, onnx: ModuleType) -> None:
    big = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD_BYTES
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )


# ---------------------------------------------------------------------------------------------
# Start-up cost: torch.onnx rebuilds its torchlib registry (~0.4 s) on every export call.


_REGISTRY_CACHE: dict[int, Any] = {}


@contextlib.contextmanager
def _reuse_torchlib_registry() -> Iterator[None]:
    """Serve ``ONNXRegistry.from_torchlib`` from a per-opset cache for the duration of a call.

    Each export gets a fresh registry object whose function lists are copies, so a custom
    translation table registered by one attempt never leaks into the next. Falls back to the
    exporter's own behaviour if the private class does not look as expected.
    """
    _registration = compat.onnx_registration()
    if _registration is None:
        yield
        return
    cls = getattr(_registration, "ONNXRegistry", None)
    saved = vars(cls).get("from_torchlib") if cls is not None else None
    if cls is None or not isinstance(saved, classmethod) or not hasattr(cls(), "functions"):
        yield
        return

    def cached(klass: Any, opset_version: int = _default_opset(_registration)) -> Any:
        template = _REGISTRY_CACHE.get(opset_version)
        if template is None:
            template = saved.__func__(klass, opset_version=opset_version)
            _REGISTRY_CACHE[opset_version] = template
        fresh = klass()
        fresh.__dict__.update(template.__dict__)
        fresh.functions = {key: list(value) for key, value in template.functions.items()}
        return fresh

    cls.from_torchlib = classmethod(cached)
    try:
        yield
    finally:
        cls.from_torchlib = saved


def _default_opset(registration: ModuleType) -> int:
    constants = getattr(registration, "_constants", None)
    return int(getattr(constants, "TORCHLIB_OPSET", 18))


__all__ = [
    "MISSING_ORT_NOTE",
    "OnnxDynamo",
    "OnnxExport",
    "OnnxModel",
    "OnnxTarget",
    "capture_exporter_output",
    "cause_chain",
    "root_cause",
]
