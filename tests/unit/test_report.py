"""The report contract: JSON round trip, partial logs, version and size checks."""

from __future__ import annotations

import json

import jsonschema
import pytest

from exportwatch.report import (
    Environment,
    JobResult,
    JsonlLog,
    Mismatch,
    Report,
    ReportError,
    ResultSource,
    SubmoduleResult,
    UserFrame,
    Verdict,
    cap,
    load_report,
    write_report,
)
from tests.conftest import REPO_ROOT


def full_report() -> Report:
    sub = SubmoduleResult(
        path="encoder.5",
        module_type="m.GatedBlock",
        verdict=Verdict.MISMATCH,
        stage="accuracy",
        category="numeric-mismatch",
        fingerprint="abc123",
        message="max abs error 0.6",
        user_frame=UserFrame(path="models/a.py", line=12, function="forward", source="if x > 0:"),
        mismatch=Mismatch(input_set="big", output="[0]", max_abs_error=0.6, max_rel_error=0.1),
        warnings=["w"],
        aliases=["alias"],
        origin=True,
        xfail="known",
    )
    root = SubmoduleResult(path="", module_type="m.Model", verdict=Verdict.FAIL)
    twin = SubmoduleResult(
        path="encoder.6", module_type="m.GatedBlock", verdict=Verdict.SAME_AS, same_as="encoder.5"
    )
    job = JobResult(
        model="m",
        target="onnx",
        device="cpu",
        verdict=Verdict.FAIL,
        source=ResultSource.CACHE,
        dependencies={"models/a.py": "f00"},
        submodules=[root, sub, twin],
    )
    return Report(
        tool_version="0.1.0", git_sha="deadbeef", environment=Environment(torch="2.13.0"), jobs=[job]
    )


def test_report__round_trips_through_json_with_every_nested_type(tmp_path):
    report = full_report()
    path = tmp_path / "r.json"
    write_report(report, path)
    again = load_report(path)
    assert again == report
    assert isinstance(again.jobs[0].submodules[1].user_frame, UserFrame)
    assert again.jobs[0].source is ResultSource.CACHE


def test_report__json_validates_against_the_published_schema():
    schema = json.loads((REPO_ROOT / "config" / "report.schema.json").read_text())
    jsonschema.validate(full_report().to_dict(), schema)


def test_report__refuses_another_schema_version(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 99, "jobs": []}))
    with pytest.raises(ReportError, match="schema_version 99 is not supported"):
        load_report(path)


def test_report__refuses_a_file_over_the_size_cap(tmp_path):
    path = tmp_path / "r.json"
    write_report(full_report(), path)
    with pytest.raises(ReportError, match="over the 100-byte limit"):
        load_report(path, max_bytes=100)


def test_report__unknown_verdict_is_a_report_error(tmp_path):
    data = full_report().to_dict()
    data["jobs"][0]["verdict"] = "exploded"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="unknown verdict 'exploded'"):
        load_report(path)


def test_report__partial_log_survives_a_line_cut_short(tmp_path):
    path = tmp_path / "r.jsonl"
    log = JsonlLog(path, full_report())
    job = full_report().jobs[0]
    log.append(job)
    log.close()
    with path.open("a") as handle:
        handle.write('{"job": {"model": "half')  # the writer was killed mid-line
    partial = load_report(path)
    assert partial.complete is False
    assert partial.jobs == [job]


def test_report__effective_follows_same_as_links():
    job = full_report().jobs[0]
    assert job.effective(job.submodule("encoder.6")).path == "encoder.5"


def test_report__effective_stops_on_a_cycle():
    a = SubmoduleResult(path="a", module_type="x", verdict=Verdict.SAME_AS, same_as="b")
    b = SubmoduleResult(path="b", module_type="x", verdict=Verdict.SAME_AS, same_as="a")
    job = JobResult(model="m", target="t", device="cpu", verdict=Verdict.OK, submodules=[a, b])
    assert job.effective(a).verdict == Verdict.SAME_AS


def test_cap__says_how_much_was_cut():
    assert cap("x" * 10, 4) == "xxxx\n… [6 more characters cut]"
    assert cap("short", 10) == "short"
