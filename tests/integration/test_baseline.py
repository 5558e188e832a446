"""The base side of ``compare``, in temporary git repositories with real commits.

The sweeps themselves are faked (a sweeper that records which models it was asked for and
reads a ``BROKEN`` marker from the model's files), so these tests run no export and never
import torch; ``tests/end_to_end/test_cli_compare.py`` runs the real thing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch import __version__
from exportwatch.baseline import compare as baseline
from exportwatch.baseline.compare import CompareRequest, run_compare
from exportwatch.baseline.execute import load_manifest_at
from exportwatch.diff import ChangeKind, diff_reports
from exportwatch.git import GitTree, MergeBaseError, ShallowCheckoutError, find_merge_base
from exportwatch.report import JobResult, Report, SubmoduleResult, Verdict, load_report, write_report
from exportwatch.report.provenance import Fingerprinter, WorkingTree, environment, new_report
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.runner import SweepResult

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)

MANIFEST = """\
version: 1
models:
  - name: alpha
    factory: models.alpha:make
    inputs: {args: [{shape: [2, 4]}]}
  - name: beta
    factory: models/beta.py:make
    inputs: {args: [{shape: [2, 4]}]}
  - name: gamma
    factory: models.gamma:make
    inputs: {args: [{shape: [2, 4]}]}
"""

FILES = {
    "exportwatch.yml": MANIFEST,
    "README.md": "# demo\n",
    "notes/todo.txt": "nothing\n",
    "helpers/__init__.py": "",
    "helpers/shared.py": "def scale():\n    return 2.0\n",
    "models/__init__.py": "",
    "models/alpha.py": "from helpers.shared import scale\n\ndef make():\n    return scale\n",
    "models/beta.py": "from helpers import shared\n\ndef make():\n    return shared\n",
    "models/gamma.py": "def make():\n    return None\n",
}


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        self.write(files or {})
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def worktrees(self) -> list[str]:
        listing = self.git("worktree", "list", "--porcelain").splitlines()
        return [line for line in listing if line.startswith("worktree ")]


def make_repo(root: Path, files: dict[str, str] = FILES) -> Repo:
    root.mkdir(parents=True, exist_ok=True)
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.name", "exportwatch tests")
    repo.git("config", "user.email", "tests@example.com")
    repo.git("config", "commit.gpgsign", "false")
    repo.commit("base", files)
    repo.git("checkout", "-q", "-b", "feature")
    return repo


@pytest.fixture
def repo(tmp_path) -> Repo:
    return make_repo(tmp_path / "repo")


class FakeSweeper:
    """Stands in for ``run_sweep``: a job fails when any file it depends on says ``BROKEN``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.manifest_paths: list[Path] = []
        self.sys_paths: list[list[str]] = []

    def __call__(self, request, progress=None) -> SweepResult:
        manifest = request.manifest
        units = list(request.plan.units)
        side = "base" if "exportwatch-base-" in str(manifest.root) else "head"
        self.calls.append((side, [u.spec.name for u in units]))
        self.manifest_paths.append(manifest.path)
        self.sys_paths.append(list(sys.path))
        printer = Fingerprinter(WorkingTree(manifest.root), manifest_dir="")
        report = new_report(manifest)
        for unit in units:
            files = printer.fingerprint(unit.spec).dependencies
            broken = any("BROKEN" in (manifest.root / f).read_text() for f in files)
            verdict = Verdict.FAIL if broken else Verdict.OK
            for target in unit.targets:
                report.jobs.append(
                    JobResult(
                        model=unit.spec.name,
                        target=target,
                        device="cpu",
                        verdict=verdict,
                        submodules=[
                            SubmoduleResult(
                                path="", module_type="M", verdict=verdict, fingerprint="f" if broken else None
                            )
                        ],
                    )
                )
        return SweepResult(report=report)

    def swept(self, side: str) -> list[str]:
        return sorted(m for s, models in self.calls if s == side for m in models)


def compare(repo: Repo, sweeper=None, **fields) -> baseline.CompareResult:
    out = repo.root.parent / "out"
    request = CompareRequest(
        manifest_path=repo.root / "exportwatch.yml",
        base_ref=fields.pop("base_ref", "main"),
        head_output=out / "head.json",
        base_output=out / "base.json",
        options=SweepOptions(workers=1),
        **fields,
    )
    return run_compare(request, sweeper=sweeper)


