"""The diff at scale: linear in the cells, with the same folding as a small report (issue 29)."""

from __future__ import annotations

import time

from exportwatch.diff import ChangeKind, diff_reports
from tests.factories import base_report, job, report, sub


def one_cause(blocks: int) -> tuple[object, object]:
    """Every block fails on head because of its own child, all for one reason (one fingerprint):
    ``blocks`` failing ancestors, each explained by an origin below it, and a failing root."""
    base_subs = [sub("", "ok")]
    head_subs = [sub("", "fail", fp="shared")]
    for i in range(blocks):
        base_subs += [sub(f"blocks.{i}", "ok"), sub(f"blocks.{i}.attn", "ok")]
        head_subs += [
            sub(f"blocks.{i}", "fail", fp="shared"),
            sub(f"blocks.{i}.attn", "fail", fp="shared", origin=True),
        ]
    return base_report(job("big", "export", *base_subs)), report(job("big", "export", *head_subs))


def test_diff__folds_each_failing_ancestor_under_its_own_origin():
    changes = diff_reports(*one_cause(300))
    top = changes.top_level(ChangeKind.REGRESSION)
    assert [c.path for c in top] == [f"blocks.{i}.attn" for i in range(300)]
    cells = changes.cells
    assert cells[("big", "export", "cpu", "blocks.7")].folded_under == "blocks.7.attn"
    assert cells[("big", "export", "cpu", "")].folded_under == "blocks.0.attn"  # the first origin
    assert cells[("big", "export", "cpu", "")].caused_by == "blocks.0.attn"
    assert changes.counts[ChangeKind.REGRESSION] == 300


def fastest_diff(blocks: int) -> float:
    base, head = one_cause(blocks)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        diff_reports(base, head)
        best = min(best, time.perf_counter() - started)
    return best


def test_diff__time_grows_linearly_with_failing_ancestors():
    # Four times the cells: about four times the time. A scan of the job per failing ancestor,
    # as before, made it 22 times (2.2 s → 49 s, against 0.22 s → 0.97 s now, loaded machine).
    small, large = fastest_diff(1_000), fastest_diff(4_000)
    assert large / small < 9, (small, large)
