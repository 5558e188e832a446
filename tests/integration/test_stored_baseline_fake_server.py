"""The action finds the merge-base's stored baseline through the API, against the local
GitHub-compatible server: by artifact name and commit, downloaded, validated; anything missing
or broken is a notice, never an error.

Every request is checked against GitHub's OpenAPI description by the server; the ``fake``
fixture fails a test that sent anything GitHub would not accept.
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.action import main as action
from exportwatch.github.client import ClientSettings, NoArtifact, build_github
from exportwatch.github.config import ActionConfig, Secret
from exportwatch.report import load_report
from tests.factories import base_report, ok

pytestmark = pytest.mark.quick  # each test < 0.5 s: in the quick lane (tests/README.md)

REPO = "octo/vision"
FAST = ClientSettings(
    retries=2,
    backoff_factor=0.01,
    backoff_max=0.05,
    secondary_rate_wait=0.1,
    retry_after_max=5,
    seconds_between_writes=0,
    timeout=10,
)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> tuple[Path, str]:
    """A repository on a feature branch; returns (path, the merge-base with main)."""
    root = tmp_path / "workspace"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    git("config", "user.email", "dev@example.com", cwd=root)
    git("config", "user.name", "dev", cwd=root)
    (root / "a.txt").write_text("base\n")
    git("add", "-A", cwd=root)
    git("commit", "-qm", "base", cwd=root)
    base = git("rev-parse", "HEAD", cwd=root)
    git("checkout", "-qb", "feature", cwd=root)
    (root / "a.txt").write_text("head\n")
    git("commit", "-qam", "head", cwd=root)
    git("checkout", "-q", "main", cwd=root)
    (root / "a.txt").write_text("main moved on\n")
    git("commit", "-qam", "later on main", cwd=root)
    git("checkout", "-q", "feature", cwd=root)
    return root, base


@pytest.fixture
def fake():
    from tests.fakegithub import FakeGitHub

    with FakeGitHub(prefix="/api/v3") as server:
        yield server
    assert server.violations == [], "requests GitHub's OpenAPI description does not allow"


@pytest.fixture
def settings(fake):
    return replace(FAST, api_url=fake.api_url)


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def stored(sha: str) -> bytes:
    """What exportwatch-baseline.yml uploads: the push run's report of ``sha``."""
    return zipped({"exportwatch-baseline.json": base_report(ok("cnn"), sha=sha).to_json().encode()})


def action_config(fake, workspace: Path, **inputs: str) -> ActionConfig:
    env = {
        "INPUT_GITHUB-TOKEN": fake.token,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": fake.api_url,
        "GITHUB_WORKSPACE": str(workspace),
    }
    return ActionConfig.from_env(env | {f"INPUT_{k.upper()}": v for k, v in inputs.items()})


def lookup(fake, settings, checkout, tmp_path, **inputs: str) -> tuple[Path | None, str]:
    root, _ = checkout
    out = io.StringIO()
    dest = tmp_path / "stored"
    dest.mkdir(exist_ok=True)
    found = action.stored_baseline(
        action_config(fake, root, **inputs), base_ref="main", dest=dest, out=out, settings=settings
    )
    return found, out.getvalue()


# ------------------------------------------------------------------------------ found


def test_stored_baseline__the_merge_bases_artifact_is_found_by_name_and_sha_and_downloaded(
    fake, settings, checkout, tmp_path
):
    _, base = checkout
    name = f"exportwatch-baseline-{base}"
    fake.add_workflow_run(REPO, 500, head_sha=base, head_branch="main", event="push")
    fake.add_artifact(REPO, 500, name, stored(base))
    fake.add_artifact(REPO, 500, name, zipped({"exportwatch-baseline.json": b"{}"}), expired=True)

    found, log = lookup(fake, settings, checkout, tmp_path)

    assert found is not None and found.name == "exportwatch-baseline.json"
    assert load_report(found).git_sha == base
    (listing,) = fake.requests_to("actions/list-artifacts-for-repo")
    assert listing.query["name"] == [name], "asked for the merge-base's name, not main's tip"
    assert len(fake.requests_to("actions/download-artifact")) == 1
    assert f"::notice::exportwatch: stored baseline of {base[:12]}: artifact '{name}' of run 500" in log


def test_stored_baseline__a_custom_name_without_the_sha_is_matched_by_the_runs_commit(
    fake, settings, checkout, tmp_path
):
    _, base = checkout
    fake.add_workflow_run(REPO, 501, head_sha=base, head_branch="main", event="push")
    fake.add_workflow_run(REPO, 502, head_sha="c" * 40, head_branch="main", event="push")
    fake.add_artifact(REPO, 501, "main-report", stored(base))
    fake.add_artifact(REPO, 502, "main-report", stored("c" * 40))  # newer, but another commit

    found, _ = lookup(fake, settings, checkout, tmp_path, **{"baseline-artifact": "main-report"})

    assert found is not None and load_report(found).git_sha == base


