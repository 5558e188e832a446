"""Which repository files define the dependency set, and whether it differs between two trees.

A pull request that bumps torch (or transformers, or any pin) changes what the base *would*
have run with, not its code: sweeping the merge-base with HEAD's installed packages then shows
nothing. This module only answers the questions that decide what to do, purely, over a
:class:`~exportwatch.report.provenance.SourceTree` (the working tree or a commit):

* which files define the dependency set (:func:`dependency_set`): the files the user names,
  else the conventional ones at the repository root (:data:`DEFAULT_FILES`);
* whether it changed (:func:`changed_files`): byte-compared, except ``pyproject.toml``, whose
  dependency tables are parsed with :mod:`tomllib` (a tool-config edit is not a dependency
  change);
* what a base environment must install (:func:`install_plan`): only the files that changed,
  and for ``pyproject.toml`` only the requirement strings that differ.

Must not import torch; runs nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exportwatch.report.provenance import SourceTree


def _toml_parser() -> Any:
    """``tomllib`` (Python 3.11+), else ``tomli`` when installed, else None (then
    ``pyproject.toml`` is compared byte for byte)."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


_toml = _toml_parser()

#: Looked for at the repository root when no dependency file is named.
DEFAULT_FILES = (
    "requirements*.txt",
    "constraints*.txt",
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
)
#: Lock files pip cannot install from: a change in one is seen, but no base environment is built.
LOCK_FILES = frozenset({"uv.lock", "poetry.lock", "Pipfile.lock"})


@dataclass(frozen=True, kw_only=True)
class DependencySet:
    """Dependency files of one tree: repo-relative path → digest of what matters in it."""

    files: Mapping[str, str] = field(default_factory=dict)
    pyproject: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # path -> requirements

    @property
    def digest(self) -> str:
        """One hash of the whole set (the base environment's cache key)."""
        return hashlib.sha256(json.dumps(sorted(self.files.items())).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class InstallPlan:
    """What a base environment installs: ``pip install -r … -c … <requirements>``."""

    requirement_files: tuple[str, ...] = ()
    constraint_files: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()  # pyproject.toml requirement strings that differ
    unsupported: tuple[str, ...] = ()  # changed lock files pip cannot install from

    @property
    def empty(self) -> bool:
        return not (self.requirement_files or self.requirements)

    @property
    def digest(self) -> str:
        payload = [self.requirement_files, self.constraint_files, sorted(self.requirements)]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _name(rel: str) -> str:
    return posixpath.basename(rel)


def dependency_files(tree: SourceTree, named: Iterable[str] = ()) -> list[str]:
    """The named files (repo-relative), else the conventional ones at the root that exist."""
    named = [posixpath.normpath(n) for n in named]
    if named:
        return sorted(dict.fromkeys(named))
    root_files = [f for f in tree.files() if "/" not in f]
    return sorted(f for f in root_files if any(fnmatch.fnmatchcase(f, p) for p in DEFAULT_FILES))


def pyproject_requirements(data: bytes) -> tuple[str, ...] | None:
    """Every requirement string ``pyproject.toml`` declares (``[project]`` dependencies and
    optional dependencies, PEP 735 dependency groups, Poetry's tables), or None when it is not
    valid TOML or no TOML parser is available (then it is compared byte for byte)."""
    if _toml is None:
        return None
    try:
        doc = _toml.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, _toml.TOMLDecodeError):
        return None
    found: list[str] = []
    project = _table(doc.get("project"))
    found += _strings(project.get("dependencies"))
    for _group, reqs in sorted(_table(project.get("optional-dependencies")).items()):
        found += _strings(reqs)
    for reqs in _table(doc.get("dependency-groups")).values():
        found += _strings(reqs)
    poetry = _table(_table(doc.get("tool")).get("poetry"))
    tables = [_table(poetry.get("dependencies"))]
    tables += [_table(_table(g).get("dependencies")) for g in _table(poetry.get("group")).values()]
    for table in tables:
        found += [f"poetry:{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(table.items())]
    return tuple(dict.fromkeys(found))


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v.strip() for v in value if isinstance(v, str)] if isinstance(value, list) else []


