"""Merging shard reports: the merged report equals the unsharded one; every bad set is refused."""

from __future__ import annotations

import argparse
import copy
import io
import json
from pathlib import Path

import pytest

from exportwatch.cli.merge import add_parser, run
from exportwatch.manifest import InputsSpec, ModelSpec
from exportwatch.plan import Unit, estimate_costs, partition
from exportwatch.report import Report, write_report
from exportwatch.report.merge import MergeError, Shard, merge_reports, without_timing
from tests.factories import failing, ok, report

MODELS = {
    "cnn": ["export", "onnx"],
    "encoder": ["export"],
    "router": ["export", "onnx"],
    "numpy": ["export"],
    "custom": ["export", "onnx"],
}


def unsharded() -> Report:
    jobs = []
    for model, targets in MODELS.items():
        for target in targets:
            make = failing if model in ("encoder", "custom") else ok
            jobs.append(make(model, target, duration_s=float(len(model))))
    full = report(*jobs, duration_s=30.0)
    full.plan = [f"{m}/{t}" for m, ts in MODELS.items() for t in ts]
    full.manifest = "exportwatch.yml"
    return full


def split(full: Report, n: int, *, shuffle_jobs: bool = False) -> list[Report]:
    """Shard reports as `sweep --shard I/N` writes them: the full plan, that shard's jobs."""
    units = [
        Unit(spec=ModelSpec(name=m, factory="x:y", inputs=InputsSpec(), targets=ts), targets=ts,
             device=None, order=i)
        for i, (m, ts) in enumerate(MODELS.items())
    ]
    costs = estimate_costs(units, full)
    shards = []
    for index, part in enumerate(partition(units, n, costs), start=1):
        mine = {u.spec.name for u in part}
        shard = copy.deepcopy(full)
        shard.shard = f"{index}/{n}"
        shard.jobs = [j for j in full.jobs if j.model in mine]
        if shuffle_jobs:
            shard.jobs.reverse()
        shard.duration_s = 10.0 + index
        shard.created_at = f"2025-01-01T00:00:0{index}Z"
        for job in shard.jobs:
            job.duration_s += 0.25 * index  # timing differs run to run
            job.peak_rss_mb = 100.0 + index
        shards.append(shard)
    return shards


def refusal(shards: list[Report]) -> str:
    with pytest.raises(MergeError) as caught:
        merge_reports([Shard(name=f"shard-{i + 1}.json", report=s) for i, s in enumerate(shards)])
    return str(caught.value)


# ------------------------------------------------------------------------------ merging


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_merge__equals_the_unsharded_report_apart_from_timing(n):
    full = unsharded()
    merged = merge_reports(split(full, n, shuffle_jobs=True))
    assert without_timing(merged) == without_timing(full)
    assert [f"{j.model}/{j.target}" for j in merged.jobs] == full.plan
    assert merged.shard is None and merged.complete


def test_merge__does_not_depend_on_the_order_the_shards_are_given_in():
    shards = split(unsharded(), 3)
    assert merge_reports(shards).to_dict() == merge_reports(shards[::-1]).to_dict()


def test_merge__takes_the_earliest_start_and_the_slowest_shards_duration():
    merged = merge_reports(split(unsharded(), 3))
    assert merged.created_at == "2025-01-01T00:00:01Z"
    assert merged.duration_s == 13.0


def test_merge__does_not_modify_its_inputs():
    shards = split(unsharded(), 2)
    before = [s.to_dict() for s in shards]
    merge_reports(shards)
    assert [s.to_dict() for s in shards] == before


def test_merge__round_trips_through_json():
    merged = merge_reports(split(unsharded(), 2))
    assert Report.from_dict(json.loads(merged.to_json())).to_dict() == merged.to_dict()


# ------------------------------------------------------------------------------ refusals


def test_merge__refuses_shards_from_different_commits():
    shards = split(unsharded(), 2)
    shards[1].git_sha = "f" * 40
    message = refusal(shards)
    assert "commit (git_sha)" in message and "shard-2.json: 'ffff" in message


def test_merge__refuses_shards_from_different_tool_versions():
    shards = split(unsharded(), 2)
    shards[0].tool_version = "0.2.0"
    assert "exportwatch version (tool_version)" in refusal(shards)


def test_merge__refuses_shards_with_different_torch_versions():
    shards = split(unsharded(), 2)
    shards[1].environment.torch = "2.7.0"
    assert "torch version" in refusal(shards)


def test_merge__refuses_shards_with_different_onnx_versions():
    shards = split(unsharded(), 2)
    shards[1].environment.onnx = "1.18.0"
    assert "onnx version" in refusal(shards)


def test_merge__refuses_shards_with_different_plans():
    shards = split(unsharded(), 2)
    shards[1].plan = [*shards[1].plan, "extra/export"]
    message = refusal(shards)
    assert "different plans" in message and "only shard-2.json plans extra/export" in message


