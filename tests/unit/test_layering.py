"""The layering rules, read from the import table in docs/architecture.md.

Every row of that table marked "never imports torch: yes" is imported in a fresh interpreter in
which ``import torch`` cannot succeed (``sys.modules["torch"] = None``): the import must work, no
``torch`` module may be loaded afterwards, and nothing may even try (a ``try: import torch``
that swallows the error is an import of torch wherever torch is installed). A row names a module
(``exportwatch.diff``) or a package with everything in it (``exportwatch.render.*``). The table
must name every module of the package exactly once, so a new module gets a row.

One rule is read from the source instead: the torch-free parent of the sweep (``sweep.*``)
never imports the worker package, not even lazily inside a function; it starts the worker's
processes by module name. And the packages (``sweep``, ``report``) and top-level modules (``plan``,
``git``) form no cycle: no two of them import each other, directly or through others, lazily or not.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO_ROOT

ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
PACKAGE = REPO_ROOT / "exportwatch"
TORCH_COLUMN = "never imports torch"


@dataclass(frozen=True)
class Row:
    name: str  # as written: `exportwatch.diff` or `exportwatch.render.*`
    never_imports_torch: bool
    line: int

    @property
    def modules(self) -> list[str]:
        """The modules the row stands for, found on disk (``__main__`` modules run, so left out)."""
        if not self.name.endswith(".*"):
            return [self.name]
        package = self.name[:-2]
        if not PACKAGE.parent.joinpath(*package.split("."), "__init__.py").is_file():
            return []
        return [m for m in all_modules() if m == package or m.startswith(package + ".")]


def all_modules() -> list[str]:
    """Every importable module of the package, as a dotted name (``__main__`` modules left out)."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def import_table(text: str) -> list[Row]:
    """The rows of the one markdown table whose header has a "never imports torch" column."""
    lines = text.splitlines()
    header = next(
        (i for i, line in enumerate(lines) if line.startswith("|") and TORCH_COLUMN in line.lower()), None
    )
    assert header is not None, f"{ARCHITECTURE.name}: no table with a {TORCH_COLUMN!r} column"
    columns = [cell.strip().lower() for cell in lines[header].strip().strip("|").split("|")]
    torch_column = next(i for i, cell in enumerate(columns) if TORCH_COLUMN in cell)
    rows = []
    for number, line in enumerate(lines[header + 2 :], start=header + 3):
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`(exportwatch[\w.]*(?:\.\*)?)`", cells[0])
        answer = re.sub(r"[*_`]", "", cells[torch_column]).strip().lower()
        assert len(names) == 1, f"{ARCHITECTURE.name}:{number}: name one module or package.* per row"
        assert answer in ("yes", "no"), f"{ARCHITECTURE.name}:{number}: {TORCH_COLUMN!r} must be yes or no"
        rows.append(Row(name=names[0], never_imports_torch=answer == "yes", line=number))
    return rows


ROWS = import_table(ARCHITECTURE.read_text(encoding="utf-8"))

# Runs first in a fresh interpreter: block torch and record every attempt to import it.
BLOCK_TORCH = textwrap.dedent(
    """
    import builtins, sys

    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    attempts = []
    real_import = builtins.__import__

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name == "torch" or name.startswith("torch.")):
            attempts.append(name)
        return real_import(name, globals, locals, fromlist, level)

    def assert_no_torch(what):
        loaded = [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] == "torch"]
        assert sys.modules["torch"] is None and not loaded, f"{what}: torch was loaded: {loaded}"
        assert not attempts, f"{what}: tried to import {attempts} (and swallowed the ImportError)"

    builtins.__import__ = recording_import
    """
)
IMPORT_EACH = "for module in sys.argv[1:]:\n    __import__(module)\n    assert_no_torch(module)\n"


