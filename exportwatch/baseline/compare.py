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
     the base result *is* the head result (:func:`decide_reuse`, pure);
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

This module runs no export itself: it hands :class:`~exportwatch.sweep.runner.SweepRequest`s to a
sweeper (``run_sweep`` on one warm fork server for both sides, by default). Must not import torch.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from exportwatch import __version__, git
from exportwatch.baseline import base_env
from exportwatch.baseline.cache import ResultCache
from exportwatch.baseline.environment import (
    DependencySet,
    InstallPlan,
    changed_files,
    dependency_set,
    install_plan,
    package_changes,
    shown,
)
from exportwatch.errors import UsageError
from exportwatch.git import GitTree, base_worktree, find_merge_base, read_file_at, resolve_commit
from exportwatch.manifest import ConfigError, Manifest, load_manifest
from exportwatch.plan import Unit, plan_units
from exportwatch.report import (
    Environment,
    JobResult,
    Report,
    ReportError,
    ResultSource,
    load_report,
    write_report,
)
from exportwatch.report.provenance import (
    Fingerprinter,
    ModelFingerprint,
    WorkingTree,
    environment,
    manifest_dir_in_repo,
    new_report,
)
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.preload import model_packages
from exportwatch.sweep.progress import Progress
from exportwatch.sweep.runner import SweepRequest, SweepResult, SweepSession

log = logging.getLogger(__name__)

#: ``--base-env``: build the base's environment when its dependency set differs (``auto``),
#: always (``venv``), never (stored baseline or no base result), or sweep with HEAD's (``head``).
BASE_ENV_MODES = ("auto", "venv", "never", "head")

Sweeper = Callable[..., SweepResult]  # run_sweep(request, progress=...)
JobKey = tuple[str, str]  # (model, target): one device per model in a run


class BaselineError(UsageError):
    """No base can be had (unknown ref, unrelated histories, git failure); exit code 2."""


# ---------------------------------------------------------------------------------------------
# Git: merge-base, files at a commit, a worktree


def load_manifest_at(repo_root: Path, commit: str, manifest_rel: str) -> Manifest | None:
    """The manifest as it was at ``commit`` (None when it did not exist there).

    Parsed from a temporary copy: only the entries are used (models, targets, ``raw``), never
    paths relative to the file. Raises :class:`ConfigError` for an invalid manifest.
    """
    data = read_file_at(repo_root, commit, manifest_rel)
    if data is None:
        return None
    with tempfile.TemporaryDirectory(prefix="exportwatch-manifest-") as tmp:
        path = Path(tmp) / Path(manifest_rel).name
        path.write_bytes(data)
        manifest = load_manifest(path)
    manifest.path = Path(manifest_rel)
    return manifest


@contextlib.contextmanager
def _sys_path_into(repo_root: Path, tree: Path) -> Iterator[None]:
    """Point ``sys.path`` entries inside the head checkout at the worktree while the base sweep
    spawns its workers (spawn children start from the parent's ``sys.path``). Entries that do
    not exist in the worktree (a ``.venv`` inside the repository) and the one exportwatch is
    imported from stay as they are."""
    saved = list(sys.path)
    # The entry exportwatch itself comes from stays: the workers must run this exportwatch.
    sys.path[:] = [base_env.remap_entry(e, repo_root=repo_root, tree=tree) for e in sys.path]
    try:
        yield
    finally:
        sys.path[:] = saved


# ---------------------------------------------------------------------------------------------
# Pure decisions


@dataclass(frozen=True, kw_only=True)
class ReuseDecision:
    reuse: bool
    reason: str
    changed: tuple[str, ...] = ()  # dependency files that differ


