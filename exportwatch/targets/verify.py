"""Compare an exported program's outputs with eager PyTorch's, leaf by leaf.

Every target runs its exported artifact on the example and on every extra input set and hands
both results here: a shared comparison keeps tolerances, messages and "which output" identical
across torch.export and ONNX, so a diff between targets means a real difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from exportwatch.report import Mismatch

#: (rtol, atol) per floating dtype; ints and bools are compared exactly.
DEFAULT_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.complex128: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.complex64: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (1e-2, 1e-3),
}
#: Anything else floating (float8 …) is compared loosely rather than not at all.
_FALLBACK_FLOAT_TOLERANCE = (1e-2, 1e-3)


class NumericMismatchError(Exception):
    """An exported program ran but disagreed with eager; carries the :class:`Mismatch`."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(mismatch.message)
        self.mismatch = mismatch


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    """User overrides (``None``: the dtype's default)."""

    rtol: float | None = None
    atol: float | None = None

    def for_dtype(self, dtype: torch.dtype) -> tuple[float, float] | None:
        """(rtol, atol) for ``dtype``, or ``None`` when it must match exactly."""
        if not (dtype.is_floating_point or dtype.is_complex):
            return None
        rtol, atol = DEFAULT_TOLERANCES.get(dtype, _FALLBACK_FLOAT_TOLERANCE)
        return (rtol if self.rtol is None else self.rtol, atol if self.atol is None else self.atol)


def flatten_with_paths(tree: Any) -> list[tuple[str, Any]]:
    """Leaves of ``tree`` with their pytree paths (``[0]['logits']``); a bare leaf is ``""``."""
    leaves, _ = pytree.tree_flatten_with_path(tree)
    return [(pytree.keystr(path), leaf) for path, leaf in leaves]


def compare_outputs(
    expected: Any, actual: Any, *, input_set: str, tolerance: Tolerance = Tolerance()
) -> Mismatch | None:
    """Compare two output trees (eager vs exported program); the first bad leaf wins."""
    expected_spec = pytree.tree_structure(expected)
    actual_leaves, actual_spec = pytree.tree_flatten(actual)
    if expected_spec != actual_spec:
        return Mismatch(
            input_set=input_set,
            output="",
            message=(
                f"input set {input_set!r}: output structure differs: eager returned "
                f"{_describe_spec(expected_spec)}, the exported program {_describe_spec(actual_spec)}"
            ),
        )
    return compare_flat(flatten_with_paths(expected), actual_leaves, input_set=input_set, tolerance=tolerance)


def compare_flat(
    expected: Sequence[tuple[str, Any]],
    actual: Sequence[Any],
    *,
    input_set: str,
    tolerance: Tolerance = Tolerance(),
) -> Mismatch | None:
    """Compare eager leaves (with paths) against a flat list of exported outputs (e.g. ORT's)."""
    if len(expected) != len(actual):
        return Mismatch(
            input_set=input_set,
            output="",
            message=(
                f"input set {input_set!r}: eager returned {len(expected)} outputs, "
                f"the exported program {len(actual)}"
            ),
        )
    for (path, want), got in zip(expected, actual, strict=True):
        mismatch = compare_leaf(want, got, input_set=input_set, output=path, tolerance=tolerance)
        if mismatch is not None:
            return mismatch
    return None


def compare_leaf(
    expected: Any, actual: Any, *, input_set: str, output: str, tolerance: Tolerance = Tolerance()
) -> Mismatch | None:
    """Compare one output; tensors (or numpy arrays) numerically, anything else by equality."""
    where = f"input set {input_set!r}, output {output or '<root>'}"
    expected_t, actual_t = _as_tensor(expected), _as_tensor(actual)
    if expected_t is None and actual_t is not None and _is_number(expected) and actual_t.numel() == 1:
        # A Python scalar from eager against a 0-d array from ONNX Runtime.
        expected_t, actual_t = torch.tensor(expected, dtype=actual_t.dtype), actual_t.reshape(())
    if expected_t is None or actual_t is None:
        if expected_t is not None or actual_t is not None or not _equal(expected, actual):
            return Mismatch(
                input_set=input_set,
                output=output,
                message=f"{where}: eager gave {_short(expected)}, the exported program {_short(actual)}",
            )
        return None
    if tuple(expected_t.shape) != tuple(actual_t.shape):
        return Mismatch(
            input_set=input_set,
            output=output,
            message=(
                f"{where}: shape differs: eager {list(expected_t.shape)}, exported {list(actual_t.shape)}"
            ),
        )
    if expected_t.dtype != actual_t.dtype:
        return Mismatch(
            input_set=input_set,
            output=output,
            message=f"{where}: dtype differs: eager {expected_t.dtype}, exported {actual_t.dtype}",
        )
    tol = tolerance.for_dtype(expected_t.dtype)
    want = expected_t.detach().cpu()
    got = actual_t.detach().cpu()
    if tol is None:
        if torch.equal(want, got):
            return None
        differ = want != got
        abs_err, rel_err = _errors(want.to(torch.float64), got.to(torch.float64))
        return Mismatch(
            input_set=input_set,
            output=output,
            max_abs_error=abs_err,
            max_rel_error=rel_err,
            message=(
                f"{where}: {int(differ.sum())} of {want.numel()} {want.dtype} values differ "
                f"(exact match required); max abs error {abs_err:.3g}"
            ),
        )
    rtol, atol = tol
    if torch.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        return None
    wide = torch.complex128 if want.dtype.is_complex else torch.float64
    want64, got64 = want.to(wide), got.to(wide)
    bad = ~torch.isclose(got64, want64, rtol=rtol, atol=atol, equal_nan=True)
    abs_err, rel_err = _errors(want64, got64)
    return Mismatch(
        input_set=input_set,
        output=output,
        max_abs_error=abs_err,
        max_rel_error=rel_err,
        message=(
            f"{where}: {int(bad.sum())} of {want.numel()} values differ: max abs error {abs_err:.3g} "
            f"(atol {atol:g}), max rel error {rel_err:.3g} (rtol {rtol:g})"
        ),
    )


