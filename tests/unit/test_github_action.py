"""The action's pure decisions (base, head commit, sweep command, annotations) and its no-torch rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from exportwatch.action import decide
from exportwatch.action import main as action
from exportwatch.diff import diff_reports, gate
from exportwatch.github.config import ActionConfig, ActionConfigError
from exportwatch.github.event import Event
from exportwatch.report import base_report_path
from tests.factories import base_report, failing, job, ok, report, sub

PR = Event(name="pull_request", pr_number=7, base_sha="b" * 40, head_sha="h" * 40, base_ref="main")


def config(**inputs: str) -> ActionConfig:
    return ActionConfig.from_env({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})


def test_resolve_base__prefers_the_input_then_the_pull_requests_base():
    assert decide.resolve_base(config(base="v1.0"), PR) == (decide.BaseSource.INPUT, "v1.0")
    assert decide.resolve_base(config(), PR) == (decide.BaseSource.PULL_REQUEST, "b" * 40)
    assert decide.resolve_base(config(), Event(name="push", head_sha="a" * 40)) == (
        decide.BaseSource.NONE,
        None,
    )


def test_head_commit__is_the_prs_head_not_the_merge_commit_the_runner_checked_out():
    merge = ActionConfig.from_env({"GITHUB_SHA": "c" * 40})
    assert decide.head_commit(merge, PR) == "h" * 40
    assert decide.head_commit(merge, Event(name="workflow_dispatch")) == "c" * 40


def test_base_report_path__sits_beside_the_head_report_and_matches_the_upload_glob():
    assert base_report_path(Path("out/exportwatch-report.json")) == Path("out/exportwatch-report.base.json")
    assert Path("exportwatch-report.base.json").match("exportwatch-report*.json")


def test_marker_key__default_manifest_keeps_the_plain_marker_and_others_get_their_own():
    assert decide.marker_key(config()) is None
    assert decide.marker_key(config(manifest="gpu/exportwatch.yml")) == "gpu/exportwatch.yml"


def test_sweep_command__passes_only_the_inputs_that_are_set():
    plain = decide.sweep_command(config(), manifest=Path("m.yml"), output=Path("r.json"))
    assert plain == [sys.executable, "-m", "exportwatch", "sweep", "m.yml", "-o", "r.json"]
    full = decide.sweep_command(
        config(targets="export onnx", device="cpu", workers="2", timeout="30", shard="1/2"),
        manifest=Path("m.yml"),
        output=Path("r.json"),
    )
    assert full[7:] == [
        "--target", "export", "--target", "onnx", "--device", "cpu", "--workers", "2",
        "--timeout", "30", "--shard", "1/2",
    ]  # fmt: skip


def test_compare_command__asks_compare_for_both_reports_and_leaves_the_gate_to_the_action():
    cmd = decide.compare_command(
        config(targets="onnx", workers="1"), manifest=Path("m.yml"), base_ref="b" * 40,
        output=Path("r.json"), base_output=Path("r.base.json"), rendered=Path("/tmp/c.json"),
    )  # fmt: skip
    assert cmd[:5] == [sys.executable, "-m", "exportwatch", "compare", "m.yml"]
    assert cmd[5:] == [
        "--base", "b" * 40, "-o", "r.json", "--base-output", "r.base.json", "--fail-on", "never",
        "--format", "json", "--rendered", "/tmp/c.json", "--target", "onnx", "--workers", "1",
    ]  # fmt: skip


def test_compare_command__passes_the_stored_baseline_and_the_cache_directory(tmp_path):
    cfg = ActionConfig.from_env({"GITHUB_WORKSPACE": str(tmp_path), "INPUT_CACHE-DIR": ".exportwatch-cache"})
    cmd = decide.compare_command(
        cfg, manifest=Path("m.yml"), base_ref="main", output=Path("r.json"),
        base_output=Path("r.base.json"), rendered=Path("c.json"), baseline=Path("/tmp/stored/r.json"),
    )  # fmt: skip
    assert cmd[cmd.index("--baseline") + 1] == "/tmp/stored/r.json"
    # absolute: compare runs in working-directory, the cache path is relative to the workspace
    assert cmd[cmd.index("--cache-dir") + 1] == str((tmp_path / ".exportwatch-cache").resolve())
    plain = decide.compare_command(
        config(), manifest=Path("m.yml"), base_ref="main", output=Path("r.json"),
        base_output=Path("r.base.json"), rendered=Path("c.json"),
    )  # fmt: skip
    assert "--baseline" not in plain and "--cache-dir" not in plain


def test_baseline_artifact_name__puts_the_commit_where_the_template_says():
    assert decide.baseline_artifact_name("exportwatch-baseline-{sha}", "a" * 40) == (
        "exportwatch-baseline-" + "a" * 40
    )
    assert decide.baseline_artifact_name("main-report", "a" * 40) == "main-report"


BASE = "b" * 40


def listed_artifact(id: int, *, name: str = "exportwatch-baseline", sha: str = BASE, **overrides) -> dict:
    """An artifact as ``GET /repos/{o}/{r}/actions/artifacts`` lists it."""
    run = {"id": id * 10, "repository_id": 1, "head_repository_id": 1, "head_sha": sha, "head_branch": "main"}
    run |= overrides.pop("workflow_run", {})
    return {
        "id": id, "name": name, "size_in_bytes": 100, "expired": False, "workflow_run": run,
        "archive_download_url": f"https://api.github.com/repos/o/r/actions/artifacts/{id}/zip",
    } | overrides  # fmt: skip


def test_choose_baseline_artifact__takes_the_newest_run_on_the_commit_in_this_repository():
    listed = [listed_artifact(1), listed_artifact(3), listed_artifact(2)]
    ref, origin = decide.choose_baseline_artifact(listed, name="exportwatch-baseline", sha=BASE)
    assert ref is not None and ref.id == 3 and ref.download_url.endswith("/3/zip")
    assert origin == "artifact 'exportwatch-baseline' of run 30"


@pytest.mark.parametrize(
    ("artifact", "problem"),
    [
        (listed_artifact(9, expired=True), "expired"),
        (listed_artifact(9, sha="c" * 40), "from a run on another commit"),
        (listed_artifact(9, workflow_run={"head_repository_id": 666}), "from a run on a fork"),
        (listed_artifact(9, workflow_run={"repository_id": None}), "from a run on a fork"),
        (listed_artifact(9, name="exportwatch-baseline-old"), "another name"),
    ],
)
def test_choose_baseline_artifact__refuses_expired_other_commits_and_forks_runs(artifact, problem):
    assert decide.baseline_artifact_problem(artifact, name="exportwatch-baseline", sha=BASE) == problem
    ref, why = decide.choose_baseline_artifact(
        [artifact, listed_artifact(1, expired=True)], name="exportwatch-baseline", sha=BASE
    )
    assert ref is None and problem in why and "2 artifact(s) named 'exportwatch-baseline'" in why


def test_choose_baseline_artifact__says_when_there_is_none_at_all():
    assert decide.choose_baseline_artifact([], name="x", sha=BASE) == (None, "no artifact named 'x'")


def test_scrubbed_env__hides_the_tokens_from_the_users_code():
    env = {
        "INPUT_GITHUB-TOKEN": "t",
        "GITHUB_TOKEN": "t",
        "GH_TOKEN": "t",
        "ACTIONS_RUNTIME_TOKEN": "t",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
        "PATH": "/bin",
        "INPUT_MODE": "full",
    }
    assert action.scrubbed_env(env) == {"PATH": "/bin", "INPUT_MODE": "full"}


def test_annotations_for__puts_the_gating_failure_on_the_users_line_first():
    # "old" fails elsewhere (its own origin and fingerprint), and did on base too: not gating.
    base = base_report(ok("cnn"), failing("old", origin_path="head.1"))
    head = report(failing("cnn"), failing("old", origin_path="head.1"))
    changes = diff_reports(base, head)
    result = gate(changes, "regression")
    annotations = decide.annotations_for(changes, result)
    assert len(annotations) == 2, "one distinct failure each: the regression and the old failure"
    first = annotations[0]
    assert (first.path, first.start_line, first.level) == ("models/cnn.py", 42, "failure")
    assert "cnn" in first.title and "regression" in first.title
    assert "torch.cond" in first.message
    assert [a.level for a in annotations[1:]] == ["warning"]


def test_annotations_for__leave_library_frames_out_and_the_comment_marks_them():
    from dataclasses import replace

    from exportwatch.render import RenderContext, render

    regressed = failing("llama")
    origin = regressed.submodules[-1]
    regressed.submodules[-1] = replace(
        origin,
        user_frame=replace(
            origin.user_frame, path="transformers/models/llama/modeling_llama.py", library="transformers"
        ),
    )
    changes = diff_reports(base_report(ok("llama")), report(regressed))
    result = gate(changes, "regression")
    assert decide.annotations_for(changes, result) == []  # nothing of the repository to annotate
    comment = render(changes, result, "markdown", context=RenderContext(repository="o/r", sha="a" * 40))
    assert "`transformers/models/llama/modeling_llama.py:42`" in comment
    assert "library code: `transformers`" in comment
    assert "blob/" not in comment  # no link into the repository for installed code


def test_check_conclusion__follows_the_gate():
    changes = diff_reports(base_report(ok("cnn")), report(failing("cnn")))
    assert decide.check_conclusion(gate(changes, "regression")) == "failure"
    assert decide.check_conclusion(gate(changes, "never")) == "success"


def test_shard__is_refused_outside_mode_sweep_with_a_pointer_to_merge(tmp_path):
    (tmp_path / "exportwatch.yml").write_text("version: 1\nmodels: []\n")
    env = {"GITHUB_WORKSPACE": str(tmp_path)}
    full = ActionConfig.from_env(env | {"INPUT_SHARD": "1/2", "INPUT_MODE": "full"})
    with pytest.raises(ActionConfigError, match="exportwatch merge"):
        action._checked_manifest(full)
    sweep = ActionConfig.from_env(env | {"INPUT_SHARD": "1/2", "INPUT_MODE": "sweep"})
    assert action._checked_manifest(sweep) == tmp_path / "exportwatch.yml"


def test_log_models__untrusted_text_cannot_issue_workflow_commands():
    import io
    import re

    message = "boom\n::error file=SECURITY.md::approved"
    hostile = report(job("m", "::warning title=x::all good", sub("", "fail", message=message)))
    changes = diff_reports(None, hostile)
    out = io.StringIO()
    action.log_models(changes, out=out)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    token = lines[start].split("::")[2]
    end = lines.index(f"::{token}::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    # every report-derived line sits between stop and resume, and none spans two lines
    assert all(not line.lstrip().startswith("::") for line in lines[start + 1 : end])
    assert any("approved" in line for line in lines[start + 1 : end])


def test_log_models__a_hostile_model_name_cannot_break_out_of_its_group_title():
    import io

    name = "m\n::error file=SECURITY.md::approved\x1b]0;t\x07 ##[warning]x"
    changes = diff_reports(None, report(job(name, "cpu-model", sub("", "fail", message="x"))))
    out = io.StringIO()
    action.log_models(changes, out=out)
    lines = out.getvalue().splitlines()
    (title,) = [line for line in lines if line.startswith("::group::")]
    assert title.startswith("::group::m ::error") and "\x1b" not in title and "##[" not in title
    assert not any(line.startswith("::error") for line in lines), "no line of the name is a command"


def test_annotations_for__a_path_outside_the_repository_is_dropped_not_annotated():
    from dataclasses import replace

    regressed = failing("cnn")
    origin = regressed.submodules[-1]
    regressed.submodules[-1] = replace(origin, user_frame=replace(origin.user_frame, path="../../etc/passwd"))
    changes = diff_reports(base_report(ok("cnn")), report(regressed))
    (annotation,) = decide.annotations_for(changes, gate(changes, "regression"))
    assert annotation.path is None
    import io

    out = io.StringIO()
    action.log_annotations([annotation], out=out)
    assert out.getvalue().startswith("::error title=") and "passwd" not in out.getvalue()


def test_outputs__say_what_a_torch_upgrade_did(tmp_path):
    from dataclasses import replace

    def stamped(j):
        return replace(j, dependencies={"models/net.py": "same"}, content_hash="h")

    base = base_report(stamped(ok("cnn")), stamped(ok("vit")), torch="2.13.0")
    head = report(stamped(failing("cnn")), stamped(ok("vit")), torch="2.14.1")
    outputs = decide.StepOutputs.of("failed", diff_reports(base, head)).outputs()
    assert outputs["environment-change"] == "torch 2.13.0 → 2.14.1: 1 regression in 1 model"
    assert outputs["upgrade-regressions"] == 1
    same = decide.StepOutputs.of("passed", diff_reports(base_report(ok("cnn")), report(ok("cnn")))).outputs()
    assert (same["environment-change"], same["upgrade-regressions"]) == ("", 0)


def test_compare_command__passes_the_base_environment_inputs(tmp_path):
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "INPUT_BASE-ENV": "never",
        "INPUT_DEPENDENCY-FILES": "reqs/a.txt, uv.lock",
    }
    config = ActionConfig.from_env(env)
    cmd = decide.compare_command(
        config, manifest=Path("m.yml"), base_ref="main", output=Path("h.json"), base_output=Path("b.json"),
        rendered=Path("r.json"),
    )  # fmt: skip
    assert cmd[cmd.index("--base-env") + 1] == "never"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--dependency-file"] == ["reqs/a.txt", "uv.lock"]
    default = decide.compare_command(
        ActionConfig.from_env({"GITHUB_WORKSPACE": str(tmp_path), "INPUT_BASE-ENV": ""}),
        manifest=Path("m.yml"), base_ref="main", output=Path("h.json"), base_output=Path("b.json"),
        rendered=Path("r.json"),
    )  # fmt: skip
    assert "--base-env" not in default and "--dependency-file" not in default
    with pytest.raises(Exception, match="base-env"):
        ActionConfig.from_env({"GITHUB_WORKSPACE": str(tmp_path), "INPUT_BASE-ENV": "sometimes"})
