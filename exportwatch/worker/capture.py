"""Input capture and dedup keys: what each submodule was called with, and when two submodules
are the same export (class, forward code, parameter shapes, attributes, hooks, input signature).

Runs inside a worker process (it imports torch).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import logging
import types
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from exportwatch.manifest import DEFAULT_INPUT_SET
from exportwatch.targets.base import Call

log = logging.getLogger(__name__)

#: The name of the manifest's main input set; extra sets keep their manifest names.
EXAMPLE_SET = DEFAULT_INPUT_SET


# ---------------------------------------------------------------------------------------------
# Input capture


@dataclass
class Capture:
    """What one eager pass per input set recorded about every module."""

    paths: dict[int, list[str]]  # id(module) -> every path it is registered under
    calls: dict[int, dict[str, list[Call]]] = field(default_factory=dict)  # id -> set -> calls
    outputs: dict[str, Any] = field(default_factory=dict)  # input set -> root output
    eager_errors: dict[str, BaseException] = field(default_factory=dict)
    #: id -> method -> calls (example set), for modules whose ``forward`` the model never called
    #: but whose other methods it did (encodec's quantizer, used through ``.encode``).
    method_calls: dict[int, dict[str, list[Call]]] = field(default_factory=dict)

    def calls_of(self, module: nn.Module, input_set: str = EXAMPLE_SET) -> list[Call]:
        return self.calls.get(id(module), {}).get(input_set, [])


def _clone(value: Any) -> Any:
    """Detach and copy tensors, so a later in-place op cannot change what was captured."""
    return pytree.tree_map(lambda v: v.detach().clone() if isinstance(v, torch.Tensor) else v, value)


def capture_calls(model: nn.Module, input_sets: dict[str, Call], *, no_grad: bool = True) -> Capture:
    """Run the model eagerly once per input set, recording every submodule call's inputs."""
    paths: dict[int, list[str]] = {}
    modules: dict[int, nn.Module] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), []).append(path)
        modules[id(module)] = module
    capture = Capture(paths=paths)
    current_set = [EXAMPLE_SET]

    def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
        per_set = capture.calls.setdefault(id(module), {})
        per_set.setdefault(current_set[0], []).append(
            Call(args=_clone(tuple(args)), kwargs=_clone(dict(kwargs)))
        )

    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in modules.values()]
    try:
        for name, call in input_sets.items():
            current_set[0] = name
            with torch.no_grad() if no_grad else nullcontext():
                try:
                    capture.outputs[name] = model(*_clone(call.args), **_clone(call.kwargs))
                except Exception as exc:  # the eager model itself is broken for these inputs
                    capture.eager_errors[name] = exc
    finally:
        for handle in handles:
            handle.remove()
    if EXAMPLE_SET in input_sets and EXAMPLE_SET not in capture.eager_errors:
        try:
            capture_method_calls(model, capture, input_sets[EXAMPLE_SET], no_grad=no_grad)
        except Exception as exc:  # a courtesy: those modules then read as not-called, as before
            log.warning("recording calls to other methods failed: %s: %s", type(exc).__name__, exc)
            capture.method_calls.clear()
    return capture


# ---------------------------------------------------------------------------------------------
# Modules used through another method than forward

#: Calls recorded per method of a module used through it (inputs are cloned: keep it bounded).
MAX_METHOD_CALLS = 8
_MODULE_ATTRIBUTES = frozenset(dir(nn.Module))


def own_methods(module: nn.Module) -> list[str]:
    """Methods its classes define besides ``forward`` and ``nn.Module``'s own (``encode``,
    ``decode``, ``_quantize``): how a model may use a module without calling it."""
    found: list[str] = []
    for cls in type(module).__mro__:
        if cls is nn.Module or not issubclass(cls, nn.Module):
            break
        if cls.__module__.split(".", 1)[0] == "torch":
            continue  # torch's own modules (an unused LSTM's ``flatten_parameters``) are not it
        for name, value in vars(cls).items():
            if (
                isinstance(value, types.FunctionType)
                and not name.startswith("__")
                and name not in _MODULE_ATTRIBUTES
                and name not in found
                and name not in vars(module)
                # what the instance resolves (a subclass may shadow it with a property)
                and isinstance(inspect.getattr_static(module, name, None), types.FunctionType)
            ):
                found.append(name)
    return found


