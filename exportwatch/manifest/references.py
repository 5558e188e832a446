"""The code a manifest names, checked before torch starts, without running it (``ast``)."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exportwatch.manifest.specs import ConfigError, Location, Manifest, ModelSpec, did_you_mean
from exportwatch.pysource import parse_python

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
                    parsed = _Parsed(parse_python(path.read_bytes(), filename=str(path)))
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
