"""The coverage-drop threshold set per model in the manifest (``executorch: {coverage_threshold:
10}``): parsed and located, in the schema, carried by the model's ``executorch`` jobs in the
report, and used by the diff for that model's cells instead of ``--coverage-threshold``."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml

from exportwatch.diff import ChangeKind, diff_reports
from exportwatch.diff.coverage import DEFAULT_COVERAGE_THRESHOLD, threshold_for
from exportwatch.manifest import ConfigError, load_manifest
from exportwatch.manifest import specs as manifest_specs
from exportwatch.report import load_report, write_report
from exportwatch.report.validate import validate_report
from tests.conftest import REPO_ROOT
from tests.factories import base_report, delegation, job, report, sub

ATTN = "encoder.blocks.3.attn"


def _manifest(tmp_path: Path, executorch: str, *, defaults: str = "") -> Path:
    path = tmp_path / "exportwatch.yml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            defaults:
            {defaults}
            models:
              - name: m
                factory: models.py:Net
                inputs: {{args: [{{shape: [2, 8]}}]}}
                targets: [export, executorch]
            """
        ).format(defaults=defaults or "  device: cpu")
        + executorch,
        encoding="utf-8",
    )
    return path


# --- the manifest ------------------------------------------------------------------------------


def test_manifest__coverage_threshold_is_read_beside_the_backend(tmp_path):
    spec = load_manifest(_manifest(tmp_path, "    executorch: {backend: xnnpack, coverage_threshold: 10}\n"))
    assert spec.models[0].coverage_threshold == 10.0
    assert spec.models[0].executorch_backend == "xnnpack"


def test_manifest__without_it_the_model_has_none_and_the_diff_decides(tmp_path):
    assert load_manifest(_manifest(tmp_path, "")).models[0].coverage_threshold is None
    only_backend = load_manifest(_manifest(tmp_path, "    executorch: {backend: portable}\n"))
    assert only_backend.models[0].coverage_threshold is None


def test_manifest__defaults_can_set_it_for_every_model(tmp_path):
    path = _manifest(tmp_path, "", defaults="  executorch: {coverage_threshold: 2.5}")
    assert load_manifest(path).models[0].coverage_threshold == 2.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("150", "must be from 0 to 100 percentage points of coverage, got 150"),
        ("-1", "must be from 0 to 100 percentage points of coverage, got -1"),
        ('"10%"', "expected percentage points of coverage, a number from 0 to 100 (like 10), got"),
        ("true", "expected percentage points of coverage"),
        (".nan", "expected percentage points of coverage"),
    ],
)
def test_manifest__a_bad_coverage_threshold_names_file_line_and_field(tmp_path, value, message):
    with pytest.raises(ConfigError) as caught:
        load_manifest(_manifest(tmp_path, f"    executorch: {{coverage_threshold: {value}}}\n"))
    error = caught.value
    assert error.file is not None and error.file.endswith("exportwatch.yml")
    assert error.line == 9
    assert error.field_path == "models[0].executorch.coverage_threshold"
    assert message in error.message
    assert str(error).startswith(f"{error.file}:9:")


def test_manifest__a_misspelt_key_suggests_coverage_threshold(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'coverage_threshold'"):
        load_manifest(_manifest(tmp_path, "    executorch: {coverage_treshold: 10}\n"))


def test_schema__executorch_keys_agree_with_the_parser_and_bound_the_threshold(tmp_path):
    schema = json.loads((REPO_ROOT / "config" / "manifest.schema.json").read_text(encoding="utf-8"))
    field = schema["$defs"]["field_executorch"]
    assert tuple(field["properties"]) == manifest_specs.EXECUTORCH_KEYS
    validator = jsonschema.Draft202012Validator(schema)
    good = yaml.safe_load(_manifest(tmp_path, "    executorch: {coverage_threshold: 10}\n").read_text())
    validator.validate(good)
    bad = yaml.safe_load(_manifest(tmp_path, "    executorch: {coverage_threshold: 101}\n").read_text())
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)


