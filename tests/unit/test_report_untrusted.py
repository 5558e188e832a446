"""Untrusted reports (a pull request's run, a downloaded baseline, a shard): one loader, one cap,
the schema checked, and a hostile file refused in bounded memory."""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import pytest

from exportwatch.report import MAX_REPORT_BYTES, Report, ReportError, load_report
from tests.hostile_inputs import deep_json


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
    with pytest.raises(ReportError, match=r"jobs\[0\]\.verdict: .*\(does not match the report schema\)"):
        load_report(path, untrusted=True)


@pytest.mark.slow
def test_load_report__a_huge_wrong_typed_list_is_refused_in_bounded_memory(tmp_path):
    """All schema errors were once collected before sorting: 3 million of them took 4 GB."""
    data = Report().to_dict()
    data["plan"] = [0] * 300_000  # every item the wrong type
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    tracemalloc.start()
    try:
        with pytest.raises(
            ReportError,
            match=r"plan\[\d+\]: expected a string, got a number \(does not match the report schema\)",
        ):
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


# ------------------------------------------------------------- documents no exportwatch writer produces


@pytest.fixture(params=["with jsonschema", "without jsonschema"])
def schema_checker(request, monkeypatch):
    """Both installs: the ``github`` extra (jsonschema) and the core one, which must refuse alike."""
    if request.param == "without jsonschema":
        monkeypatch.setitem(sys.modules, "jsonschema", None)  # `import jsonschema` raises ImportError
    return request.param


def valid_text() -> str:
    from tests.factories import failing, ok, report

    return report(failing("cnn"), ok("vit", "onnx")).to_json()


HOSTILE_JSON = {
    "100,000-level array nesting": lambda: deep_json(100_000),
    "100,000-level object nesting": lambda: deep_json(100_000, opener='{"a": ', closer="}"),
    "duration_s: 1e400": lambda: valid_text().replace('"duration_s": 83.0', '"duration_s": 1e400'),
    "duration_s: NaN": lambda: valid_text().replace('"duration_s": 83.0', '"duration_s": NaN'),
    "duration_s: Infinity": lambda: valid_text().replace('"duration_s": 83.0', '"duration_s": Infinity'),
    "duration_s: -Infinity": lambda: valid_text().replace('"duration_s": 83.0', '"duration_s": -Infinity'),
    "parameters: 1e999": lambda: valid_text().replace('"parameters": null', '"parameters": 1e999'),
    "a 5,000-digit integer": lambda: valid_text().replace('"attempts": 0', '"attempts": ' + "9" * 5000),
    "a 30-digit integer": lambda: valid_text().replace('"attempts": 0', '"attempts": ' + "9" * 30),
    "a lone surrogate in tool_version": lambda: valid_text().replace('"0.1.0"', '"\\ud800"'),
    "a lone surrogate in a model name": lambda: valid_text().replace('"cnn"', '"x\\udfff"'),
    "a lone surrogate in a dependency path": lambda: valid_text().replace(
        '"dependencies": {}', '"dependencies": {"\\ud800.py": "f00"}', 1
    ),
    "a lone surrogate in a message": lambda: valid_text().replace(
        '"Could not guard', '"\\udbff Could not guard'
    ),
    "a JSON list": lambda: "[]",
    "a JSON string": lambda: '"exportwatch"',
    "an object that is not a report": lambda: '{"name": "package.json", "version": "1.0.0"}',
    "an empty object": lambda: "{}",
    "a submodule path of a million parts": lambda: valid_text().replace(
        '"path": "blocks.4"', '"path": "' + "a." * 1_000_000 + 'a"', 1
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_load_report__refuses_a_hostile_document_in_one_line_naming_the_file(tmp_path, case, schema_checker):
    """Deep nesting, 1e400, NaN, lone surrogates: once RecursionError, ValueError or a crash later."""
    path = tmp_path / "head.json"
    path.write_text(HOSTILE_JSON[case](), encoding="utf-8")
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and len(message) < 600, message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[]", "not an exportwatch report"),
        ('{"name": "package.json"}', "not an exportwatch report"),
        ('{"schema_version": 99, "jobs": []}', "schema_version 99 is not supported"),
        (
            '{"schema_version": 1, "tool_version": "1", "environment": {}, "jobs": [{"model": "m"}]}',
            "jobs[0].target: missing",
        ),
        (
            '{"schema_version": 1, "tool_version": "1", "environment": {}, "jobs": [{"model": "m", '
            '"target": "t", "device": "cpu", "submodules": []}]}',
            "jobs[0].verdict: missing",
        ),
        (
            '{"schema_version": 1, "tool_version": "1", "environment": {}, "jobs": [], "duration_s": "x"}',
            "duration_s: expected a number, got a string",
        ),
        (
            '{"schema_version": 1, "tool_version": "1", "environment": {}, "jobs": [], "plan": [0]}',
            "plan[0]: expected a string, got a number",
        ),
    ],
)
def test_load_report__names_the_field_that_is_wrong(tmp_path, text, says, schema_checker):
    path = tmp_path / "base.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True)
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value), str(caught.value)


