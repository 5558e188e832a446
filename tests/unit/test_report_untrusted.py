"""Untrusted reports (a pull request's run, a downloaded baseline, a shard): one loader, one cap,
the schema checked, and a hostile file refused in bounded memory."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from exportwatch.report import MAX_REPORT_BYTES, Report, ReportError, load_report


def test_load_report__untrusted_refuses_a_file_over_the_cap_before_reading_it(tmp_path):
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)  # sparse: nothing to read, only its size
    with pytest.raises(ReportError, match=r"over the \d+-byte limit"):
        load_report(path, untrusted=True)


def test_load_report__untrusted_checks_the_schema_and_names_the_place(tmp_path):
    data = Report().to_dict()
    data["jobs"] = [{"model": "m", "target": "export", "device": "cpu", "verdict": 7, "submodules": []}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"does not match the report schema at jobs/0/verdict"):
        load_report(path, untrusted=True)


def test_load_report__a_huge_wrong_typed_list_is_refused_in_bounded_memory(tmp_path):
    """All schema errors were once collected before sorting: 3 million of them took 4 GB."""
    data = Report().to_dict()
    data["plan"] = [0] * 300_000  # every item the wrong type
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    tracemalloc.start()
    try:
        with pytest.raises(ReportError, match="does not match the report schema at plan/"):
            load_report(path, untrusted=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_write_report__gives_the_mode_a_plain_open_would(tmp_path):
    """The Docker action writes as root; later steps read as the runner user (0644, not 0600)."""
    import os

    from exportwatch.baseline.cache import ResultCache
    from exportwatch.report import write_report
    from tests.factories import job, sub

    old = os.umask(0o022)
    try:
        write_report(Report(), tmp_path / "r.json")
        cache = ResultCache(tmp_path / "cache")
        stamped = job("cnn", "export", sub("", "ok"))
        stamped.content_hash = "a" * 64
        assert cache.put(stamped)
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    (entry,) = (tmp_path / "cache").iterdir()
    assert entry.stat().st_mode & 0o777 == 0o644
