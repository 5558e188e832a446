"""The base side's edges: gather the facts a :class:`~exportwatch.baseline.plan.BasePlan` is
decided from, then carry the plan out.

Gathering reads git (the merge-base's manifest, fingerprints and dependency files), the stored
baseline and the cache; carrying out sweeps HEAD and the merge-base (in a ``git worktree`` with
``sys.path`` pointed into it, or in a venv built from the base's requirements) and keeps what was
swept in the cache. No reuse rule lives here: they are all in :mod:`exportwatch.baseline.plan`.
Must not import torch.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from exportwatch import __version__
from exportwatch.baseline import base_env
from exportwatch.baseline.cache import ResultCache
from exportwatch.baseline.environment import dependency_set, package_changes
from exportwatch.baseline.plan import (
    BaseDecision,
    BaseFacts,
    BaseModel,
    BasePlan,
    JobKey,
    StoredBaseline,
    baseline_incompatibility,
    dependency_change,
    settle,
    stored_refusal,
)
from exportwatch.git import GitTree, base_worktree, read_file_at, resolve_commit
from exportwatch.manifest import ConfigError, Manifest, load_manifest
from exportwatch.plan import Unit, plan_units
from exportwatch.report import Environment, JobResult, Report, ReportError, ResultSource, load_report
from exportwatch.report.provenance import (
    Fingerprinter,
    ModelFingerprint,
    WorkingTree,
    environment,
    new_report,
)
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.preload import model_packages
from exportwatch.sweep.progress import Progress
from exportwatch.sweep.runner import SweepRequest, SweepResult

Sweeper = Callable[..., SweepResult]  # run_sweep(request, progress=...)


# ---------------------------------------------------------------------------------------------
# Reading


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


def load_stored_baseline(
    path: Path, *, tool_version: str = __version__, env: Environment | None = None, same_torch: bool = True
) -> tuple[Report | None, str | None]:
    """(report, None) when ``path`` is usable, else (None, a message saying why not)."""
    env = env or environment()
    try:
        stored = load_report(path, untrusted=True)
    except ReportError as exc:
        return None, stored_refusal(path, str(exc), None)
    why = baseline_incompatibility(stored, tool_version=tool_version, env=env, same_torch=same_torch)
    if why:
        return None, stored_refusal(path, None, why)
    return stored, None


# ---------------------------------------------------------------------------------------------
# One comparison's settings and its two sides


@dataclass(frozen=True, kw_only=True)
class CompareRun:
    """What one comparison works with, settled before either side is swept."""

    repo_root: Path
    merge_base: str
    manifest: Manifest  # HEAD's
    manifest_dir: str  # the manifest's directory, repo-relative ("" at the root)
    units: tuple[Unit, ...]  # HEAD's
    env: Environment  # this run's
    options: SweepOptions
    head_output: Path
    sweeper: Sweeper
    say: Callable[[str], None]
    cache: ResultCache | None = None
    cache_dir: Path | None = None
    base_env_mode: str = "auto"
    base_env_dir: Path | None = None
    baseline: Path | None = None
    named_dependencies: tuple[str, ...] = ()
    quiet: bool = True

    @property
    def manifest_rel(self) -> str:
        name = self.manifest.path.name
        return Path(self.manifest_dir, name).as_posix() if self.manifest_dir else name

    def sweep_request(self, manifest: Manifest, *, output: Path, models: Sequence[str]) -> SweepRequest:
        return SweepRequest.of(manifest, output=output, options=self.options, models=list(models))

    def progress(self, units: Sequence[Unit], models: Sequence[str]) -> Progress:
        total = sum(len(u.targets) for u in units if u.spec.name in models)
        return Progress(total=total, quiet=self.quiet)

    def stamp(self, job: JobResult, fp: ModelFingerprint | None) -> JobResult:
        """Keep what was swept in the cache. The sweep stamped the fingerprint already (cached
        results carry theirs); only a job the sweep could not fingerprint gets it here."""
        if fp is not None and job.content_hash is None:
            job = replace(
                job, dependencies=dict(fp.dependencies), content_hash=fp.content_hash(job.target, self.env)
            )
        if self.cache is not None and job.source is ResultSource.SWEPT:
            self.cache.put(job)
        return job


@dataclass(frozen=True, kw_only=True)
class HeadSide:
    report: Report
    prints: dict[str, ModelFingerprint]
    swept: list[str]  # models swept on HEAD (the others were cached)
    config_errors: list[str]


@dataclass(frozen=True, kw_only=True)
class BaseSide:
    report: Report
    decisions: tuple[BaseDecision, ...]
    notes: list[str]
    swept: list[str]  # models swept on the merge-base
    package_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


def sweep_head(run: CompareRun) -> HeadSide:
    """HEAD's report: cached jobs read back, the other models swept in the working tree."""
    printer = Fingerprinter(WorkingTree(run.repo_root), manifest_dir=run.manifest_dir)
    prints = {u.spec.name: printer.fingerprint(u.spec, device=run.options.device) for u in run.units}
    cached: dict[JobKey, JobResult] = {}
    swept: list[str] = []
    for unit in run.units:
        fp = prints[unit.spec.name]
        hits = {t: _cached(run.cache, fp, t, fp.content_hash(t, run.env)) for t in unit.targets}
        if all(hits.values()):
            cached.update({(fp.model, t): job for t, job in hits.items() if job is not None})
        else:
            swept.append(unit.spec.name)
    config_errors: list[str] = []
    if swept:
        run.say(
            f"sweeping {len(swept)} of {len(run.units)} model(s) on HEAD"
            f" ({len(run.units) - len(swept)} cached)"
        )
        result = run.sweeper(
            run.sweep_request(run.manifest, output=run.head_output, models=swept),
            progress=run.progress(run.units, swept),
        )
        report = result.report
        config_errors += result.config_errors
    else:
        run.say(f"all {len(run.units)} model(s) on HEAD are cached: no export to run")
        report = new_report(run.manifest, model_packages(run.manifest))
    jobs = [j for j in report.jobs if (j.model, j.target) not in cached] + list(cached.values())
    jobs = [run.stamp(job, prints.get(job.model)) for job in jobs]
    report = replace(report, jobs=_in_order(jobs, run.units))
    return HeadSide(report=report, prints=prints, swept=swept, config_errors=config_errors)