def without_torch(body: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + body, *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("row", [row for row in ROWS if row.never_imports_torch], ids=lambda row: row.name)
def test_layering__a_module_the_table_says_never_imports_torch_imports_without_it(row: Row) -> None:
    modules = row.modules
    assert modules, f"{ARCHITECTURE.name}:{row.line}: {row.name} is not a module of exportwatch"
    done = without_torch(IMPORT_EACH, *modules)
    assert done.returncode == 0, f"{ARCHITECTURE.name}:{row.line}: {row.name}\n{done.stderr}"


def test_layering__the_table_names_every_module_exactly_once() -> None:
    claimed: dict[str, list[str]] = {}
    for row in ROWS:
        assert row.modules, f"{ARCHITECTURE.name}:{row.line}: {row.name} is not a module of exportwatch"
        for module in row.modules:
            claimed.setdefault(module, []).append(row.name)
    unknown = sorted(set(claimed) - set(all_modules()))
    missing = sorted(set(all_modules()) - set(claimed))
    twice = {module: names for module, names in claimed.items() if len(names) > 1}
    assert not unknown, f"rows for modules that do not exist: {unknown}"
    assert not missing, f"modules without a row in {ARCHITECTURE.name}'s import table: {missing}"
    assert not twice, f"modules claimed by more than one row: {twice}"


def test_layering__loading_a_manifest_needs_no_torch() -> None:
    """Not only the import: the publish half reads manifests (xfail entries) on a torch-free runner."""
    body = (
        "from exportwatch.manifest import load_manifest\n"
        "manifest = load_manifest(sys.argv[1])\n"
        "assert manifest.models\n"
        "assert_no_torch('load_manifest')\n"
    )
    done = without_torch(body, str(FIXTURES / "manifests" / "full.yml"))
    assert done.returncode == 0, done.stderr


def imported_names(source: str, *, module: str, is_package: bool = False) -> set[str]:
    """Every module an import statement anywhere in ``source`` names (in functions too), with
    ``from package import name`` counted as ``package.name`` and relative imports resolved."""
    names: set[str] = set()
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here[: len(here) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _source_of(module: str) -> Path:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def worker_imports(module: str) -> list[str]:
    source = _source_of(module)
    found = imported_names(
        source.read_text(encoding="utf-8"), module=module, is_package=source.name == "__init__.py"
    )
    return sorted(n for n in found if n == "exportwatch.worker" or n.startswith("exportwatch.worker."))


def test_layering__the_sweep_parent_never_imports_the_worker_package_not_even_lazily() -> None:
    parent = [m for m in all_modules() if m == "exportwatch.sweep" or m.startswith("exportwatch.sweep.")]
    assert "exportwatch.sweep.workers" in parent
    offenders = {module: worker_imports(module) for module in parent if worker_imports(module)}
    assert not offenders, f"the sweep's parent imports the worker package: {offenders}"


@pytest.mark.parametrize(
    "statement",
    [
        "import exportwatch.worker.forkserver",
        "from exportwatch.worker import forkserver",
        "from exportwatch import worker",
        "from ..worker.model_process import run_model_process",
    ],
)
def test_layering__a_lazy_import_of_the_worker_inside_a_function_is_found(statement: str) -> None:
    source = f"def start():\n    {statement}\n"
    found = imported_names(source, module="exportwatch.sweep.workers")
    assert any(n == "exportwatch.worker" or n.startswith("exportwatch.worker.") for n in found), found


def _unit_of(name: str) -> str | None:
    """The package (``sweep``, ``report``) or top-level module (``plan``, ``git``) a module
    belongs to; None for the root package itself and for what is not exportwatch's."""
    parts = name.split(".")
    if parts[0] != "exportwatch" or len(parts) < 2 or parts[1] == "__version__":
        return None
    candidate = PACKAGE / parts[1]
    if candidate.is_dir() or candidate.with_suffix(".py").is_file():
        return parts[1]
    return None


def package_graph() -> dict[str, dict[str, set[str]]]:
    """unit → the units it imports (anywhere in its source, lazily too) → the modules that do."""
    graph: dict[str, dict[str, set[str]]] = {}
    for module in all_modules():
        unit = _unit_of(module)
        if unit is None:
            continue
        source = _source_of(module)
        names = imported_names(
            source.read_text(encoding="utf-8"), module=module, is_package=source.name == "__init__.py"
        )
        for name in names:
            other = _unit_of(name)
            if other is not None and other != unit:
                graph.setdefault(unit, {}).setdefault(other, set()).add(module)
    return graph


def cycles_of(graph: dict[str, dict[str, set[str]]]) -> list[tuple[str, str]]:
    """Each edge ``a → b`` of the graph from which ``a`` can be reached again."""

    def reaches(start: str, goal: str) -> bool:
        seen, stack = {start}, [start]
        while stack:
            here = stack.pop()
            if here == goal:
                return True
            for nxt in graph.get(here, {}):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    return sorted((a, b) for a, targets in graph.items() for b in targets if reaches(b, a))


def test_layering__no_two_packages_import_each_other_not_even_lazily() -> None:
    graph = package_graph()
    assert "worker" in graph and "sweep" in graph["worker"]  # the graph is really read
    found = {f"{a} → {b}": sorted(graph[a][b]) for a, b in cycles_of(graph)}
    assert not found, f"packages import each other (a cycle): {found}"


def test_layering__a_cycle_between_two_packages_is_found() -> None:
    graph = {"plan": {"report": {"exportwatch.plan"}}, "report": {"plan": {"exportwatch.report.merge"}}}
    assert cycles_of(graph) == [("plan", "report"), ("report", "plan")]
