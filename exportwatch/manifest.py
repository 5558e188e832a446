"""YAML manifest → typed, validated specs, with file:line:column:field errors.

Must not import torch (the publish half reads manifests for xfail entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOWN_TARGETS = ("export", "export-strict", "onnx", "onnx-legacy")
KNOWN_DEVICES = ("cpu", "cuda", "auto")


class ConfigError(Exception):
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
    """A tensor to make: shape, dtype, and either a value range or a fill value."""

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


def load_manifest(path: Path) -> Manifest:
    """Parse and validate ``path``; raise :class:`ConfigError` naming file, line and field."""
    raise NotImplementedError
