"""Registry of export targets, by the names the manifest and the CLI use.

Targets are imported lazily: importing ``exportwatch.targets`` must not import onnx or
onnxscript (seconds of start-up, and an optional extra), only asking for an ONNX target does.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from exportwatch.errors import UsageError
from exportwatch.manifest import KNOWN_TARGETS
from exportwatch.targets.base import Call, Outcome, Stage, Target, TargetOptions

__all__ = [
    "TARGET_NAMES",
    "Call",
    "IncompatibleDependency",
    "MissingDependency",
    "Outcome",
    "Stage",
    "Target",
    "TargetOptions",
    "get_target",
    "missing_packages",
    "require_installed",
]


class MissingDependency(UsageError):
    """A target needs an optional package that is not installed; the message names the extra."""

    def __init__(self, target: str, packages: list[str], extra: str) -> None:
        self.target = target
        self.packages = packages
        self.extra = extra
        super().__init__(f"target {target!r} needs {', '.join(packages)}: pip install 'exportwatch[{extra}]'")


class IncompatibleDependency(MissingDependency):
    """A target's package is installed, but in a version that cannot run with this torch."""

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.packages = []
        self.extra = target
        UsageError.__init__(self, f"target {target!r}: {problem}")


def _torch_export() -> Target:
    from exportwatch.targets.torch_export import TorchExport

    return TorchExport(strict=False)


def _torch_export_strict() -> Target:
    from exportwatch.targets.torch_export import TorchExport

    return TorchExport(strict=True)


def _onnx() -> Target:
    from exportwatch.targets.onnx import OnnxDynamo

    return OnnxDynamo()


def _onnx_legacy() -> Target:
    from exportwatch.targets.onnx_legacy import OnnxLegacy

    return OnnxLegacy()


def _executorch() -> Target:
    from exportwatch import compat

    problem = compat.installed_executorch_problem()  # before importing it: a wrong pair may crash
    if problem is not None:
        raise IncompatibleDependency("executorch", problem)
    from exportwatch.targets.executorch import Executorch

    return Executorch()


def _aoti() -> Target:
    from exportwatch.targets.aoti import AotInductor

    return AotInductor()


#: name -> (factory, packages the target cannot run without, extra that installs them)
_REGISTRY: dict[str, tuple[Callable[[], Target], tuple[str, ...], str | None]] = {
    "export": (_torch_export, (), None),
    "export-strict": (_torch_export_strict, (), None),
    "onnx": (_onnx, ("onnx", "onnxscript"), "onnx"),
    "onnx-legacy": (_onnx_legacy, ("onnx",), "onnx"),
    "executorch": (_executorch, ("executorch",), "executorch"),
    "aoti": (_aoti, (), None),  # AOTInductor: torch and a C++ compiler (gcc/clang), no extra
}
#: Targets whose missing extra stops the sweep before any model runs (a usage error naming the
#: extra), rather than a skipped job per model: nothing about them could be checked.
_REQUIRED_UP_FRONT = frozenset({"executorch"})
TARGET_NAMES: tuple[str, ...] = KNOWN_TARGETS  # the manifest's names, declared once
assert tuple(_REGISTRY) == TARGET_NAMES, "every target the manifest accepts has an exporter"


def missing_packages(packages: tuple[str, ...] | list[str]) -> list[str]:
    """The packages among ``packages`` that cannot be imported (without importing them)."""
    missing: list[str] = []
    for package in packages:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):  # ValueError: sys.modules[package] is None
            found = False
        if not found:
            missing.append(package)
    return missing


def require_installed(names: set[str] | list[str] | tuple[str, ...]) -> None:
    """:class:`MissingDependency` (exit 2) for the first asked-for target that must have its
    extra up front and lacks it; checked by the sweep before any model process starts."""
    for name in sorted(set(names) & _REQUIRED_UP_FRONT):
        _factory, packages, extra = _REGISTRY[name]
        missing = missing_packages(packages)
        if missing:
            raise MissingDependency(name, missing, extra or name)


def get_target(name: str) -> Target:
    """The target called ``name``; :class:`MissingDependency` if its extra is not installed."""
    try:
        factory, packages, extra = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(TARGET_NAMES)}") from None
    missing = missing_packages(packages)
    if missing:
        raise MissingDependency(name, missing, extra or name)
    return factory()
