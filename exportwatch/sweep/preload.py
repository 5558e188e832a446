"""Which libraries the fork server imports once, so each model's process need not.

Importing transformers and one of its model classes costs about three seconds; paid once per
model process, it would dwarf the export. So the fork server reads (never runs) the modules
the manifest's factories and input callables live in, and imports the *installed libraries*
they import (``from transformers import LlamaConfig``), names included: transformers loads its
classes lazily. The repository's own modules are imported in each model's process, so what a
model's module does at import time stays in that model's process.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from exportwatch.manifest import ModelSpec

log = logging.getLogger(__name__)

#: Already imported by the fork server, or must never be imported early.
SKIPPED = frozenset({"torch", "exportwatch", "__future__"})


@dataclass(frozen=True)
class ImportStatement:
    module: str  # "transformers"
    names: tuple[str, ...] = ()  # ("LlamaConfig",) for ``from transformers import LlamaConfig``

    def __str__(self) -> str:
        return f"from {self.module} import {', '.join(self.names)}" if self.names else f"import {self.module}"


def import_statements(source: str) -> list[ImportStatement]:
    """Every absolute import in ``source``, function bodies included (factories import lazily)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[ImportStatement] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(ImportStatement(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = tuple(a.name for a in node.names if a.name != "*")
            found.append(ImportStatement(node.module, names))
    return list(dict.fromkeys(found))


def callable_refs(specs: Iterable[ModelSpec]) -> list[str]:
    """The ``module:attr`` / ``file.py:attr`` references the models are built from."""
    refs: list[str] = []
    for spec in specs:
        refs.append(spec.factory)
        for inputs in [spec.inputs, *spec.input_sets.values()]:
            if inputs.callable:
                refs.append(inputs.callable)
    return list(dict.fromkeys(refs))


def _is_library(top: str, repo_root: Path) -> bool:
    """Installed (site-packages, or anywhere outside the repository), and not the stdlib."""
    if top in SKIPPED or top in sys.stdlib_module_names:
        return False
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    for place in places:
        if place in (None, "built-in", "frozen"):
            return False
        path = Path(place).resolve()
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            continue
        if path.is_relative_to(repo_root.resolve()):
            return False
    return bool(places)


def _source_of(ref: str, root: Path) -> tuple[str | None, Path | None]:
    """(dotted module, None) for a library reference, (None, file) for a repository file."""
    module_part = ref.rpartition(":")[0]
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        return None, (path if path.is_absolute() else root / path)
    for base in [root, *map(Path, sys.path)]:
        parts = module_part.split(".")
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return module_part, candidate
    return module_part, None


def plan_preload(
    specs: Iterable[ModelSpec], *, manifest_root: Path, repo_root: Path
) -> list[ImportStatement]:
    """What to import in the fork server for these models (read from source, nothing run)."""
    wanted: list[ImportStatement] = []
    for ref in callable_refs(specs):
        module, path = _source_of(ref, manifest_root)
        if module is not None and _is_library(module.split(".")[0], repo_root):
            wanted.append(ImportStatement(module))  # torchvision.models:resnet18
            continue
        if path is None or not path.is_file():
            continue
        try:
            source = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        wanted.extend(s for s in import_statements(source) if _is_library(s.module.split(".")[0], repo_root))
    return list(dict.fromkeys(wanted))


def run_preload(
    statements: Iterable[ImportStatement], *, before_each: Callable[[ImportStatement], None] | None = None
) -> list[str]:
    """Import each statement; one that fails is left to the model's process (which says why).

    ``before_each`` tells the sweep which import runs, so one that hangs or kills the process
    can be named (and the fork server restarted without preloading).
    """
    done: list[str] = []
    for statement in statements:
        if before_each is not None:
            before_each(statement)
        try:
            module = importlib.import_module(statement.module)
            for name in statement.names:
                try:
                    getattr(module, name)
                except AttributeError:
                    importlib.import_module(f"{statement.module}.{name}")
        except BaseException as exc:
            log.debug("preloading %s failed: %s: %s", statement, type(exc).__name__, exc)
            continue
        done.append(str(statement))
    return done
