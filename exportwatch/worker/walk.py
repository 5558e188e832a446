"""The submodule export sweep: capture every submodule's inputs, then try exports top-down.

Where PyTorch's ``report_exportability`` skips every later module of a type once one was
tried, this sweep deduplicates by *what is exported* (class, forward code, parameter shapes,
plain attributes, input signature), so an odd block among identical ones is still found; every
submodule gets an explicit verdict (``covered``, ``same-as``, ``not-called`` included); and
inputs are cloned at capture, one list per call, so in-place ops and repeated calls are safe.

This module runs inside a worker process; it knows nothing of processes or timeouts.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from exportwatch import diagnose
from exportwatch.diagnose import blockers
from exportwatch.manifest import DimSpec, ModelSpec
from exportwatch.report import JobResult, SubmoduleResult, Verdict, tree
from exportwatch.report.model import Blockers, BlockerStatus
from exportwatch.sweep.settings import SweepSettings
from exportwatch.targets import get_target
from exportwatch.targets.base import Call, Outcome, Stage, TargetOptions, TraceShelf
from exportwatch.worker import fixes
from exportwatch.worker.capture import (
    EXAMPLE_SET,
    Capture,
    MethodAsForward,
    call_signature,
    capture_calls,
    dedup_key,
    describe_inputs,
    module_state,
)
from exportwatch.worker.inputs import (
    build_dynamic_shapes,
    build_inputs,
    build_model,
    check_signature,
    resolve_device,
)

log = logging.getLogger(__name__)

#: A module called with many different shapes is exported for at most this many of them.
MAX_SIGNATURES_PER_MODULE = 4
#: Why a submodule has no verdict of its own when the model's eager forward raised.
SKIPPED_BY_MODEL_ERROR = (
    "not tried: the model's own forward failed (model-error); its inputs come from that run"
)
NOT_REACHED = "not reached: the model's own forward raised before calling it"


# ---------------------------------------------------------------------------------------------
# The top-down sweep of one target


def _type_name(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


@contextmanager
def _grad_mode(no_grad: bool) -> Iterator[None]:
    with torch.no_grad() if no_grad else nullcontext():
        yield


@dataclass
class _Walk:
    """State of one target's sweep over one model."""

    model: nn.Module
    capture: Capture
    spec: ModelSpec
    target_name: str
    settings: SweepSettings
    attempt_fn: Callable[[nn.Module, str, Call, list[tuple[str, Call]], TargetOptions], Outcome]
    root_dynamic_shapes: Any
    traces: TraceShelf | None = None
    on_phase: Callable[[str, str], None] = field(default=lambda name, path: None)
    results: dict[str, SubmoduleResult] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # dedup key -> first path
    visited: set[int] = field(default_factory=set)
    attempts: int = 0
    #: Seconds the target spent compiling, over every attempt (AOTInductor); None: none did.
    compile_s: float | None = None
    #: The last attempt's compile, the job's start and its timeout: a compiling target stops
    #: descending when another compile would not fit (``_no_time_to_compile``).
    last_compile_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    timeout_s: float | None = None
    #: path -> the module exported and the call it failed on: where draft_export looks again.
    failed_calls: dict[str, tuple[nn.Module, Call]] = field(default_factory=dict)

    def run(self) -> list[SubmoduleResult]:
        eager_error = self.capture.eager_errors.get(EXAMPLE_SET)
        if eager_error is not None:
            self._record_model_error(eager_error)
        self._visit(self.model, "", covered_by=None)
        root = self.results.get("")
        for path in self.spec.methods:
            if root is not None and path not in self.results:  # a typo must not pass in silence
                root.warnings.append(
                    f"manifest `methods` names submodule {path!r}, which the model does not have"
                )
        return [self.results[p] for p in self._ordered_paths()]

    def _ordered_paths(self) -> list[str]:
        order = {path: i for i, (path, _) in enumerate(self.model.named_modules())}
        return sorted(self.results, key=lambda p: order.get(p, len(order)))

    def _new(self, module: nn.Module, path: str, verdict: Verdict, **fields: Any) -> SubmoduleResult:
        aliases = [p for p in self.capture.paths.get(id(module), []) if p != path]
        calls = sum(len(v) for v in self.capture.calls.get(id(module), {}).values())
        result = SubmoduleResult(
            path=path,
            module_type=_type_name(module),
            verdict=verdict,
            aliases=aliases,
            calls=calls,
            inputs=describe_inputs(
                [c for set_calls in self.capture.calls.get(id(module), {}).values() for c in set_calls]
            ),
            xfail=self.spec.xfail_submodules.get(path),
            **fields,
        )
        self.results[path] = result
        return result

    def _children(self, module: nn.Module, path: str) -> list[tuple[nn.Module, str]]:
        return [(child, f"{path}.{name}" if path else name) for name, child in module.named_children()]

    def _visit(self, module: nn.Module, path: str, *, covered_by: str | None) -> None:
        if id(module) in self.visited:
            return  # a shared module: reported once, under its first path, with aliases
        self.visited.add(id(module))
        if path == "" and self.capture.eager_errors.get(EXAMPLE_SET) is not None:
            self._skip_below_model_error(module)
            return
        calls = self.capture.calls_of(module)
        exported, through = module, self._through_method(module, path) if not calls else None
        if through is not None:
            exported, calls = through
        if not calls:
            # Checked before coverage: a module the forward never calls is `not-called` whether
            # or not its ancestor exported, so breaking the root does not flip unused modules.
            self._record_not_called(module, path)
            for child, child_path in self._children(module, path):
                self._visit(child, child_path, covered_by=covered_by)
            return
        if covered_by is not None:
            self._new(module, path, Verdict.COVERED, covered_by=covered_by)
            for child, child_path in self._children(module, path):
                self._visit(child, child_path, covered_by=covered_by)
            return
        late = self._no_time_to_compile(path)
        if late is not None:
            self._new(module, path, Verdict.SKIPPED, reason=late)
            for child, child_path in self._children(module, path):
                self._visit(child, child_path, covered_by=None)
            return
        key, dedup_warning = self._dedup_key(exported, path, calls)
        if key in self.seen:
            self._mirror(module, path, self.seen[key])
            return
        self.seen[key] = path
        result = self._attempt(exported, path, calls)
        if exported is not module:
            _exported_through(result, module, self.spec.methods[path])
        if dedup_warning:
            result.warnings.append(dedup_warning)
        passed = result.verdict == Verdict.OK
        for child, child_path in self._children(module, path):
            self._visit(child, child_path, covered_by=path if passed else None)

    def _no_time_to_compile(self, path: str) -> str | None:
        """Why a submodule below a failing one is not compiled: a target that compiles (``aoti``,
        tens of seconds each) would otherwise pass the job's timeout compiling one submodule
        after another, and a timeout would cost the job the verdicts it has."""
        if not path or self.last_compile_s <= 0 or self.timeout_s is None:
            return None
        elapsed = time.perf_counter() - self.started
        if elapsed + COMPILES_AHEAD * self.last_compile_s <= TIMEOUT_SHARE_FOR_COMPILES * self.timeout_s:
            return None
        return (
            f"not compiled: {elapsed:.0f} s of the job's {self.timeout_s:g} s timeout are spent and "
            f"a compile takes about {self.last_compile_s:.0f} s (raise `timeout` to compile every "
            "submodule below a failure)"
        )

    def _dedup_key(self, module: nn.Module, path: str, calls: list[Call]) -> tuple[str, str | None]:
        """The dedup key, or a key of its own (no dedup) when describing the module failed."""
        try:
            return dedup_key(module, calls), None
        except Exception as exc:  # a heuristic's bug costs the dedup, never the result
            log.warning("dedup key of %r failed: %s: %s", path, type(exc).__name__, exc)
            return f"undeduplicated:{path}", (
                f"exportwatch could not compare this module with others ({type(exc).__name__}: "
                f"{str(exc)[:200]}); it was exported on its own"
            )

    def _skip_below_model_error(self, root: nn.Module) -> None:
        """The model's own forward raised: no submodule is exported, each says why.

        The inputs recorded for a submodule come from the run that failed (usually inputs of
        the wrong shape): even a call that completed was derived from them, so exporting it
        checks a configuration the model never runs, and a failure there would be blamed on a
        submodule, as an origin, for what is the model's or the manifest's error.
        """
        for path, module in root.named_modules():  # first path of a shared module, as _visit
            if path == "" or id(module) in self.visited:
                continue
            self.visited.add(id(module))
            reason = SKIPPED_BY_MODEL_ERROR if self.capture.calls_of(module) else NOT_REACHED
            self._new(module, path, Verdict.SKIPPED, reason=reason)

    def _record_not_called(self, module: nn.Module, path: str) -> None:
        used = list(self.capture.method_calls.get(id(module), {}))
        if used:  # not dead code: the model calls it, through another method than forward
            names = ", ".join(f"`.{name}`" for name in used)
            reason = f"forward never called: used through {names} of `{path}`"
            if self.spec.methods.get(path) not in used:
                reason += f" (to export it through that method: `methods: {{{path}: {used[0]}}}`)"
            self._new(module, path, Verdict.NOT_CALLED, reason=reason)
        elif any(True for _ in module.children()) and not _has_own_forward(module):
            self._new(module, path, Verdict.NOT_CALLED, reason="container without forward")
        else:
            self._new(module, path, Verdict.NOT_CALLED, reason="never called by the model's forward")

    def _through_method(self, module: nn.Module, path: str) -> tuple[nn.Module, list[Call]] | None:
        """The manifest's ``methods`` asks for this module's ``method``, which the model called
        (its forward it never did): a module whose forward is that method, and those calls."""
        method = self.spec.methods.get(path)
        calls = self.capture.method_calls.get(id(module), {}).get(method or "")
        if not method or not calls:
            return None
        exported = MethodAsForward(module, method)
        self.capture.paths[id(exported)] = self.capture.paths.get(id(module), [path])
        self.capture.calls[id(exported)] = {EXAMPLE_SET: calls}
        return exported, calls

    def _mirror(self, module: nn.Module, path: str, original: str) -> None:
        """An identical module was tried already: share its result, and its subtree's."""
        self._new(module, path, Verdict.SAME_AS, same_as=original)
        for sub_path, sub in module.named_modules(prefix=path):
            if sub_path == path or id(sub) in self.visited:
                continue
            self.visited.add(id(sub))
            twin = original + sub_path[len(path) :]
            if twin in self.results:
                self._new(sub, sub_path, Verdict.SAME_AS, same_as=twin)
            else:  # no twin recorded (should not happen): sweep it on its own
                self.visited.discard(id(sub))
                self._visit(sub, sub_path, covered_by=None)

    def _checks_for(self, module: nn.Module, exported: Call, is_root: bool) -> list[tuple[str, Call]]:
        """Other calls to verify the exported program on.

        A static export is only valid for the signature it was exported with, so submodules
        (always exported statically) and a root without dynamic shapes are checked on calls of
        the same signature; a root with dynamic shapes on every extra input set.
        """
        signature = call_signature(exported)
        checks: list[tuple[str, Call]] = []
        per_set = self.capture.calls.get(id(module), {})
        for set_name, calls in per_set.items():
            for index, call in enumerate(calls):
                if call is exported:
                    continue
                dynamic_ok = is_root and self.root_dynamic_shapes is not None
                if dynamic_ok and index == 0 and set_name != EXAMPLE_SET:
                    checks.append((set_name, call))
                elif call_signature(call) == signature:
                    label = set_name if index == 0 else f"{set_name}[call {index + 1}]"
                    checks.append((label, call))
        return checks

    def _attempt(self, module: nn.Module, path: str, calls: list[Call]) -> SubmoduleResult:
        """Export once per distinct call signature; the first failure decides the verdict."""
        is_root = path == ""
        distinct: dict[Any, Call] = {}
        for call in calls:
            distinct.setdefault(call_signature(call), call)
        tried = list(distinct.values())[:MAX_SIGNATURES_PER_MODULE]
        notes: list[str] = []
        if len(distinct) > len(tried):
            notes.append(f"called with {len(distinct)} input signatures; exported the first {len(tried)}")
        started = time.perf_counter()
        outcome: Outcome | None = None
        attempts = 0
        for call in tried:
            try:
                self.on_phase("export", path)
                options = self._options(path, dynamic=is_root)
                outcome = self.attempt_fn(
                    module, path, call, self._checks_for(module, call, is_root), options
                )
            except Exception as exc:  # a target must return an Outcome: this is exportwatch's bug
                attempts += 1
                self.attempts += attempts
                return self._record_error(module, path, exc, attempts=attempts, started=started)
            attempts += 1
            notes.extend(outcome.warnings)
            compiled = outcome.extras.get("compile_s")  # a compiling target's time (aoti)
            if compiled is not None:
                self.compile_s = (self.compile_s or 0.0) + compiled
                self.last_compile_s = compiled
            if outcome.verdict != Verdict.OK:
                break
        assert outcome is not None
        self.attempts += attempts
        if len(tried) > 1 and outcome.verdict != Verdict.OK:
            notes.append(f"failed on call {attempts} of {len(tried)} distinct input signatures")
        result = self._new(
            module,
            path,
            outcome.verdict,
            attempts=attempts,
            duration_s=round(time.perf_counter() - started, 4),
            warnings=list(dict.fromkeys(notes)),
        )
        result.delegation = outcome.extras.get("delegation")  # a deployment target's coverage
        if outcome.verdict != Verdict.OK:
            self._fill_failure(module, result, outcome)
            self.failed_calls[path] = (module, call)
        return result

    def _options(self, path: str, *, dynamic: bool) -> TargetOptions:
        name = f"{self.spec.name}.{self.target_name}.{path or 'root'}".replace("/", "_")
        return TargetOptions(
            dynamic_shapes=self.root_dynamic_shapes if dynamic else None,
            verify=self.spec.verify,
            rtol=self.spec.rtol,
            atol=self.spec.atol,
            opset=self.spec.opset,
            executorch_backend=self.spec.executorch_backend,
            artifacts_dir=self.settings.options.artifacts_dir,
            artifact_name=name,
            report_phase=lambda phase: self.on_phase(phase, path),
            traces=self.traces,
        )

    def _fill_failure(self, module: nn.Module, result: SubmoduleResult, outcome: Outcome) -> None:
        stage = outcome.stage.value if outcome.stage is not None else None  # plain text in the report
        result.stage = stage
        result.mismatch = outcome.mismatch
        error = outcome.error
        if outcome.verdict == Verdict.MISMATCH and error is None:
            error = AssertionError(
                outcome.mismatch.message if outcome.mismatch else "exported program disagrees with eager"
            )
        if error is None:
            error = RuntimeError("export failed")
        try:
            if outcome.verdict == Verdict.MISMATCH and stage == Stage.ACCURACY:
                found = diagnose.diagnose_mismatch(
                    target=self.target_name,
                    stage=stage,
                    message=str(error),
                    output=outcome.mismatch.output if outcome.mismatch else "",
                    module=module,
                    repo_root=self.settings.repo_root,
                )
            else:  # an export that failed, or an exported program that raised when run
                found = diagnose.diagnose_exception(
                    error,
                    target=self.target_name,
                    stage=stage,
                    repo_root=self.settings.repo_root,
                    module=module,
                )
        except Exception as exc:  # the verdict was measured; only its explanation is lost
            log.warning("diagnosing %r failed: %s", result.path, exc)
            found = diagnose.fallback_diagnosis(error, target=self.target_name, stage=stage, error=exc)
        _apply_diagnosis(result, found)

    def _record_error(
        self, module: nn.Module, path: str, exc: Exception, *, attempts: int, started: float
    ) -> SubmoduleResult:
        """exportwatch itself failed while checking ``path``: ``error``, never a pass or a fail."""
        result = self._new(
            module,
            path,
            Verdict.ERROR,
            attempts=attempts,
            duration_s=round(time.perf_counter() - started, 4),
        )
        _apply_diagnosis(result, diagnose.internal_error_diagnosis(exc, target=self.target_name))
        return result

    def _record_model_error(self, error: BaseException) -> None:
        result = self._new(self.model, "", Verdict.FAIL, reason="the eager forward raised")
        try:
            found = diagnose.diagnose_model_error(error, repo_root=self.settings.repo_root)
        except Exception as exc:
            found = diagnose.fallback_diagnosis(error, target="eager", stage=None, error=exc)
            found.category = "model-error"
        _apply_diagnosis(result, found)


