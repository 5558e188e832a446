"""Manifest specs → live objects: the model, seeded input tensors, torch.export dynamic shapes.

Kept apart from :mod:`exportwatch.manifest` so that reading a manifest never imports torch.
Every failure here is the user's configuration (a factory that does not import, inputs the
model rejects), so it is raised as a located :class:`ConfigError`, never as a raw traceback.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import keyword
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from exportwatch import compat
from exportwatch.manifest import (
    ConfigError,
    InputsSpec,
    Location,
    ModelSpec,
    TensorSpec,
    did_you_mean,
    dtype_kind,
    format_parameters,
    value_range,
)

_REF_HELP = "expected 'package.module:callable' or 'path/to/file.py:callable'"


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; other names pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# --- importing user code -------------------------------------------------------------------------


def load_callable(ref: str, *, root: Path, location: Location | None = None) -> Callable[..., Any]:
    """Import ``pkg.mod:attr`` or ``path/file.py:attr`` (relative to ``root``) and return the attr.

    ``root`` goes on ``sys.path`` (and stays: factories may import lazily). A file is imported
    under a dotted name derived from its path when that name resolves to the same file, else
    under a unique name; either way it is in ``sys.modules``, which torch.export's strict mode
    needs to trace the module's functions.
    """
    module_part, sep, attr = ref.rpartition(":")
    if not sep or not module_part or not attr:
        raise _error(location, f"{_REF_HELP}, got {ref!r}")
    root = Path(root).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if _is_file_ref(module_part):
        module = _import_file(module_part, root=root, location=location)
        owner = module_part
    else:
        module = _import_module(module_part, root=root, location=location)
        owner = f"module {module_part!r}"
    obj: Any = module
    done: list[str] = []
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("_")]
            where = f"{module_part}:{'.'.join(done)}" if done else owner
            raise _error(location, f"{where} has no attribute {part!r}{did_you_mean(part, names)}") from None
        done.append(part)
    if not callable(obj):
        raise _error(location, f"{ref!r} is not callable (it is {_type_name(obj)})")
    return obj


def _is_file_ref(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or "\\" in module_part


def _import_module(name: str, *, root: Path, location: Location | None) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise _error(
                location,
                f"cannot import module {name!r}: no module named {exc.name!r}"
                f" (looked in the manifest's directory {root} and the installed packages)",
            ) from exc
        raise _error(location, f"importing module {name!r} raised {_describe_exception(exc, root)}") from exc
    except (Exception, SystemExit) as exc:  # the user's module ran and failed
        raise _error(location, f"importing module {name!r} raised {_describe_exception(exc, root)}") from exc


def _import_file(rel: str, *, root: Path, location: Location | None) -> ModuleType:
    path = Path(rel)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_file():
        raise _error(location, f"file not found: {rel} (looked in {root})")
    try:
        return _load_file_module(path, root=root)
    except (Exception, SystemExit) as exc:
        raise _error(location, f"importing {rel} raised {_describe_exception(exc, root)}") from exc


def _load_file_module(path: Path, *, root: Path) -> ModuleType:
    """Import ``path`` as ``models.cnn`` when that is what it is, else under a unique name."""
    dotted = _dotted_name(path, root)
    if dotted is not None:
        existing = sys.modules.get(dotted)
        if existing is not None and _same_file(existing, path):
            return existing
        if existing is None and _resolves_to(dotted, path):
            return importlib.import_module(dotted)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    unique = f"_exportwatch_file_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    existing = sys.modules.get(unique)
    if existing is not None and _same_file(existing, path):
        return existing
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    return module


def _dotted_name(path: Path, root: Path) -> str | None:
    try:
        parts = list(path.relative_to(root).with_suffix("").parts)
    except ValueError:
        return None
    if parts and parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return None
    return ".".join(parts)


def _resolves_to(dotted: str, path: Path) -> bool:
    try:
        spec = importlib.util.find_spec(dotted)
    except Exception:  # a parent package that fails to import: fall back to a unique name
        return False
    return spec is not None and spec.origin is not None and Path(spec.origin).resolve() == path


def _same_file(module: ModuleType, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == path


# --- the model -----------------------------------------------------------------------------------


def build_model(spec: ModelSpec, *, root: Path, device: str | None = None) -> torch.nn.Module:
    """Call the factory with its kwargs, check it made a module, and set eval()/train()."""
    where = spec.where("factory")
    factory = load_callable(spec.factory, root=root, location=where)
    _check_call(factory, spec.factory_kwargs, what=spec.factory, location=spec.where("kwargs"))
    try:
        model = factory(**spec.factory_kwargs)
    except Exception as exc:
        raise _error(where, f"factory raised {_describe_exception(exc, Path(root).resolve())}") from exc
    if not isinstance(model, torch.nn.Module):
        raise _error(where, f"factory returned {_type_name(model)}, not a torch.nn.Module")
    model.train(spec.train)
    if device is not None:
        model.to(resolve_device(device))
    return model


def _check_call(
    fn: Callable[..., Any], kwargs: Mapping[str, Any], *, what: str, location: Location | None
) -> None:
    """Name the kwargs mismatch before calling, rather than surface a TypeError from inside."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C extensions have no signature
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise _error(location, f"kwargs do not match {what}{_format_signature(signature)}: {exc}") from None


