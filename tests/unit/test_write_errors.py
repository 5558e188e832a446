"""Every write that fails is one WriteError (exit 2) naming the file, and leaves the old file whole.

Faults are injected by replacing ``os.write``; the same faults from the machine (a full tmpfs,
``ulimit -f``, a read-only mount) are in ``tests/integration/test_io_faults.py``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.errors import EXIT_USAGE, WriteError
from exportwatch.github.publish import append_summary, write_outputs
from exportwatch.report import JsonlLog, load_report, write_report
from exportwatch.report.io import report_from_log, write_text_atomically
from tests.factories import job, ok, report, sub


def _disk(monkeypatch: pytest.MonkeyPatch, folder: Path, *, free: int, code: int = errno.ENOSPC) -> None:
    """Files in ``folder`` take ``free`` more bytes, then writes fail with ``code``: a disk that
    fills up (a write that only fits in part writes that part, as the kernel does)."""
    real = os.write
    left = {"bytes": free}

    def write(fd: int, data: bytes | memoryview) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
            return real(fd, data)
        if left["bytes"] <= 0:
            raise OSError(code, os.strerror(code))
        done = real(fd, bytes(data)[: left["bytes"]])
        left["bytes"] -= done
        return done

    monkeypatch.setattr(os, "write", write)


def test_write_error__is_a_usage_error_naming_the_file_and_the_reason():
    error = WriteError(
        Path("out/r.json"), OSError(errno.ENOSPC, "No space left on device"), what="the report"
    )
    assert error.exit_code == EXIT_USAGE
    assert str(error) == "cannot write out/r.json (the report): no space left on device (errno 28)"
    assert not isinstance(error, OSError)  # pipe readers treat OSError as a closed connection


def test_write_text_atomically__a_parent_that_is_a_file_is_one_write_error(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"cannot write .*file/r\.json: not a directory \(errno 20\)"):
        write_text_atomically(tmp_path / "file" / "r.json", "{}")


def test_write_report__a_failed_write_keeps_the_old_report_and_points_at_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "r.json"
    write_report(report(ok("old")), path)
    before = path.read_bytes()

    _disk(monkeypatch, tmp_path, free=0, code=errno.EFBIG)
    with pytest.raises(WriteError) as caught:
        write_report(report(ok("new")), path, log=tmp_path / "r.jsonl")
    monkeypatch.undo()
    message = str(caught.value)
    assert message.startswith(f"cannot write {path} (the report): file too large (errno 27); ")
    assert f"safe in {tmp_path / 'r.jsonl'}: lift the file-size limit (ulimit -f)" in message
    assert f"`exportwatch merge {tmp_path / 'r.jsonl'} -o {path}`" in message
    assert "\n" not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left


def test_jsonl_log__a_line_that_cannot_be_written_is_cut_off_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "r.jsonl"
    log = JsonlLog(path, report())
    first = job("a", "export", sub("", "ok"))
    log.append(first)
    _disk(monkeypatch, tmp_path, free=10)
    with pytest.raises(WriteError) as caught:
        log.append(job("b", "export", sub("", "ok")))
    monkeypatch.undo()
    log.close()
    log.close()  # the runner closes it on every way out
    assert "cannot write" in str(caught.value) and "(the sweep's log)" in str(caught.value)
    assert "its 1 earlier result(s) are safe in it" in str(caught.value)
    assert path.read_text().endswith("}\n")  # no half line for a reader to stumble on
    assert load_report(path).jobs == [first]


def test_jsonl_log__a_full_disk_at_the_header_is_one_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _disk(monkeypatch, tmp_path, free=0)
    with pytest.raises(
        WriteError, match=r"r\.jsonl \(the sweep's log\): no space left on device \(errno 28\)$"
    ):
        JsonlLog(tmp_path / "r.jsonl", report())


def test_report_from_log__is_complete_when_every_planned_job_has_a_result(tmp_path: Path):
    header = replace(report(), plan=["a/export", "b/export"])
    log = JsonlLog(tmp_path / "r.jsonl", header)
    b, a = ok("b"), ok("a")
    log.append(b)
    log.append(a)
    log.close()
    rebuilt = report_from_log(tmp_path / "r.jsonl")
    assert rebuilt.complete is True
    assert [j.model for j in rebuilt.jobs] == ["a", "b"]  # plan order, as the sweep writes it


def test_report_from_log__is_partial_when_a_planned_job_is_missing(tmp_path: Path):
    log = JsonlLog(tmp_path / "r.jsonl", replace(report(), plan=["a/export", "b/export"]))
    log.append(ok("a"))
    log.close()
    assert report_from_log(tmp_path / "r.jsonl").complete is False


def test_append_summary__a_failed_append_leaves_the_summary_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "summary.md"
    append_summary(path, "# earlier step\n")
    _disk(monkeypatch, tmp_path, free=5, code=errno.EFBIG)
    with pytest.raises(WriteError, match=r"\(the job summary, GITHUB_STEP_SUMMARY\)"):
        append_summary(path, "x" * 100)
    monkeypatch.undo()
    assert path.read_text() == "# earlier step\n"


def test_write_outputs__a_full_disk_is_one_write_error_and_no_half_heredoc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "output"
    write_outputs(path, {"verdict": "passed"})
    before = path.read_text()
    _disk(monkeypatch, tmp_path, free=0)
    with pytest.raises(WriteError, match=r"no space left on device \(errno 28\)"):
        write_outputs(path, {"comment-url": "https://example.invalid"})
    monkeypatch.undo()
    assert path.read_text() == before
