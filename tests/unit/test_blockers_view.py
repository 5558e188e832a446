"""Blockers (issue 28, item 2) in the report and in every view: they round-trip through JSON, old
reports still load, and the comment, terminal and HTML list every blocker, escaped and capped."""

from __future__ import annotations

import json

from exportwatch.diff import diff_reports, gate
from exportwatch.render import RenderContext, render
from exportwatch.render.common import SHOWN_BLOCKERS
from exportwatch.render.html import render_html
from exportwatch.report import Report, UserFrame
from exportwatch.report.model import (
    Blocker,
    Blockers,
    BlockerStatus,
    CreatedAt,
    Fix,
    FixKind,
    FixProof,
    SourceEdit,
)
from exportwatch.report.validate import validate_report
from tests.factories import base_report, job, ok, report, sub

CASES = "models/router.py"


def _blocker(line: int, expression: str, made: int) -> Blocker:
    return Blocker(
        kind="data-dependent",
        message=f"cannot decide `{expression}` from the tensors' shapes",
        expression=expression,
        user_frame=UserFrame(path=CASES, line=line, function="forward", source="y = x / max(peak, 1.0)"),
        created=[
            CreatedAt(
                symbol="u0",
                frame=UserFrame(path=CASES, line=made, function="forward", source="peak = x.max().item()"),
            )
        ],
        occurrences=2,
    )


def _head(found: Blockers) -> Report:
    frame = f"{CASES}:21"
    origin = sub("", "fail", origin=True, category="data-dependent-value", message="boom", frame=frame)
    origin.blockers = found
    return report(job("router", "export", origin))


def _views(found: Blockers) -> dict[str, str]:
    head = _head(found)
    changes = diff_reports(base_report(ok("router")), head)
    verdict = gate(changes, "regression")
    context = RenderContext(repository="o/r", sha="a" * 40)
    return {
        "markdown": render(changes, verdict, "markdown", context=context),
        "text": render(changes, verdict, "text", context=context),
        "html": render_html(head),
    }


def test_blockers__round_trip_through_json_and_strict_validation() -> None:
    found = Blockers(status=BlockerStatus.FOUND, found=[_blocker(21, "u0 > 2", 20)], total=1, duration_s=0.2)
    head = _head(found)
    again = validate_report(head.to_json(), strict=True)
    assert again.jobs[0].root is not None and again.jobs[0].root.blockers == found


def test_blockers__fixes_round_trip_and_a_report_without_them_loads_with_none() -> None:
    fix = Fix(
        kind=FixKind.CHECK,
        summary="add `torch._check(peak >= 1.0)` after line 20 of models/router.py",
        snippet="torch._check(peak >= 1.0)",
        edit=SourceEdit(
            path=CASES,
            line=20,
            original="peak = x.max().item()",
            replacement="peak = x.max().item()\ntorch._check(peak >= 1.0)",
        ),
        blockers=[0],
        proof=FixProof.PAST_BLOCKER,
        next_blocker="custom op `torch.ops.mylib.scale` has no fake kernel",
    )
    found = Blockers(status=BlockerStatus.FOUND, found=[_blocker(21, "u0 > 2", 20)], total=1, fixes=[fix])
    again = validate_report(_head(found).to_json(), strict=True)
    assert again.jobs[0].root is not None and again.jobs[0].root.blockers == found
    data = _head(found).to_dict()
    del data["jobs"][0]["submodules"][0]["blockers"]["fixes"]
    loaded = validate_report(json.dumps(data), strict=True).jobs[0].root
    assert loaded is not None and loaded.blockers is not None and loaded.blockers.fixes == []


def test_blockers__a_report_without_the_field_still_loads_with_none() -> None:
    data = _head(Blockers(status=BlockerStatus.NONE)).to_dict()
    del data["jobs"][0]["submodules"][0]["blockers"]
    loaded = validate_report(json.dumps(data), strict=True)
    assert loaded.jobs[0].root is not None and loaded.jobs[0].root.blockers is None


def test_blockers__every_view_lists_each_blocker_with_its_line_and_creation_line() -> None:
    found = Blockers(
        status=BlockerStatus.FOUND,
        found=[_blocker(21, "zuf0 < 1.0", 20), _blocker(23, "u0 > 2", 22), _blocker(30, "u1 > 0", 29)],
        total=3,
    )
    for name, text in _views(found).items():
        assert "3 blockers" in text, name
        for line in (21, 23, 30, 20, 22, 29):
            assert f"{CASES}:{line}" in text, (name, line)
        assert "(2 times)" in text, name