def sources(report) -> dict[str, str]:
    return {j.model: str(j.source) for j in report.jobs}


@pytest.mark.slow
def test_compare__resweeps_only_the_changed_model_on_the_base(repo):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 'BROKEN'\n"})
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert sweeper.swept("head") == ["alpha", "beta", "gamma"]
    assert sweeper.swept("base") == ["gamma"]
    assert sources(result.base) == {"alpha": "reused", "beta": "reused", "gamma": "swept"}
    assert result.decision("gamma", "export").reason == "changed: models/gamma.py"
    changes = diff_reports(result.base, result.head)
    assert [c.model for c in changes.top_level(ChangeKind.REGRESSION)] == ["gamma"]


@pytest.mark.slow
def test_compare__resweeps_every_model_that_imports_a_changed_shared_helper(repo):
    repo.commit("edit helper", {"helpers/shared.py": "def scale():\n    return 3.0\n"})
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert sweeper.swept("base") == ["alpha", "beta"]
    assert sources(result.base) == {"alpha": "swept", "beta": "swept", "gamma": "reused"}


@pytest.mark.slow
@pytest.mark.parametrize("changed", ["README.md", "notes/todo.txt"])
def test_compare__resweeps_nothing_when_only_an_unrelated_file_changed(repo, changed):
    repo.commit("docs", {changed: "edited\n"})
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert sweeper.calls == [("head", ["alpha", "beta", "gamma"])]  # no base sweep, no worktree
    assert set(sources(result.base).values()) == {"reused"}
    assert len(repo.worktrees()) == 1


@pytest.mark.slow
def test_compare__resweeps_a_model_whose_manifest_entry_changed(repo):
    repo.commit(
        "bigger input",
        {
            "exportwatch.yml": MANIFEST.replace(
                "factory: models/beta.py:make\n    inputs: {args: [{shape: [2, 4]}]}",
                "factory: models/beta.py:make\n    inputs: {args: [{shape: [8, 4]}]}",
            )
        },
    )
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert sweeper.swept("base") == ["beta"]
    assert result.decision("beta", "export").reason == "its manifest entry changed"
    assert sources(result.base)["alpha"] == "reused"


@pytest.mark.slow
def test_compare__gives_a_new_model_no_base_result_and_the_diff_calls_it_new(repo):
    repo.commit(
        "add delta",
        {
            "models/delta.py": "def make():\n    return 1\n",
            "exportwatch.yml": MANIFEST + "  - name: delta\n    factory: models.delta:make\n"
            "    inputs: {args: [{shape: [1]}]}\n",
        },
    )
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert "delta" not in sources(result.base)
    assert sweeper.swept("base") == []  # the other entries did not change
    assert result.decision("delta", "export").source is None
    changes = diff_reports(result.base, result.head)
    assert [c.model for c in changes.top_level(ChangeKind.NEW)] == ["delta"]


@pytest.mark.slow
def test_compare__sweeps_a_removed_model_on_the_base_so_the_diff_reports_it_removed(repo):
    repo.commit("drop gamma", {"exportwatch.yml": MANIFEST.split("  - name: gamma")[0]})
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert sweeper.swept("base") == ["gamma"]
    assert result.decision("gamma", "export").reason == "removed from the head manifest"
    changes = diff_reports(result.base, result.head)
    assert [c.model for c in changes.top_level(ChangeKind.REMOVED)] == ["gamma"]


@pytest.mark.slow
def test_compare__treats_every_model_as_new_when_the_base_has_no_manifest(tmp_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "x\n"})
    repo.commit("add exportwatch", FILES)
    result = compare(repo, FakeSweeper())
    assert result.base.jobs == []
    assert any("has no exportwatch.yml" in note for note in result.notes)


@pytest.mark.slow
def test_compare__removes_the_worktree_when_the_base_sweep_raises(repo):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 2\n"})
    inner = FakeSweeper()

    def failing(request, progress=None):
        result = inner(request, progress)
        if inner.calls[-1][0] == "base":
            raise RuntimeError("the sweep blew up")
        return result

    with pytest.raises(RuntimeError, match="blew up"):
        compare(repo, failing)
    base_manifest = inner.manifest_paths[-1]
    assert "exportwatch-base-" in str(base_manifest)
    assert not base_manifest.exists()
    assert not base_manifest.parent.parent.exists()  # the temporary directory is gone too
    assert len(repo.worktrees()) == 1