def decide_reuse(head: ModelFingerprint | None, base: ModelFingerprint | None) -> ReuseDecision:
    """May the base result of this model be the head result? Yes only when every dependency
    file is byte-identical and the manifest entry (and requested device) is unchanged. Pure."""
    if base is None:
        return ReuseDecision(reuse=False, reason="new model (not in the base manifest)")
    if head is None:
        return ReuseDecision(reuse=False, reason="removed from the head manifest")
    unresolved = head.unresolved or base.unresolved
    if unresolved:
        return ReuseDecision(
            reuse=False,
            reason=f"{', '.join(unresolved)} is not a file in the repository, so its code cannot be compared",
        )
    changed = tuple(head.changed_files(base))
    if head.entry != base.entry:
        return ReuseDecision(reuse=False, reason="its manifest entry changed", changed=changed)
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return ReuseDecision(reuse=False, reason=f"changed: {shown}", changed=changed)
    if head.device != base.device:
        return ReuseDecision(reuse=False, reason="the requested device differs")
    return ReuseDecision(reuse=True, reason="no dependency changed")


def _major(version: str) -> str:
    return (version or "").split(".", 1)[0]


def baseline_incompatibility(
    stored: Report, *, tool_version: str, env: Environment, same_torch: bool = True
) -> str | None:
    """Why a stored report cannot stand in for the base, or None. Pure.

    Report level: same exportwatch major version and (``same_torch``) torch version; when the
    dependency set changed, the base's torch may rightly differ from this run's. Job level
    (elsewhere): the job's content hash must equal the base's, which covers the manifest entry
    and files.
    """
    if _major(stored.tool_version) != _major(tool_version):
        return (
            f"it was made by exportwatch {stored.tool_version or '(unknown)'} and this is "
            f"{tool_version} (the major versions differ)"
        )
    if same_torch and stored.environment.torch != env.torch:
        return (
            f"it was made with torch {stored.environment.torch or '(unknown)'} and this run uses "
            f"torch {env.torch or '(none)'}"
        )
    return None


def load_stored_baseline(
    path: Path, *, tool_version: str = __version__, env: Environment | None = None, same_torch: bool = True
) -> tuple[Report | None, str | None]:
    """(report, None) when ``path`` is usable, else (None, a message saying why not)."""
    env = env or environment()
    try:
        stored = load_report(path, untrusted=True)
    except ReportError as exc:
        return None, f"stored baseline not used: {exc}; sweeping the base instead"
    why = baseline_incompatibility(stored, tool_version=tool_version, env=env, same_torch=same_torch)
    if why:
        return None, f"stored baseline {path} not used: {why}; sweeping the base instead"
    return stored, None


# ---------------------------------------------------------------------------------------------
# Orchestration


@dataclass(kw_only=True)
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
class BaseDecision:
    """Where one base job's result came from, and why."""

    model: str
    target: str
    source: ResultSource | None  # None: there is no base result (a new model)
    reason: str


@dataclass(kw_only=True)
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
    manifest_dir = manifest_dir_in_repo(manifest, repo_root)
    named = tuple(_repo_relative(path, repo_root) for path in request.dependency_files)
    # HEAD and the merge-base's worktree are swept on one warm fork server: one start-up.
    with SweepSession() as session:
        return _compare(
            request,
            sweeper or session.sweep,
            say,
            manifest,
            units,
            repo_root,
            merge_base,
            manifest_dir,
            named,
        )


def _compare(
    request: CompareRequest,
    sweeper: Sweeper,
    say: Callable[[str], None],
    manifest: Manifest,
    units: list[Unit],
    repo_root: Path,
    merge_base: str,
    manifest_dir: str,
    named: tuple[str, ...],
) -> CompareResult:
    run = _Comparison(
        request=request,
        sweeper=sweeper,
        say=say,
        manifest=manifest,
        units=units,
        repo_root=repo_root,
        merge_base=merge_base,
        manifest_dir=manifest_dir,
        manifest_rel=Path(manifest_dir, manifest.path.name).as_posix()
        if manifest_dir
        else manifest.path.name,
        env=environment(model_packages(manifest)),
        cache=ResultCache(request.cache_dir) if request.cache_dir else None,
        named_dependencies=named,
    )
    head = run.head()
    write_report(head, request.head_output)
    base = run.base(head)
    write_report(base, request.base_output)
    return CompareResult(
        head=head,
        base=base,
        merge_base=merge_base,
        decisions=list(run.decisions.values()),
        notes=run.notes,
        config_errors=run.config_errors,
        head_swept=run.head_swept,
        base_swept=run.base_swept,
        dependency_changes=run.deps_changed,
        package_changes=run.package_changes,
    )