def _exported_through(result: SubmoduleResult, module: nn.Module, method: str) -> None:
    """The result of a module exported through ``method``: its own type, and a note saying so."""
    result.module_type = _type_name(module)
    result.warnings.insert(0, f"exported through `.{method}` (manifest `methods`): forward is never called")


def _has_own_forward(module: nn.Module) -> bool:
    """Containers (ModuleList, ModuleDict) have no forward of their own (nor a patched one)."""
    return "forward" in vars(module) or type(module).forward is not nn.Module.forward


def _apply_diagnosis(result: SubmoduleResult, found: diagnose.Diagnosis) -> None:
    result.category = found.category
    result.fingerprint = found.fingerprint
    result.exception_type = found.exception_type
    result.root_cause = found.root_cause
    result.message = found.message
    result.detail = found.detail
    result.user_frame = found.user_frame
    result.hint = found.hint


# ---------------------------------------------------------------------------------------------
# One model, every target


@dataclass
class PreparedModel:
    """A model built once, with its inputs captured once, shared by all its targets."""

    spec: ModelSpec
    device: str
    model: nn.Module
    capture: Capture
    dynamic_shapes: Any
    #: One target's captures, for another (``onnx`` starts from ``export``'s and
    #: ``export-strict``'s, ``executorch`` from ``export``'s); None where no target of this model
    #: would use them (nothing is kept then).
    traces: TraceShelf | None = field(default_factory=lambda: TraceShelf(module_state))


