"""Compatibility with the environments users really have: one small home for workarounds.

Everything that depends on the torch version lives here, not in ``if`` checks across the
package: where torch keeps the ONNX exporter's private modules, what marks an axis static,
what the exporter records about how it captured the graph. Each answer is checked on every
torch version CI runs (tests/integration/test_compat_versions.py has a row per version).

Imported by the worker (it imports torch); the publish half never needs it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.export

#: The torch releases (major.minor) CI tests; ``pyproject.toml``'s torch range is exactly these.
TESTED_TORCH = ("2.13", "2.14", "2.15")


#: ExecuTorch release (major.minor) → the torch release its wheels are built against: its C++
#: extensions load only with that torch (another one fails at import, or worse, at run time).
#: ``pyproject.toml``'s ``executorch`` extra pins the newest tested pair.
EXECUTORCH_FOR_TORCH = {"1.5": "2.13"}


def executorch_pairing_problem(executorch_version: str | None, torch_version: str) -> str | None:
    """Why this executorch cannot run with this torch, as a sentence; None when the pair is
    tested. Pure (versions in, words out), so the check runs before executorch is imported."""
    if executorch_version is None:
        return None
    release = ".".join(executorch_version.split("+")[0].split(".")[:2])
    torch_now = ".".join(torch_version.split("+")[0].split(".")[:2])
    wanted = EXECUTORCH_FOR_TORCH.get(release)
    if wanted is None:
        tested = ", ".join(f"executorch {e} with torch {t}" for e, t in EXECUTORCH_FOR_TORCH.items())
        return f"executorch {executorch_version} is not a tested release (tested: {tested})"
    if wanted != torch_now:
        return (
            f"executorch {executorch_version} needs torch {wanted}.x, but torch {torch_version} is "
            f"installed: pip install 'torch=={wanted}.*' 'exportwatch[executorch]'"
        )
    return None


def installed_executorch_problem() -> str | None:
    """:func:`executorch_pairing_problem` for what is installed here (read from metadata)."""
    from importlib import metadata

    try:
        version = metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return None
    return executorch_pairing_problem(version, torch.__version__)


def torch_release() -> str:
    """``2.14.1+cu130`` → ``2.14``."""
    return ".".join(torch.__version__.split("+")[0].split(".")[:2])


def static_dim() -> Any:
    """What marks an axis static in ``dynamic_shapes``: ``Dim.STATIC`` where torch has it (a
    plain ``None`` per axis is deprecated there), else ``None``."""
    return getattr(torch.export.Dim, "STATIC", None)


def onnx_exporter_errors() -> ModuleType:
    """The dynamo ONNX exporter's error classes: its private ``_errors`` module (which tells the
    stages apart), or the public ``torch.onnx.errors`` where torch moved it."""
    try:
        from torch.onnx._internal.exporter import _errors
    except ImportError:
        import torch.onnx.errors as public_errors

        return public_errors
    return _errors


def onnx_registration() -> ModuleType | None:
    """The exporter's torchlib registry module (cached per opset by the ``onnx`` target), or
    None where torch moved it: the exporter then builds its registry itself, every time."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return None
    return _registration


def onnx_capture_strategy(program: object) -> str | None:
    """How the dynamo exporter captured the graph (``TorchExportNonStrictStrategy``, ...), which
    it records on the ``ONNXProgram``; None where it does not."""
    strategy = getattr(program, "_capture_strategy", None)
    return strategy if isinstance(strategy, str) else None


def silence_torchscript_onnx_log() -> None:
    """Turn the TorchScript exporter's C++ log off again after an export (torch keeps it global)."""
    setter = getattr(torch._C, "_jit_set_onnx_log_enabled", None)
    if setter is not None:
        with contextlib.suppress(Exception):
            setter(False)


#: Said once per sweep, and in the warnings of the jobs of each model whose process imported
#: torchvision after :func:`allow_torchvision_without_its_extension` acted.
TORCHVISION_NOTE = (
    "torchvision's C++ extension does not load with this torch (a wheel built for another torch "
    "or CUDA); exportwatch declared the schemas of torchvision::nms and ::qnms so that torchvision, "
    "timm and transformers import. torchvision's C++ ops are unavailable"
)