# --- the report --------------------------------------------------------------------------------


def test_report__the_threshold_round_trips_and_an_older_report_has_none(tmp_path):
    carried = report(replace(job("m", "executorch"), coverage_threshold=10.0))
    write_report(carried, tmp_path / "r.json")
    assert load_report(tmp_path / "r.json").jobs[0].coverage_threshold == 10.0

    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    data["jobs"][0].pop("coverage_threshold")
    assert validate_report(json.dumps(data), strict=True).jobs[0].coverage_threshold is None


def test_report__the_strict_reader_refuses_a_threshold_beyond_100(tmp_path):
    write_report(report(replace(job("m", "executorch"), coverage_threshold=10.0)), tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    data["jobs"][0]["coverage_threshold"] = 1000
    with pytest.raises(Exception, match="coverage_threshold"):
        validate_report(json.dumps(data), strict=True)


# --- the diff ----------------------------------------------------------------------------------


def _et_job(nodes: tuple[int, int], *, threshold: float | None = None):
    return replace(
        job(
            "vit",
            "executorch",
            sub("", "ok", delegation=delegation(10, 10)),
            sub(ATTN, "ok", delegation=delegation(*nodes)),
        ),
        coverage_threshold=threshold,
    )


def _attn_kind(base_nodes, head_nodes, *, head_threshold=None, base_threshold=None, **diff_kwargs):
    changes = diff_reports(
        base_report(_et_job(base_nodes, threshold=base_threshold)),
        report(_et_job(head_nodes, threshold=head_threshold)),
        **diff_kwargs,
    )
    return changes.cells[("vit", "executorch", "cpu", ATTN)].kind


def test_diff__a_looser_model_threshold_lets_a_drop_the_global_one_would_report_pass():
    assert _attn_kind((97, 100), (89, 100)) is ChangeKind.COVERAGE_DROP  # 8 points > 5
    assert _attn_kind((97, 100), (89, 100), head_threshold=10) is ChangeKind.UNCHANGED_OK


def test_diff__a_tighter_model_threshold_reports_a_drop_the_global_one_would_let_pass():
    assert _attn_kind((97, 100), (94, 100)) is ChangeKind.UNCHANGED_OK  # 3 points <= 5
    assert _attn_kind((97, 100), (94, 100), head_threshold=1) is ChangeKind.COVERAGE_DROP


def test_diff__the_model_threshold_wins_over_the_diffs_own():
    kind = _attn_kind((97, 100), (89, 100), head_threshold=10, coverage_threshold=2)
    assert kind is ChangeKind.UNCHANGED_OK


def test_diff__the_heads_threshold_counts_not_the_bases():
    """The pull request's manifest says what its models may lose, as for ``expect: xfail``."""
    assert _attn_kind((97, 100), (89, 100), base_threshold=10) is ChangeKind.COVERAGE_DROP
    assert _attn_kind((97, 100), (89, 100), base_threshold=1, head_threshold=10) is ChangeKind.UNCHANGED_OK


def test_diff__a_newly_undelegated_operator_is_a_drop_whatever_the_threshold():
    changes = diff_reports(
        base_report(_et_job((8, 10))),
        report(
            replace(
                job(
                    "vit",
                    "executorch",
                    sub("", "ok", delegation=delegation(10, 10)),
                    sub(ATTN, "ok", delegation=delegation(8, 10, aten_cumsum=2)),
                ),
                coverage_threshold=100.0,
            )
        ),
    )
    assert changes.cells[("vit", "executorch", "cpu", ATTN)].kind is ChangeKind.COVERAGE_DROP


def test_threshold_for__the_jobs_own_else_the_default():
    assert threshold_for(None) == DEFAULT_COVERAGE_THRESHOLD
    assert threshold_for(job("m", "executorch"), default=7) == 7
    assert threshold_for(replace(job("m", "executorch"), coverage_threshold=0.0), default=7) == 0.0
