"""Sharded sweeps of the example manifest, merged, equal the unsharded sweep (timing aside).

With ``exportwatch sweep --shard I/N`` available, the shard reports come from real shard sweeps;
on a build whose CLI has no ``--shard`` yet, they are made by splitting the unsharded report's
jobs with the same partition the CLI uses (so the merge is still tested on real results).
"""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.manifest import load_manifest
from exportwatch.plan import estimate_costs, plan_units, select_shard
from exportwatch.report import Report, load_report, write_report
from exportwatch.report.merge import MergeError, Shard, merge_reports, without_timing
from tests.conftest import REPO_ROOT

MANIFEST = REPO_ROOT / "config" / "example.exportwatch.yml"
SHARDS = 3
SWEEP = [
    sys.executable,
    "-m",
    "exportwatch",
    "sweep",
    str(MANIFEST),
    "--target",
    "export",
    "--workers",
    "1",
    "-q",
]

pytestmark = pytest.mark.slow


@functools.cache
def cli_help(*command: str) -> str:
    """The command's --help text; empty when the CLI does not have the command."""
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", *command, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout if done.returncode == 0 else ""


def sweeps(*runs: tuple[Path, tuple[str, ...]]) -> list[Report]:
    """The sweeps, each writing its output with its extra options, one after another. Not side by
    side: under CPU contention a draft_export's report sometimes lacks where an unbacked symbol was
    made (``blockers.found[].created``), and the merged shards then differ from the unsharded sweep
    in that field (seen with these four sweeps at once beside two busy loops)."""
    reports = []
    for output, extra in runs:
        done = subprocess.run([*SWEEP, "-o", str(output), *extra], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        reports.append(load_report(output))
    return reports


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Report, list[Path]]:
    """The unsharded sweep and the shard reports (real ``--shard`` sweeps where the CLI has them)."""
    unsharded_path = tmp_path_factory.mktemp("unsharded") / "report.json"
    folder = tmp_path_factory.mktemp("shards")
    paths = [folder / f"shard-{i}" / "exportwatch-report.json" for i in range(1, SHARDS + 1)]
    if "--shard" not in cli_help("sweep"):
        (unsharded,) = sweeps((unsharded_path, ()))
        for path, report in zip(paths, split_like_the_cli(unsharded, SHARDS), strict=True):
            write_report(report, path)
        return unsharded, paths
    unsharded, *shards = sweeps(
        (unsharded_path, ()), *((path, ("--shard", f"{i}/{SHARDS}")) for i, path in enumerate(paths, 1))
    )
    for index, report in enumerate(shards, start=1):
        assert report.shard == f"{index}/{SHARDS}"
        assert report.plan == unsharded.plan  # every shard carries the whole plan
    return unsharded, paths


@pytest.fixture(scope="module")
def unsharded(swept) -> Report:
    return swept[0]


def split_like_the_cli(full: Report, n: int) -> list[Report]:
    """What `sweep --shard i/n` writes, made from the unsharded report's real job results."""
    manifest = load_manifest(MANIFEST)
    units = plan_units(manifest, models=None, targets=["export"], device=None)
    costs = estimate_costs(units, None)
    shards = []
    for index in range(1, n + 1):
        mine = {u.spec.name for u in select_shard(units, (index, n), costs)}
        shard = copy.deepcopy(full)
        shard.shard = f"{index}/{n}"
        shard.jobs = [j for j in full.jobs if j.model in mine]
        shards.append(shard)
    return shards


@pytest.fixture(scope="module")
def shard_reports(swept) -> list[Path]:
    return swept[1]


def merge_files(paths: list[Path], output: Path) -> subprocess.CompletedProcess[str] | int:
    """`exportwatch merge` when the CLI has it, else the merge command's handler in-process."""
    if cli_help("merge"):
        return subprocess.run(
            [sys.executable, "-m", "exportwatch", "merge", *map(str, paths), "-o", str(output)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    import argparse

    from exportwatch.cli.merge import run

    return run(argparse.Namespace(reports=paths, output=output, quiet=True))


def returncode(done: subprocess.CompletedProcess[str] | int) -> int:
    return done if isinstance(done, int) else done.returncode


def test_shard_merge__every_job_is_in_exactly_one_shard(shard_reports, unsharded):
    keys = [f"{j.model}/{j.target}" for p in shard_reports for j in load_report(p).jobs]
    assert sorted(keys) == sorted(unsharded.plan)


def test_shard_merge__merged_shards_equal_the_unsharded_sweep(shard_reports, unsharded, tmp_path):
    output = tmp_path / "merged.json"
    done = merge_files(shard_reports, output)
    assert returncode(done) == 0, getattr(done, "stderr", "")
    merged = load_report(output)
    assert merged.shard is None and merged.complete
    assert [f"{j.model}/{j.target}" for j in merged.jobs] == unsharded.plan
    # Merging keeps every shard's job exactly as that shard swept it...
    swept = {(j.model, j.target, j.device): j for p in shard_reports for j in load_report(p).jobs}
    merged_jobs = without_timing(merged)["jobs"]
    from_shards = [without_timing(replace(merged, jobs=[swept[j.key]]))["jobs"][0] for j in merged.jobs]
    assert merged_jobs == from_shards
    # ...and equals the unsharded sweep, but for one detail two sweeps of the same code do not
    # always agree on: where draft_export says an unbacked symbol was made (``created``) was seen
    # missing from one sweep's blocker, under CPU load and once on a quiet machine (an open problem).
    assert without_created(without_timing(merged)) == without_created(without_timing(unsharded))


def without_created(data: dict) -> dict:
    """A report's dict with every blocker's ``created`` removed (see the test above)."""
    for job in data["jobs"]:
        for sub in job["submodules"]:
            for blocker in (sub.get("blockers") or {}).get("found", []):
                blocker.pop("created", None)
    return data


def test_shard_merge__refuses_when_a_shard_is_missing(shard_reports, tmp_path):
    done = merge_files(shard_reports[:-1], tmp_path / "merged.json")
    assert returncode(done) == 2
    if not isinstance(done, int):
        assert f"missing shard {SHARDS}/{SHARDS}" in done.stderr
    assert not (tmp_path / "merged.json").exists()


def test_shard_merge__refuses_shards_from_another_commit(shard_reports):
    reports = [load_report(p) for p in shard_reports]
    reports[0].git_sha = "0" * 40
    with pytest.raises(MergeError, match="commit"):
        merge_reports([Shard(name=str(p), report=r) for p, r in zip(shard_reports, reports, strict=True)])


def test_shard_merge__sweep_refuses_a_bad_shard_value_with_exit_2():
    if "--shard" not in cli_help("sweep"):
        pytest.skip("this build's `exportwatch sweep` has no --shard option yet")
    done = subprocess.run(
        [*SWEEP, "-o", "unused.json", "--shard", "4/3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "between 1 and 3" in done.stderr
