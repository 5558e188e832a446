"""The runner's fact about users: the Docker action runs as root, the job's later steps (upload,
cache save, the user's own scripts) as the runner user. Every file the action leaves behind must
be readable by that other user: created with the umask's mode (0644 under 022), never 0600.

Runs the entrypoint as root (as the container does) and reads each file back as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.end_to_end.test_entrypoint import REPO, make_checkout, pr_payload, run_action
from tests.fakegithub import FakeGitHub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the Docker action writes as root"),
    pytest.mark.skipif(
        shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to read as nobody"
    ),
]

NOBODY = 65534


def as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path sits under a 0700 folder)."""
    old_umask = os.umask(0o022)  # the container's umask
    path = Path(tempfile.mkdtemp(prefix="exportwatch-modes-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        os.umask(old_umask)
        shutil.rmtree(path, ignore_errors=True)


def written(root: Path, before: set[Path]) -> list[Path]:
    """Every file and folder under ``root`` that was not there before, git's own aside."""
    return sorted(p for p in root.rglob("*") if p not in before and ".git" not in p.relative_to(root).parts)


def test_runner_file_modes__everything_the_action_writes_as_root_is_readable_by_another_user(shared_dir):
    checkout = make_checkout(shared_dir / "workspace")
    before = set(checkout.path.rglob("*"))
    with FakeGitHub() as fake:
        fake.add_pull(REPO, 7, head_sha=checkout.head, base_sha=checkout.base)
        run = run_action(
            checkout.path, fake, event_name="pull_request", payload=pr_payload(checkout), sha=checkout.head,
            inputs={"workers": "1", "cache-dir": ".exportwatch-cache"}, token=fake.token,
        )  # fmt: skip
    assert run.done.returncode == 1, run.log  # the fixture's head has a regression
    files = written(checkout.path, before)
    runner_files = sorted(shared_dir.glob("runner-*/*"))  # GITHUB_OUTPUT, GITHUB_STEP_SUMMARY
    names = {p.relative_to(checkout.path).as_posix() for p in files}
    assert {"exportwatch-report.json", "exportwatch-report.base.json"} <= names
    assert any(n.endswith(".jsonl") for n in names), names
    assert any(n.startswith(".exportwatch-cache/") and n.endswith(".json") for n in names), names
    assert {p.name for p in runner_files} >= {"output", "summary.md"}

    unreadable = []
    for path in [*files, *runner_files]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            done, expected = as_nobody("ls", str(path)), 0o755
        else:
            done, expected = as_nobody("cat", str(path)), 0o644
        if done.returncode != 0 or mode != expected:
            unreadable.append(
                f"{path.relative_to(shared_dir)}: mode {mode:o} (want {expected:o}) {done.stderr}"
            )
    assert unreadable == [], "\n".join(unreadable)
