"""Target ``executorch``: the ``.pte`` a phone would run, built, loaded and run here.

``torch.export`` succeeding is not what a team ships: ExecuTorch lowers the program to the edge
dialect (core ATen only), hands what a backend takes to its partitioner (XNNPACK by default),
replaces every remaining operator by its out variant, serialises, and the runtime loads it only
if every operator has a kernel. Each step is a stage here, so a failure says where it broke;
the program then runs in the ExecuTorch runtime on every input set and is compared with eager.

It starts from the ``export`` target's capture of the same module and call where the sweep
kept one (one trace for both), else exports non-strict itself. Per submodule it records the
backend's delegation coverage and the operators left undelegated (``report.Delegation``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from exportwatch.report import Delegation
from exportwatch.targets.base import NOISE_WARNINGS, Attempt, Runner, Stage, StageFailed, Target, first_line
from exportwatch.targets.torch_export import export_program
from exportwatch.targets.verify import clone_tree

log = logging.getLogger(__name__)

#: FX node targets that move values around rather than compute (not counted for coverage).
_NOT_COMPUTE = frozenset({"getitem", "executorch_call_delegate"})


class OperatorMissingError(RuntimeError):
    """The program needs operators the ExecuTorch runtime in this process has no kernel for."""

    def __init__(self, operators: list[str]) -> None:
        self.operators = operators
        super().__init__(
            f"operator {operators[0]!r} is not registered in the ExecuTorch runtime"
            + (f" (and {len(operators) - 1} more: {', '.join(operators[1:5])})" if len(operators) > 1 else "")
        )


class ExecutorchRunError(RuntimeError):
    """``Method.execute`` raised: the loaded program failed on an input set."""


class Executorch(Target[Any]):
    """export → ``to_edge_transform_and_lower`` (partitioner per the manifest) →
    ``to_executorch`` → ``Runtime.load_program`` → ``Method.execute`` on every input set."""

    name = "executorch"
    runner_name = "the ExecuTorch runtime"

    def capture(self, job: Attempt) -> Any:
        from executorch.exir import to_edge_transform_and_lower

        program = export_program(job)
        backend = job.options.executorch_backend
        job.artifact = program
        job.options.report_phase("lowering")  # the sweep's progress line says "lowering…"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NOISE_WARNINGS)
                edge = to_edge_transform_and_lower(program, partitioner=_partitioners(backend))
        except Exception as exc:
            _point_at_user_line(exc, program)
            raise StageFailed(Stage.LOWERING, exc) from None
        job.attach("delegation", delegation_of(edge.exported_program().graph_module, backend))
        job.options.report_phase("serialisation")
        try:
            program_file = edge.to_executorch()
        except Exception as exc:
            _point_at_user_line(exc, program)
            raise StageFailed(Stage.SERIALISATION, exc) from None
        job.artifact = program_file  # what `keep` writes as a .pte if loading or running fails
        return program_file, program

    def load(self, job: Attempt, exported: Any) -> Runner:
        from executorch.runtime import Runtime

        program_file, program = exported
        missing = unregistered_operators(program_file)
        if missing:
            error = OperatorMissingError(missing)
            _point_at_user_line(error, program)
            raise StageFailed(Stage.LOAD, error)
        with job.stage(Stage.LOAD):
            method = Runtime.get().load_program(program_file.buffer).load_method("forward")

        def run(call: Any) -> Any:
            flat = _flat_inputs(call)
            try:
                outputs = method.execute(flat)
            except Exception as exc:
                raise ExecutorchRunError(f"Method.execute failed: {first_line(exc)}") from exc
            return outputs[0] if len(outputs) == 1 else tuple(outputs)

        return run

    def compare(self, expected: Any, actual: Any, *, input_set: str, tolerance: Any) -> Any:
        """Flat outputs in order: the runtime returns a list, not the eager pytree."""
        from exportwatch.targets.verify import compare_outputs

        leaves = torch.utils._pytree.tree_leaves(expected)
        got = list(actual) if isinstance(actual, (list, tuple)) else [actual]
        if len(leaves) == 1:
            return compare_outputs(leaves[0], got[0], input_set=input_set, tolerance=tolerance)
        return compare_outputs(tuple(leaves), tuple(got), input_set=input_set, tolerance=tolerance)

    def keep(self, job: Attempt, directory: Path) -> None:
        """The ``.pte`` where serialisation got that far."""
        buffer = getattr(job.artifact, "buffer", None)
        if buffer is not None:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{job.options.artifact_name}.pte").write_bytes(buffer)


#: Where an ExecuTorch error names an operator: ``torch._ops.aten.median.dim`` (lowering),
#: ``Missing out variants: {'ns::op'}`` (serialisation), ``operator 'ns::op.out'`` (load).
_NAMED_OPERATOR = re.compile(
    r"torch\._ops\.([\w.]+)|[Mm]issing out variants?: \{'([\w:.]+)'|operator '([\w:.]+)'"
)


def _point_at_user_line(error: BaseException, program: torch.export.ExportedProgram) -> None:
    """Put the graph node of the operator ``error`` names on its traceback, as a frame whose
    ``node`` local the diagnosis reads (the node's ``stack_trace`` is the user's line): the
    traceback itself holds only ExecuTorch's frames."""
    found = _NAMED_OPERATOR.search(str(error))
    if found is None:
        return
    name = next(group for group in found.groups() if group).replace("::", ".")
    packet = name.rsplit(".", 1)[0] if name.endswith(".out") else name

    def names_it(node: torch.fx.Node) -> bool:
        target = str(node.target)
        return target == name or target.rsplit(".", 1)[0] == packet

    node = next((n for n in program.graph.nodes if n.op == "call_function" and names_it(n)), None)
    if node is None or not node.meta.get("stack_trace"):
        return
    with contextlib.suppress(Exception):  # now on the traceback, with the node beside it
        _raise_at(node, error)


