"""The dependency fingerprint of a job: which repository files its model is built from.

A job's ``content_hash`` answers "could this result be different from one computed before?".
It is the sha256 of:

* every repository file the model's factory and input callables import, transitively, each
  with the sha256 of its content (``JobResult.dependencies``);
* every file matched by the entry's ``depends_on:`` globs;
* the manifest entry as written, defaults merged (``ModelSpec.raw``), normalised;
* the target, the requested device, and the versions that decide an export (python
  major.minor, torch; onnx, onnxscript and onnxruntime for the ONNX targets).

The manifest *file* is not a dependency: editing one model's entry must not re-sweep the others.

**Why static analysis, not a ``sys.modules`` diff.** Workers are reused across models (to pay
``import torch`` once), so what a model's import adds to ``sys.modules`` depends on which models
ran before it in that worker: a helper imported by an earlier model is already there. The parent
process, which never imports torch, also could not import user code. So the imports are read
with :mod:`ast` (``import``, ``from … import`` including relative imports and submodules named in
``from pkg import mod``, and ``importlib.import_module("literal")``) and resolved to files *only by
path lookup* on [manifest directory, repository root], the way the worker's ``sys.path`` finds
them. Anything that does not resolve to a file inside the repository (the standard library,
torch, installed packages) is not a dependency.

**What it cannot see** (list those files in ``depends_on:``): imports whose module name is
computed at run time (``importlib.import_module(name)``, ``__import__(f"...")``), data files read
at run time (weights, configs, vocabularies), native extensions, and code outside the
repository (an installed package's new version is not seen, except torch and onnx themselves).

Files are read through a :class:`SourceTree`, so the same code fingerprints the working tree
(:class:`WorkingTree`) and any commit without checking it out (:class:`GitTree`). Torch-free:
the publish half reads it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import platform
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from exportwatch import __version__, git
from exportwatch.manifest import Manifest, ModelSpec
from exportwatch.pysource import parse_python
from exportwatch.report import Environment, JobResult, Report

log = logging.getLogger(__name__)

#: Bumped when what goes into a content hash changes, so old caches stop matching.
FINGERPRINT_VERSION = 1
#: Targets whose result also depends on the ONNX packages' versions.
ONNX_TARGETS = frozenset({"onnx", "onnx-legacy"})


# ---------------------------------------------------------------------------------------------
# Source trees: the working tree, or a commit read through git


class SourceTree(Protocol):
    """Repository files by repo-relative POSIX path."""

    def read(self, rel: str) -> bytes | None:
        """The file's bytes, or None when there is no such file."""

    def is_file(self, rel: str) -> bool: ...

    def is_dir(self, rel: str) -> bool: ...

    def files(self) -> Iterable[str]:
        """Every file (for ``depends_on`` globs)."""


