"""Targets ``export`` (non-strict) and ``export-strict``: public ``torch.export.export``.

Export succeeding is not enough: non-strict export bakes Python values (``random.random()``,
``.item()`` turned into a float) in as constants, and a program exported under a guard carries
runtime asserts that fail on another input. So the exported program is run on the example and
on every extra input set and compared with eager.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch.fx.experimental.symbolic_shapes import is_concrete_int

from exportwatch import compat
from exportwatch.report import Mismatch, Verdict
from exportwatch.targets.base import (
    NOISE_WARNINGS,
    Call,
    Outcome,
    SharedTrace,
    Stage,
    Target,
    TargetOptions,
)
from exportwatch.targets.verify import (
    NumericMismatchError,
    Tolerance,
    clone_tree,
    compare_outputs,
    eager_references,
    requested_dynamic_dims,
    slot_tree,
)

log = logging.getLogger(__name__)


class TorchExport(Target):
    """``torch.export.export(module, args, kwargs, dynamic_shapes=..., strict=...)``."""

    name = "export"

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.name = "export-strict" if strict else "export"  # type: ignore[misc]

    def prepare(self) -> None:
        """The first torch.export in a process costs about a second more than later ones."""
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
        notes: list[str] = []
        shelf = options.traces if self._shareable(options) else None
        state = shelf.state(module) if shelf is not None else None  # before the trace runs forward
        watch = compat.watch_onnx_export_flag() if shelf is not None else contextlib.nullcontext(None)
        try:
            with warnings.catch_warnings(record=True) as caught, watch as asked_if_onnx:
                warnings.simplefilter("always")
                ep = torch.export.export(
                    module,
                    tuple(clone_tree(example.args)),
                    clone_tree(example.kwargs),
                    dynamic_shapes=options.dynamic_shapes,
                    strict=self.strict,
                )
        except Exception as exc:
            return Outcome.failed(Stage.CAPTURE, exc, _warning_lines(caught))
        notes.extend(_warning_lines(caught))
        # Code that asked whether ONNX is exporting traces otherwise under torch.onnx.
        if shelf is not None and asked_if_onnx is not None and not asked_if_onnx():
            shelf.keep(module, example, state, SharedTrace(program=ep, warnings=tuple(notes)))
        notes.extend(specialised_dims_warnings(ep, module, options.dynamic_shapes))
        if not options.verify:
            return Outcome.ok(notes)
        options.report_phase("verification")
        return verify_exported_program(ep, module, example, checks=checks, options=options, notes=notes)

    def _shareable(self, options: TargetOptions) -> bool:
        """A static non-strict capture is what the ``onnx`` exporter's first strategy makes."""
        return not self.strict and options.dynamic_shapes is None and options.traces is not None


def verify_exported_program(
    ep: torch.export.ExportedProgram,
    module: Any,
    example: Call,
    *,
    checks: Sequence[tuple[str, Call]],
    options: TargetOptions,
    notes: list[str],
) -> Outcome:
    """Run ``ep.module()`` on every input set and compare with eager."""
    tolerance = Tolerance(rtol=options.rtol, atol=options.atol)
    try:
        exported = ep.module()
    except Exception as exc:
        return Outcome.failed(Stage.RUNTIME, exc, notes)
    for set_name, call, expected in eager_references(module, example, checks, notes):
        try:
            actual = exported(*clone_tree(call.args), **clone_tree(call.kwargs))
        except Exception as exc:
            raised = Mismatch(
                input_set=set_name,
                output="",
                message=f"input set {set_name!r}: the exported program raised "
                f"{type(exc).__name__}: {_first_line(exc)}",
            )
            return Outcome(
                verdict=Verdict.MISMATCH, stage=Stage.RUNTIME, error=exc, warnings=notes, mismatch=raised
            )
        mismatch = compare_outputs(expected, actual, input_set=set_name, tolerance=tolerance)
        if mismatch is not None:
            return Outcome(
                verdict=Verdict.MISMATCH,
                stage=Stage.ACCURACY,
                error=NumericMismatchError(mismatch),
                warnings=notes,
                mismatch=mismatch,
            )
    return Outcome.ok(notes)


def specialised_dims_warnings(
    ep: torch.export.ExportedProgram, module: Any, dynamic_shapes: Any
) -> list[str]:
    """A warning per requested dynamic dim that the exported program has as a fixed size."""
    if dynamic_shapes is None:
        return []
    values = user_input_values(ep)
    if values is None:
        return []
    args, kwargs = slot_tree(ep.call_spec.in_spec)
    forward = getattr(module, "forward", module)
    out: list[str] = []
    for dim in requested_dynamic_dims(forward, args, kwargs, dynamic_shapes, len(values)):
        val = values[dim.leaf]
        shape = getattr(val, "shape", None)
        if shape is None or dim.dim >= len(shape):
            continue
        size = shape[dim.dim]
        if is_concrete_int(size):
            out.append(f"dynamic dim {dim.label} ({dim.name}) was specialised to {int(size)}")
    return out


def user_input_values(ep: torch.export.ExportedProgram) -> list[Any] | None:
    """The fake values of the user inputs, in the order of ``ep.call_spec.in_spec``'s leaves."""
    from torch.export.graph_signature import InputKind

    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    values: list[Any] = []
    for spec in ep.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT:
            continue
        name = getattr(spec.arg, "name", None)
        node = placeholders.get(name) if name is not None else None
        values.append(node.meta.get("val") if node is not None else getattr(spec.arg, "value", None))
    in_spec = ep.call_spec.in_spec
    if in_spec is None or in_spec.num_leaves != len(values):
        return None
    return values


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """User-facing warnings, deduplicated; library deprecation noise dropped."""
    seen: dict[str, None] = {}
    for w in caught:
        if not issubclass(w.category, NOISE_WARNINGS):
            seen.setdefault(f"{w.category.__name__}: {_first_line(w.message)}", None)
    return list(seen)


def _first_line(exc: object) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""
