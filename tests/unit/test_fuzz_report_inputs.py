"""Fuzzing every entry point that reads reports: valid reports and artifacts, mutated.

Mutations: a field set to a wrong type or deleted, huge strings and lists, deep nesting, values
no writer produces (NaN, 1e400, lone surrogates, 5,000-digit numbers), bytes that are not
UTF-8, and zip-level corruption of the artifact. Whatever the input, ``exportwatch diff``
(every format), ``exportwatch merge`` and the action's publish-side reading end in exit 0, 1 or
2 with at most one line of error, never a traceback, each within a few seconds. Runs
in-process (derandomized, so CI sees the same examples every time); the real processes under a
memory cap and the fake GitHub server are in ``tests/integration/test_fuzz_publish.py``.
"""

from __future__ import annotations

import copy
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exportwatch.action.main import load_untrusted_report
from exportwatch.cli.main import main
from exportwatch.diff import diff_reports, gate
from exportwatch.errors import ExportwatchError
from exportwatch.github.artifacts import safe_extract
from exportwatch.render import FORMATS, RenderContext, render
from exportwatch.report import Mismatch, Report
from tests import hostile_inputs as h
from tests.factories import base_report, failing, job, ok, report, sub

pytestmark = pytest.mark.fuzz  # a CI leg of its own: python -m pytest -m fuzz

#: One run of a command on one fuzzed input: anything slower is a hang in the making.
SECONDS_PER_RUN = 10

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def valid_report(*, shard: str | None = None) -> dict[str, Any]:
    """A report with every nested type: failures with frames, a mismatch, same-as, aliases."""
    made = report(
        failing("cnn"),
        ok("vit", "onnx"),
        job(
            "gated",
            "export",
            sub("", "mismatch", mismatch=Mismatch(input_set="big", output="[0]", max_abs_error=0.5)),
            sub("a", "same-as", same_as=""),
        ),
    )
    made.jobs[0].dependencies = {"models/cnn.py": "f00"}
    made.jobs[0].submodules[0].aliases = ["alias"]
    made.jobs[0].submodules[0].warnings = ["warned"]
    made.plan = ["cnn/export", "vit/onnx", "gated/export"]
    made.shard = shard
    return made.to_dict()


# ---------------------------------------------------------------------------------- mutations

#: Raw JSON spliced in where a placeholder string was: what ``json.dumps`` would never write.
RAW_VALUES = st.sampled_from(
    [
        "[" * 3000 + "]" * 3000,
        '{"a": ' * 3000 + "1" + "}" * 3000,
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "9" * 5000,
        "9" * 25,
        '"\\ud800"',
        '"x\\udfff"',
        '"\\ud83d\\ude00"',  # a valid pair: an emoji
        '"\\u0000\\u001b[31m"',
    ]
)

WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["ok", "fail", "same-as", "", ".", "a." * 500, "1/0", "0/2", "3/2"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.sampled_from(["huge string", "huge list", "huge object", "huge path"]),
)


def huge(kind: Any) -> Any:
    return (
        {
            "huge string": "x" * 1_000_000,
            "huge list": [0] * 100_000,
            "huge object": {str(i): i for i in range(50_000)},
            "huge path": "a." * 400_000 + "a",
        }.get(kind, kind)
        if isinstance(kind, str)
        else kind
    )


