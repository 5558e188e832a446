"""Build the merge-base's environment and sweep there: a thin adapter around venv, pip and a
``python -m exportwatch sweep`` subprocess.

The environment is a venv that sees every package of the interpreter exportwatch runs in (torch
above all), so only what the base pins differently is installed: ``--system-site-packages``
when that interpreter sees the system's packages, and when it is itself a virtual environment,
a ``.pth`` file that adds its site-packages as *site* directories (``site.addsitedir``), so
their own ``.pth`` files run too: an editable install is a ``.pth`` import hook, invisible
from a plain path entry. The venv's own packages come first, so the base's pins win. The
running exportwatch package (this very copy) is put first on ``PYTHONPATH`` through a
directory holding only a link to it, so the base sweep runs the same exportwatch without
seeing anything else from where it is installed.

Venvs are kept per install plan under a directory (``--base-env-dir``); a venv whose install
did not finish is rebuilt. pip's output goes to ``install.log`` beside the venv and to the
debug log. Every failure is a :class:`BaseEnvError` whose message is one line for the user.
Must not import torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import exportwatch
from exportwatch.baseline.environment import InstallPlan
from exportwatch.report import Report, ReportError, load_report
from exportwatch.sweep.options import SweepOptions

log = logging.getLogger(__name__)

READY = ".exportwatch-ready"  # written once the install finished: the venv may be reused
INSTALL_TIMEOUT_S = 1800
#: The directory holding the running exportwatch package.
OWN_ROOT = Path(exportwatch.__file__).resolve().parents[1]

#: The importable version of each distribution: the first one on ``sys.path`` (a venv's own
#: copy shadows the inherited one). Run in the venv's interpreter, and in-process for HEAD.
_PACKAGES_SCRIPT = """
import json
from importlib import metadata
found = {}
for dist in metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    if name:
        found.setdefault(name, dist.version)
print(json.dumps(found))
"""


class BaseEnvError(Exception):
    """The base environment could not be built or could not sweep; the message says why."""


@dataclass(frozen=True, kw_only=True)
class BaseEnv:
    root: Path
    python: Path
    reused: bool  # found ready in the cache directory
    log_path: Path


def installed_packages(python: str | Path | None = None) -> dict[str, str]:
    """Installed distributions (normalised name → version) of ``python``, or of this process."""
    done = subprocess.run(
        [str(python or sys.executable), "-c", _PACKAGES_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        return {}
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        return {}


def env_key(plan: InstallPlan) -> str:
    """A venv serves one install plan on top of one interpreter and one inherited environment."""
    payload = [
        plan.digest,
        str(Path(sys.executable).resolve()),
        sys.version,
        _inherited_site(),
        _sees_system_site(),
    ]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def _inherited_site() -> list[str]:
    """This virtual environment's own site-packages (none outside one: ``--system-site-packages``
    inherits the system's)."""
    if sys.prefix == sys.base_prefix:
        return []
    return [p for p in site.getsitepackages([sys.prefix]) if Path(p).is_dir()]


def _sees_system_site() -> bool:
    """Whether this interpreter sees the system's site-packages: outside a venv, or in one made
    with ``--system-site-packages`` (``site`` then lists the base prefix among its prefixes)."""
    return sys.prefix == sys.base_prefix or sys.base_prefix in site.PREFIXES


def inheriting_pth(site_dirs: Sequence[str]) -> str:
    """A ``.pth`` file's text that adds ``site_dirs`` as site directories: their ``.pth`` files
    (editable installs, nested venvs made here) are processed, unlike a plain path line's."""
    return "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs)


def create_venv(root: Path, *, log_path: Path, cwd: Path) -> Path:
    """A venv at ``root`` without pip of its own that sees the packages of the interpreter
    exportwatch runs in, venv or not; its python."""
    system = ["--system-site-packages"] if _sees_system_site() else []
    _run_logged(
        [sys.executable, "-m", "venv", *system, "--without-pip", str(root)],
        log_path=log_path,
        cwd=cwd,
        what="creating the base environment",
    )
    python = root / "bin" / "python"
    inherited = _inherited_site()
    if inherited:
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        Path(purelib, "exportwatch-inherited.pth").write_text(inheriting_pth(inherited), encoding="utf-8")
    return python