def prepare_model(
    spec: ModelSpec,
    *,
    device: str,
    settings: SweepSettings,
    on_phase: Callable[[str, str], None] | None = None,
) -> PreparedModel:
    """Build the model and its input sets, check them against forward, capture every call.

    Raises ``ConfigError`` for manifest problems (factory, inputs, signature).
    """
    on_phase = on_phase or (lambda name, path: None)
    root = settings.manifest_root
    on_phase("build", "")
    torch.manual_seed(0)
    model = build_model(spec, root=root)
    model.to(device)
    on_phase("capture", "")
    input_sets: dict[str, Call] = {}
    specs = {EXAMPLE_SET: spec.inputs, **spec.input_sets}
    for name, inputs_spec in specs.items():
        field_path = "inputs" if name == EXAMPLE_SET else f"input_sets.{name}"
        args, kwargs = build_inputs(inputs_spec, root=root, device=device, field_path=field_path)
        check_signature(model, args, kwargs, location=inputs_spec.location or spec.location)
        input_sets[name] = Call(args=tuple(args), kwargs=dict(kwargs))
    example = input_sets[EXAMPLE_SET]
    dynamic_shapes = build_dynamic_shapes(spec, example.args, example.kwargs, model=model)
    capture = capture_calls(model, input_sets, no_grad=spec.no_grad)
    return PreparedModel(
        spec=spec, device=device, model=model, capture=capture, dynamic_shapes=dynamic_shapes
    )


