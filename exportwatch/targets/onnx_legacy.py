"""Target ``onnx-legacy``: the deprecated TorchScript exporter, ``torch.onnx.export(dynamo=False)``.

Many teams still ship with it, and it fails *silently*: the tracer bakes a data-dependent branch
or a numpy round-trip into the graph with only a ``TracerWarning``. Export success therefore
means little here; running the model in ONNX Runtime on a second input set is what tells.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.onnx import TrainingMode
from torch.utils import _pytree as pytree

from exportwatch import compat
from exportwatch.targets.base import Attempt, Call, Stage, StageFailed
from exportwatch.targets.onnx import (
    EXTERNAL_DATA_THRESHOLD_BYTES,
    InputFeeder,
    InputStructureError,
    OnnxExport,
    OnnxModel,
    OnnxTarget,
    capture_exporter_output,
    onnx_modules,
    save_model,
    specialised_input_dims,
    to_numpy,
)
from exportwatch.targets.verify import clone_tree, requested_dynamic_dims, slot_tree

log = logging.getLogger(__name__)

#: Frames that mean "a symbolic function was translating an op" (vs. tracing the model).
_TRANSLATION_FRAMES = ("_run_symbolic_function", "_optimize_graph")
_TRANSLATION_FILES = ("symbolic_opset", "symbolic_helper")


class OnnxLegacy(OnnxTarget):
    """``torch.onnx.export(..., dynamo=False)`` + checker + ONNX Runtime verification."""

    name = "onnx-legacy"

    def capture(self, job: Attempt) -> OnnxExport:
        mods = onnx_modules()
        module, example, options = job.module, job.example, job.options
        try:
            flat = _FlatModule.build(module, example)
        except UnsupportedLegacyInput as exc:
            raise StageFailed(Stage.CAPTURE, exc) from None
        input_names = [f"in_{i}" for i in flat.tensor_leaves]
        dims = flat.dynamic_dims(options.dynamic_shapes)
        dynamic_axes: dict[str, dict[int, str]] = {}
        for dim in dims:
            dynamic_axes.setdefault(f"in_{dim.leaf}", {})[dim.dim] = dim.name
        big = _parameter_bytes(module) > EXTERNAL_DATA_THRESHOLD_BYTES
        target: io.BytesIO | str = str(job.scratch() / "model.onnx") if big else io.BytesIO()
        try:
            with capture_exporter_output("torch.onnx") as captured, _native_stdout_silenced():
                torch.onnx.export(
                    flat,
                    tuple(flat.tensors(example)),
                    # torch annotates f as a path, but the TorchScript exporter (dynamo=False)
                    # also writes to a file-like object, as its own code comments say.
                    target,  # type: ignore[arg-type]
                    dynamo=False,
                    verbose=False,  # True/None turn on C++ logging of the whole graph to stdout
                    input_names=input_names,
                    dynamic_axes=dynamic_axes or None,
                    opset_version=options.opset,
                    # EVAL unless the manifest runs the model in train mode; then keep it as is.
                    training=TrainingMode.PRESERVE if flat.training else TrainingMode.EVAL,
                    do_constant_folding=not flat.training,
                )
        except Exception as exc:
            job.notes.extend(captured.notes())
            raise StageFailed(legacy_error_stage(exc), exc) from None
        job.notes.extend(captured.notes())
        if isinstance(target, io.BytesIO):
            model, path = mods.onnx.load_model_from_string(target.getvalue()), None
        else:
            model, path = mods.onnx.load_model(target, load_external_data=False), Path(target)
        job.artifact = model
        job.notes.extend(specialised_input_dims(model, [(f"in_{d.leaf}", d) for d in dims]))
        onnx_model = job.hold(OnnxModel(mods.onnx, model, path=path))
        return OnnxExport(onnx_model=onnx_model, feeder=lambda: _LegacyFeeder(flat))

    def keep(self, job: Attempt, directory: Path) -> None:
        """The .onnx, when the exporter wrote one."""
        if job.artifact is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        save_model(job.artifact, directory / f"{job.options.artifact_name}.onnx", onnx_modules().onnx)


def legacy_error_stage(exc: BaseException) -> Stage:
    """translation: a symbolic function rejected an op; capture: tracing the model failed."""
    if isinstance(exc, torch.onnx.errors.UnsupportedOperatorError | torch.onnx.errors.SymbolicValueError):
        return Stage.TRANSLATION
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in _TRANSLATION_FRAMES or any(f in code.co_filename for f in _TRANSLATION_FILES):
            return Stage.TRANSLATION
        tb = tb.tb_next
    return Stage.CAPTURE


_CONSTANT_LEAVES = (int, float, bool, str, type(None))


class UnsupportedLegacyInput(TypeError):
    """An input the TorchScript ONNX exporter cannot take (a user-defined object, say)."""


class _FlatModule(torch.nn.Module):
    """Takes the example's tensor leaves positionally, rebuilds (args, kwargs), returns tensors.

    The TorchScript exporter reorders kwargs by signature, fills in defaults and drops unused
    inputs; flattening ourselves makes the ONNX inputs (``in_<leaf>``) and outputs line up
    exactly with the pytree leaves we compare, whatever the model's signature looks like.
    Non-tensor leaves are frozen to the example's values (the exporter bakes them in anyway).
    """

    def __init__(
        self, inner: torch.nn.Module, leaves: list[Any], spec: pytree.TreeSpec, kwarg_order: list[str]
    ) -> None:
        super().__init__()
        self.inner = inner
        self.spec = spec
        self.kwarg_order = kwarg_order
        self.leaves = leaves
        self.tensor_leaves = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        self.train(inner.training)

    @classmethod
    def build(cls, module: torch.nn.Module, example: Call) -> _FlatModule:
        leaves, spec = pytree.tree_flatten((tuple(example.args), dict(example.kwargs)))
        for leaf in leaves:
            if not isinstance(leaf, (torch.Tensor, *_CONSTANT_LEAVES)):
                # Freezing an object input would export a model with no inputs that passes
                # every check on the example: a silent "ok". Say it cannot be exported instead.
                raise UnsupportedLegacyInput(
                    f"input of type {type(leaf).__qualname__} is neither a tensor nor a (nested) "
                    "tuple/list/dict of tensors; the TorchScript exporter cannot take it as an input"
                )
        return cls(module, leaves, spec, list(example.kwargs))

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = list(self.leaves)
        for index, tensor in zip(self.tensor_leaves, tensors, strict=True):
            leaves[index] = tensor
        args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        out = self.inner(*args, **kwargs)
        return tuple(leaf for leaf in pytree.tree_leaves(out) if isinstance(leaf, torch.Tensor))

    def tensors(self, call: Call) -> list[torch.Tensor]:
        leaves, spec = pytree.tree_flatten((tuple(call.args), self._ordered(call.kwargs)))
        if spec != self.spec:
            raise InputStructureError("the input set's structure differs from the example's")
        return [clone_tree(leaves[i]) for i in self.tensor_leaves]

    def _ordered(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        ordered = {k: kwargs[k] for k in self.kwarg_order if k in kwargs}
        ordered.update({k: v for k, v in kwargs.items() if k not in ordered})
        return ordered

    def dynamic_dims(self, dynamic_shapes: Any) -> list[Any]:
        if dynamic_shapes is None:
            return []
        args, kwargs = slot_tree(self.spec)
        forward = getattr(self.inner, "forward", self.inner)
        dims = requested_dynamic_dims(forward, args, kwargs, dynamic_shapes, len(self.leaves))
        return [d for d in dims if d.leaf in self.tensor_leaves]


@dataclass
class _LegacyFeeder(InputFeeder):
    flat: _FlatModule

    def feed(self, call: Call, session_inputs: Sequence[str]) -> dict[str, Any]:
        tensors = self.flat.tensors(call)
        named = {f"in_{i}": t for i, t in zip(self.flat.tensor_leaves, tensors, strict=True)}
        return {name: to_numpy(named[name]) for name in session_inputs if name in named}


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Swallow what C++ prints to fd 1 during a legacy export.

    torch's ``setup_onnx_logging`` tests a function object for truth, so the TorchScript exporter
    always switches its C++ logger on (and never off), dumping the whole graph to stdout on
    every failure; in a CI log that buries the one line per job. We silence fd 1 for the call
    and switch the logger back off.
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real fd 1 (embedded interpreter): nothing to silence
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(saved, 1)
    finally:
        os.close(saved)
        compat.silence_torchscript_onnx_log()


def _parameter_bytes(module: Any) -> int:
    if not isinstance(module, torch.nn.Module):
        return 0
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


__all__ = ["OnnxLegacy", "legacy_error_stage"]