@contextlib.contextmanager
def env_directory(directory: Path | None) -> Iterator[Path]:
    """``directory`` (created, kept), or a temporary one removed on the way out."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
        return
    tmp = Path(tempfile.mkdtemp(prefix="exportwatch-base-env-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_logged(argv: Sequence[str], *, log_path: Path, cwd: Path, what: str) -> None:
    """Run ``argv``, its output appended to ``log_path``; BaseEnvError with the last line."""
    log.debug("base environment: %s", " ".join(argv))
    with log_path.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(
                list(argv),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=INSTALL_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BaseEnvError(f"{what} failed: {exc} (see {log_path})") from exc
    if done.returncode != 0:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise BaseEnvError(f"{what} failed: {last} (see {log_path})")
    log.debug("%s", log_path.read_text(errors="replace"))


def build(plan: InstallPlan, *, worktree: Path, directory: Path) -> BaseEnv:
    """The venv for ``plan`` under ``directory``: reused when ready, else (re)built.

    Requirement and constraints files are read from ``worktree`` (the merge-base's checkout).
    """
    try:
        return _build(plan, worktree=worktree, directory=directory)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BaseEnvError(f"the base environment could not be built in {directory}: {exc}") from exc


def _build(plan: InstallPlan, *, worktree: Path, directory: Path) -> BaseEnv:
    directory.mkdir(parents=True, exist_ok=True)
    root = directory / env_key(plan)
    python = root / "bin" / "python"
    log_path = directory / f"{root.name}.install.log"
    if (root / READY).is_file() and python.exists():
        return BaseEnv(root=root, python=python, reused=True, log_path=log_path)
    shutil.rmtree(root, ignore_errors=True)
    log_path.write_text("", encoding="utf-8")
    create_venv(root, log_path=log_path, cwd=worktree)
    if not _can_import(python, "pip"):
        _run_logged([str(python), "-m", "ensurepip"], log_path=log_path, cwd=worktree, what="installing pip")
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    for rel in plan.requirement_files:
        argv += ["-r", str(worktree / rel)]
    for rel in plan.constraint_files:
        argv += ["-c", str(worktree / rel)]
    argv += list(plan.requirements)
    if not plan.empty:
        shown_files = ", ".join([*plan.requirement_files, *(["pyproject.toml"] if plan.requirements else [])])
        _run_logged(argv, log_path=log_path, cwd=worktree, what=f"installing the base's {shown_files}")
    if not _can_import(python, "yaml"):
        _run_logged(
            [*argv[:6], "pyyaml"], log_path=log_path, cwd=worktree, what="installing pyyaml for exportwatch"
        )
    (root / READY).write_text(" ".join(argv) + "\n", encoding="utf-8")
    return BaseEnv(root=root, python=python, reused=False, log_path=log_path)


def _can_import(python: Path, module: str) -> bool:
    done = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, check=False, timeout=120
    )
    return done.returncode == 0


def remap_entry(entry: str, *, repo_root: Path, tree: Path) -> str:
    """A path inside the head checkout → the same path in the worktree, when it exists there;
    anything else (and the directory exportwatch itself comes from) unchanged."""
    try:
        path = Path(entry or os.getcwd()).resolve()
    except OSError:
        return entry
    root = repo_root.resolve()
    if not path.is_relative_to(root) or path == OWN_ROOT:
        return entry
    moved = tree / path.relative_to(root)
    return str(moved) if moved.exists() else entry


def sweep_in(
    env: BaseEnv,
    *,
    repo_root: Path,
    worktree: Path,
    manifest_rel: str,
    models: Sequence[str],
    options: SweepOptions,
    output: Path,
    quiet: bool,
) -> tuple[Report, list[str]]:
    """Sweep ``models`` of the worktree's manifest with the venv's python; (report, config
    errors the sweep printed). The sweep's table goes to stderr: stdout is the rendered diff."""
    shim = output.parent / "exportwatch-path"
    shim.mkdir(parents=True, exist_ok=True)
    link = shim / "exportwatch"
    if not link.exists():
        link.symlink_to(OWN_ROOT / "exportwatch", target_is_directory=True)
    # Paths into the checkout (PYTHONPATH, an editable install's entry) point at the worktree.
    inside = [e for e in sys.path if e and remap_entry(e, repo_root=repo_root, tree=worktree) != e]
    user = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e]
    entries = [str(shim)] + [remap_entry(e, repo_root=repo_root, tree=worktree) for e in [*user, *inside]]
    env_vars = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(entries)))
    env_vars.pop("PYTHONHOME", None)
    argv = [str(env.python), "-m", "exportwatch"] + (["-v"] if options.verbose else [])
    argv += ["sweep", str(worktree / manifest_rel), "-o", str(output), *options.to_argv()]
    argv += [arg for model in models for arg in ("--model", model)] + (["-q"] if quiet else [])
    log.debug("base sweep: %s", " ".join(argv))
    try:
        done = subprocess.run(
            argv,
            cwd=worktree,
            env=env_vars,
            stdout=sys.stderr,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise BaseEnvError(f"the base sweep could not start: {exc}") from exc
    if done.stderr:
        sys.stderr.write(done.stderr)
    errors = [line.removeprefix("error: ") for line in done.stderr.splitlines() if line.startswith("error: ")]
    if done.returncode not in (0, 2) or not output.is_file():
        last = errors[-1] if errors else f"exit status {done.returncode}"
        raise BaseEnvError(f"the base sweep in the base environment failed: {last}")
    try:
        return load_report(output), errors if done.returncode == 2 else []
    except ReportError as exc:
        raise BaseEnvError(f"the base sweep's report is unreadable: {exc}") from exc
