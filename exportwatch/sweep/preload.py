"""Which libraries the fork server imports once, so each model's process need not.

Importing transformers and one of its model classes costs about three seconds; paid once per
model process, it would dwarf the export. So the fork server reads (never runs) the module each
factory lives in, and imports the *installed libraries* that module imports before it runs any
code of its own (``import torch`` / ``from transformers import LlamaConfig`` at the top, names
included: transformers loads its classes lazily). The repository's own modules are imported in
each model's process, so what a model's module does at import time stays in that process.

Preloading must never change what the user's code sees. A module that runs something first (a
shim such as ``import guard``, ``os.environ[...] = ...`` or a ``torch._dynamo.config`` setting
before ``import transformers``) gets nothing preloaded after that point: in plain Python that
code runs before the library is imported, and it still does. One fork server serves every model,
so it preloads only the *common prefix* of the models' leading library imports: whichever model
the fork serves, the libraries in ``sys.modules`` when its first line of its own runs are those
plain Python would have there (a transitive import, such as transformers importing torchvision,
included). What the fork server imports for itself is loaded before any model's code, and a
guard can see it: torch, the exporters (onnx, onnxscript, onnxruntime) and what they import
(numpy, sympy, networkx, ml_dtypes, protobuf, tqdm, filelock, packaging, typing_extensions),
PyYAML and exportwatch; never a library chosen from the user's files. The torchvision repair
(``compat.repair_torchvision_when_imported``) waits for torchvision's own import.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from exportwatch.manifest import Manifest, ModelSpec
from exportwatch.pysource import parse_python
from exportwatch.report.provenance import OWN_FIELDS, package_version, repository_root

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
        tree = parse_python(source)
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
    """Every installed library the models' code imports, function bodies included (read from
    source, nothing run): what the report names versions of. The fork server imports only the
    part :func:`safe_preload` allows."""
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


#: How :func:`leading_imports` sees a top-level module: an installed library (may be preloaded),
#: one the fork server has loaded already or that runs no code of the user's (the standard
#: library, torch, exportwatch: passed over), or anything else (the user's code: the end).
LIBRARY, LOADED, USERS = "library", "loaded", "user's"


def leading_imports(source: str | bytes, *, kind_of: Callable[[str], str]) -> list[ImportStatement]:
    """The library imports ``source`` runs before any code of its own, in order.

    Only a docstring (or another bare constant), ``from __future__`` and imports may come before
    them; the first statement that is anything else (an assignment, a call, an ``if``, a
    ``try``, a function) or an import of the user's own code (``import guard``, a relative
    import) ends the list: what follows it may depend on what it did. Raises ``SyntaxError``.
    """
    return _leading(source, kind_of=kind_of)[0]


def _leading(source: str | bytes, *, kind_of: Callable[[str], str]) -> tuple[list[ImportStatement], bool]:
    """:func:`leading_imports`, and whether they are all the module runs (nothing of its own ended them)."""
    found: list[ImportStatement] = []
    for node in parse_python(source).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring: evaluating a constant runs nothing
        if isinstance(node, ast.Import):
            for alias in node.names:  # ``import numpy, guard``: numpy is imported first
                kind = kind_of(alias.name.split(".")[0])
                if kind == USERS:
                    return found, False
                if kind == LIBRARY:
                    found.append(ImportStatement(alias.name))
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            kind = kind_of(node.module.split(".")[0])
            if kind == USERS:
                return found, False
            star = any(a.name == "*" for a in node.names)
            if kind == LIBRARY:
                found.append(ImportStatement(node.module, () if star else tuple(a.name for a in node.names)))
            if star:  # it may import the submodules its ``__all__`` names: the module itself, then stop
                return found, False
            continue
        return found, False
    return found, True


def common_prefix(sequences: Sequence[Sequence[ImportStatement]]) -> list[ImportStatement]:
    """The imports every sequence starts with, in their order: what may run before any of them.

    Where the sequences import one module with different names, the names they share are kept
    and the prefix ends there (the other names come before the next import in plain Python).
    """
    if not sequences:
        return []
    first, *rest = sequences
    prefix: list[ImportStatement] = []
    for i, statement in enumerate(first):
        others = [s[i] for s in rest if i < len(s)]
        if len(others) < len(rest) or any(o.module != statement.module for o in others):
            break
        names = tuple(n for n in statement.names if all(n in o.names for o in others))
        prefix.append(ImportStatement(statement.module, names))
        if any(s.names != names for s in [statement, *others]):
            break
    return prefix


def _kind(top: str, *, manifest_root: Path, repo_root: Path) -> str:
    if top in SKIPPED:
        return LOADED
    if (manifest_root / top).is_dir() or (manifest_root / f"{top}.py").is_file():
        return USERS  # the model's process puts the manifest's folder first on its path
    if top in sys.stdlib_module_names:
        return LOADED
    return LIBRARY if _is_library(top, repo_root) else USERS


def factory_leading_imports(
    factory: str, *, manifest_root: Path, repo_root: Path
) -> list[ImportStatement] | None:
    """What a model's process imports before the model's own code first runs: the leading
    library imports of its factory's module (``factory`` is ``module:attr`` or ``file.py:attr``;
    that module is imported first, its input callables' modules after it ran). None where the
    module cannot be found or parsed: it runs no code then."""
    module, path = _source_of(factory, manifest_root)
    if module is not None and _is_library(module.split(".")[0], repo_root):
        return [ImportStatement(module)]  # torchvision.models:resnet18
    if path is None:  # found by a finder of its own (an editable install): its code is unread
        return [] if module is not None and _findable(module.split(".")[0]) else None
    found: list[ImportStatement] = []
    try:
        for file in [*_parent_packages(path, module=module, root=manifest_root), path]:
            leading, complete = _leading(
                file.read_bytes(),
                kind_of=lambda top: _kind(top, manifest_root=manifest_root, repo_root=repo_root),
            )
            found.extend(leading)
            if not complete and file != path:
                break
    except (OSError, SyntaxError, ValueError):
        return None
    return list(dict.fromkeys(found))


def _findable(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None  # a top-level name: finders only, nothing runs
    except (ImportError, ValueError):
        return False


def _parent_packages(path: Path, *, module: str | None, root: Path) -> list[Path]:
    """The ``__init__.py`` files that importing the module at ``path`` runs before it (``import
    pkg.net`` runs pkg/__init__.py first), outermost first. A file reference is imported by its
    dotted name under ``root`` where it has one, else alone."""
    if module is not None:
        levels = module.count(".")
    else:
        try:
            levels = len(path.resolve().relative_to(root.resolve()).parts) - 1
        except ValueError:
            levels = 0
        levels -= path.name == "__init__.py"
    inits: list[Path] = []
    folder = path.resolve().parent.parent if path.name == "__init__.py" else path.resolve().parent
    for _ in range(max(levels, 0)):
        if not (folder / "__init__.py").is_file():
            break  # a namespace package runs nothing; neither does what is above it
        inits.append(folder / "__init__.py")
        folder = folder.parent
    return inits[::-1]


def safe_preload(
    specs: Iterable[ModelSpec], *, manifest_root: Path, repo_root: Path
) -> list[ImportStatement]:
    """What the fork server may import for these models: their factories' common leading library
    imports, so no model's code runs in a state plain Python would not give it."""
    modules = dict.fromkeys(spec.factory.rpartition(":")[0] + ":" for spec in specs)  # each read once
    leading = [
        found
        for module in modules
        if (found := factory_leading_imports(module, manifest_root=manifest_root, repo_root=repo_root))
        is not None
    ]
    return common_prefix(leading)


