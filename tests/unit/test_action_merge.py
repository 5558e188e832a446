"""`mode: merge`: shard reports from a job matrix → one head (and base) report, diff, gate, outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

from exportwatch.action import main as action
from exportwatch.report import Report, load_report, write_report
from tests.factories import failing
from tests.runner_files import parse_outputs
from tests.unit.test_merge import split, unsharded


def shard_folder(tmp_path: Path, *, head: Report, base: Report, n: int = 3) -> Path:
    """What actions/download-artifact leaves: one folder per shard artifact."""
    folder = tmp_path / "exportwatch-shards"
    for index, (h, b) in enumerate(zip(split(head, n), split(base, n), strict=True), start=1):
        write_report(h, folder / f"exportwatch-head-shard-{index}" / "exportwatch-report.json")
        write_report(b, folder / f"exportwatch-base-shard-{index}" / "exportwatch-report.base.json")
    return folder


def run_merge(
    tmp_path: Path, _env: dict[str, str] | None = None, **inputs: str
) -> tuple[int, str, dict[str, str]]:
    outputs = tmp_path / "outputs"
    env = {
        "GITHUB_WORKSPACE": str(tmp_path), "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "INPUT_MODE": "merge",
        "INPUT_COMMENT": "off", "INPUT_GITHUB-TOKEN": "",
    } | {f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()} | (_env or {})  # fmt: skip
    out = io.StringIO()
    code = action.main([], env=env, out=out)
    return code, out.getvalue(), parse_outputs(outputs.read_text()) if outputs.exists() else {}


def test_merge_mode__merges_head_and_base_shards_and_gates_the_regression(tmp_path):
    base = unsharded()
    head = unsharded()
    index = next(i for i, j in enumerate(head.jobs) if j.key == ("cnn", "export", "cpu"))
    head.jobs[index] = failing("cnn", "export", duration_s=3.0)  # exported on base, fails on head
    shard_folder(tmp_path, head=head, base=base)
    code, log, outputs = run_merge(tmp_path)
    assert code == 1, log
    assert outputs["verdict"] == "failed" and outputs["regressions"] == "1"
    merged = load_report(tmp_path / "exportwatch-report.json")
    assert [j.key for j in merged.jobs] == [j.key for j in head.jobs]  # plan order, every job once
    assert merged.job("cnn", "export", "cpu").verdict.value == "fail"
    assert (
        load_report(tmp_path / "exportwatch-report.base.json").job("cnn", "export", "cpu").verdict.value
        == "ok"
    )
    assert "merged 3 head shard(s)" in log
    assert "regression" in (tmp_path / "summary.md").read_text()


def test_merge_mode__refuses_a_missing_shard_with_exit_2(tmp_path):
    folder = shard_folder(tmp_path, head=unsharded(), base=unsharded())
    for path in (folder / "exportwatch-head-shard-2").iterdir():
        path.unlink()
    code, log, _ = run_merge(tmp_path)
    assert code == 2
    assert "2/3" in log


def test_merge_mode__says_where_it_looked_when_there_are_no_shards(tmp_path):
    code, log, _ = run_merge(tmp_path, shards="nowhere")
    assert code == 2 and "no shard reports (*.json) under nowhere" in log


def test_merge_mode__warns_on_a_pull_request_when_no_base_shards_came(tmp_path):
    folder = tmp_path / "exportwatch-shards"
    for index, shard in enumerate(split(unsharded(), 2), start=1):
        write_report(shard, folder / f"head-{index}" / "exportwatch-report.json")
    event = tmp_path / "event.json"
    pull = {"number": 7, "base": {"sha": "b" * 40, "ref": "main"}, "head": {"sha": "h" * 40, "ref": "topic"}}
    event.write_text(json.dumps({"pull_request": pull}))
    code, log, _ = run_merge(
        tmp_path, _env={"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    )
    assert code == 0, log
    assert "::warning::exportwatch: no base shards" in log
