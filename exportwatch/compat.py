"""Compatibility with the environments users really have: one small home for workarounds.

Imported by the worker (it imports torch); the publish half never needs it.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import torch

#: Said in each job's warnings when :func:`allow_torchvision_without_its_extension` acted.
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
    """
    if "torchvision" in sys.modules:
        return False
    path = _torchvision_extension_path()
    if path is None:  # torchvision absent (or built without ops): nothing to repair
        return False
    try:
        torch.ops.load_library(str(path))  # what torchvision.extension does first
        return False
    except (ImportError, OSError):
        pass
    for op, schema in _TORCHVISION_UNCONDITIONAL_OPS.items():
        with contextlib.suppress(RuntimeError):  # already defined by someone else
            torch.library.define(f"torchvision::{op}", schema)
    return True