def _raise_at(node: torch.fx.Node, error: BaseException) -> None:
    """Raise ``error`` again from a frame that holds ``node`` (read by the diagnosis)."""
    raise error


def _partitioners(backend: str) -> list[Any]:
    if backend == "portable":
        return []
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return [XnnpackPartitioner()]


def _flat_inputs(call: Any) -> list[Any]:
    """The runtime takes the user inputs flat, in the order of ``(args, kwargs)``'s leaves."""
    return list(torch.utils._pytree.tree_leaves((tuple(clone_tree(call.args)), clone_tree(call.kwargs))))


def operator_name(target: Any) -> str:
    """``aten.cumsum.default`` → ``aten.cumsum`` (edge ops print as their ATen overloads)."""
    name = str(getattr(target, "__name__", None) or target)
    text = str(target)
    if "." in text and not text.startswith("<"):
        name = text
    name = name.replace("::", ".")
    for suffix in (".default", ".Tensor", ".Scalar", ".out"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def delegation_of(graph_module: torch.fx.GraphModule, backend: str) -> Delegation:
    """Compute nodes a backend runs, over all compute nodes, and the ones it left.

    The same counts as ``executorch.devtools.backend_debug.get_delegation_info`` (nodes inside
    each lowered module, nodes outside), with ``getitem`` left out and operators by name.
    """
    delegated = subgraphs = 0
    left: Counter[str] = Counter()
    where: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name == "executorch_call_delegate":
            subgraphs += 1
            lowered = getattr(graph_module, str(node.args[0].target), None)
            original = getattr(lowered, "original_module", None)
            inner = original.graph_module if original is not None else None
            if inner is not None:
                delegated += sum(
                    1
                    for n in inner.graph.nodes
                    if n.op == "call_function" and _op_label(n.target) not in _NOT_COMPUTE
                )
            continue
        label = _op_label(node.target)
        if label in _NOT_COMPUTE:
            continue
        left[label] += 1
        module = _module_of(node)
        if module is not None:
            where.setdefault(label, module)
    total = delegated + sum(left.values())
    return Delegation(
        backend=backend,
        delegated_nodes=delegated,
        compute_nodes=total,
        subgraphs=subgraphs,
        not_delegated=dict(sorted(left.items(), key=lambda item: (-item[1], item[0]))),
        not_delegated_in=where,
    )


def _module_of(node: torch.fx.Node) -> str | None:
    """The submodule (path below the lowered module) whose code called ``node``: the innermost
    entry of its ``nn_module_stack``, which lowering keeps; None where the graph does not say."""
    stack = node.meta.get("nn_module_stack")
    if not isinstance(stack, dict) or not stack:
        return None
    entry = list(stack.values())[-1]
    path = entry[0] if isinstance(entry, tuple) and entry and isinstance(entry[0], str) else None
    return path


def _op_label(target: Any) -> str:
    """An FX target's operator, ``aten.cumsum``; ``getitem`` for ``operator.getitem``."""
    name = getattr(target, "__name__", "")
    if name in ("getitem", "executorch_call_delegate"):
        return name
    schema = getattr(target, "_schema", None)
    if schema is not None:
        return str(schema.name).replace("::", ".")
    return operator_name(target)


def unregistered_operators(program: Any) -> list[str]:
    """Operators the serialised program calls that the runtime here has no kernel for.

    The runtime would refuse to load with only an error number; asking first names them.
    """
    from executorch.extension.pybindings.portable_lib import _get_operator_names

    registered = set(_get_operator_names())
    needed: dict[str, None] = {}
    for plan in program.executorch_program.execution_plan:
        for operator in plan.operators:
            name = f"{operator.name}.{operator.overload}" if operator.overload else operator.name
            needed.setdefault(name, None)
    return [name for name in needed if name not in registered]