def sweep_target(
    prepared: PreparedModel,
    target_name: str,
    *,
    settings: SweepSettings,
    on_phase: Callable[[str, str], None] | None = None,
) -> JobResult:
    """Sweep one target over an already prepared model."""
    target = get_target(target_name)
    spec = prepared.spec
    started = time.perf_counter()

    def attempt(
        module: nn.Module, path: str, call: Call, checks: list[tuple[str, Call]], options: TargetOptions
    ) -> Outcome:
        with _grad_mode(spec.no_grad):
            return target.attempt(module, call, checks=checks, options=options)

    walk = _Walk(
        model=prepared.model,
        capture=prepared.capture,
        spec=spec,
        target_name=target_name,
        settings=settings,
        attempt_fn=attempt,
        root_dynamic_shapes=prepared.dynamic_shapes,
        traces=prepared.traces,
        on_phase=on_phase or (lambda name, path: None),
        started=started,
        timeout_s=settings.options.timeout_s or spec.timeout,
    )
    submodules = walk.run()
    job = JobResult(
        model=spec.name,
        target=target_name,
        device=prepared.device,
        verdict=next(s.verdict for s in submodules if s.path == ""),
        duration_s=round(time.perf_counter() - started, 3),
        attempts=walk.attempts,
        xfail=spec.xfail or spec.xfail_submodules.get(""),
        submodules=submodules,
        parameters=sum(p.numel() for p in prepared.model.parameters()),
        compile_s=round(walk.compile_s, 3) if walk.compile_s is not None else None,
        coverage_threshold=spec.coverage_threshold if target_name == COVERAGE_TARGET else None,
    )
    try:
        job = tree.mark_origins(job)
    except Exception as exc:  # origins explain the verdicts; they never decide them
        log.warning("marking origins for %s/%s failed: %s", spec.name, target_name, exc)
    if target_name == BLOCKERS_TARGET and spec.blockers and settings.options.blockers:
        timeout = settings.options.timeout_s or spec.timeout
        _search_blockers(job, walk, settings=settings, until=started + timeout * BLOCKERS_SHARE_OF_TIMEOUT)
        job.duration_s = round(time.perf_counter() - started, 3)
    return job