@pytest.mark.slow
def test_compare__points_sys_path_entries_inside_the_checkout_at_the_worktree_for_the_base_sweep(
    repo, monkeypatch
):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 2\n"})
    monkeypatch.syspath_prepend(str(repo.root / "models"))
    sweeper = FakeSweeper()
    compare(repo, sweeper)
    (head_path, base_path) = sweeper.sys_paths
    assert head_path[0] == str(repo.root / "models")
    assert base_path[0] == str(sweeper.manifest_paths[1].parent / "models")
    assert sys.path[0] == str(repo.root / "models")  # restored afterwards


@pytest.mark.slow
def test_compare__refuses_a_stored_baseline_made_with_another_torch_version(repo, tmp_path):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 2\n"})
    first = compare(repo, FakeSweeper())
    stored = first.base
    stored.environment.torch = "1.13.0"
    write_report(stored, tmp_path / "stored.json")
    sweeper = FakeSweeper()
    result = compare(repo, sweeper, baseline=tmp_path / "stored.json")
    assert any("stored baseline" in n and "torch 1.13.0" in n and "not used" in n for n in result.notes)
    assert sweeper.swept("base") == ["gamma"]
    assert sources(result.base)["gamma"] == "swept"


@pytest.mark.slow
def test_compare__uses_a_compatible_stored_baseline_instead_of_sweeping_a_changed_model(repo, tmp_path):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 2\n"})
    write_report(compare(repo, FakeSweeper()).base, tmp_path / "stored.json")
    sweeper = FakeSweeper()
    result = compare(repo, sweeper, baseline=tmp_path / "stored.json")
    assert sweeper.swept("base") == []
    assert sources(result.base) == {"alpha": "reused", "beta": "reused", "gamma": "baseline"}


@pytest.mark.slow
def test_compare__cache_hits_run_no_sweep_at_all(repo, tmp_path):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 'BROKEN'\n"})
    compare(repo, FakeSweeper(), cache_dir=tmp_path / "cache")

    def no_sweep(request, progress=None):
        raise AssertionError("a cached compare must not sweep")

    result = compare(repo, no_sweep, cache_dir=tmp_path / "cache")
    assert set(sources(result.head).values()) == {"cache"}
    assert sources(result.base) == {"alpha": "reused", "beta": "reused", "gamma": "cache"}
    assert result.head.job("gamma", "export", "cpu").verdict is Verdict.FAIL
    assert result.base.job("gamma", "export", "cpu").verdict is Verdict.OK


@pytest.mark.slow
def test_compare__records_dependencies_and_the_content_hash_of_every_job_in_both_reports(repo):
    repo.commit("edit gamma", {"models/gamma.py": "def make():\n    return 2\n"})
    compare(repo, FakeSweeper())
    head = load_report(repo.root.parent / "out" / "head.json")
    base = load_report(repo.root.parent / "out" / "base.json")
    alpha = head.job("alpha", "export", "cpu")
    assert sorted(alpha.dependencies) == [
        "helpers/__init__.py",
        "helpers/shared.py",
        "models/__init__.py",
        "models/alpha.py",
    ]
    assert base.job("alpha", "export", "cpu").content_hash == alpha.content_hash
    assert base.job("gamma", "export", "cpu").content_hash != head.job("gamma", "export", "cpu").content_hash
    assert base.git_sha == repo.git("rev-parse", "main")
    assert json.loads((repo.root.parent / "out" / "base.json").read_text())["jobs"][0]["source"] == "reused"


@pytest.mark.slow
def test_compare__a_depends_on_data_file_change_resweeps_that_model(repo):
    manifest = MANIFEST.replace(
        "factory: models.gamma:make\n", "factory: models.gamma:make\n    depends_on: [data/*.txt]\n"
    )
    repo.git("checkout", "-q", "main")
    repo.commit("declare data", {"exportwatch.yml": manifest, "data/vocab.txt": "a b\n"})
    repo.git("checkout", "-q", "-B", "feature")
    repo.commit("edit vocab", {"data/vocab.txt": "a b c\n"})
    sweeper = FakeSweeper()
    result = compare(repo, sweeper)
    assert sweeper.swept("base") == ["gamma"]
    assert result.decision("gamma", "export").reason == "changed: data/vocab.txt"


