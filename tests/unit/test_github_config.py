"""ActionConfig: inputs (INPUT_*, hyphens kept) and runner variables, one parser per field."""

from __future__ import annotations

import pickle
from dataclasses import fields
from pathlib import Path

import pytest

from exportwatch.errors import UsageError
from exportwatch.github import config as config_module
from exportwatch.github.config import (
    INPUT_NAMES,
    ActionConfig,
    ActionConfigError,
    CommentMode,
    Mode,
    Secret,
)

TOKEN = "ghp_sEcReT0123456789abcdefABCDEF012345"


def test_config__reads_inputs_with_hyphens_kept_as_the_runner_passes_them():
    config = ActionConfig.from_env(
        {
            "INPUT_MANIFEST": "models/exportwatch.yml",
            "INPUT_GITHUB-TOKEN": TOKEN,
            "INPUT_TARGETS": "export, onnx\nexport-strict",
            "INPUT_DEVICE": "CUDA",
            "INPUT_FAIL-ON": "new-failure",
            "INPUT_COMMENT": "always",
            "INPUT_MODE": "sweep",
            "INPUT_INSTALL": "pip install -e .\npip install extra\n",
            "INPUT_WORKING-DIRECTORY": "sub",
            "INPUT_WORKERS": "3",
            "INPUT_TIMEOUT": "90s",
            "INPUT_REPORT-PATH": "out/report.json",
            "INPUT_BASE": "origin/main",
            "INPUT_SHARD": "2/4",
            "INPUT_ARTIFACT": "reports",
        }
    )
    assert config.manifest == Path("models/exportwatch.yml")
    assert config.github_token == Secret(TOKEN)
    assert config.targets == ("export", "onnx", "export-strict")
    assert config.device == "cuda"
    assert config.fail_on == "new-failure"
    assert config.comment is CommentMode.ALWAYS
    assert config.mode is Mode.SWEEP
    assert config.install == "pip install -e .\npip install extra"
    assert config.working_directory == Path("sub")
    assert (config.workers, config.timeout) == (3, 90.0)
    assert config.report_path == Path("out/report.json")
    assert (config.base, config.shard, config.artifact) == ("origin/main", "2/4", "reports")


def test_config__reads_the_runner_variables():
    config = ActionConfig.from_env(
        {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": "/tmp/event.json",
            "GITHUB_REPOSITORY": "octo/repo",
            "GITHUB_SHA": "A" * 40,
            "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
            "GITHUB_SERVER_URL": "https://ghe.example.com",
            "GITHUB_RUN_ID": "12345",
            "GITHUB_OUTPUT": "/tmp/out",
            "GITHUB_STEP_SUMMARY": "/tmp/summary",
            "GITHUB_WORKSPACE": "/github/workspace",
        }
    )
    assert config.event_name == "pull_request" and config.event_path == Path("/tmp/event.json")
    assert config.repository == "octo/repo" and config.sha == "a" * 40
    assert config.api_url == "https://ghe.example.com/api/v3"
    assert config.run_url == "https://ghe.example.com/octo/repo/actions/runs/12345"
    assert config.output_path == Path("/tmp/out") and config.summary_path == Path("/tmp/summary")
    assert config.report_file == Path("/github/workspace/exportwatch-report.json")


def test_config__defaults_apply_when_inputs_are_absent_or_empty():
    config = ActionConfig.from_env({"INPUT_TARGETS": "", "INPUT_WORKERS": "", "INPUT_GITHUB-TOKEN": ""})
    assert config == ActionConfig()
    assert config.comment is CommentMode.ON_CHANGE and config.mode is Mode.FULL
    assert config.fail_on == "regression" and config.github_token is None
    assert config.api_url == "https://api.github.com"


def test_config__accepts_underscores_for_hyphenated_inputs_from_other_launchers():
    config = ActionConfig.from_env({"INPUT_GITHUB_TOKEN": TOKEN, "INPUT_FAIL_ON": "never"})
    assert config.github_token == Secret(TOKEN) and config.fail_on == "never"