def _cached(
    cache: ResultCache | None, fp: ModelFingerprint, target: str, content_hash: str | None
) -> JobResult | None:
    # content_hash is None for a fingerprint that is not cacheable: the cache misses on it.
    if cache is None:
        return None
    return cache.get(content_hash, key=(fp.model, target, fp.device))


# ---------------------------------------------------------------------------------------------
# The base: facts first


def gather_base_facts(run: CompareRun, head: HeadSide) -> tuple[BaseFacts, list[Unit]]:
    """Everything :func:`~exportwatch.baseline.plan.plan_base` decides from, and the merge-base's
    units (their order is the base report's)."""
    facts = BaseFacts(
        merge_base=run.merge_base,
        manifest_rel=run.manifest_rel,
        env=run.env,
        base_env_mode=run.base_env_mode,
        head_prints=head.prints,
        head_jobs={(j.model, j.target): j for j in head.report.jobs},
    )
    try:
        base_manifest = load_manifest_at(run.repo_root, run.merge_base, run.manifest_rel)
    except ConfigError as exc:
        return replace(facts, models=None, manifest_problem=str(exc)), []
    if base_manifest is None:
        return replace(facts, models=None), []
    if run.base_env_mode != "head":
        facts = replace(
            facts,
            head_deps=dependency_set(WorkingTree(run.repo_root), run.named_dependencies),
            base_deps=dependency_set(GitTree(run.repo_root, run.merge_base), run.named_dependencies),
        )
    units = plan_units(base_manifest, models=None, targets=run.options.targets, device=run.options.device)
    printer = Fingerprinter(GitTree(run.repo_root, run.merge_base), manifest_dir=run.manifest_dir)
    models = tuple(
        BaseModel(
            fingerprint=printer.fingerprint(u.spec, device=run.options.device), targets=tuple(u.targets)
        )
        for u in units
    )
    deps_differ = bool(dependency_change(facts)[0])
    cached = {  # never asked when the dependency set changed: it may hold HEAD-package results
        (m.name, t): hit
        for m in models
        for t in m.targets
        if not deps_differ
        and (hit := _cached(run.cache, m.fingerprint, t, m.fingerprint.content_hash(t, run.env)))
    }
    return replace(facts, models=models, cached=cached, stored=_read_stored(run, deps_differ)), units


def _read_stored(run: CompareRun, deps_differ: bool) -> StoredBaseline | None:
    """``--baseline`` as read, and (only when the dependency set changed) the dependency set
    of the commit it was made on."""
    if run.baseline is None:
        return None
    try:
        report = load_report(run.baseline, untrusted=True)
    except ReportError as exc:
        return StoredBaseline(path=run.baseline, load_error=str(exc))
    commit = resolve_commit(run.repo_root, report.git_sha) if deps_differ and report.git_sha else None
    theirs = dependency_set(GitTree(run.repo_root, commit), run.named_dependencies) if commit else None
    return StoredBaseline(path=run.baseline, report=report, commit_deps=theirs)


# ---------------------------------------------------------------------------------------------
# The base: carrying the plan out