# --- the merge-base -------------------------------------------------------------------------------


def shallow_clone(source: Repo, dest: Path, branch: str = "feature") -> Repo:
    url = f"file://{source.root}"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--branch", branch, url, str(dest)],
        check=True,
        capture_output=True,
    )
    return Repo(dest)


@pytest.fixture
def history(repo) -> Repo:
    """main: base, m1, m2; feature (from base): f1, f2."""
    repo.git("checkout", "-q", "main")
    repo.commit("m1", {"notes/m1.txt": "1\n"})
    repo.commit("m2", {"notes/m2.txt": "2\n"})
    repo.git("checkout", "-q", "feature")
    repo.commit("f1", {"notes/f1.txt": "1\n"})
    repo.commit("f2", {"notes/f2.txt": "2\n"})
    return repo


def test_find_merge_base__is_the_fork_point_not_the_tip_of_the_base_branch(history):
    fork = history.git("merge-base", "main", "feature")
    assert find_merge_base(history.root, "main") == fork != history.git("rev-parse", "main")


def test_find_merge_base__fetches_and_deepens_a_shallow_clone_until_it_finds_it(history, tmp_path):
    clone = shallow_clone(history, tmp_path / "clone")
    assert clone.git("rev-parse", "--is-shallow-repository") == "true"
    found = find_merge_base(clone.root, "main", deepen_steps=(1, 2, 50))
    assert found == history.git("merge-base", "main", "feature")


