"""`exportwatch diff -o`, `matrix -o` and `compare --rendered` under a file-size limit: exit 2,
one line, the previous file whole (needs the write_text_atomically patches of cli/diff.py,
cli/matrix.py and cli/compare.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exportwatch.report import write_report
from tests.factories import base_report, failing, job, ok, report, sub
from tests.integration.test_io_faults import _error_lines, exportwatch

pytestmark = pytest.mark.quick


def test_cli_diff__a_file_size_limit_at_the_output_is_exit_2_with_one_line_and_the_old_file_stays(
    tmp_path: Path,
):
    write_report(base_report(*(ok(f"m{i}") for i in range(100))), tmp_path / "base.json")
    failing_head = (job(f"m{i}", "export", sub("", "fail", message="x" * 400)) for i in range(100))
    write_report(report(*failing_head), tmp_path / "head.json")
    output = tmp_path / "comment.md"
    output.write_text("previous\n")
    done = exportwatch(
        "diff", str(tmp_path / "base.json"), str(tmp_path / "head.json"), "--format", "markdown",
        "-o", str(output), limit=2048,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "file too large (errno 27)" in " ".join(done.stderr.splitlines())
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert output.read_text() == "previous\n"


def test_cli_matrix__a_file_size_limit_at_the_output_is_exit_2_and_the_old_file_stays(tmp_path: Path):
    for torch in ("2.5.0", "2.6.0"):
        write_report(report(*(failing(f"m{i}") for i in range(60)), torch=torch), tmp_path / f"{torch}.json")
    output = tmp_path / "matrix.md"
    output.write_text("previous\n")
    done = exportwatch(
        "matrix", str(tmp_path / "2.5.0.json"), str(tmp_path / "2.6.0.json"), "--format", "markdown",
        "-o", str(output), limit=2048,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert _error_lines(done) == [f"error: cannot write {output}: file too large (errno 27)"]
    assert output.read_text() == "previous\n"