def _errors(want: torch.Tensor, got: torch.Tensor) -> tuple[float, float]:
    """Max absolute and relative error, ignoring positions where both are NaN."""
    if want.numel() == 0:
        return 0.0, 0.0
    both_nan = torch.isnan(want) & torch.isnan(got)
    diff = (want - got).abs()
    diff = torch.where(both_nan, torch.zeros_like(diff), diff)
    diff = torch.nan_to_num(diff, nan=math.inf)
    rel = diff / want.abs().clamp_min(torch.finfo(torch.float64).tiny)
    rel = torch.where(diff == 0, torch.zeros_like(rel), rel)
    return float(diff.max()), float(rel.max())


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        return torch.as_tensor(value)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # objects whose __eq__ is odd: fall back to identity
        return a is b


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_spec(spec: pytree.TreeSpec) -> str:
    return f"{spec.num_leaves} leaves in {_short(str(spec))}"


# ---------------------------------------------------------------------------------------------
# Input sets and eager references, shared by every target's verification loop.


def clone_tree(tree: Any) -> Any:
    """Clone every tensor, so an in-place op in one run cannot change the next run's inputs."""
    return pytree.tree_map_only(torch.Tensor, lambda t: t.detach().clone(), tree)


def input_sets(example: Any, checks: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The example first (named ``example``), then the manifest's extra input sets."""
    return [("example", example), *checks]


def eager_references(
    module: Any, example: Any, checks: Sequence[tuple[str, Any]], notes: list[str]
) -> Iterator[tuple[str, Any, Any]]:
    """``(input set, call, eager output)`` for every input set the eager module accepts.

    A set the eager model itself rejects cannot be verified: say so in ``notes`` and go on.
    """
    for set_name, call in input_sets(example, checks):
        try:
            expected = module(*clone_tree(call.args), **clone_tree(call.kwargs))
        except Exception as exc:
            notes.append(
                f"input set {set_name!r}: eager forward raised {type(exc).__name__}: {exc}; not verified"
            )
            continue
        yield set_name, call, expected


# ---------------------------------------------------------------------------------------------
# Dynamic dims: which dims the user asked to be dynamic, and whether the exporter kept them.


@dataclass(frozen=True, kw_only=True)
class DynamicDim:
    """One dim the user's ``dynamic_shapes`` marked dynamic, located in the flat input list."""

    label: str  # e.g. "x.shape[0]" or "inputs[1]['mask'].shape[1]"
    name: str  # the Dim's name ("batch"), or the hint ("AUTO")
    leaf: int  # index into the flat list of user inputs
    dim: int


@dataclass(frozen=True)
class _Slot:
    index: int


def requested_dynamic_dims(
    forward: Any, args: Any, kwargs: Any, dynamic_shapes: Any, n_leaves: int
) -> list[DynamicDim]:
    """Map a torch.export-style ``dynamic_shapes`` spec onto flat input positions.

    ``args``/``kwargs`` are the call's structure with :class:`_Slot` leaves (see
    :func:`slot_tree`); the result says which flat input and dim each dynamic dim refers to.
    """
    import inspect

    if dynamic_shapes is None:
        return []
    try:
        bound = inspect.signature(forward).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return []
    if isinstance(dynamic_shapes, dict):
        pairs = [(name, bound[name], spec) for name, spec in dynamic_shapes.items() if name in bound]
    else:
        pairs = [
            (name, value, spec) for (name, value), spec in zip(bound.items(), dynamic_shapes, strict=False)
        ]
    found: list[DynamicDim] = []
    for name, value, spec in pairs:
        _walk_spec(value, spec, name, found)
    return [d for d in found if 0 <= d.leaf < n_leaves]


def slot_tree(spec: pytree.TreeSpec) -> Any:
    """The input tree described by ``spec`` with numbered :class:`_Slot` leaves."""
    return pytree.tree_unflatten([_Slot(i) for i in range(spec.num_leaves)], spec)


def _walk_spec(value: Any, spec: Any, label: str, found: list[DynamicDim]) -> None:
    if spec is None:
        return
    if isinstance(value, _Slot):
        items = (
            spec.items()
            if isinstance(spec, dict)
            else enumerate(spec)
            if isinstance(spec, list | tuple)
            else ()
        )
        for dim, hint in items:
            if _is_dynamic(hint):
                name = getattr(hint, "__name__", None) or getattr(getattr(hint, "type", None), "name", None)
                name = name or repr(hint)
                found.append(DynamicDim(label=f"{label}.shape[{dim}]", name=name, leaf=value.index, dim=dim))
        return
    if isinstance(value, list | tuple) and isinstance(spec, list | tuple):
        for i, (v, s) in enumerate(zip(value, spec, strict=False)):
            _walk_spec(v, s, f"{label}[{i}]", found)
    elif isinstance(value, dict) and isinstance(spec, dict):
        for key, s in spec.items():
            if key in value:
                _walk_spec(value[key], s, f"{label}[{key!r}]", found)


def _is_dynamic(hint: Any) -> bool:
    if hint is None or isinstance(hint, int):
        return False
    return "STATIC" not in repr(hint)