def test_config__hyphenated_name_wins_over_the_underscore_spelling():
    config = ActionConfig.from_env({"INPUT_FAIL-ON": "never", "INPUT_FAIL_ON": "any-failure"})
    assert config.fail_on == "never"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("INPUT_COMMENT", "sometimes", "input 'comment'"),
        ("INPUT_MODE", "deploy", "input 'mode'"),
        ("INPUT_FAIL-ON", "warnings", "input 'fail-on'"),
        ("INPUT_TARGETS", "export tflite", "input 'targets'"),
        ("INPUT_DEVICE", "tpu", "input 'device'"),
        ("INPUT_WORKERS", "0", "input 'workers'"),
        ("INPUT_WORKERS", "two", "input 'workers'"),
        ("INPUT_TIMEOUT", "-5", "input 'timeout'"),
        ("INPUT_TIMEOUT", "soon", "input 'timeout'"),
        ("INPUT_TIMEOUT", "nan", "input 'timeout'"),
        ("INPUT_SHARD", "5/4", "input 'shard'"),
        ("INPUT_SHARD", "1-4", "input 'shard'"),
        ("INPUT_REPORT-PATH", "  ", "input 'report-path'"),
        ("INPUT_MANIFEST", "", "input 'manifest'"),
        ("INPUT_ARTIFACT", " ", "input 'artifact'"),
        ("INPUT_GITHUB-TOKEN", "token with spaces", "input 'github-token'"),
        ("GITHUB_REPOSITORY", "not a repo", "GITHUB_REPOSITORY"),
        ("GITHUB_SHA", "main", "GITHUB_SHA"),
        ("GITHUB_API_URL", "ftp://example.com", "GITHUB_API_URL"),
        ("GITHUB_RUN_ID", "12a", "GITHUB_RUN_ID"),
    ],
)
def test_config__invalid_value_raises_a_config_error_naming_the_input(variable, value, named):
    with pytest.raises(ActionConfigError) as caught:
        ActionConfig.from_env({variable: value})
    assert named in str(caught.value)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2  # the CLI's exit code 2


def test_config__mode_merge_reads_the_shards_folder():
    config = ActionConfig.from_env({"INPUT_MODE": "merge", "INPUT_SHARDS": "downloaded"})
    assert config.mode is Mode.MERGE and config.shards == Path("downloaded")


def test_config__token_never_shows_in_repr_str_or_format():
    config = ActionConfig.from_env({"INPUT_GITHUB-TOKEN": TOKEN})
    for text in (
        repr(config),
        str(config),
        f"{config}",
        f"{config.github_token}",
        str(config.github_token),
        "%s %r" % (config.github_token, config.github_token),  # noqa: UP031 - logging's spelling
    ):
        assert TOKEN not in text
    assert config.github_token.reveal() == TOKEN


def test_config__a_secret_refuses_to_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(Secret(TOKEN))


def test_config__require_names_the_missing_input_and_how_to_set_it():
    config = ActionConfig.from_env({"INPUT_MODE": "publish"})
    with pytest.raises(ActionConfigError, match=r"github-token.*publish.*github\.token"):
        config.require("github_token")


def test_config__workdir_and_report_file_resolve_against_the_workspace(tmp_path):
    config = ActionConfig.from_env(
        {"GITHUB_WORKSPACE": str(tmp_path), "INPUT_WORKING-DIRECTORY": "pkg", "INPUT_REPORT-PATH": "r.json"}
    )
    assert config.workdir == (tmp_path / "pkg").resolve()
    assert config.report_file == tmp_path / "r.json"  # not under working-directory: upload paths stay simple


def test_config__run_url_is_unknown_without_repository_and_run_id():
    assert ActionConfig.from_env({"GITHUB_RUN_ID": "5"}).run_url is None