def dependency_set(tree: SourceTree, named: Iterable[str] = ()) -> DependencySet:
    """The dependency set of ``tree``. A ``pyproject.toml`` that declares no dependency is not
    part of it; a named file that does not exist is recorded as absent."""
    files: dict[str, str] = {}
    pyproject: dict[str, tuple[str, ...]] = {}
    for rel in dependency_files(tree, named):
        data = tree.read(rel)
        if data is None:
            files[rel] = "absent"
            continue
        if _name(rel) == "pyproject.toml":
            reqs = pyproject_requirements(data)
            if reqs is not None:
                if reqs:
                    pyproject[rel] = reqs
                    files[rel] = hashlib.sha256(json.dumps(sorted(reqs)).encode()).hexdigest()
                continue
        files[rel] = hashlib.sha256(data).hexdigest()
    return DependencySet(files=files, pyproject=pyproject)


def changed_files(head: DependencySet, base: DependencySet) -> tuple[str, ...]:
    """The dependency files whose content differs (added and removed ones included)."""
    paths = set(head.files) | set(base.files)
    return tuple(sorted(p for p in paths if head.files.get(p) != base.files.get(p)))


def install_plan(head: DependencySet, base: DependencySet, *, everything: bool = False) -> InstallPlan:
    """What the base environment installs on top of HEAD's packages: the requirement files that
    changed (the whole base file: pip skips what is already satisfied), every base constraints
    file, and the base's ``pyproject.toml`` requirements that HEAD does not declare verbatim.
    ``everything``: every base file, changed or not."""
    changed = set(changed_files(head, base)) if not everything else set(base.files)
    present = [p for p in sorted(changed) if base.files.get(p) not in (None, "absent")]
    constraints = tuple(p for p in sorted(base.files) if _is_constraints(p) and base.files[p] != "absent")
    req_files = tuple(p for p in present if _name(p) not in LOCK_FILES and _name(p) != "pyproject.toml")
    req_files = tuple(p for p in req_files if p not in constraints)
    requirements: list[str] = []
    for rel in present:
        if rel in base.pyproject:
            head_reqs = set() if everything else set(head.pyproject.get(rel, ()))
            requirements += [
                r for r in base.pyproject[rel] if r not in head_reqs and not r.startswith("poetry:")
            ]
    return InstallPlan(
        requirement_files=req_files,
        constraint_files=constraints,
        requirements=tuple(dict.fromkeys(requirements)),
        unsupported=tuple(p for p in sorted(changed) if _name(p) in LOCK_FILES or _poetry_only(p, base)),
    )


def _is_constraints(rel: str) -> bool:
    return fnmatch.fnmatchcase(_name(rel), "constraints*.txt")


def _poetry_only(rel: str, base: DependencySet) -> bool:
    """A pyproject whose dependencies are Poetry tables: pip cannot install them as written."""
    reqs = base.pyproject.get(rel, ())
    return bool(reqs) and all(r.startswith("poetry:") for r in reqs)


def shown(paths: Iterable[str], limit: int = 3) -> str:
    """``a, b, c and 2 more``."""
    paths = list(paths)
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def package_changes(
    base: Mapping[str, str], head: Mapping[str, str]
) -> dict[str, tuple[str | None, str | None]]:
    """Installed packages whose version differs: name → (base version, head version)."""
    names = set(base) | set(head)
    return {n: (base.get(n), head.get(n)) for n in sorted(names) if base.get(n) != head.get(n)}


__all__ = [
    "DEFAULT_FILES",
    "DependencySet",
    "InstallPlan",
    "changed_files",
    "dependency_files",
    "dependency_set",
    "install_plan",
    "package_changes",
    "pyproject_requirements",
]
