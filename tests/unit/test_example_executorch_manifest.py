"""config/example.executorch.yml, read without ExecuTorch: it parses and validates, lists the
``executorch`` target on every model, sets a per-model coverage threshold, and the README shows
the command that sweeps it (outside the first bash block: CI's fresh venv has no extra). The
sweep itself runs where the extra is (tests/integration/test_targets_executorch.py)."""

from __future__ import annotations

import importlib.util
import json

import jsonschema
import yaml

from exportwatch.manifest import load_manifest
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "config" / "example.executorch.yml"
COMMAND = "exportwatch sweep config/example.executorch.yml"


def test_example__parses_lists_executorch_everywhere_and_sets_a_threshold():
    manifest = load_manifest(EXAMPLE)
    assert {spec.name for spec in manifest.models} == {"tiny_cnn", "age_estimator"}
    assert all(spec.targets == ["export", "executorch"] for spec in manifest.models)
    assert manifest.model("age_estimator").coverage_threshold == 10.0
    assert manifest.model("age_estimator").executorch_backend == "xnnpack"


def test_example__validates_against_the_schema():
    schema = json.loads((REPO_ROOT / "config" / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))


def test_readme__shows_the_command_but_not_among_the_commands_ci_runs_without_the_extra():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"pip install torch==2.13.0 -e '.[executorch]' && {COMMAND}" in readme
    spec = importlib.util.spec_from_file_location("readme_commands", REPO_ROOT / ".ci" / "readme-commands.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert not any("executorch" in command for command in script.readme_commands(readme))
    assert "exportwatch sweep config/example.exportwatch.yml" in script.readme_commands(readme)[0]


def test_main_example__does_not_ask_for_executorch():
    """The README's first command sweeps it in a venv without the extra: asking for the target
    there would stop that command with a usage error."""
    manifest = load_manifest(REPO_ROOT / "config" / "example.exportwatch.yml")
    assert all("executorch" not in spec.targets for spec in manifest.models)