# --- inputs --------------------------------------------------------------------------------------


def build_inputs(
    spec: InputsSpec, *, root: Path, device: str = "cpu", field_path: str | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Make ``(args, kwargs)`` for one input set, the same tensors for the same manifest.

    Declared tensors come from a ``torch.Generator`` seeded with ``spec.seed`` and are drawn on
    the CPU, then moved, so every device sees the same values. A callable runs with the global
    RNG seeded (and restored afterwards); it gets ``device=`` when it has such a parameter.
    ``field_path`` names the set in errors only when the spec has no location: a location's own
    path (``models[1].input_sets.big``, or ``defaults.inputs``) is the exact one.
    """
    location = spec.location
    field_path = None if location is not None else field_path
    device = resolve_device(device)
    if spec.callable is not None:
        return _call_inputs(spec, root=root, device=device, location=location, field_path=field_path)
    generator = torch.Generator().manual_seed(spec.seed)
    try:
        args = tuple(_materialize(value, generator, device) for value in spec.args)
        kwargs = {name: _materialize(value, generator, device) for name, value in spec.kwargs.items()}
    except (RuntimeError, ValueError, TypeError) as exc:
        raise _error(
            location, f"cannot make the inputs: {type(exc).__name__}: {exc}", field_path=field_path
        ) from exc
    return args, kwargs


def _materialize(value: Any, generator: torch.Generator, device: str) -> Any:
    if isinstance(value, TensorSpec):
        return _make_tensor(value, generator).to(device)
    if isinstance(value, list):
        return [_materialize(v, generator, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_materialize(v, generator, device) for v in value)
    if isinstance(value, dict):
        return {k: _materialize(v, generator, device) for k, v in value.items()}
    return value


def _make_tensor(spec: TensorSpec, generator: torch.Generator) -> torch.Tensor:
    dtype = getattr(torch, spec.dtype)
    if spec.fill is not None:
        return torch.full(spec.shape, spec.fill, dtype=dtype)
    kind = dtype_kind(spec.dtype)
    if kind == "bool":
        return torch.randint(0, 2, spec.shape, generator=generator).bool()
    low, high = value_range(spec)
    if kind == "int":
        return torch.randint(int(low), int(high), spec.shape, generator=generator, dtype=dtype)

    def uniform() -> torch.Tensor:
        # Drawn in float32/float64 then cast: the same values whatever the low-precision dtype.
        base = torch.float64 if spec.dtype == "float64" else torch.float32
        return torch.rand(spec.shape, generator=generator, dtype=base) * (high - low) + low

    if kind == "complex":
        return torch.complex(uniform(), uniform()).to(dtype)
    return uniform().to(dtype)


def _call_inputs(
    spec: InputsSpec, *, root: Path, device: str, location: Location | None, field_path: str | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    assert spec.callable is not None
    fn = load_callable(spec.callable, root=root, location=location)
    kwargs = dict(spec.callable_kwargs)
    if "device" not in kwargs and _has_parameter(fn, "device"):
        kwargs["device"] = device
    _check_call(fn, kwargs, what=spec.callable, location=location)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        try:
            result = fn(**kwargs)
        except Exception as exc:
            message = f"input callable raised {_describe_exception(exc, Path(root).resolve())}"
            raise _error(location, message, field_path=field_path) from exc
    split = _split_call_result(result)
    if split is None:
        raise _error(
            location,
            f"input callable {spec.callable} returned {_describe_result(result)};"
            " expected (args, kwargs) or a tuple of positional args",
            field_path=field_path,
        )
    args, kw = split
    return _to_device(args, device), _to_device(kw, device)


def _split_call_result(result: Any) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """``(args, kwargs)`` wins over "a tuple of two args" when the shapes fit both readings."""
    if not isinstance(result, tuple):
        return None
    if (
        len(result) == 2
        and isinstance(result[0], tuple | list)
        and isinstance(result[1], dict)
        and all(isinstance(k, str) for k in result[1])
    ):
        return tuple(result[0]), dict(result[1])
    return result, {}


def _describe_result(result: Any) -> str:
    if isinstance(result, torch.Tensor):
        return f"a Tensor of shape {list(result.shape)}"
    if isinstance(result, tuple | list | dict):
        return f"a {type(result).__name__} of {len(result)} items"
    return _type_name(result)


def _to_device(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):  # leave namedtuples alone
        return tuple(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _has_parameter(fn: Callable[..., Any], name: str) -> bool:
    try:
        parameter = inspect.signature(fn).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind not in (
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.POSITIONAL_ONLY,
    )


def check_signature(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, location: Location | None
) -> None:
    """Fail early, with the forward signature, when the inputs cannot even be passed."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise _error(
            location,
            f"inputs do not match {type(model).__name__}.forward{_format_signature(signature)}: {exc}",
        ) from None


