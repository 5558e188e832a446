"""The manifest's typed specs, its closed sets (targets, devices, dtypes, keys) and ``ConfigError``,
which names file, line, column and field."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exportwatch.errors import UsageError

MANIFEST_VERSION = 1
KNOWN_TARGETS = ("export", "export-strict", "onnx", "onnx-legacy", "executorch", "aoti")
#: Targets with a place in the design but no exporter yet: the manifest refuses them with why,
#: not as a typo (docs/targets.md, "tensorrt"). Never in KNOWN_TARGETS until implemented.
PLANNED_TARGETS: dict[str, str] = {
    "tensorrt": (
        "target 'tensorrt' is not implemented yet: Torch-TensorRT needs a CUDA GPU, and the target"
        " will come once one is at hand to test it on (see docs/targets.md, 'tensorrt')"
    ),
}
#: How the ``executorch`` target lowers: XNNPACK's partitioner, or none (the portable kernels).
EXECUTORCH_BACKENDS = ("xnnpack", "portable")
#: The most a per-model ``executorch.coverage_threshold`` can be: coverage is a percentage.
MAX_COVERAGE_THRESHOLD = 100
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
INT_BOUNDS: dict[str, tuple[int, int]] = {
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
    "blockers",
    "rtol",
    "atol",
    "opset",
    "executorch",
    "expect",
    "depends_on",
    "methods",
)
#: Fields that name this model's own code (its submodule paths) cannot be shared in defaults.
PER_MODEL_KEYS = ("name", "factory", "methods")
DEFAULTS_KEYS = tuple(k for k in MODEL_KEYS if k not in PER_MODEL_KEYS)
INPUTS_KEYS = ("args", "kwargs", "seed", "callable")
TENSOR_KEYS = ("shape", "dtype", "low", "high", "fill")
DIM_KEYS = ("min", "max")
EXPECT_KEYS = ("xfail",)
EXECUTORCH_KEYS = ("backend", "coverage_threshold")
#: ``{tuple: [...]}`` spells a Python tuple; ``{dict: {...}}`` spells a dict whose keys would
#: otherwise read as a tensor spec or a tuple (e.g. a forward argument dict with a ``shape`` key).
TUPLE_KEY = "tuple"
DICT_KEY = "dict"

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOTTED_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
PATH_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
#: A submodule's qualified path as ``named_modules`` spells it (``layers.0.attn``); not the root.
SUBMODULE_PATH_RE = re.compile(r"[^.\s]+(?:\.[^.\s]+)*")


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
    #: draft_export on each failing origin of ``export`` to list every blocker (a run each).
    blockers: bool = True
    rtol: float | None = None
    atol: float | None = None
    opset: int | None = None
    executorch_backend: str = "xnnpack"  # the `executorch` target's partitioner (EXECUTORCH_BACKENDS)
    #: Percentage points of delegation coverage a module of this model may lose before the diff
    #: calls it a coverage drop (``executorch: {coverage_threshold: 10}``); None: the diff's own
    #: (``--coverage-threshold``, default 5). Recorded on the model's ``executorch`` jobs.
    coverage_threshold: float | None = None
    xfail: str | None = None  # reason, when the whole model is expected to fail
    xfail_submodules: dict[str, str] = field(default_factory=dict)  # path -> reason
    depends_on: list[str] = field(default_factory=list)  # globs, repo-relative
    #: submodule path -> method: a module the model uses only through that method (encodec's
    #: ``quantizer`` through ``encode``) is exported through it instead of reading ``not-called``.
    methods: dict[str, str] = field(default_factory=dict)
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