def preload_fits(
    preloaded: Sequence[ImportStatement], specs: Iterable[ModelSpec], *, manifest_root: Path, repo_root: Path
) -> bool:
    """Whether a fork server that preloaded ``preloaded`` may serve these models too."""
    if not preloaded:
        return True
    planned = safe_preload(specs, manifest_root=manifest_root, repo_root=repo_root)
    return common_prefix([list(preloaded), planned]) == list(preloaded)


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


def model_packages(manifest: Manifest) -> dict[str, str]:
    """``{"transformers": "5.24.0", ...}``: the installed distributions whose modules the
    factories' source imports (read as the fork server's preload reads it; nothing is run).
    Never fails a sweep: an unreadable source just names fewer packages."""
    try:
        statements = plan_preload(
            manifest.models, manifest_root=manifest.root, repo_root=repository_root(manifest)
        )
        tops = sorted({s.module.split(".")[0] for s in statements})
        owners = metadata.packages_distributions() if tops else {}
    except Exception:  # the versions are a courtesy to the diff; the sweep stands without them
        log.debug("cannot list the models' packages", exc_info=True)
        return {}
    found: dict[str, str] = {}
    for top in tops:
        for dist in owners.get(top, []):
            name = dist.lower().replace("_", "-")
            version = package_version(dist)
            if name not in OWN_FIELDS and version:
                found[name] = version
    return dict(sorted(found.items()))
