"""Thin wrappers around the ``git`` command line (no torch, no network)."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Run ``git ARGS`` in ``cwd`` and return its stripped stdout."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {' '.join(args)}: {exc}") from exc
    if check and done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def toplevel(path: Path) -> Path | None:
    """The repository containing ``path``, or None outside git."""
    try:
        out = git("rev-parse", "--show-toplevel", cwd=path)
    except GitError:
        return None
    return Path(out) if out else None


def head_sha(path: Path) -> str | None:
    try:
        return git("rev-parse", "HEAD", cwd=path) or None
    except GitError:
        return None