def test_blockers__views_cap_the_list_and_count_the_rest() -> None:
    many = [_blocker(100 + i, f"u{i} > 0", 99) for i in range(SHOWN_BLOCKERS + 3)]
    found = Blockers(status=BlockerStatus.FOUND, found=many, total=len(many) + 4)
    for name, text in _views(found).items():
        assert f"{CASES}:{100 + SHOWN_BLOCKERS - 1}" in text, name
        assert f"{CASES}:{100 + SHOWN_BLOCKERS}" not in text, name
        assert "7 more" in text, name


def test_blockers__untrusted_text_is_escaped_in_every_view() -> None:
    hostile = _blocker(21, "u0 > 2", 20)
    hostile.message = "<script>alert(1)</script> @everyone ](http://evil) \x1b[31m"
    found = Blockers(status=BlockerStatus.FOUND, found=[hostile], total=1)
    views = _views(found)
    assert "<script>alert" not in views["markdown"] and "<script>alert" not in views["html"]
    assert "\x1b[31m" not in views["text"]
    assert "@everyone" not in views["markdown"]  # md_text breaks mentions


def test_blockers__a_failed_or_empty_search_says_so() -> None:
    failed = Blockers(status=BlockerStatus.FAILED, note="draft_export raised RuntimeError: no")
    for name, text in _views(failed).items():
        assert "could not list the blockers" in text and "diagnosis above stands" in text, name
    for name, text in _views(Blockers(status=BlockerStatus.NONE)).items():
        assert "found no blocker besides the failure above" in text, name


STUB = '@torch.library.register_fake("mylib::scale")\ndef _scale_fake(x):\n    return torch.empty_like(x)'


def _fixes() -> Blockers:
    check = Fix(
        kind=FixKind.CHECK,
        summary="add `torch._check(peak >= 1.0)` after line 20 of models/router.py",
        snippet="peak = x.max().item()\ntorch._check(peak >= 1.0)",
        edit=SourceEdit(
            path=CASES,
            line=20,
            original="    peak = x.max().item()",
            replacement="    peak = x.max().item()\n    torch._check(peak >= 1.0)",
        ),
        blockers=[0, 2],
        proof=FixProof.PAST_BLOCKER,
        next_blocker="custom op `torch.ops.mylib.scale` has no fake kernel",
    )
    stub = Fix(
        kind=FixKind.FAKE_KERNEL,
        summary="register a fake kernel for `mylib::scale`",
        snippet=STUB,
        blockers=[1],
        proof=FixProof.EXPORTS,
    )
    found = [_blocker(21, "zuf0 < 1.0", 20), _blocker(25, "op", 20), _blocker(23, "u0 > 2", 22)]
    return Blockers(
        status=BlockerStatus.FOUND,
        found=found,
        total=3,
        fixes=[check, stub],
        fixes_together=FixProof.EXPORTS,
        fixes_dropped=1,
    )


def test_blockers__every_view_shows_each_verified_fix_under_its_blocker_with_its_snippet() -> None:
    for name, text in _views(_fixes()).items():
        assert "verified: gets past these blockers; next: custom op" in text, name
        assert "verified: exports with this change" in text, name
        assert (
            "torch._check(peak &gt;= 1.0)" in text if name == "html" else "torch._check(peak >= 1.0)" in text
        )
        assert (
            "fixed by the change shown under blocker 1" in text or "the change shown under blocker 1" in text
        )
        assert "with all 2 fixes applied, the module exports" in text, name
        assert "1 proposed fix not shown" in text, name
    markdown = _views(_fixes())["markdown"]
    # the snippet is a fenced block inside the numbered list item (indented to stay in it)
    assert '   ```python\n   @torch.library.register_fake("mylib::scale")\n   def _scale_fake(x):' in markdown


def test_blockers__a_hostile_snippet_cannot_close_its_fence_or_run_in_any_view() -> None:
    found = _fixes()
    found.fixes[1].snippet = "x = 1\n```\n<script>alert(1)</script>\n````\n@everyone \x1b[31m"
    views = _views(found)
    markdown = views["markdown"]
    assert "   `````python\n" in markdown  # a fence longer than any backtick run inside
    assert "<script>alert" not in views["html"]
    assert "\x1b[31m" not in views["text"]