def test_load_report__refuses_a_directory_in_one_line(tmp_path):
    with pytest.raises(ReportError, match=r"is a directory, not a report file$"):
        load_report(tmp_path, untrusted=True)


def test_load_report__reads_an_endless_file_only_up_to_the_cap(tmp_path):
    """``/dev/zero`` reports size 0 and never ends: the read itself is bounded."""
    with pytest.raises(ReportError, match="over the 1000-byte limit"):
        load_report(Path("/dev/zero"), max_bytes=1000)


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (["5"], "line 1: not a JSON object"),
        (['{"header": []}'], "line 1: the header is not a JSON object"),
        (
            ['{"header": {"schema_version": 1, "tool_version": "1", "environment": {}}}', '{"job": 7}'],
            "jobs[0]: expected an object",
        ),
        ([deep_json(100_000)], "nested"),
        (['{"header": {"schema_version": 1, "duration_s": NaN}}'], "NaN"),
    ],
)
def test_load_report__refuses_a_hostile_partial_log(tmp_path, lines, says, schema_checker):
    path = tmp_path / "head.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True)
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_report__the_partial_log_of_an_untrusted_run_is_checked_against_the_schema(tmp_path):
    path = tmp_path / "head.jsonl"
    header = json.dumps({"header": {"schema_version": 1, "tool_version": "1", "environment": {}}})
    job = json.dumps({"job": {"model": "m", "target": "t", "device": "cpu", "verdict": "ok",
                              "submodules": [], "attempts": -1}})  # fmt: skip
    path.write_text(header + "\n" + job + "\n", encoding="utf-8")
    assert load_report(path).jobs[0].attempts == -1  # trusted: our own sweep's log
    with pytest.raises(ReportError, match=r"jobs\[0\]\.attempts.*does not match the report schema"):
        load_report(path, untrusted=True)


def test_load_report__names_the_file_as_the_user_knows_it(tmp_path):
    """An artifact is unpacked into a temporary folder: its path there means nothing to the user."""
    path = tmp_path / "exportwatch-report.json"
    path.write_text("[]", encoding="utf-8")
    shown = "artifact 'exportwatch-report': exportwatch-report.json"
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True, shown_as=shown)
    assert str(caught.value) == f"{shown}: not an exportwatch report: the file holds a list, not an object"


def test_load_report__refuses_two_results_for_one_job(tmp_path):
    """A failing copy hidden before a passing one would decide the diff by order: refused."""
    from exportwatch.report import write_report
    from tests.factories import failing, ok, report

    write_report(report(failing("tiny"), ok("other"), ok("tiny")), tmp_path / "dup.json")
    with pytest.raises(
        ReportError,
        match=r"jobs\[2\]: a second result for 'tiny' · 'export' · 'cpu' \(the first is jobs\[0\]\)",
    ):
        load_report(tmp_path / "dup.json", untrusted=True)


def test_load_report__a_partial_log_counts_a_job_logged_twice_by_its_last_result(tmp_path):
    from exportwatch.report import write_report
    from tests.factories import failing, ok, report

    write_report(report(ok("tiny")), tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    jobs = data.pop("jobs")
    retried = json.loads(report(failing("tiny")).to_json())["jobs"][0]
    lines = [{"header": data}, {"job": retried}, {"job": jobs[0]}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    loaded = load_report(tmp_path / "r.jsonl", untrusted=True)
    assert [(j.model, j.verdict.value) for j in loaded.jobs] == [("tiny", "ok")]


def test_load_report__refuses_a_key_given_twice_and_says_where(tmp_path):
    """Python keeps the last of two ``jobs``, other readers the first: a report that means two
    things is refused, with the line and column of the second key (as json's own errors)."""
    from exportwatch.report import write_report
    from tests.factories import failing, ok, report

    write_report(report(ok("tiny")), tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    hidden = json.dumps(json.loads(report(failing("tiny")).to_json())["jobs"])
    path = tmp_path / "dup.json"
    path.write_text(text.replace('  "jobs": [', f'  "jobs": {hidden},\n  "jobs": [', 1))
    line = path.read_text().splitlines().index('  "jobs": [') + 1
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True)
    assert str(caught.value).startswith(
        f"{path}: not valid JSON: duplicate key 'jobs': line {line} column 3 "
    )
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": {"x": 1, "x": 2}}', "x"),
        ('{"s": "}{\\"}", "b": [{"k": {}}, {"k": 1, "k": 2}]}', "k"),
        ('[{"a": 1}, {"b": {"c": [1, {"d": 2}]}, "b": null}]', "b"),
        ('{"a": 1,\n "t": "{",\n  "a": 2}', "a"),
    ],
)
def test_parse_json__locates_the_second_key_past_strings_braces_and_nesting(text, key):
    from exportwatch.report.io import parse_json

    at = text.rindex(f'"{key}"')  # in each case the last one is the repeat
    line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    with pytest.raises(ReportError) as caught:
        parse_json(text)
    assert (
        str(caught.value) == f"not valid JSON: duplicate key {key!r}: line {line} column {column} (char {at})"
    )


