"""The manifest's text → validated :class:`Manifest`; every error located at
file:line:column:field, the way a compiler would."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from exportwatch.manifest.specs import (
    DEFAULT_INPUT_SET,
    DEFAULTS_KEYS,
    DICT_KEY,
    DIM_KEYS,
    DOTTED_RE,
    DTYPES,
    EXECUTORCH_BACKENDS,
    EXECUTORCH_KEYS,
    EXPECT_KEYS,
    IDENT_RE,
    INPUTS_KEYS,
    INT_BOUNDS,
    KNOWN_DEVICES,
    KNOWN_TARGETS,
    MANIFEST_VERSION,
    MAX_COVERAGE_THRESHOLD,
    MODEL_KEYS,
    NAME_RE,
    PER_MODEL_KEYS,
    PLANNED_TARGETS,
    SUBMODULE_PATH_RE,
    TENSOR_KEYS,
    TOP_KEYS,
    TUPLE_KEY,
    ConfigError,
    DimSpec,
    InputsSpec,
    InputValue,
    Manifest,
    ModelSpec,
    TensorSpec,
    did_you_mean,
    dtype_kind,
    value_range,
)
from exportwatch.manifest.yaml_reader import FieldPath, Reader, compose, describe, is_int, is_number, or_empty


def load_manifest(path: Path | str) -> Manifest:
    """Parse and validate ``path``; raise :class:`ConfigError` naming file, line and field."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("manifest file not found", file=file) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a manifest file", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"manifest is not UTF-8 text ({exc.reason} at byte {exc.start})", file=file
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read manifest: {exc.strerror}", file=file) from None

    node = compose(text, file=file)
    reader = Reader(file)
    document = reader.read(node, ())
    parser = _Parser(reader)
    version, models = parser.manifest(document)
    return Manifest(path=path, root=path.resolve().parent, version=version, models=models)


