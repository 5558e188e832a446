"""YAML manifest → typed, validated specs, with file:line:column:field errors.

Must not import torch (the publish half reads manifests for xfail entries).

The YAML is *composed* (not loaded) so every value keeps the line and column it was written
at; errors then point at the exact spot, the way a compiler would. The format is described
for editors and humans in ``config/manifest.schema.json``; a unit test keeps both in sync.
"""

from __future__ import annotations

import ast
import copy
import difflib
import functools
import importlib.machinery
import importlib.util
import inspect
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exportwatch.errors import UsageError

MANIFEST_VERSION = 1
KNOWN_TARGETS = ("export", "export-strict", "onnx", "onnx-legacy")
KNOWN_DEVICES = ("cpu", "cuda", "auto")
#: The name the sweep gives ``inputs``; extra ``input_sets`` may not reuse it.
DEFAULT_INPUT_SET = "default"

#: Accepted dtype spellings → the canonical ``torch.<name>`` attribute (checked without torch).
DTYPES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "float64": "float64",
    "double": "float64",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "long": "int64",
    "uint8": "uint8",
    "bool": "bool",
    "complex64": "complex64",
}
_FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
_COMPLEX_DTYPES = frozenset({"complex64"})
#: Inclusive value bounds of the integer dtypes (randint's ``high`` may be one past the max).
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
}

# The keys the parser knows, one tuple per kind of mapping. The JSON Schema test compares the
# schema's property names with these, so adding a field means adding it in both places.
TOP_KEYS = ("version", "defaults", "models")
MODEL_KEYS = (
    "name",
    "factory",
    "kwargs",
    "inputs",
    "input_sets",
    "dims",
    "dynamic_shapes",
    "targets",
    "device",
    "timeout",
    "train",
    "no_grad",
    "verify",
    "rtol",
    "atol",
    "opset",
    "expect",
    "depends_on",
)
DEFAULTS_KEYS = tuple(k for k in MODEL_KEYS if k not in ("name", "factory"))
INPUTS_KEYS = ("args", "kwargs", "seed", "callable")
TENSOR_KEYS = ("shape", "dtype", "low", "high", "fill")
DIM_KEYS = ("min", "max")
EXPECT_KEYS = ("xfail",)
#: ``{tuple: [...]}`` spells a Python tuple; ``{dict: {...}}`` spells a dict whose keys would
#: otherwise read as a tensor spec or a tuple (e.g. a forward argument dict with a ``shape`` key).
TUPLE_KEY = "tuple"
DICT_KEY = "dict"

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PATH_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class ConfigError(UsageError):
    """A manifest problem, located: ``file:line:column: field.path: message``.

    The CLI turns it into exit code 2.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        field_path: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.field_path = field_path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        parts = [p for p in (where, self.field_path) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


@dataclass(kw_only=True)
class Location:
    """Where a spec was written in the manifest (1-based line and column)."""

    file: str
    line: int
    column: int
    field_path: str

    def error(self, message: str) -> ConfigError:
        return ConfigError(
            message, file=self.file, line=self.line, column=self.column, field_path=self.field_path
        )


@dataclass(kw_only=True)
class TensorSpec:
    """A tensor to make: shape, dtype, and either a value range or a fill value.

    ``dtype`` is the canonical torch name (``float`` is stored as ``float32``); ``low``/``high``
    are None when the manifest left them out (see :func:`value_range` for the defaults).
    """

    shape: list[int]
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None
    fill: float | None = None


# An input value: a TensorSpec, a constant (int/float/bool/str/None), or nested list/tuple/dict.
InputValue = Any


@dataclass(kw_only=True)
class InputsSpec:
    """One input set: declared args/kwargs, or a callable returning ``(args, kwargs)``."""

    args: list[InputValue] = field(default_factory=list)
    kwargs: dict[str, InputValue] = field(default_factory=dict)
    callable: str | None = None  # "pkg.mod:fn" or "path/file.py:fn"
    callable_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    location: Location | None = None


@dataclass(kw_only=True)
class DimSpec:
    name: str
    min: int | None = None
    max: int | None = None


@dataclass(kw_only=True)
class ModelSpec:
    """One model entry, defaults already applied."""

    name: str
    factory: str
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    inputs: InputsSpec
    input_sets: dict[str, InputsSpec] = field(default_factory=dict)  # extra named sets
    dims: dict[str, DimSpec] = field(default_factory=dict)
    # torch.export-style structure with dim *names* (str) or None at the leaves, e.g.
    # {"x": {0: "batch"}} or [{0: "batch"}, None]; converted to torch.export.Dim by `inputs`.
    dynamic_shapes: Any = None
    targets: list[str] = field(default_factory=lambda: ["export"])
    device: str = "cpu"
    timeout: float = 300.0
    train: bool = False  # False: model.eval()
    no_grad: bool = True
    verify: bool = True
    rtol: float | None = None
    atol: float | None = None
    opset: int | None = None
    xfail: str | None = None  # reason, when the whole model is expected to fail
    xfail_submodules: dict[str, str] = field(default_factory=dict)  # path -> reason
    depends_on: list[str] = field(default_factory=list)  # globs, repo-relative
    location: Location | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the entry as written, defaults merged
    #: Where each field present in ``raw`` was written (in the model entry or in ``defaults``),
    #: so later stages (factory import, dynamic shapes) can point at the exact line; also
    #: ``xfail:PATH`` for each submodule path under ``expect.xfail``.
    field_locations: dict[str, Location] = field(default_factory=dict)

    def where(self, key: str) -> Location | None:
        """The location of field ``key``, falling back to the model entry itself."""
        return self.field_locations.get(key, self.location)


@dataclass(kw_only=True)
class Manifest:
    path: Path
    root: Path  # the manifest's directory: factories and input callables import from here
    version: int
    models: list[ModelSpec]

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(name)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def dtype_kind(dtype: str) -> str:
    """``float``, ``complex``, ``int`` or ``bool`` for a canonical dtype name."""
    if dtype in _FLOAT_DTYPES:
        return "float"
    if dtype in _COMPLEX_DTYPES:
        return "complex"
    if dtype == "bool":
        return "bool"
    return "int"


def value_range(spec: TensorSpec) -> tuple[float, float]:
    """``[low, high)`` for random values: [0, 1) for floats, [0, 10) for integers by default."""
    default_high = 10 if dtype_kind(spec.dtype) == "int" else 1
    low = spec.low if spec.low is not None else 0
    high = spec.high if spec.high is not None else default_high
    return low, high


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

    node = _compose(text, file=file)
    reader = _Reader(file)
    document = reader.read(node, ())
    parser = _Parser(reader)
    version, models = parser.manifest(document)
    return Manifest(path=path, root=path.resolve().parent, version=version, models=models)


# --- YAML → plain values, remembering where each one was written -------------------------------

FieldPath = tuple[str | int, ...]


class ManifestYamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.2 does; PyYAML's 1.1 rules make
    it a string, which would turn ``rtol: 1e-4`` into a confusing type error)."""


ManifestYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


#: Values a manifest may expand to once its aliases are followed. A real manifest has hundreds;
#: nine nested aliases of nine items each (436 bytes, an "alias bomb") would expand to 387 million.
MAX_EXPANDED_VALUES = 100_000
#: Nesting depth of lists and mappings (PyYAML composes recursively; Python's stack is ~1,000).
MAX_NESTING = 100


def _compose(text: str, *, file: str) -> yaml.Node:
    depth = _nesting_depth(text)
    if depth > MAX_NESTING:
        raise ConfigError(f"YAML nested {depth} levels deep (at most {MAX_NESTING} are allowed)", file=file)
    try:
        node = yaml.compose(text, Loader=ManifestYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += (
                f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
            )
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise ConfigError(message, file=file, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None:
        raise ConfigError(
            "manifest is empty: expected 'version: 1' and 'models'", file=file, line=1, column=1
        )
    expanded = _expanded_size(node)
    if expanded > MAX_EXPANDED_VALUES:
        raise ConfigError(
            f"YAML aliases expand to more than {MAX_EXPANDED_VALUES:,} values (an alias bomb?): "
            "write the repeated values out, or use fewer nested aliases",
            file=file,
        )
    return node


def _nesting_depth(text: str) -> int:
    """The deepest flow (``[``/``{``) nesting, an upper bound checked before PyYAML recurses.

    Brackets inside quoted scalars count too: over-counting refuses only absurd manifests."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    # Block-style nesting shows as indentation: two columns per level is the tightest style.
    indents = (len(line) - len(line.lstrip(" ")) for line in text.splitlines())
    return max(deepest, max(indents, default=0) // 2)


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes reading ``root`` visits, aliases followed, counted without expanding them
    (a node's size is memoised: an alias costs its target's size). Stops counting past the cap;
    a recursive alias is left for the reader, which names it."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in on_path or isinstance(node, yaml.ScalarNode):
            return 1
        on_path.add(id(node))
        total = 1
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_VALUES:
                break
        on_path.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def format_path(path: FieldPath) -> str:
    """``("models", 1, "inputs", "args", 0)`` → ``models[1].inputs.args[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PATH_KEY_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


class _Reader:
    """Turns composed YAML nodes into plain values and records each value's and key's mark."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.value_marks: dict[FieldPath, tuple[int, int]] = {}
        self.key_marks: dict[FieldPath, tuple[int, int]] = {}
        self._constructor = ManifestYamlLoader("")

    def error(self, path: FieldPath, message: str, *, at_key: bool = False) -> ConfigError:
        mark = self.key_marks.get(path) if at_key else None
        if mark is None:
            mark = self._nearest_mark(path)
        return ConfigError(
            message,
            file=self.file,
            line=mark[0],
            column=mark[1],
            field_path=format_path(path) or None,
        )

    def location(self, path: FieldPath) -> Location:
        line, column = self._nearest_mark(path)
        return Location(file=self.file, line=line, column=column, field_path=format_path(path))

    def _nearest_mark(self, path: FieldPath) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            mark = self.value_marks.get(path[:end])
            if mark is not None:
                return mark
        return (1, 1)

    def read(self, node: yaml.Node, path: FieldPath, stack: frozenset[int] = frozenset()) -> Any:
        if id(node) in stack:
            raise self._node_error(node, path, "recursive YAML alias (a value contains itself)")
        self.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._constructor.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                raise self._node_error(node, path, f"cannot read value: {problem}") from None
        inner = stack | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self._node_error(node, path, _tag_message(node.tag))
            return [self.read(child, (*path, i), inner) for i, child in enumerate(node.value)]
        if node.tag != _MAP_TAG:
            raise self._node_error(node, path, _tag_message(node.tag))
        return self._read_mapping(node, path, inner)

    def _read_mapping(self, node: yaml.MappingNode, path: FieldPath, stack: frozenset[int]) -> dict[Any, Any]:
        own_keys = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
        if len(own_keys) != len(node.value):
            try:
                self._constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
            except yaml.YAMLError as exc:
                raise self._node_error(node, path, f"bad merge key: {exc.problem}") from None
        result: dict[Any, Any] = {}
        first_seen: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._node_error(
                    key_node, path, "mapping keys must be plain values, not lists or mappings"
                )
            key = self.read(key_node, (*path, "<key>"), stack)
            self.value_marks.pop((*path, "<key>"), None)
            child = (*path, key)
            is_own = id(key_node) in own_keys
            if is_own:
                if key in first_seen:
                    line, _ = first_seen[key]
                    raise self._node_error(
                        key_node, child, f"duplicate key {key!r} (first set at line {line})"
                    )
                first_seen[key] = _mark(key_node)
                self.key_marks[child] = _mark(key_node)
                self.value_marks[child] = _mark(value_node)
            result[key] = self.read(value_node, child, stack)
        return result

    def _node_error(self, node: yaml.Node, path: FieldPath, message: str) -> ConfigError:
        line, column = _mark(node)
        return ConfigError(
            message, file=self.file, line=line, column=column, field_path=format_path(path) or None
        )


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag_message(tag: str) -> str:
    return f"unsupported YAML tag {tag!r} (write a tuple as {{tuple: [...]}})"


# --- validation: plain values → specs -----------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _or(value: Any, empty: Any) -> Any:
    """``empty`` for null only: ``x or {}`` would also swallow a wrong-typed ``[]`` or ``0``."""
    return empty if value is None else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (NaN, infinities and ints too large for a float are not numbers
    here: a NaN timeout would never expire)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


class _Parser:
    """Validates the plain document, one small method per kind of field."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader

    # generic checks ------------------------------------------------------------------------

    def mapping(self, value: Any, path: FieldPath, *, what: str = "a mapping") -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.r.error(path, f"expected {what}, got {_describe(value)}")
        return value

    def listing(self, value: Any, path: FieldPath, *, what: str = "a list") -> list[Any]:
        if not isinstance(value, list):
            raise self.r.error(path, f"expected {what}, got {_describe(value)}")
        return value

    def string(self, value: Any, path: FieldPath, *, what: str = "a string") -> str:
        if not isinstance(value, str) or not value:
            raise self.r.error(path, f"expected {what}, got {_describe(value)}")
        return value

    def boolean(self, value: Any, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise self.r.error(path, f"expected true or false, got {_describe(value)}")
        return value

    def integer(
        self, value: Any, path: FieldPath, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        if not _is_int(value):
            raise self.r.error(path, f"expected an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            raise self.r.error(path, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.r.error(path, f"must be at most {maximum}, got {value}")
        return value

    def number(self, value: Any, path: FieldPath, *, positive: bool = False) -> float:
        if not _is_number(value):
            if isinstance(value, int | float) and not isinstance(value, bool):
                raise self.r.error(path, f"must be a finite number of reasonable size, got {str(value)[:20]}")
            raise self.r.error(path, f"expected a number, got {_describe(value)}")
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
            if not isinstance(key, str) or not _IDENT_RE.fullmatch(key):
                raise self.r.error(
                    (*path, key), f"{what} must be Python identifiers, got {key!r}", at_key=True
                )

    def ref(self, value: Any, path: FieldPath) -> str:
        """``package.module:attr`` or ``path/to/file.py:attr``, checked for shape only."""
        value = self.string(value, path, what="'package.module:callable' or 'path/to/file.py:callable'")
        module, sep, attr = value.rpartition(":")
        module_ok = bool(module) and (module.endswith(".py") or bool(_DOTTED_RE.fullmatch(module)))
        if not sep or not module_ok or not _DOTTED_RE.fullmatch(attr):
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
        defaults = self.mapping(_or(doc.get("defaults"), {}), ("defaults",))
        for key in defaults:
            if key in ("name", "factory"):
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
        if not _NAME_RE.fullmatch(name):
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
            spec.factory_kwargs = self.mapping(_or(merged["kwargs"], {}), source["kwargs"])
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
        for flag in ("train", "no_grad", "verify"):
            if flag in merged:
                setattr(spec, flag, self.boolean(merged[flag], source[flag]))
        for tolerance in ("rtol", "atol"):
            if merged.get(tolerance) is not None:
                setattr(spec, tolerance, self.number(merged[tolerance], source[tolerance]))
        if merged.get("opset") is not None:
            spec.opset = self.integer(merged["opset"], source["opset"], minimum=1)
        if merged.get("expect") is not None:
            spec.xfail, spec.xfail_submodules = self.expect(merged["expect"], source["expect"])
            for submodule in spec.xfail_submodules:  # where each path was written: a typo is warned
                spec.field_locations[f"xfail:{submodule}"] = self.r.location(
                    (*source["expect"], "xfail", submodule)
                )
        if merged.get("depends_on") is not None:
            globs = self.listing(merged["depends_on"], source["depends_on"], what="a list of glob patterns")
            spec.depends_on = [
                self.string(g, (*source["depends_on"], i), what="a glob pattern") for i, g in enumerate(globs)
            ]
        return spec

    def choice(self, value: Any, path: FieldPath, known: tuple[str, ...], *, what: str) -> str:
        if not isinstance(value, str):
            raise self.r.error(path, f"expected one of {', '.join(known)}, got {_describe(value)}")
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
                where, f"expected a reason, or a mapping of submodule path → reason, got {_describe(xfail)}"
            )
        reasons: dict[str, str] = {}
        for submodule, reason in xfail.items():
            if not isinstance(submodule, str):
                raise self.r.error(
                    (*where, submodule), f"submodule paths are strings, got {_describe(submodule)}"
                )
            reasons[submodule] = self.string(reason, (*where, submodule), what="a reason (why it fails)")
        return reasons.pop("", None), reasons

    # inputs --------------------------------------------------------------------------------

    def input_sets(self, value: Any, path: FieldPath) -> dict[str, InputsSpec]:
        sets = self.mapping(_or(value, {}), path, what="a mapping of set name → inputs")
        result: dict[str, InputsSpec] = {}
        for name, inputs in sets.items():
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
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
            callable_kwargs = self.mapping(_or(inputs.get("kwargs"), {}), (*path, "kwargs"))
            self.identifier_keys(callable_kwargs, (*path, "kwargs"), what="callable kwargs names")
            return InputsSpec(
                callable=self.ref(inputs["callable"], (*path, "callable")),
                callable_kwargs=callable_kwargs,
                seed=seed,
                location=location,
            )
        args = self.listing(_or(inputs.get("args"), []), (*path, "args"), what="a list of positional inputs")
        kwargs = self.mapping(
            _or(inputs.get("kwargs"), {}), (*path, "kwargs"), what="a mapping of keyword inputs"
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
                f" got {_describe(value)}",
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
            raise self.r.error((*path, "dtype"), f"expected a dtype name, got {_describe(dtype_name)}")
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
            if kind == "int" and not _is_int(value[bound]):
                raise self.r.error(
                    where, f"expected an integer for dtype {spec.dtype}, got {_describe(value[bound])}"
                )
            if not _is_number(value[bound]):
                raise self.r.error(where, f"expected a number, got {_describe(value[bound])}")
            setattr(spec, bound, value[bound])
        low, high = value_range(spec)
        if low >= high:
            default = "" if "high" in value else ", the default"
            raise self.r.error(path, f"low ({low}) must be less than high ({high}{default})")
        if kind == "int":
            lo, hi = _INT_BOUNDS[spec.dtype]
            if low < lo or high > hi + 1:
                raise self.r.error(path, f"range [{low}, {high}) does not fit {spec.dtype} ([{lo}, {hi}])")
        return spec

    def fill(self, value: Any, path: FieldPath, *, kind: str, dtype: str) -> Any:
        if kind == "bool":
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise self.r.error(path, f"expected true or false for dtype bool, got {_describe(value)}")
        if not _is_number(value):
            raise self.r.error(path, f"expected a number, got {_describe(value)}")
        if kind == "int":
            if not _is_int(value):
                raise self.r.error(path, f"expected an integer for dtype {dtype}, got {_describe(value)}")
            lo, hi = _INT_BOUNDS[dtype]
            if not lo <= value <= hi:
                raise self.r.error(path, f"{value} does not fit {dtype} ([{lo}, {hi}])")
        return value

    # dynamic shapes ------------------------------------------------------------------------

    def dims(self, value: Any, path: FieldPath) -> dict[str, DimSpec]:
        dims = self.mapping(_or(value, {}), path, what="a mapping of dim name → {min, max}")
        result: dict[str, DimSpec] = {}
        for name, bounds in dims.items():
            where = (*path, name)
            if not isinstance(name, str) or not _IDENT_RE.fullmatch(name):
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
                if not isinstance(key, str) or not _IDENT_RE.fullmatch(key):
                    raise self.r.error(
                        (*path, key),
                        f"top-level keys are forward argument names, got {_describe(key)}"
                        " (use a list to give shapes by position)",
                        at_key=True,
                    )
        elif not isinstance(value, list):
            raise self.r.error(
                path, f"expected a mapping by argument name or a list by position, got {_describe(value)}"
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
                if _is_int(key) and key < 0:
                    raise self.r.error((*path, key), f"axis must be 0 or more, got {key}", at_key=True)
                if not (_is_int(key) or isinstance(key, str)):
                    raise self.r.error(
                        (*path, key), f"expected an axis number or a name, got {_describe(key)}", at_key=True
                    )
                self._shape_node(item, (*path, key), dims)
            return
        raise self.r.error(path, f"expected a dim name, null, a list or a mapping, got {_describe(value)}")


# --- the code a manifest names, checked without running it --------------------------------------
#
# A typo in a factory path used to be found in a model's process, after the fork server had
# imported torch: seconds, for a mistake the manifest's text already shows. These checks read
# the named files (``ast``; nothing is imported, nothing of the user's runs) and report only what
# is certain: any construct that could make a name exist at run time (a star import, a module
# ``__getattr__``, ``globals()``, a decorator, ...) turns the check off for that reference.


def check_references(
    manifest: Manifest,
    *,
    models: Iterable[ModelSpec] | None = None,
    search_path: Iterable[str] = (),
    repo_root: Path | None = None,
) -> list[ConfigError]:
    """Every error the factories, input callables and forward signatures of ``models`` (all
    of the manifest's by default) show before any of them runs, one per reference.

    ``search_path``: where the model's process looks for modules after the manifest's
    directory (its ``sys.path``); ``repo_root``: the repository, whose modules' attributes are
    read from source (a library's are left to the model's process).
    """
    checker = _ReferenceChecker(
        root=manifest.root, search_path=tuple(search_path), repo_root=(repo_root or manifest.root).resolve()
    )
    errors: list[ConfigError] = []
    for spec in manifest.models if models is None else models:
        errors.extend(checker.model(spec))
    return list({str(e): e for e in errors}.values())  # a shared reference (defaults) once


@dataclass(frozen=True)
class _Source:
    """A module the model's process would import, as far as can be told from files."""

    path: Path | None  # its .py file; None when it exists but is not a source file here
    package_dir: Path | None = None  # for a package: where its submodules are


@dataclass(frozen=True)
class _Parsed:
    tree: ast.Module | None  # None: the file does not parse (``error`` says why)
    error: str | None = None


#: Calls that let a module bind names no statement of it names (``vars()`` without arguments).
_DYNAMIC_CALLS = frozenset({"globals", "locals", "vars", "exec"})


class _ReferenceChecker:
    def __init__(self, *, root: Path, search_path: tuple[str, ...], repo_root: Path) -> None:
        self.root = root
        self.search_path = search_path
        self.repo_root = repo_root
        self._parsed: dict[Path, _Parsed] = {}
        self._names: dict[Path, frozenset[str] | None] = {}
        self._patched: bool | None = None

    def model(self, spec: ModelSpec) -> list[ConfigError]:
        errors: list[ConfigError] = []
        where = spec.where("factory")
        found = self.reference(spec.factory, where)
        if isinstance(found, ConfigError):
            errors.append(found)
        elif found is not None:
            mismatches = self.factory_signatures(spec, *found)
            if mismatches and not self.patched_elsewhere():  # ``Net.forward = fast`` in another file
                errors.extend(mismatches)
        for inputs in [spec.inputs, *spec.input_sets.values()]:
            if inputs.callable is not None:
                called = self.reference(inputs.callable, inputs.location or spec.location)
                if isinstance(called, ConfigError):
                    errors.append(called)
        return errors

    # references ----------------------------------------------------------------------------

    def reference(self, ref: str, where: Location | None) -> ConfigError | tuple[ast.Module, ast.stmt] | None:
        """An error, or (the module's tree, the statement defining the attribute) when known."""
        module_part, _, attr = ref.rpartition(":")
        if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
            path = Path(module_part)
            path = (path if path.is_absolute() else self.root / path).resolve()
            if not path.is_file():
                hint = _close_file(module_part, path)
                return _located(where, f"file not found: {module_part} (looked in {self.root}){hint}")
            owner = module_part
        else:
            source = self.module(module_part, where)
            if isinstance(source, ConfigError):
                return source
            if source is None or source.path is None or not source.path.is_relative_to(self.repo_root):
                return None  # a library's attributes (lazy, compiled, re-exported) are its own
            path = source.path
            owner = f"module {module_part!r}"
        parsed = self.parse(path)
        if parsed.tree is None:
            label = module_part if owner == module_part else f"module {module_part!r}"
            return _located(where, f"importing {label} raised {parsed.error}") if parsed.error else None
        first = attr.split(".")[0]
        names = self.names(path, parsed.tree)
        if names is None:
            return None
        if first not in names:
            public = sorted(n for n in names if not n.startswith("_"))
            return _located(where, f"{owner} has no attribute {first!r}{did_you_mean(first, public)}")
        definition = _sole_definition(parsed.tree, first)
        return (parsed.tree, definition) if definition is not None and "." not in attr else None

    def module(self, dotted: str, where: Location | None) -> ConfigError | _Source | None:
        """Where ``import dotted`` would find its file in the model's process: the manifest's
        directory first, then ``search_path``; None when that cannot be told from files."""
        parts = dotted.split(".")
        found = self._top(parts[0])
        if found is None:
            candidates = sorted(_module_names(self.root))
            return _located(
                where, _no_module(dotted, parts[0], self.root) + did_you_mean(parts[0], candidates)
            )
        for depth, part in enumerate(parts[1:], start=2):
            if found.package_dir is None:
                return None  # a module that is not a package of files: let the import decide
            if found.path is not None:
                parsed = self.parse(found.path)
                if parsed.tree is None or _extends_itself(parsed.tree):
                    return None
            child = _in_directory(found.package_dir, part)
            if child is None:
                name = ".".join(parts[:depth])
                hint = did_you_mean(part, sorted(_module_names(found.package_dir)))
                return _located(where, _no_module(dotted, name, self.root) + hint)
            found = child
        return found

    def _top(self, name: str) -> _Source | None:
        """The top-level module ``name``: already imported here, in the manifest's directory, or
        on the search path (as the model's process finds it)."""
        loaded = sys.modules.get(name)
        if loaded is not None:
            file = getattr(loaded, "__file__", None)
            paths = list(getattr(loaded, "__path__", None) or [])
            return _Source(
                Path(file).resolve() if file and file.endswith(".py") else None,
                Path(paths[0]).resolve() if len(paths) == 1 else None,
            )
        for base in (self.root, *map(Path, self.search_path or sys.path)):
            found = _in_directory(base, name)
            if found is not None:
                return found
        try:
            spec = importlib.util.find_spec(name)  # a top-level name: finders only, nothing runs
        except (ImportError, ValueError):
            return _Source(None)
        if spec is None:
            return None
        return _Source(None)  # found by a finder of its own (an editable install, a zip): exists

    def names(self, path: Path, tree: ast.Module) -> frozenset[str] | None:
        """What ``module.name`` can find in the module at ``path`` (None: cannot be told)."""
        if path not in self._names:
            names = _defined_names(tree)
            if names is not None and path.name == "__init__.py":  # ``pkg:sub``, once imported
                names |= {p.stem for p in path.parent.iterdir() if p.suffix == ".py" or p.is_dir()}
            self._names[path] = frozenset(names) if names is not None else None
        return self._names[path]

    def parse(self, path: Path) -> _Parsed:
        parsed = self._parsed.get(path)
        if parsed is None:
            try:
                with warnings.catch_warnings():  # under -W error, a warning would read as an error
                    warnings.simplefilter("ignore")
                    parsed = _Parsed(ast.parse(path.read_bytes(), filename=str(path)))
            except SyntaxError as exc:
                rel = _relative(path, self.root)
                parsed = _Parsed(None, f"SyntaxError: {exc.msg} (at {rel}:{exc.lineno})")
            except (OSError, ValueError):
                parsed = _Parsed(None)
            self._parsed[path] = parsed
        return parsed

    # signatures ----------------------------------------------------------------------------

    def patched_elsewhere(self) -> bool:
        """Whether any file of the repository may replace a class's ``forward`` or ``__init__``
        (read only when a mismatch is about to be reported: the happy path reads nothing more)."""
        if self._patched is None:
            self._patched = _any_file_patches(self.repo_root)
        return self._patched

    def factory_signatures(
        self, spec: ModelSpec, tree: ast.Module, definition: ast.stmt
    ) -> list[ConfigError]:
        """The factory's kwargs against its parameters, and each declared input set against the
        built class's ``forward``: where the source says both for certain."""
        errors: list[ConfigError] = []
        cls: ast.ClassDef | None = None
        if _signatures_may_change(tree):
            return errors
        if isinstance(definition, ast.FunctionDef) and not definition.decorator_list:
            error = _bind_error(definition, args=0, kwargs=spec.factory_kwargs, method=False)
            if error:
                signature = _format_args(definition.args, method=False)
                errors.append(
                    _located(spec.where("kwargs"), f"kwargs do not match {spec.factory}{signature}: {error}")
                )
            cls = _returned_class(tree, definition)
        elif isinstance(definition, ast.ClassDef):
            cls = definition
            init = _own_method(definition, "__init__")
            if init is not None and _plain_module_class(tree, definition):
                error = _bind_error(init, args=0, kwargs=spec.factory_kwargs, method=True)
                if error:
                    signature = _format_args(init.args, method=True)
                    errors.append(
                        _located(
                            spec.where("kwargs"), f"kwargs do not match {spec.factory}{signature}: {error}"
                        )
                    )
        if errors or cls is None or not _plain_module_class(tree, cls):
            return errors
        forward = _own_method(cls, "forward")
        if forward is None:
            return errors
        for inputs in [spec.inputs, *spec.input_sets.values()]:
            if inputs.callable is not None:
                continue
            error = _bind_error(forward, args=len(inputs.args), kwargs=inputs.kwargs, method=True)
            if error:
                signature = _format_args(forward.args, method=True)
                errors.append(
                    _located(
                        inputs.location or spec.location,
                        f"inputs do not match {cls.name}.forward{signature}: {error}",
                    )
                )
        return errors


#: ``X.forward = ...``, ``setattr(X, "forward", ...)``: a signature replaced from another file.
_PATCH_RE = re.compile(
    rb"\.\s*(?:forward|__init__|__call__|__signature__)\s*=(?!=)|setattr\s*\([^)]*[\'\"](?:forward|__init__|__call__)[\'\"]"
)
_NOT_SOURCE = frozenset({"site-packages", "dist-packages", "node_modules", "__pycache__"})


def _any_file_patches(root: Path) -> bool:
    """Whether a ``.py`` file under ``root`` (hidden folders and installed packages aside) may
    assign a ``forward``/``__init__``/``__call__`` attribute."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _NOT_SOURCE]
        for name in files:
            if not name.endswith(".py"):
                continue
            try:
                text = (Path(folder) / name).read_bytes()
            except OSError:
                continue
            if _PATCH_RE.search(text):  # a comment or a string too: then say nothing
                return True
    return False


def _located(where: Location | None, message: str) -> ConfigError:
    return where.error(message) if where is not None else ConfigError(message)


def _no_module(dotted: str, missing: str, root: Path) -> str:
    return (
        f"cannot import module {dotted!r}: no module named {missing!r}"
        f" (looked in the manifest's directory {root} and the installed packages)"
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _close_file(written: str, path: Path) -> str:
    """`` (did you mean 'models/cnn.py'?)`` for a mistyped file name in an existing folder."""
    if not path.parent.is_dir():
        return ""
    siblings = {p.name: p for p in path.parent.iterdir() if p.suffix == ".py"}
    close = difflib.get_close_matches(path.name, sorted(siblings), n=1, cutoff=0.6)
    if not close:
        return ""
    head = written.rpartition("/")[0]
    return f" (did you mean {(head + '/' if head else '') + close[0]!r}?)"


def _in_directory(directory: Path, name: str) -> _Source | None:
    """The module ``name`` directly in ``directory``: a package, a .py file, or a compiled one."""
    package = directory / name
    if (package / "__init__.py").is_file():
        return _Source((package / "__init__.py").resolve(), package.resolve())
    if (directory / f"{name}.py").is_file():
        return _Source((directory / f"{name}.py").resolve())
    compiled = (directory / f"{name}{suffix}" for suffix in importlib.machinery.all_suffixes())
    if package.is_dir() or any(path.is_file() for path in compiled):
        return _Source(None)  # a namespace package's part, an extension, a .pyc: it exists
    return None


def _module_names(directory: Path) -> set[str]:
    try:
        return {
            p.stem
            for p in directory.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
        }
    except OSError:
        return set()


def _extends_itself(tree: ast.Module) -> bool:
    """A package that adds modules of its own making (``sys.modules``, ``__path__``)."""
    words = {"modules", "__path__", "extend_path", "__getattr__"}
    for node in ast.walk(tree):
        if (
            (isinstance(node, ast.Attribute) and node.attr in words)
            or (isinstance(node, ast.Name) and node.id in words)
            or (isinstance(node, ast.FunctionDef) and node.name in words)
            or (isinstance(node, ast.alias) and node.name in words)
        ):
            return True
    return False


def _defined_names(tree: ast.Module) -> set[str] | None:
    """The names a module's top level binds; None when some could be bound another way."""
    names: set[str] = set()
    sys_names = {"sys"} | {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "sys" and alias.asname
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return None
        if _binds_dynamically(node, sys_names=sys_names):
            return None
        if isinstance(node, ast.Global):
            names.update(node.names)  # bound when that function runs
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)  # a capture pattern of a top-level ``match``
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    for statement in _top_level(tree.body):
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if statement.name == "__getattr__":
                return None
            names.add(statement.name)
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            for alias in statement.names:
                names.add(alias.asname or alias.name.split(".")[0])
        else:
            names.update(_bound_names(statement))
    if "__getattr__" in names:  # ``__getattr__ = lazy.attach(...)``, ``from ._lazy import __getattr__``
        return None
    return names


def _binds_dynamically(node: ast.AST, *, sys_names: set[str]) -> bool:
    """``globals()[...] =``, ``exec(...)``, ``sys.modules[__name__]`` (``sys`` by any of
    ``sys_names``), ``setattr(this_module, ...)``: names no statement shows."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DYNAMIC_CALLS:
        return node.func.id != "vars" or not node.args
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
        target = node.args[0] if node.args else None  # ``setattr(self, ...)`` sets an instance's
        return not (
            isinstance(target, ast.Attribute)
            or (isinstance(target, ast.Name) and target.id in {"self", "cls"})
        )
    if isinstance(node, ast.ImportFrom) and node.module == "sys":
        return any(alias.name == "modules" for alias in node.names)
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "modules"
        and isinstance(node.value, ast.Name)
        and node.value.id in sys_names
    )


def _top_level(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Module-level statements, those inside ``if``/``try``/``with``/loops included."""
    for statement in body:
        yield statement
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for name in ("body", "orelse", "finalbody"):
            yield from _top_level(getattr(statement, name, []) or [])
        for handler in getattr(statement, "handlers", []) or []:
            yield from _top_level(handler.body)
        for case in getattr(statement, "cases", []) or []:
            yield from _top_level(case.body)


def _bound_names(statement: ast.stmt) -> set[str]:
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = list(statement.targets)
    elif isinstance(statement, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor):
        targets = [statement.target]
    elif isinstance(statement, ast.With | ast.AsyncWith):
        targets = [item.optional_vars for item in statement.items if item.optional_vars is not None]
    elif isinstance(statement, ast.Try):
        return {h.name for h in statement.handlers if h.name}
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _sole_definition(tree: ast.Module, name: str) -> ast.stmt | None:
    """The one statement at the module's top level that binds ``name``, if there is just one
    and it is a plain ``def`` or ``class``."""
    binders = _binders(tree).get(name, [])
    if len(binders) != 1 or binders[0] not in tree.body:
        return None
    return binders[0] if isinstance(binders[0], ast.FunctionDef | ast.ClassDef) else None


@functools.lru_cache(maxsize=16)
def _binders(tree: ast.Module) -> dict[str, list[ast.stmt]]:
    """Each name the module's top level binds → the statements that bind it (read once per file)."""
    found: dict[str, list[ast.stmt]] = {}
    for statement in _top_level(tree.body):
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = {statement.name}
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            names = {alias.asname or alias.name.split(".")[0] for alias in statement.names}
        else:
            names = _bound_names(statement)
        for name in names:
            found.setdefault(name, []).append(statement)
    return found


def _returned_class(tree: ast.Module, function: ast.FunctionDef) -> ast.ClassDef | None:
    """The class a factory like ``def make(): return Net(...)`` returns an instance of."""
    body = [s for s in function.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return None
    value = body[0].value
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
        return None
    if any(isinstance(n, ast.arg) and n.arg == value.func.id for n in ast.walk(function.args)):
        return None  # a parameter named like the class
    definition = _sole_definition(tree, value.func.id)
    return definition if isinstance(definition, ast.ClassDef) else None


def _plain_module_class(tree: ast.Module, cls: ast.ClassDef) -> bool:
    """``class Net(nn.Module)`` whose instances are called as torch calls any module: no
    decorator, metaclass, ``__new__``/``__call__`` of its own, no forward replaced or hooked."""
    if cls.decorator_list or cls.keywords or not cls.bases:
        return False
    if not all(ast.unparse(base) in _torch_module_names(tree) for base in cls.bases):
        return False
    own = {
        name
        for statement in cls.body
        for name in (
            {statement.name}
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            else _bound_names(statement)
        )
    }
    if own & {"__new__", "__call__", "__getattr__", "__getattribute__", "__signature__"}:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "forward" and isinstance(node.ctx, ast.Store):
            return False
        if isinstance(node, ast.Attribute) and "hook" in node.attr:
            return False
        if isinstance(node, ast.Constant) and node.value == "forward":  # setattr(m, "forward", ...)
            return False
    for node in ast.walk(cls):  # ``patch(self)``: code elsewhere may wrap the instance's forward
        if isinstance(node, ast.Call) and any(
            isinstance(arg, ast.Name) and arg.id == "self"
            for arg in [*node.args, *(k.value for k in node.keywords)]
        ):
            return False
    return not [s for s in cls.body if "forward" in _bound_names(s)]


def _signatures_may_change(tree: ast.Module) -> bool:
    """``f.__signature__ = ...``, ``f.__wrapped__``, ``__defaults__``: what ``inspect.signature``
    reads besides the ``def``."""
    words = {
        "__signature__",
        "__wrapped__",
        "__defaults__",
        "__kwdefaults__",
        "__code__",
        "__text_signature__",
    }
    return any(isinstance(node, ast.Attribute) and node.attr in words for node in ast.walk(tree))


def _torch_module_names(tree: ast.Module) -> set[str]:
    """How the module spells ``torch.nn.Module`` (``nn.Module`` after ``from torch import nn``),
    each name bound by that import only."""
    spelt: dict[str, str] = {}  # the name bound → its spelling of Module
    for statement in tree.body:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                if alias.asname is None and alias.name.split(".")[0] == "torch":
                    spelt["torch"] = "torch.nn.Module"
                elif alias.name == "torch" and alias.asname:
                    spelt[alias.asname] = f"{alias.asname}.nn.Module"
                elif alias.name == "torch.nn" and alias.asname:
                    spelt[alias.asname] = f"{alias.asname}.Module"
        elif isinstance(statement, ast.ImportFrom) and statement.level == 0:
            for alias in statement.names:
                if statement.module == "torch" and alias.name == "nn":
                    spelt[alias.asname or "nn"] = f"{alias.asname or 'nn'}.Module"
                elif statement.module == "torch.nn" and alias.name == "Module":
                    spelt[alias.asname or "Module"] = alias.asname or "Module"
    binders = _binders(tree)
    return {spelling for name, spelling in spelt.items() if len(binders.get(name, [])) == 1}


def _own_method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    """``name`` defined once in the class body, undecorated; None otherwise."""
    found = [s for s in cls.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef) and s.name == name]
    if len(found) != 1 or not isinstance(found[0], ast.FunctionDef) or found[0].decorator_list:
        return None
    return found[0]


def _parameters(arguments: ast.arguments, *, method: bool) -> list[inspect.Parameter] | None:
    """The parameters of a ``def``, ``self`` dropped for a method; defaults as their source."""
    kinds = inspect.Parameter
    positional: list[tuple[ast.arg, Any]] = [(a, kinds.POSITIONAL_ONLY) for a in arguments.posonlyargs]
    positional += [(a, kinds.POSITIONAL_OR_KEYWORD) for a in arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    defaults += list(arguments.defaults)
    if method:
        if not positional:
            return None  # ``def forward(*args)``: self is in there somewhere
        positional, defaults = positional[1:], defaults[1:]
    params = [
        kinds(a.arg, kind, default=inspect.Parameter.empty if d is None else _Written(d))
        for (a, kind), d in zip(positional, defaults, strict=True)
    ]
    if arguments.vararg is not None:
        params.append(kinds(arguments.vararg.arg, kinds.VAR_POSITIONAL))
    for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        params.append(
            kinds(a.arg, kinds.KEYWORD_ONLY, default=inspect.Parameter.empty if d is None else _Written(d))
        )
    if arguments.kwarg is not None:
        params.append(kinds(arguments.kwarg.arg, kinds.VAR_KEYWORD))
    return params


class _Written(str):
    """A default value shown as it is written (``scale=1.0``)."""

    def __new__(cls, node: ast.expr) -> _Written:
        text = ast.unparse(node)
        return super().__new__(cls, text if len(text) <= 20 else text[:17] + "...")

    def __repr__(self) -> str:
        return str(self)


def _bind_error(
    function: ast.FunctionDef, *, args: int, kwargs: Mapping[str, Any], method: bool
) -> str | None:
    """Why ``function(*args, **kwargs)`` (``args`` positional values) cannot be bound, if so."""
    params = _parameters(function.args, method=method)
    if params is None:
        return None
    try:
        inspect.Signature(params).bind(*range(args), **dict(kwargs))
    except TypeError as exc:
        return str(exc)
    return None


def _format_args(arguments: ast.arguments, *, method: bool) -> str:
    """``(x, y, *, mask=None)``, as the model's process writes a signature."""
    return format_parameters(_parameters(arguments, method=method) or [], default=str)


def format_parameters(params: Iterable[inspect.Parameter], *, default: Callable[[Any], str] = repr) -> str:
    """``(x, y, *, mask=None)``: names and defaults only (annotations make a message hard to
    read). One wording for the static check and the model's process."""
    parts: list[str] = []
    star_done = False
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star_done = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={default(p.default)}")
    return f"({', '.join(parts)})"