# --- dynamic shapes ------------------------------------------------------------------------------


def build_dynamic_shapes(
    spec: ModelSpec,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    model: torch.nn.Module | None = None,
) -> Any:
    """The manifest's named-dim structure as torch.export.export's ``dynamic_shapes``.

    One ``torch.export.Dim`` per declared name, so two inputs naming ``batch`` share it. The
    structure follows the inputs (a tuple input gets a tuple spec, as torch.export insists). With
    ``model``, the dict form is checked against ``forward``'s arguments and the inputs it does
    not mention are filled in as static, so a manifest need only name the dynamic ones.
    """
    if spec.dynamic_shapes is None:
        return None
    where = spec.where("dynamic_shapes")
    base = where.field_path if where is not None else "dynamic_shapes"
    dims = {name: torch.export.Dim(name, min=d.min, max=d.max) for name, d in spec.dims.items()}
    converter = _ShapeConverter(dims=dims, location=where)
    shapes = spec.dynamic_shapes
    if isinstance(shapes, list):
        values = [*args, *kwargs.values()]
        if len(shapes) != len(values):
            raise _error(
                where,
                f"lists {len(shapes)} entries but the inputs have {len(values)}"
                f" ({len(args)} positional, {len(kwargs)} keyword)",
            )
        return tuple(
            converter.convert(s, v, f"{base}[{i}]")
            for i, (s, v) in enumerate(zip(shapes, values, strict=True))
        )
    named = _named_inputs(model, args, kwargs)
    if named is None:  # no model: align what can be aligned by name, convert the rest as written
        return {k: converter.convert(s, kwargs.get(k), f"{base}.{k}") for k, s in shapes.items()}
    for key in shapes:
        if key not in named:
            hint = did_you_mean(key, named) or f" (it was given: {', '.join(named) or 'nothing'})"
            raise _error(
                where, f"names {key!r}, which is not an input of {type(model).__name__}.forward{hint}"
            )
    return {k: converter.convert(shapes.get(k), v, f"{base}.{k}") for k, v in named.items()}


