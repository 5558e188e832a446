"""Rendering in proportion to what is shown: a cut item is counted, never rendered, and
thousands of failures with one cause are one entry with a count (issue 29, item 1)."""

from __future__ import annotations

import re

import pytest

from exportwatch.diff import ChangeKind, diff_reports, gate
from exportwatch.render import RenderContext
from exportwatch.render import markdown as markdown_view
from exportwatch.render.common import Part, Section, deferred, fit
from exportwatch.render.markdown import render_comment, render_summary
from exportwatch.render.tree_view import build_tree, failing_branch, failing_tree
from tests.factories import base_report, job, report, sub

CONTEXT = RenderContext(run_url="https://github.com/acme/vision/actions/runs/42")


def recording_section(rendered: list[int], *, items: int, priority: int = 1) -> Section:
    def make(i: int) -> str:
        rendered.append(i)
        return f"- item {i:04d} " + "x" * 40

    return Section(
        noun="items",
        head="#### Items",
        parts=[deferred(lambda i=i: make(i), priority=priority) for i in range(items)],
        joiner="\n",
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def test_fit__renders_a_deferred_part_only_when_the_budget_reaches_it():
    rendered: list[int] = []
    fitted = fit([recording_section(rendered, items=5_000)], budget=2_000)

    kept = fitted.blocks[0].count("- item ")
    assert 0 < kept < 60
    # What is shown, plus the one part that did not fit: nothing past the cut is rendered.
    assert rendered == list(range(kept + 1))
    assert fitted.cut == {"items": 5_000 - kept}
    assert f"…and {5_000 - kept} more" in fitted.blocks[0]


def test_fit__a_deferred_part_reads_as_the_same_eager_part():
    def eager(i: int) -> Part:
        return Part(text=f"- item {i}", priority=1, extra=f"trace {i}", extra_priority=3)

    def lazy(i: int) -> Part:
        return Part(priority=1, extra_priority=3, render=lambda: (f"- item {i}", f"trace {i}"))

    for budget in (40, 90, 10_000):
        shown = [
            fit([Section(noun="items", parts=[make(i) for i in range(6)])], budget=budget)
            for make in (eager, lazy)
        ]
        assert shown[0] == shown[1], budget


def removed_submodules(count: int) -> tuple[object, object]:
    """A base listing ``count`` leaves that the head no longer has: ``count`` other changes."""
    leaves = [sub(f"blocks.{i}", "ok") for i in range(count)]
    base = base_report(job("cnn", "export", sub("", "fail", fp="root"), sub("blocks", "ok"), *leaves))
    kept = (sub("", "fail", fp="root"), sub("blocks", "ok"), sub("blocks.0", "ok"))
    head = report(job("cnn", "export", *kept))
    return base, head


def test_comment__renders_only_the_other_changes_it_shows(monkeypatch: pytest.MonkeyPatch):
    rendered: list[str] = []
    real = markdown_view._other_line

    def counting(cell):  # the real renderer, counted
        rendered.append(cell.path)
        return real(cell)

    monkeypatch.setattr(markdown_view, "_other_line", counting)
    base, head = removed_submodules(6_000)
    changes = diff_reports(base, head)
    text = render_comment(changes, gate(changes), context=CONTEXT)

    shown = text.count("no longer in the report")
    assert 0 < shown < 6_000 - 1
    assert len(rendered) <= shown + 1  # the one that did not fit was measured
    more = re.search(r"…and (\d+) more \(cut to fit\)", text)
    assert more is not None and int(more.group(1)) == 6_000 - 1 - shown


def test_summary__the_same_text_whether_or_not_items_past_the_cut_exist():
    small, large = (diff_reports(*removed_submodules(n)) for n in (4_000, 40_000))
    context = RenderContext(run_url=CONTEXT.run_url, max_chars=30_000)
    texts = [render_summary(c, gate(c), context=context) for c in (small, large)]
    # Everything up to the cut is the same; only the counts of what was left out differ.
    strip = re.compile(r"\d+")
    cut_small = texts[0].split("_…and")[0]
    cut_large = texts[1].split("_…and")[0]
    assert strip.sub("#", cut_small) == strip.sub("#", cut_large)


def test_comment__thousands_of_failures_with_one_cause_are_one_entry_with_a_count():
    frame = "models/shared.py:42"
    base_subs = [sub("", "ok")] + [sub(f"layers.{i}", "ok") for i in range(3_000)]
    head_subs = [sub("", "fail", fp="shared")] + [
        sub(f"layers.{i}", "fail", fp="shared", origin=True, frame=frame, category="unsupported-operator")
        for i in range(3_000)
    ]
    changes = diff_reports(
        base_report(job("big", "export", *base_subs), job("big", "onnx", *base_subs)),
        report(job("big", "export", *head_subs), job("big", "onnx", *head_subs)),
    )
    text = render_comment(changes, gate(changes), context=CONTEXT)

    section = text.split("#### ❌ Regressions")[1].split("\n#### ")[0]
    assert "(6000 regressions in 2 exports)" in section
    assert section.count("models/shared.py:42") == 1  # one entry, one location
    assert "The same cause in 5999 more places" in section
    assert "✂️" not in text  # nothing had to be cut: the group is small


@pytest.mark.parametrize(
    "subs",
    [
        # a chain: root -> block -> origin, passing siblings, an unlisted level between
        (
            sub("", "fail", fp="a"),
            sub("blocks", "fail", fp="a"),
            sub("blocks.0", "ok"),
            sub("blocks.1", "fail", fp="a", origin=True),
            sub("blocks.1.deep.x", "fail", fp="b", origin=True),
            sub("head", "ok"),
        ),
        # a same-as twin of a failure, a crash, and a root that passes
        (
            sub("", "ok"),
            sub("enc.0", "fail", fp="c", origin=True),
            sub("enc.1", "same-as", same_as="enc.0"),
            sub("dec", "crash"),
            sub("dec.0", "ok"),
        ),
        # nothing fails
        (sub("", "ok"), sub("a", "ok"), sub("a.b", "covered")),
    ],
)
def test_failing_tree__is_the_failing_branch_of_the_whole_tree(subs):
    the_job = job("net", "export", *subs)
    changes = {"blocks.1": ChangeKind.REGRESSION} if subs[0].verdict.value == "fail" else None
    assert failing_tree(the_job, changes=changes) == failing_branch(build_tree(the_job, changes=changes))