def capture_method_calls(model: nn.Module, capture: Capture, example: Call, *, no_grad: bool) -> None:
    """One more eager pass, only when some module's ``forward`` was never called while it has
    methods of its own: record which of those the model called, and with what.

    Without it such a module reads as dead code (``not-called``). The methods are wrapped on
    the instance for that pass only; calls a recorded method makes on its own module are not
    recorded again. The random state is restored, so later exports see what they saw before.
    """
    unused: dict[int, tuple[nn.Module, list[str]]] = {}
    for module in model.modules():
        if capture.calls_of(module) or id(module) in unused:
            continue
        methods = own_methods(module)
        if methods:
            unused[id(module)] = (module, methods)
    if not unused:
        return
    active: set[int] = set()

    def wrap(module: nn.Module, name: str) -> Any:
        original = getattr(module, name)

        @functools.wraps(original)
        def recording(*args: Any, **kwargs: Any) -> Any:
            if id(module) in active:
                return original(*args, **kwargs)
            per_method = capture.method_calls.setdefault(id(module), {}).setdefault(name, [])
            if len(per_method) < MAX_METHOD_CALLS:
                per_method.append(Call(args=_clone(tuple(args)), kwargs=_clone(dict(kwargs))))
            active.add(id(module))
            try:
                return original(*args, **kwargs)
            finally:
                active.discard(id(module))

        return recording

    wrapped: list[tuple[nn.Module, str]] = []
    try:
        for module, methods in unused.values():
            for name in methods:
                object.__setattr__(module, name, wrap(module, name))
                wrapped.append((module, name))
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices), torch.no_grad() if no_grad else nullcontext():
            try:
                model(*_clone(example.args), **_clone(example.kwargs))
            except Exception:  # it ran once already; a second run that raises tells nothing
                capture.method_calls.clear()
    finally:
        for module, name in wrapped:
            vars(module).pop(name, None)


