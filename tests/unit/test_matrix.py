"""The version matrix: reports of one manifest on several torch versions, side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from exportwatch.render.matrix import (
    MATRIX_MARKER,
    MatrixError,
    render_matrix_json,
    render_matrix_markdown,
    render_matrix_text,
    version_matrix,
)
from exportwatch.report import write_report
from tests.factories import failing, job, ok, report, sub


def _reports():
    return [
        report(ok("cnn"), failing("vit", origin_path="blocks.1"), ok("rnn"), torch="2.14.1+cu128"),
        report(ok("cnn"), ok("vit"), ok("rnn"), torch="2.13.0"),
    ]


def test_matrix__columns_are_sorted_by_version_and_rows_that_vary_are_found():
    matrix = version_matrix(_reports())
    assert matrix.package == "torch"
    assert [c.label for c in matrix.columns] == ["torch 2.13.0", "torch 2.14.1+cu128"]
    assert [r.model for r in matrix.varying] == ["vit"]
    vit = matrix.varying[0]
    assert [c.verdict.value for c in vit.cells if c] == ["ok", "fail"]
    assert vit.cells[1].origins == ("blocks.1",)
    assert matrix.story(vit) == "works on torch 2.13.0; fails on torch 2.14.1+cu128"


def test_matrix__markdown_leads_with_what_breaks_on_which_version():
    text = render_matrix_markdown(version_matrix(_reports()))
    assert text.startswith(MATRIX_MARKER)
    assert "1 export in 1 model works on some versions and not on others" in text.splitlines()[1]
    assert "| vit | export | cpu | ✅ ok | ❌ fail blocks.1 |" in text
    assert "- **vit** · export: works on torch 2.13.0; fails on torch 2.14.1+cu128" in text
    assert "  - torch 2.14.1+cu128: `blocks.1` (data-dependent-control-flow): Could not guard" in text
    # The varying row comes first in the table.
    table = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and "model" not in line and "---" not in line
    ]
    assert table[0].startswith("| vit ")


def test_matrix__hostile_text_stays_text():
    hostile = "<img src=x onerror=alert(1)> @octocat ::set-output name=x::y"
    head = job("evil<script>", "export", sub("", "fail", origin=True, message=hostile, category="unknown"))
    matrix = version_matrix([report(head, torch="2.14.1"), report(ok("evil<script>"), torch="2.13.0")])
    html = MarkdownIt("commonmark", {"html": True}).enable(["table"]).render(render_matrix_markdown(matrix))
    assert "<img" not in html and "<script" not in html
    assert "@octocat" not in html  # the mention is broken
    text = render_matrix_text(matrix)
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())


def test_matrix__refuses_reports_it_cannot_put_side_by_side():
    twice = [
        report(ok("a"), torch="2.13.0"),
        report(ok("a"), torch="2.13.0"),
        report(ok("a"), torch="2.14.1"),
    ]
    with pytest.raises(MatrixError, match=r"more than one report for torch 2\.13\.0"):
        version_matrix(twice)
    # Same torch, another onnx: the columns are the onnx versions.
    assert version_matrix([report(ok("a"), onnx="1.17.0"), report(ok("a"), onnx="1.18.0")]).package == "onnx"
    with pytest.raises(MatrixError, match="at least two different reports, got 1"):
        version_matrix([report(ok("a"))])
    same = report(ok("a"), torch="2.13.0")
    with pytest.raises(MatrixError, match="nothing to put in columns"):
        version_matrix([same, report(ok("a"), torch="2.13.0")])


def test_matrix__json_has_a_verdict_per_column():
    data = json.loads(render_matrix_json(version_matrix(_reports())))
    assert data["columns"] == ["2.13.0", "2.14.1+cu128"]
    vit = next(r for r in data["rows"] if r["model"] == "vit")
    assert vit["verdicts"] == ["ok", "fail"] and vit["varies"] is True


@pytest.mark.slow
def test_matrix__cli_reads_a_directory_of_artifacts_and_gates_with_strict(tmp_path: Path):
    for i, rep in enumerate(_reports()):
        (tmp_path / f"exportwatch-torch-{i}").mkdir()
        write_report(rep, tmp_path / f"exportwatch-torch-{i}" / "exportwatch-report.json")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "exportwatch", "matrix", str(tmp_path), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    done = cli()
    assert done.returncode == 0, done.stderr
    assert "vit · export: works on torch 2.13.0; fails on torch 2.14.1+cu128" in done.stdout
    assert cli("--strict").returncode == 1
    out = tmp_path / "matrix.md"
    assert cli("--format", "markdown", "-o", str(out)).returncode == 0
    assert out.read_text().startswith(MATRIX_MARKER)
    (tmp_path / "bad.json").write_text("[]")
    bad = cli()
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_matrix__hostile_versions_are_inert_in_every_format():
    evil = "2.99 ::error::x\n##[error]y \x1b]0;t\x07 \u202e"
    matrix = version_matrix([report(ok("a"), torch="2.13.0"), report(failing("a"), torch=evil)])
    for text in (render_matrix_text(matrix), render_matrix_markdown(matrix), render_matrix_json(matrix)):
        assert "##[" not in text
        assert not any(line.lstrip().startswith("::") for line in text.splitlines())
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert any(c.startswith("2.99 ::error::x") for c in json.loads(render_matrix_json(matrix))["columns"])