def test_fetch_stored_baseline__refuses_a_report_about_another_commit(fake, settings, tmp_path):
    base = "d" * 40
    fake.add_workflow_run(REPO, 503, head_sha=base, head_branch="main", event="push")
    fake.add_artifact(REPO, 503, "b", stored("e" * 40))
    repo = build_github(Secret(fake.token), settings).get_repo(REPO)
    with pytest.raises(NoArtifact, match=r"holds no report of dddddddddddd .*is about eeeeeeeeeeee"):
        action.fetch_stored_baseline(
            repo, name="b", sha=base, token=Secret(fake.token), dest=tmp_path, settings=settings
        )


# ------------------------------------------------------------------------------ not found: a notice


def test_stored_baseline__no_artifact_falls_back_with_a_notice(fake, settings, checkout, tmp_path):
    _, base = checkout
    found, log = lookup(fake, settings, checkout, tmp_path)
    assert found is None
    assert f"::notice::exportwatch: no stored baseline of {base[:12]}" in log
    assert f"no artifact named 'exportwatch-baseline-{base}'" in log
    assert "::error" not in log and "::warning" not in log


def test_stored_baseline__an_expired_artifact_falls_back_with_a_notice(fake, settings, checkout, tmp_path):
    _, base = checkout
    fake.add_workflow_run(REPO, 504, head_sha=base, head_branch="main", event="push")
    fake.add_artifact(REPO, 504, f"exportwatch-baseline-{base}", stored(base), expired=True)
    found, log = lookup(fake, settings, checkout, tmp_path)
    assert found is None and "none usable (expired)" in log
    assert not fake.requests_to("actions/download-artifact")


@pytest.mark.parametrize(
    ("status", "shown"),
    [(404, "404"), (403, "the token needs actions: read"), (500, "")],
)
def test_stored_baseline__api_errors_fall_back_with_a_notice(
    fake, settings, checkout, tmp_path, status, shown
):
    fake.inject("GET", r"/actions/artifacts$", status, times=100)
    found, log = lookup(fake, settings, checkout, tmp_path)
    assert found is None
    assert "::notice::exportwatch: no stored baseline of" in log and shown in log
    assert fake.token not in log


def test_stored_baseline__an_unreachable_api_falls_back_with_a_notice(checkout, tmp_path):
    root, _ = checkout
    dead = replace(FAST, api_url="http://127.0.0.1:9", timeout=2)  # the discard port: refused
    out = io.StringIO()
    config = ActionConfig.from_env(
        {
            "INPUT_GITHUB-TOKEN": "ghs_secret",
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": dead.api_url,
            "GITHUB_WORKSPACE": str(root),
        }
    )
    assert action.stored_baseline(config, base_ref="main", dest=tmp_path, out=out, settings=dead) is None
    assert "::notice::exportwatch: no stored baseline of" in out.getvalue()
    assert "ghs_secret" not in out.getvalue()


def test_stored_baseline__a_report_that_fails_the_schema_falls_back_with_a_notice(
    fake, settings, checkout, tmp_path
):
    _, base = checkout
    fake.add_workflow_run(REPO, 505, head_sha=base, head_branch="main", event="push")
    bad = zipped({"exportwatch-baseline.json": b'{"schema_version": 1, "jobs": "trust me"}'})
    fake.add_artifact(REPO, 505, f"exportwatch-baseline-{base}", bad)
    found, log = lookup(fake, settings, checkout, tmp_path)
    assert found is None and "does not match the report schema" in log


def test_stored_baseline__is_not_looked_up_when_turned_off_or_without_a_token(
    fake, settings, checkout, tmp_path
):
    assert lookup(fake, settings, checkout, tmp_path, **{"baseline-artifact": ""}) == (None, "")
    root, _ = checkout
    no_token = ActionConfig.from_env({"GITHUB_REPOSITORY": REPO, "GITHUB_WORKSPACE": str(root)})
    out = io.StringIO()
    assert (
        action.stored_baseline(no_token, base_ref="main", dest=tmp_path, out=out, settings=settings) is None
    )
    assert fake.requests == []


def test_stored_baseline__without_a_merge_base_is_left_to_compare_to_report(fake, settings, tmp_path):
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    out = io.StringIO()
    config = action_config(fake, not_a_repo)
    assert action.stored_baseline(config, base_ref="main", dest=tmp_path, out=out, settings=settings) is None
    assert fake.requests == [] and "::error" not in out.getvalue()