#: A compiling target attempts a submodule below a failure only while this many compiles as long
#: as the last one fit in this share of the job's timeout (the rest is the model's build and
#: capture, and the verification).
COMPILES_AHEAD = 1.5
TIMEOUT_SHARE_FOR_COMPILES = 0.8

#: The target whose jobs carry the manifest's per-model coverage threshold (its delegation).
COVERAGE_TARGET = "executorch"
#: The target whose origins get every blocker from ``draft_export`` (non-strict, as it is).
BLOCKERS_TARGET = "export"
#: No draft_export starts once the job has used this share of its timeout: the search explains
#: a verdict, and must never cost the job that verdict (a timeout).
BLOCKERS_SHARE_OF_TIMEOUT = 0.5


def _search_blockers(job: JobResult, walk: _Walk, *, settings: SweepSettings, until: float) -> None:
    """Every blocker of each failing origin: one ``draft_export`` run per origin, on the call
    its export failed on (the root with the manifest's dynamic shapes, as it was exported); then
    the fixes of its blockers, each proven by exporting again with it applied (``worker.fixes``),
    within the same share of the job's timeout."""
    for result in job.submodules:
        found = walk.failed_calls.get(result.path)
        if not result.origin or result.verdict != Verdict.FAIL or found is None:
            continue
        if not blockers.worth_searching(result.category):  # draft_export would stop there too
            continue
        if time.perf_counter() > until:
            result.blockers = Blockers(
                status=BlockerStatus.FAILED,
                note="not searched: the job had used half its timeout (draft_export costs one more export)",
            )
            continue
        module, call = found
        shapes = walk.root_dynamic_shapes if result.path == "" else None
        walk.on_phase("draft_export", result.path)

        def run(module: nn.Module = module, call: Call = call, shapes: Any = shapes) -> Any:
            with _grad_mode(walk.spec.no_grad):
                return torch.export.draft_export(module, call.args, call.kwargs, dynamic_shapes=shapes)

        found_blockers, facts = blockers.search_with_facts(
            run, repo_root=settings.repo_root, interned=_interned_strings
        )
        if found_blockers.status is BlockerStatus.FOUND and time.perf_counter() <= until:
            walk.on_phase("fixes", result.path)
            started = time.perf_counter()
            with _grad_mode(walk.spec.no_grad):
                found_blockers = fixes.prove(
                    found_blockers,
                    facts,
                    module=module,
                    call=call,
                    shapes=shapes,
                    repo_root=settings.repo_root,
                    until=until,
                    interned=_interned_strings,
                    dims=_dims_fix(walk, result, call) if result.path == "" else None,
                )
            found_blockers.duration_s = round(found_blockers.duration_s + time.perf_counter() - started, 3)
        result.blockers = found_blockers


