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
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.fx.experimental.symbolic_shapes import is_concrete_int

from exportwatch import compat
from exportwatch.targets.base import (
    NOISE_WARNINGS,
    Attempt,
    Runner,
    SharedTrace,
    Stage,
    StageFailed,
    Target,
    first_line,
)
from exportwatch.targets.verify import clone_tree, requested_dynamic_dims, slot_tree

log = logging.getLogger(__name__)


def export_program(job: Attempt) -> torch.export.ExportedProgram:
    """The ``export`` target's capture of this module and call where the sweep kept one (one
    trace for the targets that start from it: ``aoti``, ``executorch``), else a non-strict
    export of their own, with the manifest's dynamic shapes."""
    shelf = job.options.traces
    if shelf is not None and job.options.dynamic_shapes is None:
        shared = shelf.take(job.module, job.example)
        if shared is not None:
            return shared.program
    with job.stage(Stage.CAPTURE), warnings.catch_warnings():
        warnings.simplefilter("ignore", NOISE_WARNINGS)
        return torch.export.export(
            job.module,
            tuple(clone_tree(job.example.args)),
            clone_tree(job.example.kwargs),
            dynamic_shapes=job.options.dynamic_shapes,
            strict=False,
        )


class TorchExport(Target["torch.export.ExportedProgram"]):
    """``torch.export.export(module, args, kwargs, dynamic_shapes=..., strict=...)``; run as
    ``ep.module()`` on every input set. The first torch.export in a process costs about a second
    more than later ones, which the base's :meth:`~Target.prepare` pays up front."""

    name = "export"

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.name = "export-strict" if strict else "export"  # type: ignore[misc]

    def capture(self, job: Attempt) -> torch.export.ExportedProgram:
        """Export; hand a static capture, or its failure, on to later targets (``TraceShelf``)."""
        module, example, options = job.module, job.example, job.options
        shelf = options.traces if options.dynamic_shapes is None else None
        if shelf is not None and not shelf.wanted(strict=self.strict):
            shelf = None  # no later target reads this one's captures
        state = shelf.state(module) if shelf is not None else None  # before the trace runs forward
        watch = compat.watch_onnx_export_flag() if shelf is not None else contextlib.nullcontext(None)
        caught: list[warnings.WarningMessage] = []
        asked_if_onnx: Callable[[], bool] | None = None
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
            job.notes.extend(_warning_lines(caught))
            # A failed trace that changed its module leaves torch.onnx's next strategy another one.
            if (
                shelf is not None
                and _unasked(asked_if_onnx)
                and shelf.state(module) == state
                and not _onnx_traces_otherwise(exc, strict=self.strict)
            ):
                shelf.keep(
                    module,
                    example,
                    state,
                    SharedTrace(error=exc, warnings=tuple(job.notes), strict=self.strict),
                )
            raise StageFailed(Stage.CAPTURE, exc) from None
        job.notes.extend(_warning_lines(caught))
        if shelf is not None and _unasked(asked_if_onnx):
            shelf.keep(
                module, example, state, SharedTrace(program=ep, warnings=tuple(job.notes), strict=self.strict)
            )
        job.notes.extend(specialised_dims_warnings(ep, module, options.dynamic_shapes))
        return ep

    def load(self, job: Attempt, exported: torch.export.ExportedProgram) -> Runner:
        with job.stage(Stage.RUNTIME):
            program = exported.module()
        return lambda call: program(*clone_tree(call.args), **clone_tree(call.kwargs))


def _unasked(asked_if_onnx: Callable[[], bool] | None) -> bool:
    """Code that asked whether ONNX is exporting traces otherwise under torch.onnx."""
    return asked_if_onnx is not None and not asked_if_onnx()


def _onnx_traces_otherwise(exc: BaseException, *, strict: bool) -> bool:
    """Whether torch.onnx's own strict capture could end otherwise than this failure: it traces
    with ``torch.jit.isinstance`` replaced by the builtin, which dynamo refuses to trace (the
    message names it). Conservative: any strict failure that mentions ``isinstance``."""
    if not strict:
        return False
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        try:
            if "isinstance" in str(link):
                return True
        except Exception:
            return True
        link = link.__cause__ or link.__context__
    return False


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
            seen.setdefault(f"{w.category.__name__}: {first_line(w.message)}", None)
    return list(seen)