def _named_inputs(
    model: torch.nn.Module | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any] | None:
    if model is None:
        return None
    try:
        bound = inspect.signature(model.forward).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    return dict(bound.arguments)


class _ShapeConverter:
    """Walks a named-dim spec alongside the value it describes, checking axes as it goes."""

    def __init__(self, *, dims: dict[str, Any], location: Location | None) -> None:
        self.dims = dims
        self.location = location

    def error(self, path: str, message: str) -> ConfigError:
        return _error(self.location, message, field_path=path)

    def convert(self, shape: Any, value: Any, path: str) -> Any:
        if shape is None:
            return _static_like(value)
        if isinstance(shape, str):
            return self.dims[shape]
        if isinstance(value, torch.Tensor):
            return self.tensor(shape, value, path)
        if isinstance(shape, list):
            if isinstance(value, list | tuple) and len(value) != len(shape):
                raise self.error(path, f"lists {len(shape)} entries for an input of {len(value)} items")
            items = [
                self.convert(s, value[i] if isinstance(value, list | tuple) else None, f"{path}[{i}]")
                for i, s in enumerate(shape)
            ]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(shape, dict):
            if isinstance(value, dict):
                extra = [k for k in shape if k not in value]
                if extra:
                    raise self.error(
                        path,
                        f"names {extra[0]!r}, which is not a key of this input"
                        f" ({', '.join(map(str, value))})",
                    )
                return {k: self.convert(shape.get(k), v, f"{path}.{k}") for k, v in value.items()}
            return {k: self.convert(s, None, f"{path}[{k!r}]") for k, s in shape.items()}
        return shape

    def tensor(self, shape: Any, value: torch.Tensor, path: str) -> Any:
        rank = value.dim()
        if isinstance(shape, list):
            if len(shape) != rank:
                raise self.error(path, f"gives {len(shape)} axes for an input of shape {list(value.shape)}")
            return [self.axis(s) for s in shape]
        if isinstance(shape, dict):
            for axis in shape:
                if not isinstance(axis, int) or axis >= rank:
                    raise self.error(
                        f"{path}[{axis!r}]", f"no axis {axis!r} in an input of shape {list(value.shape)}"
                    )
            return {axis: self.axis(s) for axis, s in shape.items()}
        raise self.error(path, f"expected axes for a tensor of shape {list(value.shape)}, got {shape!r}")

    def axis(self, name: Any) -> Any:
        if name is None:
            return compat.static_dim()
        return self.dims[name]


def _static_like(value: Any) -> Any:
    """A fully static spec shaped like ``value``: torch.export refuses a bare None for a container."""
    if isinstance(value, list):
        return [_static_like(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_static_like(v) for v in value)
    if isinstance(value, dict):
        return {k: _static_like(v) for k, v in value.items()}
    return None


# --- small helpers -------------------------------------------------------------------------------


def _error(location: Location | None, message: str, *, field_path: str | None = None) -> ConfigError:
    if location is None:
        return ConfigError(message, field_path=field_path)
    return ConfigError(
        message,
        file=location.file,
        line=location.line,
        column=location.column,
        field_path=field_path or location.field_path,
    )


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _describe_exception(exc: BaseException, root: Path) -> str:
    """``ValueError: msg (at models/cnn.py:12)``: the deepest frame in the user's own files."""
    text = f"{type(exc).__name__}: {exc}"
    frame = None
    for entry in traceback.extract_tb(exc.__traceback__):
        try:
            rel = Path(entry.filename).resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        frame = f"{rel.as_posix()}:{entry.lineno}"
    return f"{text} (at {frame})" if frame else text


def _format_signature(signature: inspect.Signature) -> str:
    """``(x, y, *, mask=None)``, worded as the static check words it."""
    return format_parameters(signature.parameters.values(), default=_short_repr)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."