class MethodAsForward(nn.Module):
    """Exports ``module.<method>`` as if it were a forward (the manifest's ``methods``)."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.inner = module
        self.method = method
        #: Where a failure at this export's interface is fixed (``diagnose.interface_frame``).
        self.exported_method = getattr(module, method)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, self.method)(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Dedup: two submodules are the same export when everything that shapes the graph is equal


def _signature(value: Any) -> Any:
    """Structure, shapes and dtypes of inputs; constants by value."""
    leaves, spec = pytree.tree_flatten(value)
    described = tuple(
        ("T", tuple(leaf.shape), str(leaf.dtype), leaf.device.type)
        if isinstance(leaf, torch.Tensor)
        else ("C", type(leaf).__qualname__, repr(leaf)[:200])
        for leaf in leaves
    )
    return (str(spec), described)


def call_signature(call: Call) -> Any:
    return _signature((call.args, call.kwargs))


#: Short dtype names for input descriptions (``f32[2, 8]``), the way torch.export prints them.
_DTYPE_SHORT = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8",
    torch.bool: "bool", torch.complex64: "c64",
}  # fmt: skip
#: Longest description of one call, and most distinct calls described per submodule.
_INPUT_TEXT_LIMIT = 200
MAX_INPUT_SIGNATURES = 4


def _describe_input(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        dtype = _DTYPE_SHORT.get(value.dtype, str(value.dtype).removeprefix("torch."))
        return f"{dtype}[{', '.join(str(d) for d in value.shape)}]"
    if isinstance(value, list | tuple):
        inner = ", ".join(_describe_input(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe_input(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)[:40]
    return type(value).__name__


def describe_inputs(calls: Sequence[Call]) -> list[str]:
    """``["(f32[2, 8, 32], mask=bool[2, 8])"]``: each distinct way the module was called, for
    a reader (the HTML report); at most :data:`MAX_INPUT_SIGNATURES`, each capped."""
    found: list[str] = []
    for call in calls:
        parts = [_describe_input(a) for a in call.args]
        parts += [f"{name}={_describe_input(v)}" for name, v in call.kwargs.items()]
        text = f"({', '.join(parts)})"
        text = text if len(text) <= _INPUT_TEXT_LIMIT else text[: _INPUT_TEXT_LIMIT - 1] + "…"
        if text not in found:
            found.append(text)
        if len(found) == MAX_INPUT_SIGNATURES:
            break
    return found


_BY_REPR = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device, torch.Size)
#: How deep attribute containers are described before falling back to identity.
_ATTRIBUTE_DEPTH = 3
#: Containers with more items than this are described by identity (never by a cut-off prefix,
#: which could make two different modules look the same).
_CONTAINER_ITEMS = 256
#: Tensors stored as plain attributes (constants the export bakes in) up to this many elements
#: are described by value; larger ones by shape and dtype only.
_TENSOR_VALUE_LIMIT = 4096


def _identity(value: Any) -> tuple:
    """The conservative description: equal only to the very same object."""
    return ("id", type(value).__qualname__, id(value))


def _code_fingerprint(function: Any, depth: int = 0, active: frozenset[int] = frozenset()) -> str | None:
    """Bytecode, constants, names, closure and defaults of a function (or a method's function).

    Closures and defaults are described one level deeper, with the objects being described
    in ``active``: a closure that holds itself (transformers' gradient-checkpointing wrappers)
    is described by identity instead of recursing forever.
    """
    bound_to = getattr(function, "__self__", None)
    function = getattr(function, "__func__", function)
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    active = active | {id(function)}
    # A bound method's behaviour depends on its instance (``Policy(strict=True).apply``).
    # A module instance is described by its type: its content is in the structural key already
    # when it is the module itself or a child, and identity would stop identical modules deduping.
    if isinstance(bound_to, nn.Module):
        instance: Any = ("module", type(bound_to).__qualname__)
    else:
        instance = _describe(bound_to, depth + 1, active) if bound_to is not None else None
    closure = tuple(
        _describe(_cell_contents(cell), depth + 1, active) for cell in (function.__closure__ or ())
    )
    defaults = _describe(function.__defaults__, depth + 1, active)
    raw = code.co_code + repr((code.co_consts, code.co_names, closure, defaults, instance)).encode()
    return hashlib.sha256(raw).hexdigest()


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name assigned after the closure was made)
        return None


def _describe(value: Any, depth: int = 0, active: frozenset[int] = frozenset()) -> Any:
    """A hashable description of an attribute value, for deciding if two modules are the same.

    Values that can change what an export does are described by content (numbers, strings,
    containers, functions by their code, small tensors by value). Anything else is described by
    identity: a config object shared by every layer still dedups, two different objects never do.
    Bounded and cycle-safe: past ``_ATTRIBUTE_DEPTH`` levels, on a value already being
    described, or for a container over ``_CONTAINER_ITEMS`` items, the identity is used.
    """
    if isinstance(value, _BY_REPR):
        return repr(value)[:1000] if isinstance(value, str | bytes) and len(value) > 1000 else repr(value)
    if depth >= _ATTRIBUTE_DEPTH or id(value) in active:
        return _identity(value)
    if isinstance(value, torch.Tensor):
        described: tuple = ("T", tuple(value.shape), str(value.dtype))
        if value.numel() <= _TENSOR_VALUE_LIMIT and not value.is_meta:
            try:  # raw bytes: works for dtypes numpy lacks (bfloat16) and for 0-d tensors
                data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                described += (hashlib.sha256(data.numpy().tobytes()).hexdigest(),)
            except (RuntimeError, TypeError):  # quantized, sparse, subclasses: never equal
                return _identity(value)
        return described
    inner = active | {id(value)}
    if isinstance(value, tuple | list | set | frozenset | dict) and len(value) > _CONTAINER_ITEMS:
        return _identity(value)
    if isinstance(value, tuple | list | set | frozenset):
        items = [_describe(v, depth + 1, inner) for v in value]
        return (
            type(value).__name__,
            tuple(sorted(items, key=repr) if isinstance(value, set | frozenset) else items),
        )
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), _describe(v, depth + 1, inner)) for k, v in value.items())))
    if isinstance(value, enum.Enum):
        return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields_ = tuple(
            (f.name, _describe(getattr(value, f.name, None), depth + 1, inner))
            for f in dataclasses.fields(value)
        )
        return (type(value).__qualname__, fields_)
    if callable(value) and not isinstance(value, nn.Module):
        code = _code_fingerprint(value, depth, inner)
        if code is not None:
            return ("fn", getattr(value, "__qualname__", type(value).__qualname__), code)
    if isinstance(value, type):
        return ("type", value.__module__, value.__qualname__)
    return _identity(value)


def _attributes(module: nn.Module) -> tuple:
    """The module's own attributes (not parameters, buffers or submodules), described."""
    items = []
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, nn.Module):
            continue
        items.append((name, _describe(value)))
    return tuple(sorted(items, key=lambda item: item[0]))


def _hooks(module: nn.Module) -> tuple:
    """User forward hooks change what runs; the sweep's own capture hooks are gone by now."""
    hooks = [*module._forward_pre_hooks.values(), *module._forward_hooks.values()]
    return tuple(_describe(hook, 1) for hook in hooks)


def _forward_code(module: nn.Module) -> str:
    """The forward that actually runs: an instance attribute wins over the class's method."""
    forward = vars(module).get("forward", type(module).forward)
    return _code_fingerprint(forward) or repr(forward)


def structural_key(module: nn.Module) -> tuple:
    """Class, forward code, own tensors' shapes/dtypes, attributes, hooks, children (recursive)."""
    tensors = tuple(
        (name, tuple(t.shape), str(t.dtype))
        for name, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        if t is not None
    )
    children = tuple((name, structural_key(child)) for name, child in module.named_children())
    cls = type(module)
    return (
        f"{cls.__module__}.{cls.__qualname__}",
        _forward_code(module),
        tensors,
        _attributes(module),
        _hooks(module),
        children,
    )


#: ``module_state`` describes at most this many values; a bigger state is not compared at all.
_STATE_BUDGET = 200_000
_STATE_DEPTH = 8
#: ``nn.Module`` bookkeeping that ``structural_key`` and the walk over submodules describe.
_MODULE_INTERNALS = frozenset({"_parameters", "_buffers", "_modules", "training"})


class _StateTooLarge(Exception):
    pass


def module_state(module: nn.Module) -> tuple[str, tuple[Any, ...]] | None:
    """What a trace of ``module`` starts from, to tell whether it is still the same later: its
    structure (code, attributes, hooks, children) and every value each submodule holds, private
    ones and those inside containers and plain objects included; tensors by identity and version
    counter (which each in-place update bumps). None when the state is too large to describe.

    A forward that changes its module (a counter, a cached tensor) therefore never compares
    equal to the state it was traced from. What lives outside the module (a global counter)
    is not seen.
    """
    budget = [_STATE_BUDGET]
    seen: dict[int, Any] = {}  # id -> description, for objects reached twice
    active: set[int] = set()  # being described: a cycle

    def describe(value: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _StateTooLarge
        if value is None or isinstance(value, bool | int | float | complex | str | bytes):
            return value
        if isinstance(value, torch.Tensor):
            return ("T", id(value), value._version)
        if isinstance(value, nn.Module):
            return ("M", id(value))  # described on its own, as one of module.modules()
        key = id(value)
        if key in seen:  # a shared object (a config) reads the same wherever it is reached
            return seen[key]
        if key in active or depth >= _STATE_DEPTH:
            return ("deep", type(value).__qualname__)
        active.add(key)
        try:
            seen[key] = described = describe_new(value, key, depth)
        finally:
            active.discard(key)
        return described

    def describe_new(value: Any, key: int, depth: int) -> Any:
        if isinstance(value, tuple | list):
            return (type(value).__name__, tuple(describe(v, depth + 1) for v in value))
        if isinstance(value, set | frozenset):
            return (type(value).__name__, tuple(sorted(map(repr, value))))
        if isinstance(value, dict):
            items = sorted(((repr(k), v) for k, v in value.items()), key=lambda item: item[0])
            return ("dict", tuple((k, describe(v, depth + 1)) for k, v in items))
        if isinstance(value, enum.Enum | type | torch.dtype | torch.device) or callable(value):
            return ("id", key, type(value).__qualname__)
        fields = getattr(value, "__dict__", None)
        if isinstance(fields, dict):
            return ("obj", type(value).__qualname__, key, describe(fields, depth + 1))
        return ("opaque", key, type(value).__qualname__)

    try:
        held = tuple(
            tuple(
                (name, describe(value, 0))
                for name, value in sorted(vars(sub).items(), key=lambda item: item[0])
                if name not in _MODULE_INTERNALS
            )
            + tuple(("param", describe(t, 0)) for t in sub._parameters.values())
            + tuple(("buffer", describe(t, 0)) for t in sub._buffers.values())
            for sub in module.modules()
        )
    except _StateTooLarge:
        return None
    structure = hashlib.sha256(repr(structural_key(module)).encode()).hexdigest()
    return structure, held


def dedup_key(module: nn.Module, calls: Sequence[Call]) -> str:
    signatures = tuple(dict.fromkeys(call_signature(c) for c in calls))
    raw = repr((structural_key(module), signatures)).encode()
    return hashlib.sha256(raw).hexdigest()