class WorkingTree:
    """The files on disk under ``root`` (what HEAD's sweep imports, uncommitted edits included)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._files: list[str] | None = None

    def _path(self, rel: str) -> Path | None:
        if rel.startswith("../") or rel == ".." or posixpath.isabs(rel):
            return None
        return self.root / rel

    def read(self, rel: str) -> bytes | None:
        path = self._path(rel)
        if path is None or not path.is_file():
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def is_file(self, rel: str) -> bool:
        path = self._path(rel)
        return path is not None and path.is_file()

    def is_dir(self, rel: str) -> bool:
        path = self._path(rel)
        return path is not None and path.is_dir()

    def files(self) -> list[str]:
        if self._files is None:
            self._files = self._list_files()
        return self._files

    def _list_files(self) -> list[str]:
        """Tracked and untracked-but-not-ignored files, as git sees them; a walk outside git."""
        listed = git.working_files(self.root)
        if listed is not None:
            return listed
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            found += [posixpath.normpath(posixpath.join(rel_dir, f)) for f in filenames]
        return sorted(found)


# ---------------------------------------------------------------------------------------------
# Import resolution


def _join(*parts: str) -> str:
    """Join and normalise repo-relative parts; ``""`` is the repository root."""
    joined = posixpath.normpath(posixpath.join(*[p for p in parts if p])) if any(parts) else ""
    return "" if joined == "." else joined


def _inside(rel: str) -> bool:
    return not (rel == ".." or rel.startswith("../") or posixpath.isabs(rel))


class ImportGraph:
    """Resolves module names and ``import`` statements to repository files, statically.

    ``search_roots`` are repo-relative directories tried in order for absolute imports (the
    worker puts the manifest's directory first on ``sys.path``). Results are cached, so one
    graph serves every model of a manifest.
    """

    def __init__(self, tree: SourceTree, search_roots: list[str]) -> None:
        self.tree = tree
        self.search_roots = list(dict.fromkeys(r for r in search_roots if _inside(r)))
        self._module_cache: dict[str, tuple[str, ...]] = {}
        self._import_cache: dict[str, tuple[str, ...]] = {}

    # module names → files ----------------------------------------------------------------

    def module_files(self, name: str) -> tuple[str, ...]:
        """The repository files that ``import name`` executes (package ``__init__``s, then the
        module), or ``()`` when ``name`` is not in the repository."""
        if name not in self._module_cache:
            found: tuple[str, ...] = ()
            for root in self.search_roots:
                files = self._walk(root, name.split("."))
                if files is not None:
                    found = tuple(files)
                    break
            self._module_cache[name] = found
        return self._module_cache[name]

    def _walk(self, base: str, parts: list[str]) -> list[str] | None:
        """Resolve ``parts`` below directory ``base``: a regular package wins over a module file,
        which wins over a namespace directory. None when not found."""
        files: list[str] = []
        here = base
        for i, part in enumerate(parts):
            if not part:
                return None
            last = i == len(parts) - 1
            package = _join(here, part)
            init = _join(package, "__init__.py")
            if self.tree.is_file(init):
                files.append(init)
                here = package
            elif last and self.tree.is_file(_join(here, f"{part}.py")):
                files.append(_join(here, f"{part}.py"))
            elif self.tree.is_dir(package):  # namespace package
                here = package
            else:
                return None
        return files

    def ancestor_inits(self, rel: str, *, below: str) -> list[str]:
        """``__init__.py`` files of the directories between ``below`` and ``rel``'s directory
        (a file imported as ``pkg.sub.mod`` runs ``pkg`` and ``pkg.sub`` first)."""
        directory = posixpath.dirname(rel)
        out: list[str] = []
        while directory and directory != below and _is_below(directory, below):
            init = _join(directory, "__init__.py")
            if init != rel and self.tree.is_file(init):
                out.append(init)
            directory = posixpath.dirname(directory)
        return out[::-1]

    # files → the files they import ---------------------------------------------------------

    def imports_of(self, rel: str) -> tuple[str, ...]:
        """The repository files ``rel`` imports directly (anywhere in the file, lazily or not)."""
        if rel not in self._import_cache:
            self._import_cache[rel] = tuple(dict.fromkeys(self._imports_of(rel)))
        return self._import_cache[rel]

    def _imports_of(self, rel: str) -> list[str]:
        source = self.tree.read(rel)
        if source is None:
            return []
        try:
            module = parse_python(source, filename=rel)
        except (SyntaxError, ValueError) as exc:
            log.debug("%s: cannot parse (%s); its imports are not followed", rel, exc)
            return []
        files: list[str] = []
        for node in ast.walk(module):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    files += self.module_files(alias.name)
            elif isinstance(node, ast.ImportFrom):
                files += self._from_import(rel, node)
            elif isinstance(node, ast.Call):
                name = _literal_import(node)
                if name:
                    files += self.module_files(name)
        return files

    def _from_import(self, rel: str, node: ast.ImportFrom) -> list[str]:
        names = [a.name for a in node.names if a.name != "*"]
        if node.level == 0:
            if not node.module:
                return []
            absolute = list(self.module_files(node.module))
            for name in names:  # `from pkg import mod` imports the submodule pkg.mod
                absolute += self.module_files(f"{node.module}.{name}")
            return absolute
        # Relative: resolved in path space from the importing file's directory.
        package = posixpath.dirname(rel)
        for _ in range(node.level - 1):
            if not package:
                return []  # beyond the repository root
            package = posixpath.dirname(package)
        files: list[str] = []
        init = _join(package, "__init__.py")
        if self.tree.is_file(init) and init != rel:
            files.append(init)
        parts = node.module.split(".") if node.module else []
        if parts:
            found = self._walk(package, parts)
            if found is None:
                return files
            files += found
        for name in names:
            found = self._walk(package, [*parts, name])
            if found:
                files.append(found[-1])
        return files

    def closure(self, start: Iterable[str]) -> list[str]:
        """``start`` plus everything it imports, transitively, in discovery order."""
        seen: dict[str, None] = {}
        stack = list(start)[::-1]
        while stack:
            rel = stack.pop()
            if rel in seen or not self.tree.is_file(rel):
                continue
            seen[rel] = None
            stack += list(self.imports_of(rel))[::-1]
        return list(seen)


def _is_below(directory: str, base: str) -> bool:
    return not base or directory == base or directory.startswith(base + "/")


def _literal_import(node: ast.Call) -> str | None:
    """``importlib.import_module("a.b")`` / ``import_module("a.b")`` / ``__import__("a.b")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
        return first.value
    return None


# ---------------------------------------------------------------------------------------------
# Globs (depends_on)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a repo-relative glob: ``**`` spans directories, ``*``/``?`` do not; a
    pattern naming a directory matches every file below it."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += f"[{body.replace(chr(92), chr(92) * 2)}]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"(?:{out})(?:/.*)?", re.DOTALL)


