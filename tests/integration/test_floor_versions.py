"""The dependency floors in pyproject.toml are the versions `.ci/lowest-versions` installs and
tests: it derives them from pyproject.toml, so a floor cannot be raised or lowered untested."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.quick
tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ (as .ci/lowest-versions)")

SCRIPT = REPO_ROOT / ".ci" / "lowest-versions"
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def constraints(root: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / ".ci" / "lowest-versions"), "--print-constraints"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def pins(text: str) -> dict[str, str]:
    return dict(line.split("==") for line in text.split())


def test_floor_versions__the_script_pins_every_runtime_dependency_to_its_pyproject_floor():
    done = constraints()
    assert done.returncode == 0, done.stderr
    pinned = pins(done.stdout)
    runtime = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["onnx"],
               *PROJECT["optional-dependencies"]["github"]]  # fmt: skip
    for text in runtime:
        req = Requirement(text)
        if req.name == "torch":
            continue
        (floor,) = [s.version for s in req.specifier if s.operator == ">="]
        assert pinned.pop(req.name.lower()) == floor, text
    assert pinned.pop("torch") == "2.13.0"
    assert set(pinned) == {"pytest", "markdown-it-py", "hypothesis"}, "only the dev tools the tests import"


def test_floor_versions__urllib3_is_a_direct_dependency_of_the_github_extra():
    """The client passes urllib3's own ``Retry`` options: urllib3's floor is ours to declare."""
    names = {Requirement(r).name.lower() for r in PROJECT["optional-dependencies"]["github"]}
    assert {"pygithub", "urllib3", "requests", "jsonschema"} <= names


def test_floor_versions__torch_is_the_first_ci_legs_torch_and_every_test_path_exists():
    script = SCRIPT.read_text(encoding="utf-8")
    (torch,) = re.findall(r"^TORCH_VERSION=(\S+)$", script, flags=re.MULTILINE)
    assert f"torch=={torch} " in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    paths = re.findall(r"\btests/\S+\.py\b", script)
    assert len(paths) > 10
    assert [p for p in paths if not (REPO_ROOT / p).is_file()] == []


def test_floor_versions__a_dependency_without_a_floor_is_refused_naming_pyproject(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy2(SCRIPT, tmp_path / ".ci" / "lowest-versions")
    text = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(re.sub(r'"requests>=[^"]*"', '"requests"', text))
    done = constraints(tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip() == "pyproject.toml: 'requests' has no '>=' floor to test"