class _Parser:
    """Validates the plain document, one small method per kind of field."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    # generic checks ------------------------------------------------------------------------

    def mapping(self, value: Any, path: FieldPath, *, what: str = "a mapping") -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.r.error(path, f"expected {what}, got {describe(value)}")
        return value

    def listing(self, value: Any, path: FieldPath, *, what: str = "a list") -> list[Any]:
        if not isinstance(value, list):
            raise self.r.error(path, f"expected {what}, got {describe(value)}")
        return value

    def string(self, value: Any, path: FieldPath, *, what: str = "a string") -> str:
        if not isinstance(value, str) or not value:
            raise self.r.error(path, f"expected {what}, got {describe(value)}")
        return value

    def boolean(self, value: Any, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise self.r.error(path, f"expected true or false, got {describe(value)}")
        return value

    def integer(
        self, value: Any, path: FieldPath, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        if not is_int(value):
            raise self.r.error(path, f"expected an integer, got {describe(value)}")
        if minimum is not None and value < minimum:
            raise self.r.error(path, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.r.error(path, f"must be at most {maximum}, got {value}")
        return value

    def number(self, value: Any, path: FieldPath, *, positive: bool = False) -> float:
        if not is_number(value):
            if isinstance(value, int | float) and not isinstance(value, bool):
                raise self.r.error(path, f"must be a finite number of reasonable size, got {str(value)[:20]}")
            raise self.r.error(path, f"expected a number, got {describe(value)}")
        if positive and value <= 0:
            raise self.r.error(path, f"must be greater than 0, got {value}")
        if value < 0:
            raise self.r.error(path, f"must not be negative, got {value}")
        return float(value)

    def keys(self, value: dict[Any, Any], path: FieldPath, known: Iterable[str]) -> None:
        known = tuple(known)
        for key in value:
            if key not in known:
                hint = did_you_mean(str(key), known) or f" (known keys: {', '.join(known)})"
                raise self.r.error((*path, key), f"unknown key {key!r}{hint}", at_key=True)

    def identifier_keys(self, value: dict[Any, Any], path: FieldPath, *, what: str) -> None:
        for key in value:
            if not isinstance(key, str) or not IDENT_RE.fullmatch(key):
                raise self.r.error(
                    (*path, key), f"{what} must be Python identifiers, got {key!r}", at_key=True
                )

    def ref(self, value: Any, path: FieldPath) -> str:
        """``package.module:attr`` or ``path/to/file.py:attr``, checked for shape only."""
        value = self.string(value, path, what="'package.module:callable' or 'path/to/file.py:callable'")
        module, sep, attr = value.rpartition(":")
        module_ok = bool(module) and (module.endswith(".py") or bool(DOTTED_RE.fullmatch(module)))
        if not sep or not module_ok or not DOTTED_RE.fullmatch(attr):
            raise self.r.error(
                path, f"expected 'package.module:callable' or 'path/to/file.py:callable', got {value!r}"
            )
        return value

    # the document --------------------------------------------------------------------------

    def manifest(self, document: Any) -> tuple[int, list[ModelSpec]]:
        doc = self.mapping(document, (), what="a mapping with 'version: 1' and 'models'")
        # The version is checked before the keys, so a newer manifest says "upgrade", not "unknown key".
        if "version" in doc:
            version = self.integer(doc["version"], ("version",))
            if version != MANIFEST_VERSION:
                raise self.r.error(
                    ("version",),
                    f"unsupported manifest version {version}"
                    f" (this exportwatch reads version {MANIFEST_VERSION})",
                )
        self.keys(doc, (), TOP_KEYS)
        if "version" not in doc:
            raise self.r.error(
                ("version",), f"required field is missing (write 'version: {MANIFEST_VERSION}')"
            )
        version = doc["version"]
        defaults = self.mapping(or_empty(doc.get("defaults"), {}), ("defaults",))
        for key in defaults:
            if key in PER_MODEL_KEYS:
                raise self.r.error(
                    ("defaults", key), f"{key!r} cannot be set in defaults; set it on each model", at_key=True
                )
        self.keys(defaults, ("defaults",), DEFAULTS_KEYS)
        if "models" not in doc:
            raise self.r.error(("models",), "required field is missing")
        entries = self.listing(doc["models"], ("models",), what="a list of models")
        if not entries:
            raise self.r.error(("models",), "no models listed: add at least one entry")
        models: list[ModelSpec] = []
        first_line: dict[str, int] = {}
        for index, entry in enumerate(entries):
            spec = self.model(entry, ("models", index), defaults)
            if spec.name in first_line:
                raise self.r.error(
                    ("models", index, "name"),
                    f"duplicate model name {spec.name!r} (first defined at line {first_line[spec.name]})",
                )
            first_line[spec.name] = spec.location.line if spec.location else 0
            models.append(spec)
        return version, models

    def model(self, entry: Any, path: FieldPath, defaults: dict[str, Any]) -> ModelSpec:
        entry = self.mapping(entry, path, what="a mapping with name, factory and inputs")
        self.keys(entry, path, MODEL_KEYS)
        merged = {**defaults, **entry}
        source: dict[str, FieldPath] = {
            key: (*path, key) if key in entry else ("defaults", key) for key in merged
        }
        for key in ("name", "factory", "inputs"):
            if key not in merged:
                raise self.r.error((*path, key), "required field is missing")

        name = self.string(merged["name"], source["name"], what="a model name")
        if not NAME_RE.fullmatch(name):
            raise self.r.error(
                source["name"], f"model names may use only letters, digits, '_', '.' and '-', got {name!r}"
            )
        spec = ModelSpec(
            name=name,
            factory=self.ref(merged["factory"], source["factory"]),
            inputs=self.inputs(merged["inputs"], source["inputs"]),
            location=self.r.location(path),
            raw=copy.deepcopy(merged),
            field_locations={key: self.r.location(where) for key, where in source.items()},
        )
        if "kwargs" in merged:
            spec.factory_kwargs = self.mapping(or_empty(merged["kwargs"], {}), source["kwargs"])
            self.identifier_keys(spec.factory_kwargs, source["kwargs"], what="factory kwargs names")
        if "input_sets" in merged:
            spec.input_sets = self.input_sets(merged["input_sets"], source["input_sets"])
        if "dims" in merged:
            spec.dims = self.dims(merged["dims"], source["dims"])
        if merged.get("dynamic_shapes") is not None:
            spec.dynamic_shapes = self.dynamic_shapes(
                merged["dynamic_shapes"], source["dynamic_shapes"], spec.dims
            )
        if "targets" in merged:
            spec.targets = self.targets(merged["targets"], source["targets"])
        if "device" in merged:
            spec.device = self.choice(merged["device"], source["device"], KNOWN_DEVICES, what="device")
        if "timeout" in merged:
            spec.timeout = self.number(merged["timeout"], source["timeout"], positive=True)
        for flag in ("train", "no_grad", "verify", "blockers"):
            if flag in merged:
                setattr(spec, flag, self.boolean(merged[flag], source[flag]))
        for tolerance in ("rtol", "atol"):
            if merged.get(tolerance) is not None:
                setattr(spec, tolerance, self.number(merged[tolerance], source[tolerance]))
        if merged.get("opset") is not None:
            spec.opset = self.integer(merged["opset"], source["opset"], minimum=1)
        if merged.get("executorch") is not None:
            spec.executorch_backend, spec.coverage_threshold = self.executorch(
                merged["executorch"], source["executorch"]
            )
        if merged.get("expect") is not None:
            spec.xfail, spec.xfail_submodules = self.expect(merged["expect"], source["expect"])
            for submodule in spec.xfail_submodules:  # where each path was written: a typo is warned
                spec.field_locations[f"xfail:{submodule}"] = self.r.location(
                    (*source["expect"], "xfail", submodule)
                )
        if merged.get("methods") is not None:
            spec.methods = self.methods(merged["methods"], source["methods"])
        if merged.get("depends_on") is not None:
            globs = self.listing(merged["depends_on"], source["depends_on"], what="a list of glob patterns")
            spec.depends_on = [
                self.string(g, (*source["depends_on"], i), what="a glob pattern") for i, g in enumerate(globs)
            ]
        return spec

    def executorch(self, value: Any, path: FieldPath) -> tuple[str, float | None]:
        """``executorch: {backend: xnnpack, coverage_threshold: 10}``: the partitioner the
        ``executorch`` target lowers with, and the coverage points a module may lose before the
        diff calls it a drop (None: the diff's own threshold)."""
        value = self.mapping(value, path, what="a mapping with backend and coverage_threshold")
        self.keys(value, path, EXECUTORCH_KEYS)
        backend = "xnnpack"
        if value.get("backend") is not None:
            backend = self.choice(
                value["backend"], (*path, "backend"), EXECUTORCH_BACKENDS, what="executorch backend"
            )
        threshold = None
        if value.get("coverage_threshold") is not None:
            threshold = self.coverage_threshold(value["coverage_threshold"], (*path, "coverage_threshold"))
        return backend, threshold

    def coverage_threshold(self, value: Any, path: FieldPath) -> float:
        """Percentage points of delegation coverage, 0 to 100 (``10``, ``2.5``; not ``"10%"``)."""
        if not is_number(value):
            raise self.r.error(
                path,
                f"expected percentage points of coverage, a number from 0 to {MAX_COVERAGE_THRESHOLD}"
                f" (like 10), got {describe(value)}",
            )
        if not 0 <= value <= MAX_COVERAGE_THRESHOLD:
            raise self.r.error(
                path,
                f"must be from 0 to {MAX_COVERAGE_THRESHOLD} percentage points of coverage, got {value}",
            )
        return float(value)

    def choice(self, value: Any, path: FieldPath, known: tuple[str, ...], *, what: str) -> str:
        if not isinstance(value, str):
            raise self.r.error(path, f"expected one of {', '.join(known)}, got {describe(value)}")
        if value not in known:
            hint = did_you_mean(value, known) or f" (expected one of: {', '.join(known)})"
            raise self.r.error(path, f"unknown {what} {value!r}{hint}")
        return value

    def targets(self, value: Any, path: FieldPath) -> list[str]:
        items = self.listing(value, path, what=f"a list of targets ({', '.join(KNOWN_TARGETS)})")
        if not items:
            raise self.r.error(path, f"lists no targets (known: {', '.join(KNOWN_TARGETS)})")
        targets: list[str] = []
        for i, item in enumerate(items):
            if isinstance(item, str) and item in PLANNED_TARGETS:
                raise self.r.error((*path, i), PLANNED_TARGETS[item])
            target = self.choice(item, (*path, i), KNOWN_TARGETS, what="target")
            if target in targets:
                raise self.r.error((*path, i), f"target {target!r} is listed twice")
            targets.append(target)
        return targets

    def expect(self, value: Any, path: FieldPath) -> tuple[str | None, dict[str, str]]:
        expect = self.mapping(value, path, what="a mapping like {xfail: reason}")
        self.keys(expect, path, EXPECT_KEYS)
        xfail = expect.get("xfail")
        where = (*path, "xfail")
        if xfail is None:
            return None, {}
        if isinstance(xfail, str):
            return self.string(xfail, where, what="a reason"), {}
        if not isinstance(xfail, dict):
            raise self.r.error(
                where, f"expected a reason, or a mapping of submodule path → reason, got {describe(xfail)}"
            )
        reasons: dict[str, str] = {}
        for submodule, reason in xfail.items():
            if not isinstance(submodule, str):
                raise self.r.error(
                    (*where, submodule), f"submodule paths are strings, got {describe(submodule)}"
                )
            reasons[submodule] = self.string(reason, (*where, submodule), what="a reason (why it fails)")
        return reasons.pop("", None), reasons

    def methods(self, value: Any, path: FieldPath) -> dict[str, str]:
        """``{quantizer: encode}``: submodule path → the method the model uses it through."""
        mapping = self.mapping(value, path, what="a mapping of submodule path → method name")
        methods: dict[str, str] = {}
        for submodule, method in mapping.items():
            where = (*path, submodule)
            if not isinstance(submodule, str) or not SUBMODULE_PATH_RE.fullmatch(submodule):
                raise self.r.error(
                    where,
                    f"expected a submodule path like 'encoder.quantizer', got {describe(submodule)}"
                    " (the root is always exported through forward)",
                    at_key=True,
                )
            name = self.string(method, where, what="a method name")
            if not IDENT_RE.fullmatch(name) or name.startswith("__"):
                raise self.r.error(where, f"expected a method name like 'encode', got {name!r}")
            if name == "forward":
                raise self.r.error(where, "'forward' is how every module is exported already; remove it")
            methods[submodule] = name
        return methods

    # inputs --------------------------------------------------------------------------------

    def input_sets(self, value: Any, path: FieldPath) -> dict[str, InputsSpec]:
        sets = self.mapping(or_empty(value, {}), path, what="a mapping of set name → inputs")
        result: dict[str, InputsSpec] = {}
        for name, inputs in sets.items():
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                raise self.r.error(
                    (*path, name), f"input set names are letters, digits, '_.-'; got {name!r}", at_key=True
                )
            if name == DEFAULT_INPUT_SET:
                raise self.r.error(
                    (*path, name), f"{name!r} is the name of 'inputs'; pick another name", at_key=True
                )
            result[name] = self.inputs(inputs, (*path, name))
        return result

    def inputs(self, value: Any, path: FieldPath) -> InputsSpec:
        inputs = self.mapping(
            value if value is not None else {}, path, what="a mapping with args/kwargs or callable"
        )
        self.keys(inputs, path, INPUTS_KEYS)
        seed = (
            self.integer(inputs["seed"], (*path, "seed"), minimum=0, maximum=2**63 - 1)
            if "seed" in inputs
            else 0
        )
        location = self.r.location(path)
        if "callable" in inputs:
            if "args" in inputs:
                raise self.r.error(
                    (*path, "args"),
                    "cannot be combined with 'callable' (the callable returns the inputs)",
                    at_key=True,
                )
            callable_kwargs = self.mapping(or_empty(inputs.get("kwargs"), {}), (*path, "kwargs"))
            self.identifier_keys(callable_kwargs, (*path, "kwargs"), what="callable kwargs names")
            return InputsSpec(
                callable=self.ref(inputs["callable"], (*path, "callable")),
                callable_kwargs=callable_kwargs,
                seed=seed,
                location=location,
            )
        args = self.listing(
            or_empty(inputs.get("args"), []), (*path, "args"), what="a list of positional inputs"
        )
        kwargs = self.mapping(
            or_empty(inputs.get("kwargs"), {}), (*path, "kwargs"), what="a mapping of keyword inputs"
        )
        self.identifier_keys(kwargs, (*path, "kwargs"), what="keyword input names")
        return InputsSpec(
            args=[self.value(v, (*path, "args", i)) for i, v in enumerate(args)],
            kwargs={k: self.value(v, (*path, "kwargs", k)) for k, v in kwargs.items()},
            seed=seed,
            location=location,
        )

    def value(self, value: Any, path: FieldPath) -> InputValue:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            raise self.r.error(
                path,
                "expected a tensor spec, list, mapping, number, boolean, string or null,"
                f" got {describe(value)}",
            )
        keys = set(value)
        if keys & set(TENSOR_KEYS):
            return self.tensor(value, path)
        if keys == {TUPLE_KEY}:
            items = self.listing(value[TUPLE_KEY], (*path, TUPLE_KEY), what="a list of tuple items")
            return tuple(self.value(v, (*path, TUPLE_KEY, i)) for i, v in enumerate(items))
        if keys == {DICT_KEY}:
            inner = self.mapping(value[DICT_KEY], (*path, DICT_KEY))
            return {k: self.value(v, (*path, DICT_KEY, k)) for k, v in inner.items()}
        return {k: self.value(v, (*path, k)) for k, v in value.items()}

    def tensor(self, value: dict[Any, Any], path: FieldPath) -> TensorSpec:
        self.keys(value, path, TENSOR_KEYS)
        if "shape" not in value:
            raise self.r.error((*path, "shape"), "required field is missing (a tensor spec needs a shape)")
        dims = self.listing(value["shape"], (*path, "shape"), what="a list of sizes, like [2, 3]")
        shape = [self.integer(d, (*path, "shape", i), minimum=0) for i, d in enumerate(dims)]
        dtype_name = value.get("dtype", "float32")
        if not isinstance(dtype_name, str):
            raise self.r.error((*path, "dtype"), f"expected a dtype name, got {describe(dtype_name)}")
        if dtype_name not in DTYPES:
            hint = did_you_mean(dtype_name, DTYPES) or f" (known: {', '.join(DTYPES)})"
            raise self.r.error((*path, "dtype"), f"unknown dtype {dtype_name!r}{hint}")
        spec = TensorSpec(shape=shape, dtype=DTYPES[dtype_name])
        kind = dtype_kind(spec.dtype)
        if "fill" in value:
            if "low" in value or "high" in value:
                raise self.r.error(
                    (*path, "fill"), "fill gives a constant tensor; it cannot be combined with low/high"
                )
            spec.fill = self.fill(value["fill"], (*path, "fill"), kind=kind, dtype=spec.dtype)
            return spec
        for bound in ("low", "high"):
            if bound not in value:
                continue
            where = (*path, bound)
            if kind == "bool":
                raise self.r.error(where, "bool tensors are random True/False; use fill for a constant")
            if kind == "int" and not is_int(value[bound]):
                raise self.r.error(
                    where, f"expected an integer for dtype {spec.dtype}, got {describe(value[bound])}"
                )
            if not is_number(value[bound]):
                raise self.r.error(where, f"expected a number, got {describe(value[bound])}")
            setattr(spec, bound, value[bound])
        low, high = value_range(spec)
        if low >= high:
            default = "" if "high" in value else ", the default"
            raise self.r.error(path, f"low ({low}) must be less than high ({high}{default})")
        if kind == "int":
            lo, hi = INT_BOUNDS[spec.dtype]
            if low < lo or high > hi + 1:
                raise self.r.error(path, f"range [{low}, {high}) does not fit {spec.dtype} ([{lo}, {hi}])")
        return spec

    def fill(self, value: Any, path: FieldPath, *, kind: str, dtype: str) -> Any:
        if kind == "bool":
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise self.r.error(path, f"expected true or false for dtype bool, got {describe(value)}")
        if not is_number(value):
            raise self.r.error(path, f"expected a number, got {describe(value)}")
        if kind == "int":
            if not is_int(value):
                raise self.r.error(path, f"expected an integer for dtype {dtype}, got {describe(value)}")
            lo, hi = INT_BOUNDS[dtype]
            if not lo <= value <= hi:
                raise self.r.error(path, f"{value} does not fit {dtype} ([{lo}, {hi}])")
        return value

    # dynamic shapes ------------------------------------------------------------------------

    def dims(self, value: Any, path: FieldPath) -> dict[str, DimSpec]:
        dims = self.mapping(or_empty(value, {}), path, what="a mapping of dim name → {min, max}")
        result: dict[str, DimSpec] = {}
        for name, bounds in dims.items():
            where = (*path, name)
            if not isinstance(name, str) or not IDENT_RE.fullmatch(name):
                raise self.r.error(where, f"dim names must be Python identifiers, got {name!r}", at_key=True)
            bounds = self.mapping(
                bounds if bounds is not None else {}, where, what="a mapping like {min: 1, max: 64}"
            )
            self.keys(bounds, where, DIM_KEYS)
            dim = DimSpec(name=name)
            for bound in DIM_KEYS:
                if bounds.get(bound) is not None:
                    setattr(dim, bound, self.integer(bounds[bound], (*where, bound), minimum=0))
            if dim.min is not None and dim.max is not None and dim.min > dim.max:
                raise self.r.error(where, f"min ({dim.min}) is greater than max ({dim.max})")
            result[name] = dim
        return result

    def dynamic_shapes(self, value: Any, path: FieldPath, dims: Mapping[str, DimSpec]) -> Any:
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str) or not IDENT_RE.fullmatch(key):
                    raise self.r.error(
                        (*path, key),
                        f"top-level keys are forward argument names, got {describe(key)}"
                        " (use a list to give shapes by position)",
                        at_key=True,
                    )
        elif not isinstance(value, list):
            raise self.r.error(
                path, f"expected a mapping by argument name or a list by position, got {describe(value)}"
            )
        self._shape_node(value, path, dims)
        return value

    def _shape_node(self, value: Any, path: FieldPath, dims: Mapping[str, DimSpec]) -> None:
        if value is None:
            return
        if isinstance(value, str):
            if value not in dims:
                declared = f"declared: {', '.join(dims)}" if dims else "no dims are declared"
                hint = did_you_mean(value, dims) or f" ({declared})"
                raise self.r.error(path, f"dim {value!r} is not declared in dims{hint}")
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self._shape_node(item, (*path, i), dims)
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if is_int(key) and key < 0:
                    raise self.r.error((*path, key), f"axis must be 0 or more, got {key}", at_key=True)
                if not (is_int(key) or isinstance(key, str)):
                    raise self.r.error(
                        (*path, key), f"expected an axis number or a name, got {describe(key)}", at_key=True
                    )
                self._shape_node(item, (*path, key), dims)
            return
        raise self.r.error(path, f"expected a dim name, null, a list or a mapping, got {describe(value)}")
