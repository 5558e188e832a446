"""Shared fixtures and markers: paths, the test tiers (see tests/README.md), the one sweep of the
example manifest, and skipping of CUDA tests on machines without a GPU."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from exportwatch.report import Report

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = REPO_ROOT / "tests"
FIXTURES = TESTS / "fixtures"
EXAMPLE_MANIFEST = REPO_ROOT / "config" / "example.exportwatch.yml"

#: Tiers whose tests are ``slow`` unless marked ``quick`` (tests/unit is in the quick lane but for
#: the few tests marked ``slow`` themselves: fuzzing, large inputs, linters of whole files).
SLOW_TIERS = ("integration", "end_to_end", "zoo", "browser")

# Fixture model files import as `models.sweep_cases` etc. (strict export wants them in sys.modules).
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))


def pytest_configure(config: pytest.Config) -> None:
    # `slow`, `cuda` and `zoo` are registered in pyproject.toml.
    config.addinivalue_line(
        "markers",
        "quick: a fast test (< 0.5 s) in a slow tier; kept in the quick lane `pytest -m 'not slow'`",
    )


#: Tiers whose every test carries these markers (explicitly, and ``slow`` wins over ``quick``).
#: Under a ``-m`` that no such test can satisfy (the quick lane's ``not slow``) their folder is
#: not even collected: importing it costs seconds (transformers, timm, torchvision, selenium).
ALWAYS_MARKED = {"zoo": frozenset({"slow", "zoo"}), "browser": frozenset({"slow"})}


def can_select(markexpr: str, markers: frozenset[str]) -> bool:
    """Whether ``-m markexpr`` may select a test carrying ``markers`` (and any others): true for
    some value of every other name in the expression; true too when it cannot be read here."""
    try:
        from _pytest.mark.expression import Expression  # pytest's own reading of ``-m``

        expression = Expression.compile(markexpr)
    except Exception:  # another pytest, or an expression pytest itself will refuse
        return True
    others = sorted(set(re.findall(r"[\w.-]+", markexpr)) - {"and", "or", "not", "True", "False"} - markers)
    if len(others) > 8:
        return True
    for values in itertools.product((False, True), repeat=len(others)):
        present = markers | {name for name, value in zip(others, values, strict=True) if value}
        if expression.evaluate(lambda name, /, present=present, **kwargs: name in present):
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    markexpr = config.getoption("markexpr", "")
    if not markexpr or collection_path.parent != TESTS or collection_path.name not in ALWAYS_MARKED:
        return None
    return None if can_select(markexpr, ALWAYS_MARKED[collection_path.name]) else True


def tier_of(item: pytest.Item) -> str | None:
    """``unit``, ``integration``, ``end_to_end`` or ``zoo``: the folder under tests/ (None elsewhere)."""
    try:
        parts = Path(item.path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marker must be there when it looks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = pytest.mark.slow
    for item in items:
        if tier_of(item) in SLOW_TIERS and item.get_closest_marker("quick") is None:
            item.add_marker(slow)
    skip_cuda_without_a_gpu(items)
    # The unit tier first (pure and fast; the example sweep runs meanwhile, see below), then the
    # others in their folders' order. A stable sort: each module's tests stay together, in order.
    items.sort(key=lambda item: tier_of(item) != "unit")


def skip_cuda_without_a_gpu(items: list[pytest.Item]) -> None:
    if not any("cuda" in item.keywords for item in items):
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="CUDA is not available on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@dataclass(frozen=True)
class ExampleSweep:
    """The session's one ``exportwatch sweep config/example.exportwatch.yml --workers 2``."""

    done: subprocess.CompletedProcess[str]  # exit code, stdout (the table), stderr (one line per job)
    path: Path  # the report it wrote (beside it: the .jsonl log)

    @property
    def report(self) -> Report:
        from exportwatch.report import load_report

        return load_report(self.path)


@dataclass(frozen=True)
class StartedSweep:
    """The example sweep, started as collection ends, while the first tests run."""

    process: subprocess.Popen[str]
    path: Path
    stdout: IO[str]
    stderr: IO[str]

    def finish(self, timeout: float) -> ExampleSweep:
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.stop()
        stdout, stderr = (read_from_start(file) for file in (self.stdout, self.stderr))
        done = subprocess.CompletedProcess(self.process.args, self.process.returncode, stdout, stderr)
        return ExampleSweep(done=done, path=self.path)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


STARTED_SWEEP = pytest.StashKey[StartedSweep]()


def read_from_start(file: IO[str]) -> str:
    file.seek(0)
    return file.read()


def start_example_sweep(config: pytest.Config) -> StartedSweep:
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's own, as tmp_path_factory
    folder = factory.mktemp("example") if factory is not None else Path(tempfile.mkdtemp(prefix="example"))
    output = folder / "report.json"
    # Output to files, not pipes: a full pipe would stall the sweep until its fixture reads it.
    stdout, stderr = (open(folder / name, "w+", encoding="utf-8") for name in ("stdout", "stderr"))  # noqa: SIM115
    command = ["sweep", str(EXAMPLE_MANIFEST), "-o", str(output), "--workers", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "exportwatch", *command],
        cwd=REPO_ROOT,
        stdout=stdout,
        stderr=stderr,
        text=True,
    )
    started = StartedSweep(process=process, path=output, stdout=stdout, stderr=stderr)
    config.stash[STARTED_SWEEP] = started
    return started


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the example sweep now when a selected test needs it: the unit tier runs first, on
    the core the sweep leaves."""
    if not session.config.option.collectonly and any(
        "example_sweep" in getattr(item, "fixturenames", ()) for item in session.items
    ):
        start_example_sweep(session.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    started = session.config.stash.get(STARTED_SWEEP, None)
    if started is not None:
        started.stop()
        started.stdout.close()
        started.stderr.close()


@pytest.fixture(scope="session")
def example_sweep(request: pytest.FixtureRequest) -> ExampleSweep:
    """The example manifest swept once per test run, as a user runs it (a subprocess, every model
    × target, 2 workers), started as collection ends. Tests that only read the result share it;
    a test that needs other options (a model, a target, ``--strict``, a shard) runs its own
    sweep. Not checked here: the tests assert the exit code and the output themselves."""
    started = request.config.stash.get(STARTED_SWEEP, None) or start_example_sweep(request.config)
    return started.finish(timeout=600)