def match_globs(patterns: Iterable[str], files: Iterable[str], *, manifest_dir: str) -> list[str]:
    """Files matching ``depends_on`` patterns: relative to the manifest's directory, or to the
    repository root when they start with ``/``."""
    regexes = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        joined = _join(pattern.lstrip("/")) if pattern.startswith("/") else _join(manifest_dir, pattern)
        if not _inside(joined):
            log.warning("depends_on pattern %r points outside the repository; ignored", pattern)
            continue
        regexes.append(glob_regex(joined))
    if not regexes:
        return []
    return [f for f in files if any(r.fullmatch(f) for r in regexes)]


# ---------------------------------------------------------------------------------------------
# Fingerprints


def normalise(value: Any) -> Any:
    """JSON-ready, key-sortable form of a manifest entry: dict keys become strings (dynamic
    shape axes are ints), tuples become lists."""
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else f"<{type(k).__name__}>{k}"): normalise(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def entry_text(raw: Mapping[str, Any]) -> str:
    """The manifest entry as canonical JSON: equal text ⇔ equal entry."""
    return json.dumps(normalise(raw), sort_keys=True, default=str, separators=(",", ":"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decisive_versions(environment: Environment, target: str) -> dict[str, str | None]:
    """The versions that can change ``target``'s result."""
    major_minor = ".".join(environment.python.split(".")[:2]) if environment.python else None
    versions: dict[str, str | None] = {"python": major_minor, "torch": environment.torch}
    if target in ONNX_TARGETS:
        versions.update(
            onnx=environment.onnx, onnxscript=environment.onnxscript, onnxruntime=environment.onnxruntime
        )
    for package, version in sorted(environment.packages.items()):  # the models' own libraries
        versions[f"package:{package}"] = version
    return versions


@dataclass(frozen=True, kw_only=True)
class ModelFingerprint:
    """What one model entry's results depend on; one content hash per target."""

    model: str
    device: str  # as requested (``auto`` stays ``auto``: hashing cannot know the machine)
    entry: str  # canonical JSON of the manifest entry
    dependencies: Mapping[str, str] = field(default_factory=dict)  # repo-relative path -> sha256
    unresolved: tuple[str, ...] = ()  # factory / callable refs that name no repository file

    @property
    def cacheable(self) -> bool:
        """A result may be served from elsewhere (cache, stored baseline) only when its inputs
        are fully known: every factory/callable found in the repository, and a fixed device
        (``auto`` resolves differently on another machine)."""
        return not self.unresolved and self.device != "auto"

    def content_hash(self, target: str, environment: Environment) -> str | None:
        """The key results are cached and matched under; None when not :attr:`cacheable`."""
        if not self.cacheable:
            return None
        payload = {
            "fingerprint": FINGERPRINT_VERSION,
            "dependencies": sorted(self.dependencies.items()),
            "entry": self.entry,
            "target": target,
            "device": self.device,
            "versions": decisive_versions(environment, target),
        }
        return sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())

    def changed_files(self, other: ModelFingerprint) -> list[str]:
        """Dependencies added, removed or edited between ``other`` and this fingerprint."""
        paths = set(self.dependencies) | set(other.dependencies)
        return sorted(p for p in paths if self.dependencies.get(p) != other.dependencies.get(p))


def entry_refs(spec: ModelSpec) -> list[str]:
    """The factory and input-callable references of a model entry."""
    refs = [spec.factory]
    if spec.inputs.callable:
        refs.append(spec.inputs.callable)
    refs += [s.callable for s in spec.input_sets.values() if s.callable]
    return refs


def _is_file_ref(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or "\\" in module_part


class Fingerprinter:
    """Fingerprints the models of one manifest against one source tree.

    ``manifest_dir`` is the manifest's directory relative to the tree's root (``""`` when the
    manifest sits at the repository root).
    """

    def __init__(self, tree: SourceTree, *, manifest_dir: str) -> None:
        self.tree = tree
        self.manifest_dir = _join(manifest_dir)
        # Absolute imports resolve from the manifest's folder, the repository root, and the
        # conventional src/ layout (``pip install -e .`` of a package under src/).
        self.graph = ImportGraph(tree, [self.manifest_dir, "", "src"])
        self._hashes: dict[str, str] = {}

    def fingerprint(self, spec: ModelSpec, *, device: str | None = None) -> ModelFingerprint:
        start: list[str] = []
        unresolved: list[str] = []
        for ref in entry_refs(spec):
            files = self.ref_files(ref)
            if not files:
                unresolved.append(ref)
            start += files
        files = self.graph.closure(start)
        if spec.depends_on:
            files += match_globs(spec.depends_on, self.tree.files(), manifest_dir=self.manifest_dir)
        dependencies = {}
        for rel in sorted(set(files)):
            digest = self.file_hash(rel)
            if digest is not None:
                dependencies[rel] = digest
        return ModelFingerprint(
            model=spec.name,
            device=device or spec.device,
            entry=entry_text(spec.raw),
            dependencies=dependencies,
            unresolved=tuple(unresolved),
        )

    def ref_files(self, ref: str) -> list[str]:
        """The files a ``pkg.mod:fn`` / ``path/file.py:fn`` reference runs when imported."""
        module_part = ref.rpartition(":")[0]
        if not module_part:
            return []
        if _is_file_ref(module_part):
            rel = _join(self.manifest_dir, module_part.replace("\\", "/"))
            if not _inside(rel) or not self.tree.is_file(rel):
                return []
            return [*self.graph.ancestor_inits(rel, below=self.manifest_dir), rel]
        return list(self.graph.module_files(module_part))

    def file_hash(self, rel: str) -> str | None:
        if rel not in self._hashes:
            data = self.tree.read(rel)
            if data is None:
                return None
            self._hashes[rel] = sha256(data)
        return self._hashes[rel]


def manifest_dir_in_repo(manifest: Manifest, repo_root: Path) -> str:
    """The manifest's directory relative to the repository root (``""`` at the root)."""
    try:
        rel = Path(manifest.root).resolve().relative_to(Path(repo_root).resolve())
    except ValueError:
        return ""
    return _join(rel.as_posix())


def stamp_report(report: Report, manifest: Manifest, *, device: str | None = None) -> Report:
    """``report`` with ``dependencies`` and ``content_hash`` on every job (computed once per
    model, in the parent). Never fails a sweep: a problem is logged and leaves the hashes unset."""
    try:
        repo_root = git.toplevel(manifest.root) or manifest.root
        fingerprinter = Fingerprinter(
            WorkingTree(repo_root), manifest_dir=manifest_dir_in_repo(manifest, repo_root)
        )
        jobs = stamp_jobs(
            report.jobs, manifest, fingerprinter=fingerprinter, device=device, environment=report.environment
        )
    except Exception as exc:  # the fingerprint is an optimisation; the sweep's results stand
        log.warning("cannot fingerprint the jobs' dependencies (results will not be reused): %s", exc)
        log.debug("fingerprint failure", exc_info=True)
        return report
    return replace(report, jobs=jobs)


def stamp_jobs(
    jobs: Iterable[JobResult],
    manifest: Manifest,
    *,
    fingerprinter: Fingerprinter,
    device: str | None,
    environment: Environment,
) -> list[JobResult]:
    """The jobs with the dependency hashes of their models' code (new objects)."""
    prints: dict[str, ModelFingerprint] = {}
    names = {spec.name: spec for spec in manifest.models}
    stamped: list[JobResult] = []
    for job in jobs:
        spec = names.get(job.model)
        if spec is None:
            stamped.append(job)
            continue
        if job.model not in prints:
            prints[job.model] = fingerprinter.fingerprint(spec, device=device)
        fingerprint = prints[job.model]
        stamped.append(
            replace(
                job,
                dependencies=dict(fingerprint.dependencies),
                content_hash=fingerprint.content_hash(job.target, environment),
            )
        )
    return stamped


__all__ = [
    "FINGERPRINT_VERSION",
    "Fingerprinter",
    "ImportGraph",
    "ModelFingerprint",
    "SourceTree",
    "WorkingTree",
    "entry_text",
    "glob_regex",
    "manifest_dir_in_repo",
    "match_globs",
    "stamp_report",
]


# ---------------------------------------------------------------------------------------------
# The environment and the empty report a sweep starts from


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


#: Distributions the Environment names in fields of their own.
OWN_FIELDS = frozenset({"torch", "onnx", "onnxscript", "onnxruntime"})


def environment(packages: Mapping[str, str] | None = None) -> Environment:
    """Library versions, read from package metadata so the parent need not import torch;
    ``packages``: the versions of the libraries the models' code imports (``preload.model_packages``)."""
    return Environment(
        python=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        torch=package_version("torch"),
        onnx=package_version("onnx"),
        onnxscript=package_version("onnxscript"),
        onnxruntime=package_version("onnxruntime"),
        packages=dict(packages or {}),
    )


def repository_root(manifest: Manifest) -> Path:
    """User frames and dependency paths are relative to the git repository of the manifest."""
    return git.toplevel(manifest.root) or manifest.root


def new_report(manifest: Manifest, packages: Mapping[str, str] | None = None) -> Report:
    """An empty report of a sweep of ``manifest`` in this environment, at the checkout's commit."""
    repo_root = repository_root(manifest)
    try:
        manifest_path = str(manifest.path.resolve().relative_to(repo_root.resolve()))
    except ValueError:
        manifest_path = str(manifest.path)
    return Report(
        tool_version=__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        manifest=manifest_path,
        repository=os.environ.get("GITHUB_REPOSITORY") or None,
        git_sha=git.head_sha(manifest.root),
        environment=environment(packages),
    )
