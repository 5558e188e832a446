"""Sweeps that share one warm fork server (``compare``'s HEAD and base): each run is judged on
its own, and a server that imported a library the next sweep's tree has its own copy of is not
shared."""

from __future__ import annotations

from pathlib import Path

from exportwatch.manifest import load_manifest
from exportwatch.sweep import workers
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.runner import SweepRequest, SweepSession, shadowed_modules
from exportwatch.sweep.settings import SweepSettings

KILLS_ITS_SERVER_ONCE = """\
import os, pathlib, time
import torch


class Net(torch.nn.Module):
    def forward(self, x):
        return x + 1


def make():
    marker = pathlib.Path(__file__).with_suffix(".marker")  # one per tree
    if not marker.exists():
        marker.touch()
        os.kill(os.getppid(), 9)  # the parent is the sweep's fork server
        time.sleep(30)  # the sweep ends this process with the server
    return Net()
"""


def test_session__a_fork_server_death_in_one_sweep_is_not_charged_in_the_next(tmp_path):
    """The model kills the fork server the first time it is built in each tree: each sweep
    retries it in a new server and gets its result. The second sweep must not count the first
    sweep's death as this model's first (a second death while a model runs makes it a crash)."""
    options = SweepOptions(workers=1, targets=["export"])
    verdicts = []
    with SweepSession() as session:
        for side in ("head", "base"):
            tree = tmp_path / side
            tree.mkdir()
            (tree / "net.py").write_text(KILLS_ITS_SERVER_ONCE)
            (tree / "exportwatch.yml").write_text(
                "version: 1\nmodels:\n  - name: net\n    factory: net.py:make\n"
                "    inputs: {args: [{shape: [2, 3]}]}\n"
            )
            manifest = load_manifest(tree / "exportwatch.yml")
            request = SweepRequest.of(manifest, output=tmp_path / f"{side}.json", options=options)
            verdicts.append(session.sweep(request).report.jobs[0].verdict.value)
            assert (tree / "net.marker").exists()
    assert verdicts == ["ok", "ok"]


def _settings(tree: Path, *path: Path, options: SweepOptions | None = None) -> SweepSettings:
    return SweepSettings(
        manifest_root=tree, repo_root=tree, options=options or SweepOptions(), sys_path=tuple(map(str, path))
    )


def test_shadowed_modules__a_tree_with_its_own_copy_of_a_preloaded_library(tmp_path):
    tree, elsewhere = tmp_path / "worktree", tmp_path / "site"
    (tree / "src" / "foo").mkdir(parents=True)
    (tree / "bar.py").write_text("")
    (elsewhere / "baz").mkdir(parents=True)
    settings = _settings(tree, tree / "src", elsewhere)
    assert shadowed_modules({"foo", "bar", "baz", "transformers"}, settings) == ["bar", "foo"]
    assert shadowed_modules({"baz"}, settings) == []  # outside the tree: the same library


def test_session__replaces_a_server_whose_preloads_the_next_tree_shadows(tmp_path, monkeypatch):
    tree = tmp_path / "worktree"
    (tree / "foo").mkdir(parents=True)
    closed = []
    monkeypatch.setattr(workers.WorkerPool, "preloaded_tops", property(lambda self: frozenset({"foo"})))
    monkeypatch.setattr(workers.WorkerPool, "close", lambda self: closed.append(self))
    session = SweepSession()
    options = SweepOptions(workers=1)
    head = session.pool_for(_settings(tmp_path / "head", options=options))
    assert session.pool_for(_settings(tmp_path / "head", options=options)) is head  # nothing shadowed
    base = session.pool_for(_settings(tree, options=options))
    assert base is not head and closed == [head]


def test_session__a_server_that_preloaded_what_the_next_tree_imports_after_a_shim_is_replaced(tmp_path):
    """HEAD's file starts with ``import idna`` (preloaded); the base's runs a guard first, which
    must not find idna imported: the base's models are not forked from HEAD's server."""
    guard = 'import sys\n\nif "idna" in sys.modules:\n    raise RuntimeError("guard must come first")\n'
    sources = {"head": "import idna\nimport torch\n", "base": "import guard\nimport idna\nimport torch\n"}
    build = "\n\ndef make():\n    return torch.nn.Linear(3, 3)\n"
    options = SweepOptions(workers=1, targets=["export"])
    verdicts = []
    with SweepSession() as session:
        for side, source in sources.items():
            tree = tmp_path / side
            tree.mkdir()
            (tree / "guard.py").write_text(guard)
            (tree / "net.py").write_text(source + build)
            (tree / "exportwatch.yml").write_text(
                "version: 1\nmodels:\n  - name: net\n    factory: net.py:make\n"
                "    inputs: {args: [{shape: [2, 3]}]}\n"
            )
            request = SweepRequest.of(
                load_manifest(tree / "exportwatch.yml"), output=tmp_path / f"{side}.json", options=options
            )
            job = session.sweep(request).report.jobs[0]
            verdicts.append((job.verdict.value, job.reason))
    assert verdicts == [("ok", None), ("ok", None)]