def test_load_report__refuses_a_key_given_twice_in_a_partial_log_naming_the_line(tmp_path):
    path = tmp_path / "head.jsonl"
    header = '{"header": {"schema_version": 1, "tool_version": "1", "environment": {}}}'
    job = '{"job": {"model": "m", "target": "t", "device": "cpu", "verdict": "fail", "verdict": "ok"}}'
    path.write_text(header + "\n" + job + "\n", encoding="utf-8")
    at = job.rindex('"verdict"')
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True)
    says = f"line 2: not valid JSON: duplicate key 'verdict': line 1 column {at + 1} (char {at})"
    assert str(caught.value) == f"{path}: {says}"


@pytest.mark.slow
def test_load_report__locates_a_key_given_twice_at_the_end_of_a_big_report_in_a_few_decodes(tmp_path):
    """The locator reads the text again only up to the refused object, one loop step per brace:
    on a 100,000-submodule report it costs a few plain ``json.loads`` of the file, not minutes."""
    import time

    submodule = '{"path": "layers.%d.fc", "module_type": "torch.nn.Linear", "verdict": "covered"}'
    subs = ", ".join(submodule % i for i in range(100_000))
    subs = subs[: subs.rindex('"verdict"')] + '"verdict": "fail", ' + subs[subs.rindex('"verdict"') :]
    text = (
        '{"schema_version": 1, "tool_version": "1", "environment": {}, "jobs": [{"model": "m", "target": "t",'
        f' "device": "cpu", "verdict": "fail", "submodules": [{subs}]}}]}}'
    )
    path = tmp_path / "big.json"
    path.write_text(text)
    started = time.perf_counter()
    json.loads(text)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(ReportError) as caught:
        load_report(path, untrusted=True)
    took = time.perf_counter() - started
    at = text.rindex('"verdict"')
    assert (
        str(caught.value)
        == f"{path}: not valid JSON: duplicate key 'verdict': line 1 column {at + 1} (char {at})"
    )
    assert took < 15 * plain + 1.0, f"{took:.2f} s, a plain json.loads {plain:.2f} s"


def test_parse_json__locates_a_key_given_twice_after_a_long_run_without_braces_in_bounded_memory():
    """The scan takes a run of characters with no brace or string in one regex step: one step per
    character once held 2.5 GB of backtracking marks for ``[1,1,1,…]``."""
    from exportwatch.report.io import parse_json

    text = '{"x": [' + "1," * 1_000_000 + '1], "a": 1, "a": 2}'
    tracemalloc.start()
    try:
        with pytest.raises(ReportError, match=r"duplicate key 'a': line 1 column \d+ \(char \d+\)$"):
            parse_json(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def _big_report_text(submodules: int) -> str:
    sub = (
        '{"path": "layers.%d.fc", "module_type": "torch.nn.Linear", "verdict": "covered", '
        '"covered_by": "layers"}'
    )
    subs = ", ".join(sub % i for i in range(submodules))
    return (
        '{"schema_version": 1, "tool_version": "1", "environment": {}, "jobs": [{"model": "m", "target": "t",'
        f' "device": "cpu", "verdict": "fail", "submodules": [{subs}]}}]}}'
    )


@pytest.mark.slow
def test_load_report__an_untrusted_20000_submodule_report_costs_a_few_plain_decodes(tmp_path):
    """Decoded, checked and built in one compiled pass: json + jsonschema + dataclasses built by
    hand took ~100× a plain ``json.loads`` here (benchmarks/bench_load.py), the compiled pass ~5×."""
    import time

    path = tmp_path / "big.json"
    path.write_text(_big_report_text(20_000))
    load_report(path, untrusted=True)  # the compiled validator, built once per process
    plain, loaded = [], []
    for _ in range(3):
        started = time.perf_counter()
        json.loads(path.read_bytes())
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = load_report(path, untrusted=True)
        loaded.append(time.perf_counter() - started)
    assert len(report.jobs[0].submodules) == 20_000
    assert min(loaded) < 25 * min(plain), f"{min(loaded):.3f} s, a plain json.loads {min(plain):.3f} s"


def test_load_report__a_submodule_holds_slots_not_a_dict_of_its_own(tmp_path):
    """pydantic-core gives an instance a ``__dict__`` of its own (not key-shared: ~1.1 KB a
    submodule); the slotted dataclasses hold ~470 bytes, three empty lists included."""
    path = tmp_path / "big.json"
    path.write_text(_big_report_text(20_000))
    load_report(path, untrusted=True)
    tracemalloc.start()
    try:
        report = load_report(path, untrusted=True)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(report.jobs[0].submodules) == 20_000
    assert held / 20_000 < 700, f"{held / 20_000:.0f} bytes a submodule"
