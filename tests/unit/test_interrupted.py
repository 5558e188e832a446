"""The ``interrupted`` verdict: a job a stopped sweep was running is its own result, never a pass,
and every view of a diff says the report it comes from is partial. Pure: hand-built reports."""

from __future__ import annotations

import json

import pytest

from exportwatch.diff import Policy, diff_reports, gate
from exportwatch.render.common import RenderContext
from exportwatch.render.markdown import render_comment
from exportwatch.render.terminal import render_text
from exportwatch.report import FAILING, INFRASTRUCTURE, PASSING, Verdict
from tests.conftest import REPO_ROOT
from tests.factories import base_report, job, ok, report, sub


def interrupted_head(**kwargs):
    """The head's sweep was stopped while it exported ``cnn``: a partial report."""
    return report(ok("mlp"), job("cnn", "export", sub("", "interrupted")), complete=False, **kwargs)


def test_interrupted__is_its_own_verdict_failing_never_passing():
    assert Verdict("interrupted") is Verdict.INTERRUPTED
    assert Verdict.INTERRUPTED in FAILING and Verdict.INTERRUPTED in INFRASTRUCTURE
    assert Verdict.INTERRUPTED not in PASSING


@pytest.mark.parametrize("schema", ["exportwatch/schemas/report.schema.json", "config/report.schema.json"])
def test_interrupted__every_verdict_is_in_the_report_schema(schema):
    verdicts = json.loads((REPO_ROOT / schema).read_text())["$defs"]["verdict"]["enum"]
    assert sorted(verdicts) == sorted(v.value for v in Verdict)


@pytest.mark.parametrize("policy", [Policy.REGRESSION, Policy.NEW_FAILURE, Policy.ANY_FAILURE])
def test_interrupted__is_never_gated_as_a_pass_under_any_policy_but_never(policy):
    changes = diff_reports(base_report(ok("mlp"), ok("cnn")), interrupted_head())
    result = gate(changes, policy)
    assert not result.passed
    assert result.failing == (("cnn", "export", "cpu", ""),)
    assert result.reasons == ("1 export interrupted (the head report is partial): cnn/export/cpu",)
    assert not any("not gated" in note for note in result.notes)  # not a crash to rerun quietly


def test_interrupted__the_policy_never_still_passes():
    assert gate(diff_reports(base_report(ok("cnn")), interrupted_head()), Policy.NEVER).passed


def test_interrupted__the_comment_and_the_terminal_say_the_report_is_partial():
    changes = diff_reports(base_report(ok("mlp"), ok("cnn")), interrupted_head())
    result = gate(changes, Policy.REGRESSION)
    headline = "The head's sweep was interrupted: 1 export not checked (a partial report)"
    comment = render_comment(changes, result, context=RenderContext())
    text = render_text(changes, result, context=RenderContext())
    for view in (comment, text):
        assert headline in view
        assert "The head report is partial (its sweep did not finish or was interrupted)" in view
    assert "| **cnn** | ✅ → ⏹️ interrupted" in comment
    assert "head was interrupted, so this may be a regression" in comment
    assert "hit a crash, timeout or out-of-memory" not in comment  # it is gated, not set aside
    assert any(line.split()[:5] == ["cnn", "cpu", "ok", "→", "interrupted"] for line in text.splitlines())


def test_interrupted__a_regression_beside_it_is_still_named():
    head = report(job("mlp", "export", sub("", "fail")), job("cnn", "export", sub("", "interrupted")))
    changes = diff_reports(base_report(ok("mlp"), ok("cnn")), head)
    result = gate(changes, Policy.REGRESSION)
    assert set(result.failing) == {("cnn", "export", "cpu", ""), ("mlp", "export", "cpu", "")}
    text = render_text(changes, result, context=RenderContext())
    assert "The head's sweep was interrupted: 1 export not checked, and 1 failing export in 1 model" in text