def _dims_fix(walk: _Walk, result: SubmoduleResult, call: Call) -> fixes.Dims | None:
    """torch's suggested dynamic-shapes fixes for a root whose export violated the manifest's dims."""
    spec = walk.spec
    if spec.dynamic_shapes is None or result.category != "constraint-violation":
        return None
    suggested = diagnose.constraint_details(result.detail or "")[1]

    def reshape(bounds: fixes.Bounds) -> Any:
        dims = {name: DimSpec(name=name, min=low, max=high) for name, (low, high) in bounds.items()}
        return build_dynamic_shapes(
            dataclasses.replace(spec, dims=dims), call.args, call.kwargs, model=walk.model
        )

    return fixes.Dims(
        suggested=suggested, bounds={n: (d.min, d.max) for n, d in spec.dims.items()}, reshape=reshape
    )


def _interned_strings() -> dict[str, int]:
    """torch's structured-log string table (filename → index): a file an earlier trace of this
    process interned is named only there, not in a later draft report's own table."""
    from torch._logging import structured

    return dict(getattr(structured, "INTERN_TABLE", {}))


def skipped_job(spec: ModelSpec, target: str, device: str, reason: str) -> JobResult:
    return JobResult(
        model=spec.name,
        target=target,
        device=device,
        verdict=Verdict.SKIPPED,
        reason=reason,
        xfail=spec.xfail,
    )


def device_for(spec: ModelSpec, override: str | None) -> tuple[str, str | None]:
    """Resolve the device; return (device, reason-to-skip or None)."""
    wanted = override or spec.device
    if wanted == "cuda" and not torch.cuda.is_available():
        return "cuda", "CUDA is not available"
    return resolve_device(wanted), None