def test_compare__says_the_checkout_is_too_shallow_when_the_history_cannot_be_fetched(
    history, tmp_path, capsys
):
    from exportwatch.cli.main import main

    clone = shallow_clone(history, tmp_path / "clone")
    clone.git("remote", "remove", "origin")  # no network: nothing can be fetched
    code = main(
        [
            "compare",
            str(clone.root / "exportwatch.yml"),
            "--base",
            history.git("rev-parse", "main"),
            "-o",
            str(tmp_path / "head.json"),
            "-q",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "the checkout is too shallow to find the merge-base of" in err
    assert "use `actions/checkout` with `fetch-depth: 0`" in err
    assert not (tmp_path / "head.json").exists()  # it failed before sweeping anything


def test_find_merge_base__with_no_fetch_raises_the_shallow_message_in_a_shallow_clone(history, tmp_path):
    clone = shallow_clone(history, tmp_path / "clone")
    with pytest.raises(ShallowCheckoutError, match="too shallow to find the merge-base of main and HEAD"):
        find_merge_base(clone.root, "main", fetch=False)


def test_find_merge_base__names_a_ref_that_does_not_exist_in_a_full_clone(history):
    with pytest.raises(MergeBaseError, match="'no-such-branch' is not a commit"):
        find_merge_base(history.root, "no-such-branch", fetch=False)


def test_load_manifest_at__reads_the_manifest_of_a_commit_without_checkout(repo):
    repo.commit("drop gamma", {"exportwatch.yml": MANIFEST.split("  - name: gamma")[0]})
    at_main = load_manifest_at(repo.root, repo.git("rev-parse", "main"), "exportwatch.yml")
    assert [m.name for m in at_main.models] == ["alpha", "beta", "gamma"]
    assert load_manifest_at(repo.root, repo.git("rev-parse", "main"), "missing.yml") is None


# --- the base's own environment (the dependency set changed) ------------------------------------


@pytest.fixture
def bump(tmp_path) -> Repo:
    """main pins shapelib 1.0; feature bumps it to 2.0 and touches no model."""
    repo = make_repo(tmp_path / "repo", {**FILES, "requirements.txt": "shapelib==1.0\n"})
    repo.commit("bump shapelib", {"requirements.txt": "shapelib==2.0\n"})
    return repo


def stored_report_of(repo: Repo, commit: str, env) -> Report:
    """A report as a run on ``commit`` in environment ``env`` would have stored it."""
    manifest = load_manifest_at(repo.root, commit, "exportwatch.yml")
    printer = Fingerprinter(GitTree(repo.root, commit), manifest_dir="")
    jobs = []
    for spec in manifest.models:
        fp = printer.fingerprint(spec, device="cpu")
        jobs.append(
            JobResult(
                model=spec.name,
                target="export",
                device="cpu",
                verdict=Verdict.OK,
                dependencies=dict(fp.dependencies),
                content_hash=fp.content_hash("export", env),
            )
        )
    return Report(tool_version=__version__, git_sha=commit, environment=env, jobs=jobs)


@pytest.mark.slow
def test_compare__with_a_changed_dependency_set_gives_head_only_results_not_head_packages_as_base(
    bump, tmp_path
):
    cache = tmp_path / "cache"
    compare(bump, FakeSweeper(), cache_dir=cache, base_env="head")  # fills the cache with HEAD's results
    sweeper = FakeSweeper()
    result = compare(bump, sweeper, cache_dir=cache, base_env="never")
    assert sweeper.swept("base") == []
    assert result.base.jobs == []  # neither reused nor cached: both are results of HEAD's packages
    assert result.dependency_changes == ("requirements.txt",)
    gamma = result.decision("gamma", "export")
    assert gamma.source is None
    assert gamma.reason == (
        "the dependency set changed (requirements.txt); not reproduced in the base's own environment:"
        " --base-env never"
    )
    assert any("differs between the merge-base and HEAD (requirements.txt)" in n for n in result.notes)
    assert any(
        n.startswith(
            "the merge-base could not be reproduced in its own environment (--base-env never):"
            " 3 model(s) have no base result and are compared as new"
        )
        for n in result.notes
    )
    changes = diff_reports(result.base, result.head)
    assert sorted(c.model for c in changes.top_level(ChangeKind.NEW)) == ["alpha", "beta", "gamma"]


@pytest.mark.slow
def test_compare__base_env_head_sweeps_the_base_with_heads_packages_as_before(bump):
    result = compare(bump, FakeSweeper(), base_env="head")
    assert set(sources(result.base).values()) == {"reused"}
    assert result.dependency_changes == ()


@pytest.mark.slow
def test_compare__a_tool_config_edit_in_pyproject_is_not_a_dependency_change(tmp_path):
    pyproject = (
        '[project]\nname = "demo"\ndependencies = ["shapelib==1.0"]\n\n[tool.ruff]\nline-length = 100\n'
    )
    repo = make_repo(tmp_path / "repo", {**FILES, "pyproject.toml": pyproject})
    repo.commit("ruff", {"pyproject.toml": pyproject.replace("100", "88")})
    result = compare(repo, FakeSweeper(), base_env="never")
    assert set(sources(result.base).values()) == {"reused"} and result.notes == []


@pytest.mark.slow
def test_compare__accepts_a_merge_base_baseline_of_another_torch_when_the_dependency_set_changed(
    bump, tmp_path
):
    main = bump.git("rev-parse", "main")
    old = replace(environment(), torch="2.5.0")  # the torch main ran with, before the bump
    write_report(stored_report_of(bump, main, old), tmp_path / "stored.json")
    sweeper = FakeSweeper()
    result = compare(bump, sweeper, baseline=tmp_path / "stored.json", base_env="never")
    assert sweeper.swept("base") == []
    assert sources(result.base) == {"alpha": "baseline", "beta": "baseline", "gamma": "baseline"}
    assert result.base.environment.torch == "2.5.0"  # so the diff says the versions differ
    assert result.decision("alpha", "export").reason == (
        "the dependency set changed (requirements.txt); from the stored baseline, made on the merge-base"
        " in its own environment (torch 2.5.0)"
    )
    assert any(
        f"stored baseline {tmp_path / 'stored.json'}: made on the merge-base in its own environment"
        " (torch 2.5.0;" in n
        for n in result.notes
    )
    assert not any("not used" in n for n in result.notes)


@pytest.mark.slow
def test_compare__refuses_a_stored_baseline_made_on_a_commit_with_another_dependency_set(bump, tmp_path):
    head = bump.git("rev-parse", "HEAD")  # requirements.txt pins 2.0 there, not the merge-base's 1.0
    write_report(stored_report_of(bump, head, environment()), tmp_path / "stored.json")
    result = compare(bump, FakeSweeper(), baseline=tmp_path / "stored.json", base_env="never")
    assert result.base.jobs == []
    assert any(
        f"stored baseline {tmp_path / 'stored.json'} not used: it was made on {head[:12]}" in n
        for n in result.notes
    )