def every_path(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found.append((*where, key))
        found.extend(every_path(inner, (*where, key)))
    return found


@st.composite
def mutated_json(draw: st.DrawFn, data: dict[str, Any]) -> bytes:
    """``data`` with one to three structural mutations, then maybe a text- or byte-level one."""
    data = copy.deepcopy(data)
    raw: dict[str, str] = {}
    for n in range(draw(st.integers(min_value=1, max_value=3))):
        paths = every_path(data)
        if not paths:
            break
        where = draw(st.sampled_from(paths))
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["set", "set", "delete", "raw"]))
        if action == "delete":
            del parent[where[-1]]
        elif action == "raw":
            placeholder = f"__raw_{n}__"
            raw[placeholder] = draw(RAW_VALUES)
            parent[where[-1]] = placeholder
        else:
            parent[where[-1]] = huge(draw(WRONG_VALUES))
    text = json.dumps(data)
    for placeholder, value in raw.items():
        text = text.replace(f'"{placeholder}"', value)
    encoded = text.encode("utf-8")
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "bytes", "bom", "utf-16", "not json"]))
    if damage == "truncate":
        encoded = encoded[: draw(st.integers(min_value=0, max_value=len(encoded)))]
    elif damage == "bytes":
        at = draw(st.integers(min_value=0, max_value=len(encoded)))
        encoded = (
            encoded[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"])) + encoded[at:]
        )
    elif damage == "bom":
        encoded = b"\xef\xbb\xbf" + encoded
    elif damage == "utf-16":
        encoded = text.encode("utf-16")
    elif damage == "not json":
        encoded = draw(st.sampled_from([b"", b"[]", b"null", b'"report"', b"{}", b"[{}]"]))
    return encoded


ZIP_DAMAGE = st.sampled_from(
    [
        "none",
        "none",
        "stored",
        "bzip2",
        "encrypted",
        "method 99",
        "corrupt data",
        "truncated",
        "long name",
        "traversal",
        "newline in the name",
        "duplicate",
        "not a zip",
    ]
)


def artifact(head: bytes, base: bytes, damage: str) -> bytes:
    """The sweep job's artifact (head and base report), damaged the way ``damage`` says."""
    members = {h.REPORT_NAME: head, "exportwatch-report.base.json": base}
    if damage == "stored":
        return h.zip_bytes(members, method=zipfile.ZIP_STORED)
    if damage == "bzip2":
        return h.zip_bytes(members, method=zipfile.ZIP_BZIP2)
    plain = h.zip_bytes(members)
    if damage == "encrypted":
        return h.encrypted(plain)
    if damage == "method 99":
        return h.with_method(plain, 99)
    if damage == "corrupt data":
        return h.corrupt_member_data(plain)
    if damage == "truncated":
        return plain[: len(plain) // 2]
    if damage == "long name":
        return h.zip_bytes({"r" * 4000 + ".json": head})
    if damage == "traversal":
        return h.zip_bytes({"../" + h.REPORT_NAME: head})
    if damage == "newline in the name":
        return h.zip_bytes({"x\n::error::pwned.json": head, h.REPORT_NAME: head})
    if damage == "duplicate":
        with pytest.warns(UserWarning):  # zipfile warns about the duplicate name it writes
            return _duplicate(head)
    if damage == "not a zip":
        return head
    return plain


def _duplicate(head: bytes) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(h.REPORT_NAME, head)
        zf.writestr(h.REPORT_NAME, head)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------- the checks


def assert_ended_cleanly(ran: h.Ran, *, fuzzed: Path, seconds: float, multi_line_ok: bool = False) -> None:
    # What the examples exercised (``pytest --hypothesis-show-statistics``): exits, refusal kinds.
    said = ran.err.partition(f"{fuzzed}: ")[2].split(":")[0].split(" (")[0][:40]
    event(f"exit {ran.code}: {said}")
    where = f"exit {ran.code} in {seconds:.1f} s: {ran.err[-1500:]}"
    assert ran.code in (0, 1, 2), where
    assert "Traceback" not in ran.err and "internal error" not in ran.err, where
    assert seconds < SECONDS_PER_RUN, where
    lines = [line for line in ran.err.splitlines() if line.strip()]
    if ran.code == 2:
        assert lines, where
        if not multi_line_ok:
            assert len(lines) == 1, where
        assert str(fuzzed) in ran.err, f"the message does not name {fuzzed}: {where}"


def timed(argv: list[str]) -> tuple[h.Ran, float]:
    started = time.perf_counter()
    ran = h.run_in_process(main, argv)
    return ran, time.perf_counter() - started


@pytest.fixture(scope="module")
def good_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "base.json"
    path.write_text(Report.to_json(base_report(ok("cnn"), failing("vit", "onnx"))), encoding="utf-8")
    return path


@pytest.mark.slow
@settings(FUZZ, max_examples=200)
@given(
    fuzzed=mutated_json(valid_report()),
    fmt=st.sampled_from(FORMATS),
    side=st.sampled_from(["head", "base", "alone"]),
    suffix=st.sampled_from([".json", ".json", ".jsonl"]),
)
def test_fuzz__diff_ends_in_0_1_or_2_with_one_line(tmp_path, good_base, fuzzed, fmt, side, suffix):
    path = tmp_path / f"fuzzed{suffix}"
    if suffix == ".jsonl":  # a partial sweep log: the header line, then the fuzzed job lines
        fuzzed = b'{"header": {"schema_version": 1, "tool_version": "1", "environment": {}}}\n' + fuzzed
    path.write_bytes(fuzzed)
    argv = {"head": [str(good_base), str(path)], "base": [str(path), str(good_base)], "alone": [str(path)]}
    ran, seconds = timed(["diff", *argv[side], "--format", fmt])
    assert_ended_cleanly(ran, fuzzed=path, seconds=seconds)


@pytest.mark.slow
@settings(FUZZ, max_examples=100)
@given(fuzzed=mutated_json(valid_report(shard="2/2")), which=st.sampled_from(["file", "folder"]))
def test_fuzz__merge_ends_in_0_or_2_with_its_reasons(tmp_path, fuzzed, which):
    shards = tmp_path / "shards"
    shards.mkdir(exist_ok=True)
    (shards / "shard-1.json").write_text(json.dumps(valid_report(shard="1/2")), encoding="utf-8")
    path = shards / "shard-2.json"
    path.write_bytes(fuzzed)
    inputs = [str(shards)] if which == "folder" else [str(shards / "shard-1.json"), str(path)]
    ran, seconds = timed(["merge", *inputs, "-o", str(tmp_path / "merged.json"), "-q"])
    # A refused merge lists every reason, one per line, under one heading.
    assert_ended_cleanly(ran, fuzzed=path, seconds=seconds, multi_line_ok="cannot merge" in ran.err)
    assert ran.code in (0, 2), ran.err[-1500:]


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(
    head=mutated_json(valid_report()),
    base_damaged=st.booleans(),
    damage=ZIP_DAMAGE,
)
def test_fuzz__publish_reads_an_artifact_or_refuses_it_in_one_line(tmp_path, head, base_damaged, damage):
    """What ``mode: publish`` does with the downloaded zip: extract, load, diff, render."""
    base = head if base_damaged else json.dumps(valid_report()).encode()
    archive = tmp_path / "artifact.zip"
    archive.write_bytes(artifact(head, base, damage))
    folder = tmp_path / "files"
    started = time.perf_counter()
    try:
        files = safe_extract(archive, folder)
        loaded = {path.name: load_untrusted_report(path) for path in files if path.suffix == ".json"}
    except ExportwatchError as exc:
        message = str(exc)
        assert exc.exit_code == 2, message
        assert "\n" not in message and len(message) < 1000, message
        assert message.startswith(("artifact", str(folder))), message
    else:
        head_report = loaded.get(h.REPORT_NAME)
        if head_report is not None:
            changes = diff_reports(loaded.get("exportwatch-report.base.json"), head_report)
            result = gate(changes, "regression")
            for fmt in FORMATS:
                assert isinstance(render(changes, result, fmt, context=RenderContext()), str)
    assert time.perf_counter() - started < SECONDS_PER_RUN
