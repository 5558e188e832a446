"""Every git call exportwatch makes: thin wrappers around the ``git`` command line (no torch; the
network only for an explicit fetch)."""

from __future__ import annotations

import contextlib
import logging
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from exportwatch.errors import InternalError, UsageError

log = logging.getLogger(__name__)


class GitError(InternalError, RuntimeError):
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


def working_files(root: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files under ``root``, as git sees them; None outside git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted({p for p in out.decode("utf-8", "surrogateescape").split("\0") if p})


def try_git(*args: str, cwd: Path) -> str | None:
    """``git ARGS``'s output, or None when it fails (logged at debug level)."""
    try:
        return git(*args, cwd=cwd)
    except GitError as exc:
        log.debug("%s", exc)
        return None


def resolve_commit(repo_root: Path, ref: str) -> str | None:
    return try_git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo_root) or None


def is_shallow(repo_root: Path) -> bool:
    return try_git("rev-parse", "--is-shallow-repository", cwd=repo_root) == "true"


def read_file_at(repo_root: Path, commit: str, path: str) -> bytes | None:
    """``path`` (repo-relative) as it is in ``commit``, without a checkout; None if absent."""
    tree = GitTree(repo_root, commit)
    return tree.read(path)


@contextlib.contextmanager
def base_worktree(repo_root: Path, commit: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``commit`` in a temporary directory, removed (and pruned)
    on the way out, also when the body raises."""
    tmp = Path(tempfile.mkdtemp(prefix="exportwatch-base-"))
    tree = tmp / "tree"
    try:
        git("worktree", "add", "--detach", str(tree), commit, cwd=repo_root)
        yield tree
    finally:
        try_git("worktree", "remove", "--force", str(tree), cwd=repo_root)
        shutil.rmtree(tmp, ignore_errors=True)
        try_git("worktree", "prune", cwd=repo_root)


class GitTree:
    """The files of ``commit``, read with ``git ls-tree`` / ``git cat-file`` (no checkout)."""

    def __init__(self, repo_root: Path, commit: str) -> None:
        self.repo_root = Path(repo_root)
        self.commit = commit
        out = git_bytes("ls-tree", "-r", "-z", "--full-tree", commit, cwd=self.repo_root)
        self._blobs: dict[str, str] = {}
        for record in out.decode("utf-8", "surrogateescape").split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, sha = meta.split()
            if kind == "blob" and mode != "120000":  # symlinks are not followed
                self._blobs[path] = sha
        self._dirs = {posixpath.dirname(p) for p in self._blobs}
        for d in list(self._dirs):
            while d:
                d = posixpath.dirname(d)
                self._dirs.add(d)
        self._content: dict[str, bytes] = {}

    def read(self, rel: str) -> bytes | None:
        sha = self._blobs.get(rel)
        if sha is None:
            return None
        if rel not in self._content:
            self._content[rel] = git_bytes("cat-file", "blob", sha, cwd=self.repo_root)
        return self._content[rel]

    def is_file(self, rel: str) -> bool:
        return rel in self._blobs

    def is_dir(self, rel: str) -> bool:
        return rel in self._dirs

    def files(self) -> list[str]:
        return sorted(self._blobs)


def git_bytes(*args: str, cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


#: History fetched per step while looking for the merge-base in a shallow checkout.
DEEPEN_STEPS = (50, 200, 1000)


class MergeBaseError(UsageError):
    """No merge-base can be had (unknown ref, unrelated histories); exit code 2."""


class ShallowCheckoutError(MergeBaseError):
    """The history needed for the merge-base is not in the (shallow) checkout."""


def shallow_message(ref: str) -> str:
    return (
        f"the checkout is too shallow to find the merge-base of {ref} and HEAD; "
        "use `actions/checkout` with `fetch-depth: 0`"
    )


def _fetch_name(ref: str) -> str:
    """What to ask ``origin`` for: ``origin/main`` → ``main``."""
    return ref.removeprefix("refs/remotes/origin/").removeprefix("origin/")


def find_merge_base(
    repo_root: Path, ref: str, *, fetch: bool = True, deepen_steps: tuple[int, ...] = DEEPEN_STEPS
) -> str:
    """The merge-base of ``ref`` and HEAD, fetching history from ``origin`` when needed."""
    commit = resolve_commit(repo_root, ref)
    if commit is None and fetch:
        log.info("%s is not in the checkout; fetching it from origin", ref)
        if (
            try_git(
                "fetch", "--no-tags", f"--depth={deepen_steps[0]}", "origin", _fetch_name(ref), cwd=repo_root
            )
            is not None
        ):
            commit = resolve_commit(repo_root, "FETCH_HEAD")
    if commit is None:
        if is_shallow(repo_root):
            raise ShallowCheckoutError(shallow_message(ref))
        fetched = " and could not be fetched from origin" if fetch else ""
        raise MergeBaseError(f"base {ref!r} is not a commit in this checkout{fetched}")
    found = try_git("merge-base", commit, "HEAD", cwd=repo_root)
    if found:
        return found
    if fetch and is_shallow(repo_root):
        for step in deepen_steps:
            log.info("no merge-base of %s and HEAD yet; deepening the history by %d commits", ref, step)
            if try_git("fetch", "--no-tags", f"--deepen={step}", "origin", commit, cwd=repo_root) is None:
                break
            found = try_git("merge-base", commit, "HEAD", cwd=repo_root)
            if found:
                return found
            if not is_shallow(repo_root):
                break
    if is_shallow(repo_root):
        raise ShallowCheckoutError(shallow_message(ref))
    raise MergeBaseError(f"{ref} and HEAD have no common ancestor (unrelated histories)")
