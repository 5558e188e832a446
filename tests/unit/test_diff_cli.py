"""``exportwatch diff``: formats, output file, gate policies and the documented exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from exportwatch.cli import diff as diff_cli
from exportwatch.report import write_report
from tests.factories import base_report, failing, job, ok, report, sub


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="exportwatch")
    subparsers = parser.add_subparsers(dest="command", required=True)
    diff_cli.add_parser(subparsers)
    args = parser.parse_args(["diff", *argv])
    return args.handler(args)


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "base": tmp_path / "base.json",
        "regressed": tmp_path / "regressed.json",
        "same": tmp_path / "same.json",
    }
    write_report(base_report(ok("cnn"), failing("vit")), paths["base"])
    write_report(report(failing("cnn"), failing("vit")), paths["regressed"])
    write_report(report(ok("cnn"), failing("vit")), paths["same"])
    return paths


def test_diff_cli__exits_0_when_the_gate_passes(reports, capsys):
    assert run(str(reports["base"]), str(reports["same"])) == 0
    assert capsys.readouterr().out.startswith("PASS  No change in export status")


def test_diff_cli__exits_1_when_the_gate_fails(reports, capsys):
    assert run(str(reports["base"]), str(reports["regressed"])) == 1
    assert "1 export regression in 1 model" in capsys.readouterr().out


def test_diff_cli__never_policy_reports_but_passes(reports):
    assert run(str(reports["base"]), str(reports["regressed"]), "--fail-on", "never") == 0


def test_diff_cli__any_failure_policy_fails_on_unchanged_failures(reports):
    assert run(str(reports["base"]), str(reports["same"]), "--fail-on", "any-failure") == 1


def test_diff_cli__takes_one_report_as_a_run_without_base(reports, capsys):
    assert run(str(reports["same"])) == 0
    assert run(str(reports["same"]), "--fail-on", "new-failure") == 1
    assert "No base to compare with" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["markdown", "summary", "text", "json"])
def test_diff_cli__writes_every_format_to_a_file(reports, tmp_path, fmt, capsys):
    out = tmp_path / "out" / f"diff.{fmt}"
    assert run(str(reports["base"]), str(reports["regressed"]), "--format", fmt, "-o", str(out)) == 1
    text = out.read_text(encoding="utf-8")
    assert "regression" in text
    assert capsys.readouterr().out == ""
    if fmt == "json":
        assert json.loads(text)["gate"]["passed"] is False
    if fmt == "markdown":
        assert text.rstrip().endswith("<!-- exportwatch:comment -->")


def test_diff_cli__passes_the_marker_key_and_title_to_the_comment(reports, capsys):
    run(str(reports["base"]), str(reports["regressed"]), "--format", "markdown", "--marker-key", "vision",
        "--title", "vision models")  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("### ❌ vision models: ")
    assert out.rstrip().endswith("<!-- exportwatch:comment:vision -->")


def test_diff_cli__colours_text_only_when_asked(reports, capsys):
    run(str(reports["base"]), str(reports["regressed"]))
    assert "\x1b[" not in capsys.readouterr().out  # captured stdout is not a TTY
    run(str(reports["base"]), str(reports["regressed"]), "--color", "always")
    assert "\x1b[" in capsys.readouterr().out


def test_diff_cli__exits_2_for_a_missing_report(reports, tmp_path, capsys):
    assert run(str(reports["base"]), str(tmp_path / "nope.json")) == 2
    assert "cannot read report" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"schema_version": 999, "jobs": []}',
        '{"schema_version": 1, "jobs": [{"model": "m"}]}',
        '{"schema_version": 1, "jobs": [{"model": "m", "target": "t", "device": "cpu", "verdict": "meh"}]}',
    ],
)
def test_diff_cli__exits_2_for_an_unreadable_report(reports, tmp_path, content, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    assert run(str(reports["base"]), str(bad)) == 2
    assert "exportwatch diff: error:" in capsys.readouterr().err


def test_diff_cli__exits_2_for_three_reports(reports):
    assert run(str(reports["base"]), str(reports["same"]), str(reports["regressed"])) == 2


def test_diff_cli__rejects_an_unknown_policy_as_a_usage_error(reports):
    with pytest.raises(SystemExit) as exc:
        run(str(reports["base"]), str(reports["same"]), "--fail-on", "sometimes")
    assert exc.value.code == 2


def test_diff_cli__exits_3_on_an_internal_error(reports, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(diff_cli, "diff_reports", broken)
    assert run(str(reports["base"]), str(reports["same"])) == 3
    assert "internal error" in capsys.readouterr().err


def test_diff_cli__is_wired_into_the_main_command(reports, capsys):
    from exportwatch.cli.main import main

    assert main(["diff", str(reports["base"]), str(reports["regressed"]), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["counts"]["regression"] == 1


def test_diff_cli__diffs_a_partial_jsonl_log(tmp_path, reports):
    from exportwatch.report import JsonlLog

    log = JsonlLog(tmp_path / "head.jsonl", report())
    log.append(job("cnn", "export", sub("", "ok")))
    log.close()
    assert run(str(reports["base"]), str(tmp_path / "head.jsonl"), "--format", "json") == 0


def test_diff_cli__an_error_on_head_fails_the_gate_and_asks_for_a_bug_report(tmp_path, capsys):
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    write_report(base_report(ok("cnn")), base)
    write_report(
        report(job("cnn", "export", sub("", "error", message="exportwatch internal error: X"))), head
    )
    assert run(str(base), str(head)) == 1
    out = capsys.readouterr().out
    assert "exportwatch could not check 1 export" in out and "report it" in out
    assert run(str(base), str(head), "--allow-errors") == 0
    assert "could not check" in capsys.readouterr().out
    assert run(str(base), str(head), "--format", "markdown") == 1
    assert "Not checked: exportwatch failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "m.yml", "-v"],
        ["-v", "sweep", "m.yml"],
        ["diff", "a.json", "--verbose"],
        ["compare", "m.yml", "--base", "main", "-v"],
    ],
)
def test_cli__verbose_is_accepted_before_and_after_the_command(argv):
    from exportwatch.cli.main import build_parser

    assert build_parser().parse_args(argv).verbose is True


def test_cli__verbose_is_off_by_default():
    from exportwatch.cli.main import build_parser

    assert build_parser().parse_args(["sweep", "m.yml"]).verbose is False