def test_merge__refuses_shards_of_different_splits():
    shards = split(unsharded(), 2)
    other = split(unsharded(), 3)
    message = refusal([shards[0], other[1], other[2]])
    assert "different splits (N = 2, 3)" in message


def test_merge__refuses_a_missing_shard():
    shards = split(unsharded(), 3)
    message = refusal([shards[0], shards[2]])
    assert "missing shard 2/3 (got 2 of 3)" in message


def test_merge__refuses_a_duplicate_shard_index():
    shards = split(unsharded(), 3)
    message = refusal([shards[0], shards[1], copy.deepcopy(shards[1]), shards[2]])
    assert "duplicate shard 2/3: shard-2.json, shard-3.json" in message


def test_merge__refuses_overlapping_jobs():
    shards = split(unsharded(), 2)
    shards[1].jobs.append(copy.deepcopy(shards[0].jobs[0]))
    message = refusal(shards)
    assert f"overlapping job {shards[0].jobs[0].model}/{shards[0].jobs[0].target}/cpu" in message
    assert "in shard-1.json and shard-2.json" in message


def test_merge__refuses_missing_jobs():
    shards = split(unsharded(), 2)
    dropped = shards[0].jobs.pop()
    message = refusal(shards)
    assert f"missing job: {dropped.model}/{dropped.target} (planned, but in no shard's report)" in message


def test_merge__refuses_a_job_outside_the_plan():
    shards = split(unsharded(), 2)
    shards[0].jobs.append(ok("stranger"))
    assert "has job stranger/export/cpu, which is not in the plan" in refusal(shards)


def test_merge__refuses_a_partial_shard():
    shards = split(unsharded(), 2)
    shards[1].complete = False
    assert "shard-2.json is partial (complete: false)" in refusal(shards)


def test_merge__refuses_a_report_that_is_not_a_shard():
    shards = split(unsharded(), 2)
    shards[0].shard = None
    assert "shard-1.json is not a shard report" in refusal(shards)


def test_merge__refuses_nothing_to_merge():
    with pytest.raises(MergeError, match="no shard reports given"):
        merge_reports([])


def test_merge__lists_every_problem_at_once():
    shards = split(unsharded(), 3)
    shards[1].git_sha = "f" * 40
    shards[1].environment.torch = "2.7.0"
    message = refusal([shards[0], shards[1]])
    assert message.count("\n  - ") == 3  # commit, torch, missing shard 3/3


# ------------------------------------------------------------------------------ the command


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_merge_cli__merges_files_and_directories_into_one_report(tmp_path: Path):
    full = unsharded()
    for index, shard in enumerate(split(full, 3), start=1):
        write_report(shard, tmp_path / "shards" / f"exportwatch-shard-{index}" / "exportwatch-report.json")
    out, err = io.StringIO(), io.StringIO()
    output = tmp_path / "merged.json"
    code = run(parse(["merge", str(tmp_path / "shards"), "-o", str(output)]), out=out, err=err)
    assert code == 0, err.getvalue()
    assert "merged 3 shard report(s), 8 job(s)" in out.getvalue()
    from exportwatch.report import load_report

    assert without_timing(load_report(output)) == without_timing(full)


def test_merge_cli__exits_2_with_every_reason_when_refused(tmp_path: Path):
    shards = split(unsharded(), 3)
    for index in (1, 3):
        write_report(shards[index - 1], tmp_path / f"s{index}.json")
    err = io.StringIO()
    code = run(parse(["merge", str(tmp_path / "s1.json"), str(tmp_path / "s3.json"), "-o",
                      str(tmp_path / "m.json")]), out=io.StringIO(), err=err)
    assert code == 2
    assert "cannot merge these shard reports" in err.getvalue() and "missing shard 2/3" in err.getvalue()
    assert not (tmp_path / "m.json").exists()


def test_merge_cli__exits_2_on_an_unreadable_report_or_an_empty_directory(tmp_path: Path):
    (tmp_path / "bad.json").write_text("{not json")
    err = io.StringIO()
    assert run(parse(["merge", str(tmp_path / "bad.json")]), out=io.StringIO(), err=err) == 2
    assert "not valid JSON" in err.getvalue()
    (tmp_path / "empty").mkdir()
    err = io.StringIO()
    assert run(parse(["merge", str(tmp_path / "empty")]), out=io.StringIO(), err=err) == 2
    assert "no shard reports found" in err.getvalue()


def test_merge_cli__refuses_a_partial_jsonl_log(tmp_path: Path):
    from exportwatch.report import JsonlLog

    shards = split(unsharded(), 2)
    write_report(shards[0], tmp_path / "s1.json")
    log = JsonlLog(tmp_path / "s2.jsonl", shards[1])
    log.append(shards[1].jobs[0])
    log.close()
    err = io.StringIO()
    code = run(parse(["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.jsonl")]),
               out=io.StringIO(), err=err)
    assert code == 2 and "is partial (complete: false)" in err.getvalue()
