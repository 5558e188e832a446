"""CI's main leg (.ci/readme-leg) run for real on a stand-in repository: a fresh venv, the
README's commands run verbatim inside it with the browser tier required, mypy after them, and
any command's failure failing the leg. The stand-in's README commands only record where they
ran; its .ci/browser and mypy are stubs (the real ones install Chromium and check the package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.side_by_side import run_side_by_side

README = """\
# stand-in

```bash
# 1. Run the main job:
echo "1 $(python -c 'import sys; print(sys.prefix)') $EXPORTWATCH_REQUIRE_BROWSER" >> ran
# 2. Run the tests:
echo 2 >> ran && {second}
```

```bash
# 1. not CI's: only the first block counts
echo wrong >> ran
```
"""


def stand_in(root: Path, *, second: str) -> Path:
    (root / ".ci").mkdir(parents=True)
    for name in ("readme-leg", "readme-commands.py"):
        shutil.copy2(REPO_ROOT / ".ci" / name, root / ".ci" / name)
    browser = root / ".ci" / "browser"
    browser.write_text('#!/usr/bin/env bash\necho "browser $VIRTUAL_ENV" >> ran\n')
    browser.chmod(0o755)
    (root / "mypy").mkdir()
    (root / "mypy" / "__main__.py").write_text(
        "import sys\nopen('ran', 'a').write(f'mypy {sys.prefix}\\n')\n"
    )
    (root / "README.md").write_text(README.format(second=second))
    return root


def leg(root: Path, venv: Path) -> list[str]:
    return [str(root / ".ci" / "readme-leg"), str(venv)]


@pytest.fixture(scope="module")
def legs(tmp_path_factory) -> dict[str, tuple[Path, Path, subprocess.CompletedProcess[str]]]:
    """The leg run on two stand-ins side by side (each makes a venv: seconds of pip's own
    install): name → (the stand-in, its venv, the finished leg)."""
    passing, failing = tmp_path_factory.mktemp("passing"), tmp_path_factory.mktemp("failing")
    roots = {
        "passing": stand_in(passing / "repo", second="true"),
        "failing": stand_in(failing / "repo", second="exit 3"),
    }
    venvs = {"passing": passing / "venv", "failing": failing / "venv"}
    (venvs["passing"] / "bin").mkdir(parents=True)
    (venvs["passing"] / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")  # a stale venv: never reused
    # .ci/readme-leg changes to its repository's root itself
    done = run_side_by_side({name: leg(roots[name], venvs[name]) for name in roots}, timeout=300)
    return {name: (roots[name], venvs[name], done[name]) for name in roots}


def test_readme_leg__runs_the_readmes_commands_in_a_fresh_venv_then_mypy_there(legs):
    root, venv, done = legs["passing"]
    assert done.returncode == 0, done.stderr
    ran = (root / "ran").read_text().splitlines()
    assert ran == [f"browser {venv}", f"1 {venv} 1", "2", f"mypy {venv}"]
    assert "== README: echo 2 >> ran && true" in done.stdout


def test_readme_leg__a_readme_command_that_fails_fails_the_leg_with_its_status(legs):
    root, _, done = legs["failing"]
    assert done.returncode == 3
    assert "the README's command failed (exit status 3): echo 2 >> ran && exit 3" in done.stderr
    assert (root / "ran").read_text().splitlines()[-1] == "2"  # mypy never ran
