"""The action's side of delegation coverage drops: its two inputs and the ``coverage-drops`` output."""

from __future__ import annotations

import pytest

from exportwatch.action import decide
from exportwatch.action.main import analyse
from exportwatch.diff import DEFAULT_COVERAGE_THRESHOLD, diff_reports
from exportwatch.github.config import ActionConfig, ActionConfigError
from tests.factories import base_report, delegation, job, report, sub


def et_report(delegated: int, *, base: bool = False, **not_delegated: int):
    build = base_report if base else report
    return build(
        job(
            "vit",
            "executorch",
            sub("", "ok"),
            sub("encoder.attn", "ok", delegation=delegation(delegated, 100, **not_delegated)),
        )
    )


def test_coverage_action__inputs_default_to_report_only_and_5_points():
    config = ActionConfig.from_env({})
    assert config.fail_on_coverage_drop is False
    assert config.coverage_threshold == DEFAULT_COVERAGE_THRESHOLD == 5.0


def test_coverage_action__reads_both_inputs():
    config = ActionConfig.from_env(
        {"INPUT_FAIL-ON-COVERAGE-DROP": "true", "INPUT_COVERAGE-THRESHOLD": "12.5%"}
    )
    assert config.fail_on_coverage_drop is True
    assert config.coverage_threshold == 12.5


@pytest.mark.parametrize("value", ["-1", "101", "nan", "lots"])
def test_coverage_action__a_bad_threshold_names_the_input(value):
    with pytest.raises(ActionConfigError, match="input 'coverage-threshold'"):
        ActionConfig.from_env({"INPUT_COVERAGE-THRESHOLD": value})


def test_coverage_action__the_gate_follows_the_inputs():
    base, head = et_report(97, base=True), et_report(80)
    reported = analyse(head, base, config=ActionConfig.from_env({}), xfail=None)[1]
    assert reported.passed
    strict = ActionConfig.from_env({"INPUT_FAIL-ON-COVERAGE-DROP": "true"})
    assert not analyse(head, base, config=strict, xfail=None)[1].passed
    lenient = ActionConfig.from_env({"INPUT_FAIL-ON-COVERAGE-DROP": "true", "INPUT_COVERAGE-THRESHOLD": "20"})
    assert analyse(head, base, config=lenient, xfail=None)[1].passed


def test_coverage_action__outputs_count_the_drops():
    changes = diff_reports(et_report(97, base=True), et_report(50, aten_cumsum=1))
    assert decide.StepOutputs.of("passed", changes).outputs()["coverage-drops"] == 1
    same = diff_reports(et_report(97, base=True), et_report(97))
    assert decide.StepOutputs.of("passed", same).outputs()["coverage-drops"] == 0
