"""The base side of a comparison: the merge-base, and a result for every job on it, cheaply.

For ``exportwatch compare MANIFEST --base REF``:

1. **Merge-base.** ``git merge-base REF HEAD``. When REF is missing or the history does not
   reach a common ancestor, fetch it from ``origin`` (``git fetch --no-tags --depth=N``, then
   ``--deepen=N`` steps); a shallow checkout that still has no merge-base is an error that says
   how to fix the workflow (:class:`ShallowCheckoutError`).
2. **Head.** Sweep HEAD's working tree, except jobs whose content hash is in the cache.
3. **Base, per job, first that applies:**

   * ``reused``: the model's fingerprint at the merge-base (every dependency file, read with
     ``git cat-file``, and its manifest entry, read from the base manifest) equals HEAD's, so
     the base result *is* the head result (:func:`~exportwatch.baseline.plan.decide_reuse`);
   * ``baseline``: a compatible stored report (``--baseline FILE`` or the base commit's report
     artifact) has the job with the same content hash;
   * ``cache``: ``--cache-dir`` has a result under the base content hash;
   * ``swept``: everything else is swept in a ``git worktree`` of the merge-base (same Python,
     same environment), removed afterwards whatever happens.

4. **The base's environment.** When the dependency set (requirements files, ``pyproject.toml``'s
   dependencies, lock files: :mod:`exportwatch.baseline.environment`) differs between the
   merge-base and HEAD, nothing is reused and the cache is not asked (both hold results of
   HEAD's packages); a stored baseline made on the merge-base is matched with the hashes of its
   own environment; the rest is swept in a venv built from the base's requirements
   (:mod:`exportwatch.baseline.base_env`); when that cannot be built, those jobs get no base
   result and a note says so (``--base-env auto|venv|never|head``).

Every base ``JobResult`` records its ``source``. Reuse comes before a stored baseline on
purpose: an unchanged model then cannot show a (flaky) difference at all.

Steps 3 and 4 are decided as data: :mod:`exportwatch.baseline.execute` gathers the facts (a
frozen :class:`~exportwatch.baseline.plan.BaseFacts`), :func:`~exportwatch.baseline.plan.plan_base`
turns them into a frozen :class:`~exportwatch.baseline.plan.BasePlan` (per job: where its base
result comes from, and why), and the executor carries it out. This module is the entry point
(:class:`CompareRequest` → :class:`CompareResult`) and runs no export itself: it hands
:class:`~exportwatch.sweep.runner.SweepRequest`s to a sweeper (``run_sweep`` on one warm fork
server for both sides, by default). Must not import torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exportwatch import __version__, git
from exportwatch.baseline.cache import ResultCache
from exportwatch.baseline.execute import CompareRun, Sweeper, carry_out, gather_base_facts, sweep_head
from exportwatch.baseline.plan import BaseDecision, plan_base
from exportwatch.errors import UsageError
from exportwatch.git import find_merge_base
from exportwatch.manifest import Manifest, load_manifest
from exportwatch.plan import Unit, plan_units
from exportwatch.report import Report, write_report
from exportwatch.report.provenance import environment, manifest_dir_in_repo
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.preload import model_packages
from exportwatch.sweep.runner import SweepSession

log = logging.getLogger(__name__)

#: ``--base-env``: build the base's environment when its dependency set differs (``auto``),
#: always (``venv``), never (stored baseline or no base result), or sweep with HEAD's (``head``).
BASE_ENV_MODES = ("auto", "venv", "never", "head")


class BaselineError(UsageError):
    """No base can be had (unknown ref, unrelated histories, git failure); exit code 2."""


@dataclass(frozen=True, kw_only=True)
class CompareRequest:
    manifest_path: Path
    base_ref: str
    head_output: Path
    base_output: Path
    baseline: Path | None = None
    cache_dir: Path | None = None
    options: SweepOptions = field(default_factory=SweepOptions)  # for both sides' sweeps
    fetch: bool = True
    quiet: bool = True
    manifest: Manifest | None = None  # the head manifest, when the caller has loaded it already
    base_env: str = "auto"  # one of BASE_ENV_MODES
    base_env_dir: Path | None = None  # venvs kept here (default: <cache_dir>/base-envs, else temporary)
    dependency_files: tuple[Path, ...] = ()  # the files of the dependency set (default: conventional ones)


@dataclass(frozen=True, kw_only=True)
class CompareResult:
    head: Report
    base: Report
    merge_base: str
    decisions: list[BaseDecision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the user: refused baselines, base problems
    config_errors: list[str] = field(default_factory=list)  # head manifest problems (exit 2)
    head_swept: list[str] = field(default_factory=list)  # models swept on HEAD
    base_swept: list[str] = field(default_factory=list)  # models swept in the base worktree
    dependency_changes: tuple[str, ...] = ()  # dependency files that differ between base and HEAD
    #: packages whose version differs in the base environment: name -> (base, head)
    package_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def decision(self, model: str, target: str) -> BaseDecision | None:
        return next((d for d in self.decisions if (d.model, d.target) == (model, target)), None)


def run_compare(
    request: CompareRequest,
    *,
    sweeper: Sweeper | None = None,
    say: Callable[[str], None] | None = None,
) -> CompareResult:
    """Sweep HEAD (minus cached jobs) and obtain a base result for the same jobs.

    Raises :class:`ConfigError` for a bad head manifest and :class:`BaselineError` when no
    merge-base can be found (before anything is swept). Writes both reports.
    """
    say = say or (lambda text: log.info("%s", text))
    if request.base_env not in BASE_ENV_MODES:
        raise UsageError(f"--base-env {request.base_env}: expected one of {', '.join(BASE_ENV_MODES)}")
    manifest = request.manifest or load_manifest(request.manifest_path)
    options = request.options
    units = plan_units(manifest, models=None, targets=options.targets, device=options.device)
    repo_root = git.toplevel(manifest.root)
    if repo_root is None:
        raise BaselineError(
            f"{request.manifest_path} is not inside a git repository: no base to compare with"
        )
    merge_base = find_merge_base(repo_root, request.base_ref, fetch=request.fetch)
    say(
        f"exportwatch {__version__}: comparing with {merge_base[:12]},"
        f" the merge-base of {request.base_ref} and HEAD"
    )
    # HEAD and the merge-base's worktree are swept on one warm fork server: one start-up.
    with SweepSession() as session:
        run = _run_of(
            request,
            manifest=manifest,
            units=tuple(units),
            repo_root=repo_root,
            merge_base=merge_base,
            sweeper=sweeper or session.sweep,
            say=say,
        )
        return _compare(run, request)


def _run_of(
    request: CompareRequest,
    *,
    manifest: Manifest,
    units: tuple[Unit, ...],
    repo_root: Path,
    merge_base: str,
    sweeper: Sweeper,
    say: Callable[[str], None],
) -> CompareRun:
    """The request, with what was learnt on the way (the manifest, git), as one frozen run."""
    return CompareRun(
        repo_root=repo_root,
        merge_base=merge_base,
        manifest=manifest,
        manifest_dir=manifest_dir_in_repo(manifest, repo_root),
        units=units,
        env=environment(model_packages(manifest)),
        options=request.options,
        head_output=request.head_output,
        sweeper=sweeper,
        say=say,
        cache=ResultCache(request.cache_dir) if request.cache_dir else None,
        cache_dir=request.cache_dir,
        base_env_mode=request.base_env,
        base_env_dir=request.base_env_dir,
        baseline=request.baseline,
        named_dependencies=tuple(_repo_relative(path, repo_root) for path in request.dependency_files),
        quiet=request.quiet,
    )


def _compare(run: CompareRun, request: CompareRequest) -> CompareResult:
    """HEAD first (its results may be reused), then the base: facts, plan, execution."""
    head = sweep_head(run)
    write_report(head.report, request.head_output)
    started = time.monotonic()
    facts, base_units = gather_base_facts(run, head)
    plan = plan_base(facts)
    base = carry_out(run, facts, plan, base_units, started)
    write_report(base.report, request.base_output)
    return CompareResult(
        head=head.report,
        base=base.report,
        merge_base=run.merge_base,
        decisions=list(base.decisions),
        notes=base.notes,
        config_errors=head.config_errors,
        head_swept=head.swept,
        base_swept=base.swept,
        dependency_changes=plan.deps_changed,
        package_changes=base.package_changes,
    )


def _repo_relative(path: Path, repo_root: Path) -> str:
    """A dependency file named on the command line (relative to the working directory)."""
    try:
        return Path(path).resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"--dependency-file {path}: not inside the repository {repo_root}") from None