def test_config__every_field_has_exactly_one_parser():
    assert set(config_module._SOURCES) == {f.name for f in fields(ActionConfig)}


def test_config__input_names_are_the_documented_action_inputs():
    assert INPUT_NAMES == (
        "manifest",
        "github-token",
        "targets",
        "device",
        "fail-on",
        "allow-errors",
        "fail-on-coverage-drop",
        "coverage-threshold",
        "comment",
        "mode",
        "install",
        "working-directory",
        "workers",
        "timeout",
        "blockers",
        "report-path",
        "base",
        "shard",
        "artifact",
        "shards",
        "cache-dir",
        "baseline-artifact",
        "base-env",
        "dependency-files",
        "html-artifact",
        "max-annotations",
        "fail-on-publish-error",
        "review-suggestions",
    )


def test_config__cache_dir_resolves_against_the_workspace_and_is_off_when_empty(tmp_path):
    env = {"GITHUB_WORKSPACE": str(tmp_path), "INPUT_WORKING-DIRECTORY": "pkg"}
    config = ActionConfig.from_env(env | {"INPUT_CACHE-DIR": ".exportwatch-cache"})
    assert config.cache_path == (tmp_path / ".exportwatch-cache").resolve()
    assert ActionConfig.from_env(env | {"INPUT_CACHE-DIR": " "}).cache_path is None


def test_config__baseline_artifact_defaults_to_the_baseline_workflows_name_and_empty_turns_it_off():
    assert ActionConfig.from_env({}).baseline_artifact == "exportwatch-baseline-{sha}"
    assert ActionConfig.from_env({"INPUT_BASELINE-ARTIFACT": ""}).baseline_artifact is None
    custom = ActionConfig.from_env({"INPUT_BASELINE-ARTIFACT": " main-report "})
    assert custom.baseline_artifact == "main-report"


def test_config__constructor_is_keyword_only():
    with pytest.raises(TypeError):
        ActionConfig(Path("m.yml"))  # type: ignore[misc]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False), ("", False), ("Yes", True)])
def test_config__allow_errors_reads_a_boolean(raw, expected):
    assert ActionConfig.from_env({"INPUT_ALLOW-ERRORS": raw}).allow_errors is expected


def test_config__allow_errors_refuses_anything_else():
    with pytest.raises(ActionConfigError, match="input 'allow-errors'"):
        ActionConfig.from_env({"INPUT_ALLOW-ERRORS": "sometimes"})


def test_secret__handed_over_is_read_only_at_first_use_and_only_once():
    reads: list[int] = []

    def read() -> str:
        reads.append(1)
        return TOKEN

    secret = Secret.handed_over(read)
    config = ActionConfig(github_token=secret)
    config.require("github_token")  # a presence check reads nothing
    assert reads == [] and repr(secret) == "Secret('***')"
    assert secret.reveal() == TOKEN and bool(secret) and reads == [1]


def test_client__keywords_an_older_pygithub_lacks_are_left_out():
    from exportwatch.github.client import supported_keywords

    def older_github(auth=None, base_url=None, retry=None):  # no lazy, no seconds_between_writes
        return None

    options = {"auth": 1, "base_url": 2, "retry": 3, "lazy": True, "seconds_between_writes": 1.0}
    assert supported_keywords(older_github, options) == {"auth": 1, "base_url": 2, "retry": 3}


@pytest.mark.parametrize(("raw", "expected"), [("", True), ("true", True), ("false", False), ("off", False)])
def test_config__review_suggestions_is_on_unless_turned_off(raw, expected):
    assert ActionConfig.from_env({"INPUT_REVIEW-SUGGESTIONS": raw}).review_suggestions is expected
    assert ActionConfig.from_env({}).review_suggestions is True


def test_config__review_suggestions_refuses_anything_else():
    with pytest.raises(ActionConfigError, match="input 'review-suggestions'"):
        ActionConfig.from_env({"INPUT_REVIEW-SUGGESTIONS": "sometimes"})