def _repo_relative(path: Path, repo_root: Path) -> str:
    """A dependency file named on the command line (relative to the working directory)."""
    try:
        return Path(path).resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"--dependency-file {path}: not inside the repository {repo_root}") from None


@dataclass(kw_only=True)
class _Comparison:
    """The state of one ``run_compare``: HEAD first, then the base."""

    request: CompareRequest
    sweeper: Sweeper
    say: Callable[[str], None]
    manifest: Manifest
    units: list[Unit]
    repo_root: Path
    merge_base: str
    manifest_dir: str
    manifest_rel: str
    env: Environment
    cache: ResultCache | None
    head_prints: dict[str, ModelFingerprint] = field(default_factory=dict)
    decisions: dict[JobKey, BaseDecision] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    config_errors: list[str] = field(default_factory=list)
    head_swept: list[str] = field(default_factory=list)
    base_swept: list[str] = field(default_factory=list)
    named_dependencies: tuple[str, ...] = ()
    deps_changed: tuple[str, ...] = ()  # dependency files that differ: HEAD's packages are not the base's
    install: InstallPlan | None = None  # what the base environment installs on top of HEAD's
    stored_env: Environment | None = None  # the environment the stored baseline ran in, when accepted
    base_environment: Environment | None = None  # the environment the base side ran in, if not this one
    base_env_failure: str | None = None  # why the base could not be swept in its own environment
    package_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    base_deps: DependencySet | None = None

    def head(self) -> Report:
        """HEAD's report: cached jobs read back, the other models swept in the working tree."""
        printer = Fingerprinter(WorkingTree(self.repo_root), manifest_dir=self.manifest_dir)
        self.head_prints = {
            u.spec.name: printer.fingerprint(u.spec, device=self.request.options.device) for u in self.units
        }
        cached: dict[JobKey, JobResult] = {}
        for unit in self.units:
            fp = self.head_prints[unit.spec.name]
            hits = {t: self._cached(fp, t, fp.content_hash(t, self.env)) for t in unit.targets}
            if all(hits.values()):
                cached.update({(fp.model, t): job for t, job in hits.items() if job is not None})
            else:
                self.head_swept.append(unit.spec.name)
        if self.head_swept:
            self.say(
                f"sweeping {len(self.head_swept)} of {len(self.units)} model(s) on HEAD"
                f" ({len(self.units) - len(self.head_swept)} cached)"
            )
            result = self.sweeper(
                self._sweep_request(self.manifest, output=self.request.head_output, models=self.head_swept),
                progress=self._progress(self.units, self.head_swept),
            )
            report = result.report
            self.config_errors += result.config_errors
        else:
            self.say(f"all {len(self.units)} model(s) on HEAD are cached: no export to run")
            report = new_report(self.manifest, model_packages(self.manifest))
        jobs = [j for j in report.jobs if (j.model, j.target) not in cached] + list(cached.values())
        jobs = [self._stamp(job, self.head_prints.get(job.model)) for job in jobs]
        return replace(report, jobs=_in_order(jobs, self.units))

    def base(self, head: Report) -> Report:
        """The merge-base's report: reused, stored, cached, or swept in a worktree."""
        started = time.monotonic()
        report = replace(
            new_report(self.manifest, model_packages(self.manifest)), git_sha=self.merge_base, run_url=None
        )
        try:
            base_manifest = load_manifest_at(self.repo_root, self.merge_base, self.manifest_rel)
        except ConfigError as exc:
            base_manifest = None
            self.notes.append(
                f"the manifest at the merge-base is invalid ({exc}); every model is compared as new"
            )
        if base_manifest is None:
            if not self.notes:
                self.notes.append(
                    f"the merge-base {self.merge_base[:12]} has no {self.manifest_rel}: every model is new"
                )
            self._no_base_for(head, reason="no manifest on the merge-base")
            return replace(report, duration_s=round(time.monotonic() - started, 3))

        self._check_dependencies()
        stored_jobs = self._stored_jobs()
        units = plan_units(
            base_manifest,
            models=None,
            targets=self.request.options.targets,
            device=self.request.options.device,
        )
        printer = Fingerprinter(GitTree(self.repo_root, self.merge_base), manifest_dir=self.manifest_dir)
        head_jobs = {(j.model, j.target): j for j in head.jobs}
        jobs: dict[JobKey, JobResult] = {}
        prints: dict[str, ModelFingerprint] = {}
        pending: dict[JobKey, str] = {}  # job -> why it must be swept
        for unit in units:
            fp = prints[unit.spec.name] = printer.fingerprint(unit.spec, device=self.request.options.device)
            verdict = decide_reuse(self.head_prints.get(fp.model), fp)
            if self.deps_changed and verdict.reuse:  # the head result ran with HEAD's packages
                verdict = ReuseDecision(
                    reuse=False, reason=f"the dependency set changed ({shown(self.deps_changed)})"
                )
            for target in unit.targets:
                key = (fp.model, target)
                job = self._known_base_job(
                    key,
                    fp.content_hash(target, self.env),
                    verdict=verdict,
                    head_job=head_jobs.get(key),
                    stored=stored_jobs.get(key),
                    fp=fp,
                )
                if job is None:
                    pending[key] = verdict.reason
                    continue
                jobs[key] = job
                reason = verdict.reason
                if job.source is ResultSource.BASELINE and self.stored_env is not None:
                    reason += (
                        "; from the stored baseline, made on the merge-base in its own environment"
                        f" (torch {self.stored_env.torch or '(none)'})"
                    )
                self.decisions[key] = BaseDecision(
                    model=fp.model, target=target, source=job.source, reason=reason
                )

        self.base_swept = list(dict.fromkeys(model for model, _ in pending))
        if self.base_swept:
            why = {model: reason for (model, _), reason in reversed(pending.items())}
            self.say(
                f"sweeping {len(self.base_swept)} of {len(units)} model(s) on the merge-base: "
                + "; ".join(f"{m} ({why[m]})" for m in self.base_swept)
            )
            own_env = self._in_base_env()
            for job in self._sweep_base(units):
                key = (job.model, job.target)
                if key in pending:
                    jobs[key] = job if own_env else self._stamp(job, prints[job.model])
                    where = f"; swept in the base environment ({self._env_origin()})" if own_env else ""
                    self.decisions[key] = BaseDecision(
                        model=job.model,
                        target=job.target,
                        source=ResultSource.SWEPT,
                        reason=pending[key] + where,
                    )
        else:
            self.say("no model to sweep on the merge-base: every base result is reused, stored or cached")
        missing = [key for key in pending if key not in jobs]
        for key in missing:
            lacking = (
                f"not reproduced in the base's own environment: {self.base_env_failure}"
                if self.base_env_failure
                else "the base sweep gave no result"
            )
            self.decisions[key] = BaseDecision(
                model=key[0], target=key[1], source=None, reason=f"{pending[key]}; {lacking}"
            )
        if self.base_env_failure and missing:
            models = list(dict.fromkeys(model for model, _ in missing))
            self.notes.append(
                "the merge-base could not be reproduced in its own environment"
                f" ({self.base_env_failure}): {len(models)} model(s) have no base result and are"
                f" compared as new rather than against results of HEAD's packages: {shown(models, 10)}"
            )
        self._no_base_for(head, reason="new model (not in the base manifest)")
        if self.base_environment is not None:
            report = replace(report, environment=self.base_environment)
        if self.base_env_failure and missing:  # the diff must not read "no regressions" as final
            report = replace(report, complete=False)
        return replace(
            report,
            jobs=_in_order(list(jobs.values()), units),
            duration_s=round(time.monotonic() - started, 3),
        )

    # helpers -------------------------------------------------------------------------------

    def _cached(self, fp: ModelFingerprint, target: str, content_hash: str | None) -> JobResult | None:
        # content_hash is None for a fingerprint that is not cacheable: the cache misses on it.
        if self.cache is None:
            return None
        return self.cache.get(content_hash, key=(fp.model, target, fp.device))

    def _stamp(self, job: JobResult, fp: ModelFingerprint | None) -> JobResult:
        """Keep what was swept in the cache. The sweep stamped the fingerprint already (cached
        results carry theirs); only a job the sweep could not fingerprint gets it here."""
        if fp is not None and job.content_hash is None:
            job = replace(
                job, dependencies=dict(fp.dependencies), content_hash=fp.content_hash(job.target, self.env)
            )
        if self.cache is not None and job.source is ResultSource.SWEPT:
            self.cache.put(job)
        return job

    def _known_base_job(
        self,
        key: JobKey,
        content_hash: str | None,
        *,
        verdict: ReuseDecision,
        head_job: JobResult | None,
        stored: JobResult | None,
        fp: ModelFingerprint,
    ) -> JobResult | None:
        """The base result that needs no sweep, or None: reused, then stored, then cached."""
        if verdict.reuse and head_job is not None and head_job.content_hash == content_hash:
            return _copy(head_job, ResultSource.REUSED)
        if self.stored_env is not None:  # hashed as the stored report ran: in its environment
            content_hash = fp.content_hash(key[1], self.stored_env)
        if stored is not None and stored.content_hash == content_hash:
            return _copy(stored, ResultSource.BASELINE)
        if self.deps_changed:
            return None  # the cache is keyed on torch/onnx only: it may hold HEAD-package results
        return self._cached(fp, key[1], content_hash)

    def _check_dependencies(self) -> None:
        """Does the merge-base's dependency set differ from HEAD's? (Sets ``deps_changed``.)"""
        mode = self.request.base_env
        if mode == "head":
            return
        head_deps = dependency_set(WorkingTree(self.repo_root), self.named_dependencies)
        self.base_deps = dependency_set(GitTree(self.repo_root, self.merge_base), self.named_dependencies)
        self.deps_changed = changed_files(head_deps, self.base_deps)
        self.install = install_plan(head_deps, self.base_deps, everything=mode == "venv")
        if self.deps_changed:
            self.notes.append(
                f"the dependency set differs between the merge-base and HEAD ({shown(self.deps_changed)}):"
                " the base is not swept with HEAD's packages"
            )

    def _in_base_env(self) -> bool:
        return self.request.base_env == "venv" or bool(self.deps_changed)

    def _env_origin(self) -> str:
        plan = self.install or InstallPlan()
        files = [*plan.requirement_files, *(["pyproject.toml"] if plan.requirements else [])]
        return (
            f"built from the merge-base's {shown(files)}"
            if files
            else "HEAD's packages, nothing pinned differently"
        )

    def _stored_jobs(self) -> dict[JobKey, JobResult]:
        if self.request.baseline is None:
            return {}
        path = self.request.baseline
        stored, refusal = load_stored_baseline(path, env=self.env, same_torch=not self.deps_changed)
        if stored is not None and self.deps_changed:
            refusal = self._stored_env_refusal(stored)
            if refusal is None:
                self.stored_env = stored.environment
                self.base_environment = stored.environment
                self.notes.append(
                    f"stored baseline {path}: made on the merge-base in its own environment"
                    f" (torch {stored.environment.torch or '(none)'};"
                    f" this run: torch {self.env.torch or '(none)'});"
                    " its jobs are matched by the hashes of that environment"
                )
            else:
                stored = None
        if refusal:
            self.notes.append(refusal)
        return {(j.model, j.target): j for j in stored.jobs} if stored else {}

    def _stored_env_refusal(self, stored: Report) -> str | None:
        """When the dependency set changed, a stored report stands in for the base only if it
        ran with the merge-base's dependency set: made on the merge-base, or on a commit whose
        dependency files are the same."""
        sha = stored.git_sha
        if sha and (sha == self.merge_base or self.merge_base.startswith(sha)):
            return None
        commit = resolve_commit(self.repo_root, sha) if sha else None
        if commit and self.base_deps is not None:
            theirs = dependency_set(GitTree(self.repo_root, commit), self.named_dependencies)
            if not changed_files(theirs, self.base_deps):
                return None
        made = f"on {sha[:12]}" if sha else "on an unknown commit"
        return (
            f"stored baseline {self.request.baseline} not used: it was made {made}, whose dependency set"
            " may not be the merge-base's; sweeping the base instead"
        )

    def _no_base_for(self, head: Report, *, reason: str) -> None:
        for job in head.jobs:
            key = (job.model, job.target)
            if key not in self.decisions:
                self.decisions[key] = BaseDecision(
                    model=job.model, target=job.target, source=None, reason=reason
                )

    def _sweep_base(self, units: list[Unit]) -> list[JobResult]:
        """Sweep ``self.base_swept`` in a worktree of the merge-base, removed afterwards."""
        if self._in_base_env():
            return self._sweep_base_env()
        with base_worktree(self.repo_root, self.merge_base) as tree:
            manifest = load_manifest(tree / self.manifest_rel)
            with _sys_path_into(self.repo_root, tree):
                result = self.sweeper(
                    self._sweep_request(manifest, output=tree.parent / "base.json", models=self.base_swept),
                    progress=self._progress(units, self.base_swept),
                )
        self.notes += [f"on the merge-base: {error}" for error in result.config_errors]
        return [replace(job, source=ResultSource.SWEPT) for job in result.report.jobs]

    def _sweep_base_env(self) -> list[JobResult]:
        """Sweep ``self.base_swept`` in a venv built from the merge-base's requirements; [] and
        ``base_env_failure`` set when it cannot be built or cannot sweep (never a crash)."""
        plan = self.install or InstallPlan()
        if self.request.base_env == "never":
            self.base_env_failure = "--base-env never"
            return []
        if plan.unsupported:
            self.base_env_failure = f"pip cannot install from {shown(plan.unsupported)}"
            return []
        directory = self.request.base_env_dir or (
            self.request.cache_dir / "base-envs" if self.request.cache_dir else None
        )
        with (
            base_worktree(self.repo_root, self.merge_base) as tree,
            base_env.env_directory(directory) as where,
        ):
            try:
                env = base_env.build(plan, worktree=tree, directory=where)
                self.say(
                    ("reusing" if env.reused else "built")
                    + f" the base environment {env.root} ({self._env_origin()})"
                )
                report, errors = base_env.sweep_in(
                    env,
                    repo_root=self.repo_root,
                    worktree=tree,
                    manifest_rel=self.manifest_rel,
                    models=self.base_swept,
                    options=self.request.options,
                    output=tree.parent / "base.json",
                    quiet=self.request.quiet,
                )
                self.package_changes = package_changes(
                    base_env.installed_packages(env.python), base_env.installed_packages()
                )
            except base_env.BaseEnvError as exc:
                self.base_env_failure = str(exc)
                if directory is None:  # a temporary directory, about to go: keep the logs it names
                    for log_file in where.glob("*.install.log"):
                        kept = Path(tempfile.gettempdir()) / f"exportwatch-base-env-{log_file.name}"
                        shutil.copyfile(log_file, kept)
                        self.base_env_failure = self.base_env_failure.replace(str(log_file), str(kept))
                return []
        self.base_environment = report.environment
        if self.package_changes:
            self.notes.append(
                "the base was swept in its own environment: "
                + ", ".join(
                    f"{n} {b or '(absent)'} (HEAD: {h or '(absent)'})"
                    for n, (b, h) in self.package_changes.items()
                )
            )
        self.notes += [f"on the merge-base: {error}" for error in errors]
        return [replace(job, source=ResultSource.SWEPT) for job in report.jobs]

    def _sweep_request(self, manifest: Manifest, *, output: Path, models: list[str]) -> SweepRequest:
        return SweepRequest.of(manifest, output=output, options=self.request.options, models=models)

    def _progress(self, units: list[Unit], models: list[str]) -> Progress:
        total = sum(len(u.targets) for u in units if u.spec.name in models)
        return Progress(total=total, quiet=self.request.quiet)


def _copy(job: JobResult, source: ResultSource) -> JobResult:
    return replace(copy.deepcopy(job), source=source)


def _in_order(jobs: list[JobResult], units: list[Unit]) -> list[JobResult]:
    """Manifest order, then the model's target order."""
    order = {(u.spec.name, t): (u.order, i) for u in units for i, t in enumerate(u.targets)}
    return sorted(jobs, key=lambda j: order.get((j.model, j.target), (1 << 30, 0)))
