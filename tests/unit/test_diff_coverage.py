"""Delegation coverage drops (the ``executorch`` target): a change of its own kind, gated only
when the user asks (``fail_on_coverage_drop``), shown by every view."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exportwatch.diff import ChangeKind, diff_reports, gate
from exportwatch.render import RenderContext, render
from exportwatch.report import write_report
from tests.factories import base_report, delegation, job, report, sub

ATTN = "encoder.blocks.3.attn"


def et_job(attn_verdict: str = "ok", **attn_delegation_kwargs) -> object:
    """An executorch job whose ``encoder.blocks.3.attn`` carries ``delegation(...)``."""
    delegated, compute = attn_delegation_kwargs.pop("nodes", (97, 100))
    return job(
        "vit",
        "executorch",
        sub("", "ok", delegation=delegation(10, 10)),
        sub(ATTN, attn_verdict, delegation=delegation(delegated, compute, **attn_delegation_kwargs)),
    )


def changes_of(base_kwargs: dict, head_kwargs: dict, **diff_kwargs):
    return diff_reports(base_report(et_job(**base_kwargs)), report(et_job(**head_kwargs)), **diff_kwargs)


def attn_cell(changes):
    return changes.cells[("vit", "executorch", "cpu", ATTN)]


def test_coverage__a_drop_beyond_the_threshold_is_a_change_of_its_own():
    changes = changes_of({"nodes": (97, 100)}, {"nodes": (61, 100)})
    cell = attn_cell(changes)
    assert cell.kind is ChangeKind.COVERAGE_DROP
    assert cell.note == "XNNPACK delegation 97% → 61%"
    assert changes.counts[ChangeKind.COVERAGE_DROP] == 1
    assert changes.cells[("vit", "executorch", "cpu", "")].kind is ChangeKind.UNCHANGED_OK


def test_coverage__a_drop_within_the_threshold_is_no_change():
    changes = changes_of({"nodes": (97, 100)}, {"nodes": (93, 100)})
    assert attn_cell(changes).kind is ChangeKind.UNCHANGED_OK
    assert changes.counts[ChangeKind.COVERAGE_DROP] == 0
    # ...but is one under a tighter threshold
    tight = changes_of({"nodes": (97, 100)}, {"nodes": (93, 100)}, coverage_threshold=2)
    assert attn_cell(tight).kind is ChangeKind.COVERAGE_DROP


def test_coverage__a_newly_undelegated_operator_is_a_drop_even_at_equal_share():
    changes = changes_of(
        {"nodes": (8, 10), "aten_cumsum": 2},
        {"nodes": (8, 10), "aten_native_layer_norm": 1, "aten_cumsum": 1},
    )
    cell = attn_cell(changes)
    assert cell.kind is ChangeKind.COVERAGE_DROP
    assert cell.coverage_drop is not None
    assert cell.coverage_drop.newly_not_delegated == ("aten.native_layer_norm",)
    assert cell.note == "XNNPACK delegation 80%; aten.native_layer_norm no longer delegated"


def test_coverage__a_newly_undelegated_operator_names_the_submodule_that_calls_it():
    base, head = report(et_job()), report(et_job(nodes=(61, 100), aten_native_layer_norm=1))
    head.jobs[0].submodule(ATTN).delegation.not_delegated_in = {"aten.native_layer_norm": "norm"}
    cell = attn_cell(diff_reports(base_report(*base.jobs), head))
    assert cell.coverage_drop is not None
    assert cell.coverage_drop.called_in == (("aten.native_layer_norm", f"{ATTN}.norm"),)
    assert (
        cell.note
        == f"XNNPACK delegation 97% → 61%; aten.native_layer_norm (in {ATTN}.norm) no longer delegated"
    )
    # The module's own code ("") adds nothing to the cell's own path.
    head.jobs[0].submodule(ATTN).delegation.not_delegated_in = {"aten.native_layer_norm": ""}
    cell = attn_cell(diff_reports(base_report(*base.jobs), head))
    assert cell.note == "XNNPACK delegation 97% → 61%; aten.native_layer_norm no longer delegated"


def test_coverage__a_rise_is_no_change():
    changes = changes_of({"nodes": (61, 100), "aten_cumsum": 1}, {"nodes": (97, 100)})
    assert attn_cell(changes).kind is ChangeKind.UNCHANGED_OK


def test_coverage__a_cell_failing_on_head_is_a_regression_not_a_drop():
    changes = changes_of({"nodes": (97, 100)}, {"attn_verdict": "fail", "nodes": (10, 100)})
    assert attn_cell(changes).kind is ChangeKind.REGRESSION
    assert attn_cell(changes).coverage_drop is None


def test_coverage__old_reports_without_delegation_give_no_coverage_change():
    old = base_report(job("vit", "executorch", sub("", "ok"), sub(ATTN, "ok")))
    changes = diff_reports(old, report(et_job(nodes=(1, 100), aten_cumsum=9)))
    assert attn_cell(changes).kind is ChangeKind.UNCHANGED_OK
    assert changes.counts[ChangeKind.COVERAGE_DROP] == 0


def test_coverage__the_gate_reports_a_drop_and_fails_on_it_only_when_asked():
    changes = changes_of({"nodes": (97, 100)}, {"nodes": (61, 100), "aten_native_layer_norm": 1})
    default = gate(changes)
    assert default.passed
    assert any("1 delegation coverage drop was not gated" in n for n in default.notes)
    strict = gate(changes, fail_on_coverage_drop=True)
    assert not strict.passed
    assert strict.failing == (("vit", "executorch", "cpu", ATTN),)
    assert strict.reasons == (f"1 delegation coverage drop: vit/executorch/cpu:{ATTN}",)
    # The setting stands apart from the policy: even "never" fails on a drop when asked.
    assert not gate(changes, "never", fail_on_coverage_drop=True).passed


def test_coverage__a_gated_drop_beside_a_regression_names_both_in_the_headline():
    base = base_report(et_job(nodes=(97, 100)), job("cnn", "executorch", sub("", "ok")))
    head = report(et_job(nodes=(61, 100)), job("cnn", "executorch", sub("", "fail")))
    changes = diff_reports(base, head)
    text = render(changes, gate(changes, fail_on_coverage_drop=True), "text", context=RenderContext())
    assert text.startswith("FAIL  1 export regression in 1 model, and 1 delegation coverage drop")


@pytest.mark.parametrize("fmt", ["markdown", "summary", "text"])
def test_coverage__every_view_names_the_module_the_share_and_the_operator(fmt):
    changes = changes_of({"nodes": (97, 100)}, {"nodes": (61, 100), "aten_native_layer_norm": 1})
    text = render(changes, gate(changes, fail_on_coverage_drop=True), fmt, context=RenderContext())
    assert ATTN in text.replace("\\", "")
    assert "97% → 61%" in text
    assert "native_layer_norm" in text
    assert "no longer delegated" in text


def test_coverage__operator_names_are_escaped_in_markdown():
    hostile = {"nodes": (8, 10), "aten_x`](https://evil.example)<b>": 1}
    changes = changes_of({"nodes": (8, 10)}, hostile)
    text = render(changes, gate(changes), "markdown", context=RenderContext())
    line = next(x for x in text.splitlines() if "no longer delegated" in x)
    # The name sits whole inside one code span: neither a link nor HTML
    assert line.endswith("; ``aten.x`](https://evil.example)<b>`` no longer delegated"), line


def test_coverage__json_counts_the_drops():
    changes = changes_of({"nodes": (97, 100)}, {"nodes": (61, 100)})
    data = json.loads(render(changes, gate(changes), "json", context=RenderContext()))
    assert data["counts"]["coverage-drop"] == 1


def test_coverage__exportwatch_diff_fails_the_gate_with_the_policy_on(tmp_path: Path):
    """End to end: the installed command, two report files, the policy switched on."""
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    write_report(base_report(et_job(nodes=(97, 100))), base)
    write_report(report(et_job(nodes=(61, 100), aten_native_layer_norm=1)), head)
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "exportwatch", "diff", str(base), str(head), "--format", "text"]

    reported = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.startswith("PASS  No export regressions · 1 delegation coverage drop")
    assert "1 delegation coverage drop was not gated" in reported.stdout

    gated = subprocess.run(
        [*cmd, "--fail-on-coverage-drop", "--coverage-threshold", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert gated.returncode == 1, gated.stderr
    out = gated.stdout
    assert out.startswith("FAIL  1 delegation coverage drop in 1 model"), out
    assert f"1 delegation coverage drop: vit/executorch/cpu:{ATTN}" in out
    assert "XNNPACK delegation 97% → 61%; aten.native_layer_norm no longer delegated" in out

    lenient = subprocess.run(
        [*cmd, "--fail-on-coverage-drop", "--coverage-threshold", "50"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert lenient.returncode == 1  # the newly undelegated operator still counts


def test_coverage__the_html_tree_marks_the_node_whose_coverage_dropped():
    from exportwatch.render.html import render_html

    base = base_report(et_job(nodes=(97, 100)))
    page = render_html(report(et_job(nodes=(61, 100), aten_native_layer_norm=1)), base=base)
    assert '<span class="badge k-coverage-drop">coverage drop</span>' in page  # on its node
    assert "XNNPACK 61% (61/100 nodes), not delegated: aten.native_layer_norm ×1" in page
    unchanged = render_html(report(et_job(nodes=(97, 100))), base=base)
    assert "k-coverage-drop" not in unchanged.replace(".badge.k-coverage-drop", "")
