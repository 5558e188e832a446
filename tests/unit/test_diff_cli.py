"""``exportwatch diff``: formats, output file, gate policies and the documented exit codes."""

from __future__ import annotations

import argparse
import json
import sys
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


# ------------------------------------------------------------------ hostile and malformed reports (issue 15)


@pytest.fixture(params=["with jsonschema", "without jsonschema"])
def schema_checker(request, monkeypatch):
    """The ``github`` extra checks the schema; the core install must refuse as cleanly without it."""
    if request.param == "without jsonschema":
        monkeypatch.setitem(sys.modules, "jsonschema", None)
    return request.param


def diff_main(*argv: str):
    from exportwatch.cli.main import main
    from tests.hostile_inputs import run_in_process

    return run_in_process(main, ["diff", *argv])


def a_report_with(tmp_path: Path, name: str, edit) -> Path:
    data = report(failing("cnn"), ok("vit", "onnx")).to_dict()
    edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["jobs"][1].pop("verdict"), "jobs[1].verdict: missing"),
        (lambda d: d["jobs"][0]["submodules"][2].pop("path"), "jobs[0].submodules[2].path: missing"),
        (lambda d: d["jobs"][0].update(verdict=None), "jobs[0].verdict: "),
        (lambda d: d["jobs"][0].update(model=["cnn"]), "jobs[0].model: expected a string, got a list"),
        (
            lambda d: d["jobs"][0]["submodules"][0].update(aliases=3),
            "jobs[0].submodules[0].aliases: expected",
        ),
        (lambda d: d.update(environment=[]), "environment: expected an object, got a list"),
        (lambda d: d.update(jobs={}), "jobs: expected"),
    ],
)
def test_diff_cli__a_malformed_report_is_exit_2_naming_the_file_and_the_field(
    tmp_path, reports, edit, says, schema_checker
):
    """These leaked AttributeError / ``JobResult.__init__()`` (exit 3 or an unreadable exit 2)."""
    from tests.hostile_inputs import assert_clean_refusal

    bad = a_report_with(tmp_path, "base.json", edit)
    ran = diff_main(str(bad), str(reports["same"]))
    assert_clean_refusal(ran, names=f"{bad}: ")
    assert says in ran.err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[]", "not an exportwatch report: the file holds a list"),
        ('[{"schema_version": 1}]', "not an exportwatch report"),
        ('{"name": "left-pad", "version": "1.3.0"}', "not an exportwatch report"),
        ("null", "not an exportwatch report"),
    ],
)
def test_diff_cli__a_json_that_is_not_a_report_says_so(tmp_path, reports, content, says, schema_checker):
    """Once "schema_version None is not supported", which named neither the file nor the problem."""
    from tests.hostile_inputs import assert_clean_refusal

    bad = tmp_path / "head.json"
    bad.write_text(content, encoding="utf-8")
    ran = diff_main(str(reports["base"]), str(bad))
    assert_clean_refusal(ran, names=f"{bad}: {says}")


def test_diff_cli__a_directory_is_exit_2_in_one_line(tmp_path, reports):
    from tests.hostile_inputs import assert_clean_refusal

    folder = tmp_path / "reports"
    folder.mkdir()
    assert_clean_refusal(diff_main(str(reports["base"]), str(folder)), names=f"{folder}: is a directory")
    assert_clean_refusal(diff_main(str(folder)), names=f"{folder}: is a directory")


WRONG_VALUES = [None, True, -1, 2.5, "x", "", [], [0], {}, {"a": 1}]


def every_field(value, where=()):
    """Every (path into the JSON, value) of a report, objects and lists included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*where, key)
            yield from every_field(inner, (*where, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*where, index)
            yield from every_field(inner, (*where, index))


@pytest.mark.slow
@pytest.mark.fuzz  # about 50 s: 2,000 diffs
def test_diff_cli__no_wrong_typed_field_crashes_it(tmp_path, reports, schema_checker):
    """Every field of a report set to every wrong type, or deleted: exit 0, 1 or 2, never a traceback.

    Without jsonschema, 514 of these 1,3xx mutations ended as a traceback (exit 3) or a
    two-stage ``AttributeError`` message.
    """
    import copy

    from tests.factories import Mismatch

    head = report(
        failing("cnn"),
        job(
            "m",
            "export",
            sub("", "mismatch", mismatch=Mismatch(input_set="a", output="[0]")),
            sub("a", "same-as", same_as=""),
        ),
    )
    head.jobs[0].dependencies = {"models/cnn.py": "f00"}
    head.jobs[0].submodules[0].aliases = ["alias"]
    good = head.to_dict()
    path = tmp_path / "head.json"
    bad: list[str] = []
    count = 0
    for where in every_field(good):
        for value in [*WRONG_VALUES, "delete"]:
            data = copy.deepcopy(good)
            parent = data
            for key in where[:-1]:
                parent = parent[key]
            if value == "delete":
                del parent[where[-1]]
            else:
                parent[where[-1]] = value
            path.write_text(json.dumps(data), encoding="utf-8")
            ran = diff_main(
                str(reports["base"]), str(path), "--format", ["text", "markdown", "json"][count % 3]
            )
            count += 1
            lines = [line for line in ran.err.splitlines() if line.strip()]
            if ran.code not in (0, 1, 2) or "Traceback" in ran.err or len(lines) > 1:
                bad.append(f"{'.'.join(map(str, where))} = {value!r}: exit {ran.code}: {lines[-1:]}")
            elif ran.code == 2 and not lines[0].startswith(f"exportwatch diff: error: {path}: "):
                bad.append(f"{'.'.join(map(str, where))} = {value!r}: does not name the file: {lines[0]}")
    assert count > 1000
    assert not bad, f"{len(bad)} of {count} mutations:\n" + "\n".join(bad[:30])


def test_diff_cli__text_prints_a_long_hint_shared_by_every_cache_failure_once(tmp_path, capsys):
    hint = "Return tensors, not a Cache object. " + "Pass use_cache=False, or flatten the cache. " * 12
    assert len(hint) > 500

    def cache_job(model: str, target: str) -> object:
        failing_sub = sub(
            "layers.0.attn",
            "fail",
            fp=f"cache-{target}",
            origin=True,
            category="unsupported-output",
            frame="transformers/cache_utils.py:120",
            hint=hint,
        )
        return job(model, target, sub("", "fail", fp=f"cache-{target}"), failing_sub)

    models, targets = ("gpt2", "llama"), ("export", "onnx", "onnx-legacy")
    write_report(base_report(*(ok(m, t) for m in models for t in targets)), tmp_path / "base.json")
    write_report(report(*(cache_job(m, t) for m in models for t in targets)), tmp_path / "head.json")

    assert run(str(tmp_path / "base.json"), str(tmp_path / "head.json"), "--format", "text") == 1
    out = capsys.readouterr().out
    assert out.count("Return tensors, not a Cache object") == 1
    assert "Regressions (6 regressions in 6 exports)" in out
    assert "same cause also on 5 more places" in out