@dataclass(frozen=True, kw_only=True)
class _Swept:
    """What a base sweep gave: results, notes, or why the base environment could not be had."""

    jobs: list[JobResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str | None = None
    environment: Environment | None = None  # the base environment's, when swept there
    package_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


def carry_out(
    run: CompareRun, facts: BaseFacts, plan: BasePlan, units: list[Unit], started: float
) -> BaseSide:
    """The merge-base's report: the planned results, plus whatever must be swept."""
    report = replace(
        new_report(run.manifest, model_packages(run.manifest)), git_sha=run.merge_base, run_url=None
    )
    if not plan.has_manifest:
        done = settle(plan, swept=(), failure=None)
        report = replace(report, duration_s=round(time.monotonic() - started, 3))
        return BaseSide(report=report, decisions=done.decisions, notes=list(plan.notes), swept=[])
    jobs = {job.key: job.result for job in plan.jobs if job.result is not None}
    run.say(plan.sweep_message(len(units)))
    swept = _Swept()
    if plan.to_sweep:
        swept = _sweep_base(run, plan, units)
    prints = {m.name: m.fingerprint for m in facts.models or ()}
    wanted = {job.key for job in plan.to_sweep}
    for job in swept.jobs:
        if (job.model, job.target) in wanted:
            kept = job if plan.in_base_env else run.stamp(job, prints[job.model])
            jobs[(job.model, job.target)] = kept
    done = settle(plan, swept=[(j.model, j.target) for j in swept.jobs], failure=swept.failure)
    environment_ran = swept.environment or plan.stored_environment
    if environment_ran is not None:
        report = replace(report, environment=environment_ran)
    report = replace(
        report,
        complete=report.complete and done.complete,
        jobs=_in_order(list(jobs.values()), units),
        duration_s=round(time.monotonic() - started, 3),
    )
    notes = [*plan.notes, *swept.notes, *([done.note] if done.note else [])]
    return BaseSide(
        report=report,
        decisions=done.decisions,
        notes=notes,
        swept=list(plan.swept_models),
        package_changes=swept.package_changes,
    )


def _sweep_base(run: CompareRun, plan: BasePlan, units: list[Unit]) -> _Swept:
    """Sweep the planned models in a worktree of the merge-base, removed afterwards."""
    if plan.in_base_env:
        return _sweep_base_env(run, plan)
    with base_worktree(run.repo_root, run.merge_base) as tree:
        manifest = load_manifest(tree / run.manifest_rel)
        with _sys_path_into(run.repo_root, tree):
            result = run.sweeper(
                run.sweep_request(manifest, output=tree.parent / "base.json", models=plan.swept_models),
                progress=run.progress(units, plan.swept_models),
            )
    return _Swept(
        jobs=[replace(job, source=ResultSource.SWEPT) for job in result.report.jobs],
        notes=[f"on the merge-base: {error}" for error in result.config_errors],
    )


@contextlib.contextmanager
def _sys_path_into(repo_root: Path, tree: Path) -> Iterator[None]:
    """Point ``sys.path`` entries inside the head checkout at the worktree while the base sweep
    spawns its workers (spawn children start from the parent's ``sys.path``). Entries that do
    not exist in the worktree (a ``.venv`` inside the repository) and the one exportwatch is
    imported from stay as they are."""
    saved = list(sys.path)
    sys.path[:] = [base_env.remap_entry(e, repo_root=repo_root, tree=tree) for e in sys.path]
    try:
        yield
    finally:
        sys.path[:] = saved


def _sweep_base_env(run: CompareRun, plan: BasePlan) -> _Swept:
    """Sweep the planned models in a venv built from the merge-base's requirements; no jobs and
    a ``failure`` when it cannot be built or cannot sweep (never a crash)."""
    if plan.blocked is not None:
        return _Swept(failure=plan.blocked)
    directory = run.base_env_dir or (run.cache_dir / "base-envs" if run.cache_dir else None)
    with base_worktree(run.repo_root, run.merge_base) as tree, base_env.env_directory(directory) as where:
        try:
            env = base_env.build(plan.install, worktree=tree, directory=where)
            run.say(
                ("reusing" if env.reused else "built")
                + f" the base environment {env.root} ({plan.env_origin})"
            )
            report, errors = base_env.sweep_in(
                env,
                repo_root=run.repo_root,
                worktree=tree,
                manifest_rel=run.manifest_rel,
                models=plan.swept_models,
                options=run.options,
                output=tree.parent / "base.json",
                quiet=run.quiet,
            )
            changes = package_changes(base_env.installed_packages(env.python), base_env.installed_packages())
        except base_env.BaseEnvError as exc:
            return _Swept(failure=_keep_logs(str(exc), where) if directory is None else str(exc))
    notes = [f"on the merge-base: {error}" for error in errors]
    if changes:
        listed = ", ".join(
            f"{n} {b or '(absent)'} (HEAD: {h or '(absent)'})" for n, (b, h) in changes.items()
        )
        notes.insert(0, "the base was swept in its own environment: " + listed)
    return _Swept(
        jobs=[replace(job, source=ResultSource.SWEPT) for job in report.jobs],
        notes=notes,
        environment=report.environment,
        package_changes=changes,
    )


def _keep_logs(failure: str, where: Path) -> str:
    """A temporary base-env directory is about to go: keep the install logs the failure names."""
    for log_file in where.glob("*.install.log"):
        kept = Path(tempfile.gettempdir()) / f"exportwatch-base-env-{log_file.name}"
        shutil.copyfile(log_file, kept)
        failure = failure.replace(str(log_file), str(kept))
    return failure


def _in_order(jobs: list[JobResult], units: Sequence[Unit]) -> list[JobResult]:
    """Manifest order, then the model's target order."""
    order = {(u.spec.name, t): (u.order, i) for u in units for i, t in enumerate(u.targets)}
    return sorted(jobs, key=lambda j: order.get((j.model, j.target), (1 << 30, 0)))