#: torchvision's C++ ops whose fake kernels ``torchvision/_meta_registrations.py`` registers
#: unconditionally, with the schemas its ``_C`` extension declares (read from torchvision 0.28's).
_TORCHVISION_UNCONDITIONAL_OPS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _torchvision_extension_path() -> Path | None:
    """Where torchvision's ``_C`` extension is, found without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = package / f"_C{suffix}"
        if candidate.is_file():
            return candidate
    return None


def allow_torchvision_without_its_extension() -> bool:
    """Let ``import torchvision`` succeed when its C++ extension cannot load; True if it acted.

    A torchvision wheel built for another torch (here: a CUDA build beside the CPU torch) cannot
    load ``torchvision/_C``. torchvision tolerates that for every op but two:
    ``_meta_registrations.py`` calls ``torch.library.register_fake("torchvision::nms")`` (and
    ``qnms``) unconditionally, which raises "operator torchvision::nms does not exist", so
    ``import torchvision`` fails, and with it ``import timm`` and every ``transformers`` model
    (transformers imports torchvision when it is installed). Declaring the two schemas (never
    called: these models use no NMS) lets the pure-Python parts import.

    Acts only when the extension is installed but does not load, before torchvision is imported:
    when it loads, its own definitions stand (declaring them first would make it fail to load).
    Where something (a user's own shim) declared them already, it leaves them and says it did not
    act.
    """
    if "torchvision" in sys.modules:
        return False
    return _declare_torchvision_ops()


def _declare_torchvision_ops() -> bool:
    global _torchvision_repaired
    path = _torchvision_extension_path()
    if path is None:  # torchvision absent (or built without ops): nothing to repair
        return False
    try:
        torch.ops.load_library(str(path))  # what torchvision.extension does first
        return False
    except (ImportError, OSError):
        pass
    acted = False
    for op, schema in _TORCHVISION_UNCONDITIONAL_OPS.items():
        with contextlib.suppress(RuntimeError):  # already defined by someone else
            torch.library.define(f"torchvision::{op}", schema)
            acted = True
    _torchvision_repaired = _torchvision_repaired or acted
    return acted


#: Whether :func:`allow_torchvision_without_its_extension` acted in this process (or in the fork
#: server it was forked from, which then imported torchvision for every model it serves).
_torchvision_repaired = False


def torchvision_repaired() -> bool:
    """Whether torchvision was (or is being) imported here with exportwatch's repair."""
    return _torchvision_repaired


class _RepairTorchvisionOnImport(importlib.abc.MetaPathFinder):
    """Finds torchvision as the import system would, with a loader that repairs it first: asking
    whether torchvision is installed (``importlib.util.find_spec``, as the ONNX exporter does
    while the fork server warms up) repairs nothing; importing it does."""

    def __init__(self) -> None:
        self.finding = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "torchvision" or self.finding:
            return None
        self.finding = True
        try:
            spec = importlib.util.find_spec(fullname)  # the other finders' answer
        except (ImportError, ValueError):
            spec = None
        finally:
            self.finding = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RepairThenLoad(spec.loader, self)
        return spec


class _RepairThenLoad(importlib.abc.Loader):
    """torchvision's own loader, after :func:`_declare_torchvision_ops`; it leaves no trace."""

    def __init__(self, loader: Any, finder: _RepairTorchvisionOnImport) -> None:
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self.finder)
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with contextlib.suppress(Exception):  # the import goes on, and fails as it would have
            _declare_torchvision_ops()
        self.loader.exec_module(module)


def repair_torchvision_when_imported() -> None:
    """Apply :func:`allow_torchvision_without_its_extension` at the moment torchvision is first
    imported (by the model's code, or a library it imports), not before: code of the user's that
    runs before that import (a shim of its own) still runs first, as in plain Python, and a
    process that never imports torchvision is never touched."""
    if "torchvision" in sys.modules or any(isinstance(f, _RepairTorchvisionOnImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _RepairTorchvisionOnImport())


def _lazy_line_frames(tb: Any, skip: int) -> traceback.StackSummary:
    """``torch.utils._traceback._extract_symbolized_tb``, reading each frame's source line only
    when it is first asked for (``FrameSummary.line`` caches it) instead of at once."""
    stack = traceback.StackSummary()
    for frame in reversed(tb[skip:]):
        stack.append(
            traceback.FrameSummary(frame["filename"], frame["line"], frame["name"], lookup_line=False)
        )
    return stack


def read_stack_lines_lazily() -> bool:
    """Stop torch.export reading source lines of frames it then throws away; True if it acted.

    Every FX node a trace creates records its Python stack: ``CapturedTraceback.summary()``
    builds a ``FrameSummary`` per frame (about 70 of them), and each reads its source line from
    ``linecache``, although the tracer keeps only the few ``forward`` frames. The profile of a
    sweep puts this at about a tenth of export time. Lines read on first use are the same
    lines, so ``node.stack_trace`` and every message are unchanged: this checks that on a real
    captured stack before it replaces the function, and leaves torch alone where the function
    is missing or answers differently.
    """
    from torch.utils import _traceback as torch_traceback

    original = getattr(torch_traceback, "_extract_symbolized_tb", None)
    captured = getattr(torch_traceback, "CapturedTraceback", None)
    if original is None or captured is None or original is _lazy_line_frames:
        return False
    try:
        symbolized = torch._C._profiler.symbolize_tracebacks([captured.extract().tb])[0]
        same = _lazy_line_frames(symbolized, 0).format() == original(symbolized, 0).format()
    except Exception:  # another torch: leave it as it is
        return False
    if not same:
        return False
    torch_traceback._extract_symbolized_tb = _lazy_line_frames
    return True


class _WatchedFalse(int):
    """``False`` that remembers being asked: the value of the ONNX exporter's "exporting" flag
    while a plain torch.export capture runs."""

    read = False

    def __new__(cls) -> _WatchedFalse:
        return super().__new__(cls, 0)

    def __bool__(self) -> bool:
        self.read = True
        return False

    def __eq__(self, other: object) -> bool:
        self.read = True
        return int(self) == other

    __hash__ = int.__hash__

    def __repr__(self) -> str:
        return "False"


@contextlib.contextmanager
def watch_onnx_export_flag() -> Iterator[Callable[[], bool]]:
    """Whether the code traced meanwhile asked ``torch.onnx.is_in_onnx_export()`` (which the
    dynamo exporter answers True during its own capture, so such a capture is not the ONNX
    exporter's). Where the flag cannot be watched, it answers that it was asked."""
    try:
        from torch.onnx._internal.exporter import _flags
    except ImportError:
        yield lambda: True
        return
    if getattr(_flags, "_is_onnx_exporting", None) is not False:
        yield lambda: True
        return
    watched = _WatchedFalse()
    _flags._is_onnx_exporting = watched  # type: ignore[assignment]
    try:
        yield lambda: watched.read
    finally:
        if _flags._is_onnx_exporting is watched:
            _flags._is_onnx_exporting = False
