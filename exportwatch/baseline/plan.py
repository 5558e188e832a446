"""Where each base result comes from, decided as data: facts in, a frozen :class:`BasePlan` out.

Everything here is pure: the facts (fingerprints on both sides, dependency sets, the stored
baseline as loaded, cache hits) are gathered first by :mod:`exportwatch.baseline.execute`, which
then carries the plan out (worktree, ``sys.path``, base venv, cache, sweeps). To change a reuse
rule, read :func:`plan_base` and the helpers below it; nothing here touches git or the disk.

Per job, the first rule that applies:

1. ``REUSE_HEAD``: every dependency file and the manifest entry are unchanged (:func:`decide_reuse`)
   and the dependency set is the same: the base result *is* the head result;
2. ``STORED_BASELINE``: a compatible stored report has the job under the same content hash
   (when the dependency set changed: the hash of the stored report's own environment);
3. ``CACHE``: the cache has it (never when the dependency set changed: it may hold results of
   HEAD's packages);
4. ``SWEEP_WORKTREE`` / ``SWEEP_BASE_ENV``: swept on the merge-base, in a worktree with this
   environment, or in a venv built from the base's requirements;
5. ``NONE``: no base result (a new model, no manifest on the merge-base, a base environment
   that cannot be had).

Must not import torch.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from exportwatch import __version__
from exportwatch.baseline.environment import (
    DependencySet,
    InstallPlan,
    changed_files,
    install_plan,
    shown,
)
from exportwatch.report import Environment, JobResult, Report, ResultSource
from exportwatch.report.provenance import ModelFingerprint

JobKey = tuple[str, str]  # (model, target): one device per model in a run

NEW_MODEL = "new model (not in the base manifest)"
NO_BASE_MANIFEST = "no manifest on the merge-base"


# ---------------------------------------------------------------------------------------------
# Single decisions


@dataclass(frozen=True, kw_only=True)
class ReuseDecision:
    reuse: bool
    reason: str
    changed: tuple[str, ...] = ()  # dependency files that differ


def decide_reuse(head: ModelFingerprint | None, base: ModelFingerprint | None) -> ReuseDecision:
    """May the base result of this model be the head result? Yes only when every dependency
    file is byte-identical and the manifest entry (and requested device) is unchanged."""
    if base is None:
        return ReuseDecision(reuse=False, reason=NEW_MODEL)
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
        listed = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return ReuseDecision(reuse=False, reason=f"changed: {listed}", changed=changed)
    if head.device != base.device:
        return ReuseDecision(reuse=False, reason="the requested device differs")
    return ReuseDecision(reuse=True, reason="no dependency changed")


def _major(version: str) -> str:
    return (version or "").split(".", 1)[0]


def baseline_incompatibility(
    stored: Report, *, tool_version: str, env: Environment, same_torch: bool = True
) -> str | None:
    """Why a stored report cannot stand in for the base, or None.

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


def stored_refusal(path: Path, load_error: str | None, incompatibility: str | None) -> str | None:
    """The note for a stored baseline that is not used (unreadable, or incompatible), or None."""
    if load_error is not None:
        return f"stored baseline not used: {load_error}; sweeping the base instead"
    if incompatibility is not None:
        return f"stored baseline {path} not used: {incompatibility}; sweeping the base instead"
    return None


# ---------------------------------------------------------------------------------------------
# Facts: gathered before anything is decided


@dataclass(frozen=True, kw_only=True)
class StoredBaseline:
    """``--baseline FILE`` as read: the report, or why it could not be read."""

    path: Path
    report: Report | None = None
    load_error: str | None = None  # the ReportError's text
    #: the dependency set at the commit the report was made on, when that commit is in the
    #: repository (gathered only when the dependency set changed: only then does it matter)
    commit_deps: DependencySet | None = None


@dataclass(frozen=True, kw_only=True)
class BaseModel:
    """One model of the base manifest: its fingerprint at the merge-base, its targets."""

    fingerprint: ModelFingerprint
    targets: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.fingerprint.model


@dataclass(frozen=True, kw_only=True)
class BaseFacts:
    """What decides the base side, read from git, the disk and the head sweep beforehand."""

    merge_base: str
    manifest_rel: str
    env: Environment  # this run's
    base_env_mode: str = "auto"
    #: None when the merge-base has no (valid) manifest; then ``manifest_problem`` may say why
    models: tuple[BaseModel, ...] | None = ()
    manifest_problem: str | None = None  # the ConfigError of the merge-base's manifest
    head_prints: Mapping[str, ModelFingerprint] = field(default_factory=dict)
    head_jobs: Mapping[JobKey, JobResult] = field(default_factory=dict)  # in head report order
    head_deps: DependencySet | None = None  # None: not compared (``--base-env head``)
    base_deps: DependencySet | None = None
    stored: StoredBaseline | None = None
    cached: Mapping[JobKey, JobResult] = field(default_factory=dict)  # hits under this run's hashes
    tool_version: str = __version__


# ---------------------------------------------------------------------------------------------
# The plan


class Origin(enum.Enum):
    """Where one base job's result comes from."""

    REUSE_HEAD = "reuse of the head result"
    STORED_BASELINE = "stored baseline"
    CACHE = "cache"
    SWEEP_WORKTREE = "sweep in a worktree of the merge-base"
    SWEEP_BASE_ENV = "sweep in the base's own environment"
    NONE = "no base result"

    @property
    def source(self) -> ResultSource | None:
        """The ``source`` the base ``JobResult`` records."""
        return _SOURCES[self]


_SOURCES: dict[Origin, ResultSource | None] = {
    Origin.REUSE_HEAD: ResultSource.REUSED,
    Origin.STORED_BASELINE: ResultSource.BASELINE,
    Origin.CACHE: ResultSource.CACHE,
    Origin.SWEEP_WORKTREE: ResultSource.SWEPT,
    Origin.SWEEP_BASE_ENV: ResultSource.SWEPT,
    Origin.NONE: None,
}
SWEEPS = frozenset({Origin.SWEEP_WORKTREE, Origin.SWEEP_BASE_ENV})


@dataclass(frozen=True, kw_only=True)
class PlannedJob:
    model: str
    target: str
    origin: Origin
    reason: str  # shown to the user
    result: JobResult | None = None  # the result itself when it needs no sweep

    @property
    def key(self) -> JobKey:
        return (self.model, self.target)


@dataclass(frozen=True, kw_only=True)
class BaseDecision:
    """Where one base job's result came from, and why."""

    model: str
    target: str
    source: ResultSource | None  # None: there is no base result (a new model)
    reason: str


@dataclass(frozen=True, kw_only=True)
class BasePlan:
    """The base side, decided: per job an origin and a reason, plus what the sweep needs."""

    merge_base: str
    has_manifest: bool = True
    jobs: tuple[PlannedJob, ...] = ()  # base manifest order, then the head's new models
    notes: tuple[str, ...] = ()  # for the user, in the order they are shown
    deps_changed: tuple[str, ...] = ()
    install: InstallPlan = field(default_factory=InstallPlan)
    #: the environment the stored baseline ran in, when it was accepted for a changed dependency set
    stored_environment: Environment | None = None
    blocked: str | None = None  # why the base environment cannot be had (before trying)
    env_origin: str = ""  # what the base environment is built from, in words

    @property
    def to_sweep(self) -> tuple[PlannedJob, ...]:
        return tuple(job for job in self.jobs if job.origin in SWEEPS)

    @property
    def swept_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(job.model for job in self.to_sweep))

    @property
    def in_base_env(self) -> bool:
        return any(job.origin is Origin.SWEEP_BASE_ENV for job in self.jobs)

    def sweep_message(self, models_in_manifest: int) -> str:
        """The line said before the base sweep (or instead of it)."""
        if not self.to_sweep:
            return "no model to sweep on the merge-base: every base result is reused, stored or cached"
        why: dict[str, str] = {}
        for job in self.to_sweep:
            why.setdefault(job.model, job.reason)
        return f"sweeping {len(why)} of {models_in_manifest} model(s) on the merge-base: " + "; ".join(
            f"{model} ({reason})" for model, reason in why.items()
        )


def plan_base(facts: BaseFacts) -> BasePlan:
    """Decide, for every base job, where its result comes from and why."""
    if facts.models is None:
        return _no_manifest_plan(facts)
    deps_changed, install = dependency_change(facts)
    notes: list[str] = []
    if deps_changed:
        notes.append(
            f"the dependency set differs between the merge-base and HEAD ({shown(deps_changed)}):"
            " the base is not swept with HEAD's packages"
        )
    stored_jobs, stored_env, stored_note = _accept_stored(facts, deps_changed)
    notes += [stored_note] if stored_note else []
    in_base_env = facts.base_env_mode == "venv" or bool(deps_changed)
    sweep = Origin.SWEEP_BASE_ENV if in_base_env else Origin.SWEEP_WORKTREE
    jobs: list[PlannedJob] = []
    for model in facts.models:
        verdict = decide_reuse(facts.head_prints.get(model.name), model.fingerprint)
        if deps_changed and verdict.reuse:  # the head result ran with HEAD's packages
            verdict = ReuseDecision(reuse=False, reason=f"the dependency set changed ({shown(deps_changed)})")
        for target in model.targets:
            known = _known_job(
                facts, model.fingerprint, target, verdict, stored_jobs, stored_env, deps_changed
            )
            jobs.append(
                known or PlannedJob(model=model.name, target=target, origin=sweep, reason=verdict.reason)
            )
    planned = {job.key for job in jobs}
    jobs += [
        PlannedJob(model=key[0], target=key[1], origin=Origin.NONE, reason=NEW_MODEL)
        for key in facts.head_jobs
        if key not in planned
    ]
    return BasePlan(
        merge_base=facts.merge_base,
        jobs=tuple(jobs),
        notes=tuple(notes),
        deps_changed=deps_changed,
        install=install,
        stored_environment=stored_env,
        blocked=_blocked(facts.base_env_mode, install) if in_base_env else None,
        env_origin=_env_origin(install),
    )


def _no_manifest_plan(facts: BaseFacts) -> BasePlan:
    if facts.manifest_problem is not None:
        note = (
            f"the manifest at the merge-base is invalid ({facts.manifest_problem});"
            " every model is compared as new"
        )
    else:
        note = f"the merge-base {facts.merge_base[:12]} has no {facts.manifest_rel}: every model is new"
    return BasePlan(
        merge_base=facts.merge_base,
        has_manifest=False,
        jobs=tuple(
            PlannedJob(model=model, target=target, origin=Origin.NONE, reason=NO_BASE_MANIFEST)
            for model, target in facts.head_jobs
        ),
        notes=(note,),
    )


def dependency_change(facts: BaseFacts) -> tuple[tuple[str, ...], InstallPlan]:
    """The dependency files that differ (none under ``--base-env head``), and what a base
    environment installs."""
    if facts.base_env_mode == "head" or facts.head_deps is None or facts.base_deps is None:
        return (), InstallPlan()
    changed = changed_files(facts.head_deps, facts.base_deps)
    return changed, install_plan(facts.head_deps, facts.base_deps, everything=facts.base_env_mode == "venv")


def _accept_stored(
    facts: BaseFacts, deps_changed: tuple[str, ...]
) -> tuple[Mapping[JobKey, JobResult], Environment | None, str | None]:
    """The stored baseline's jobs when it may stand in for the base, the environment it ran in
    when that is not this run's, and the note about it (accepted or refused)."""
    stored = facts.stored
    if stored is None:
        return {}, None, None
    report = stored.report
    why = None
    if report is not None:
        why = baseline_incompatibility(
            report, tool_version=facts.tool_version, env=facts.env, same_torch=not deps_changed
        )
    refusal = stored_refusal(stored.path, stored.load_error, why)
    if refusal is not None or report is None:
        return {}, None, refusal
    if not deps_changed:
        return {(j.model, j.target): j for j in report.jobs}, None, None
    if not _ran_with_base_deps(stored, facts):
        made = f"on {report.git_sha[:12]}" if report.git_sha else "on an unknown commit"
        return (
            {},
            None,
            (
                f"stored baseline {stored.path} not used: it was made {made}, whose dependency set"
                " may not be the merge-base's; sweeping the base instead"
            ),
        )
    note = (
        f"stored baseline {stored.path}: made on the merge-base in its own environment"
        f" (torch {report.environment.torch or '(none)'};"
        f" this run: torch {facts.env.torch or '(none)'});"
        " its jobs are matched by the hashes of that environment"
    )
    return {(j.model, j.target): j for j in report.jobs}, report.environment, note


def _ran_with_base_deps(stored: StoredBaseline, facts: BaseFacts) -> bool:
    """When the dependency set changed, a stored report stands in for the base only if it ran
    with the merge-base's dependency set: made on the merge-base, or on a commit whose
    dependency files are the same."""
    sha = stored.report.git_sha if stored.report is not None else None
    if sha and (sha == facts.merge_base or facts.merge_base.startswith(sha)):
        return True
    if stored.commit_deps is not None and facts.base_deps is not None:
        return not changed_files(stored.commit_deps, facts.base_deps)
    return False


def _known_job(
    facts: BaseFacts,
    fp: ModelFingerprint,
    target: str,
    verdict: ReuseDecision,
    stored_jobs: Mapping[JobKey, JobResult],
    stored_env: Environment | None,
    deps_changed: tuple[str, ...],
) -> PlannedJob | None:
    """The base job that needs no sweep, or None: reused, then stored, then cached."""
    key = (fp.model, target)
    content_hash = fp.content_hash(target, facts.env)
    head_job = facts.head_jobs.get(key)
    if verdict.reuse and head_job is not None and head_job.content_hash == content_hash:
        return _planned(key, Origin.REUSE_HEAD, verdict.reason, head_job)
    if stored_env is not None:  # hashed as the stored report ran: in its environment
        content_hash = fp.content_hash(target, stored_env)
    stored = stored_jobs.get(key)
    if stored is not None and stored.content_hash == content_hash:
        reason = verdict.reason
        if stored_env is not None:
            reason += (
                "; from the stored baseline, made on the merge-base in its own environment"
                f" (torch {stored_env.torch or '(none)'})"
            )
        return _planned(key, Origin.STORED_BASELINE, reason, stored)
    if deps_changed:
        return None  # the cache is keyed on torch/onnx only: it may hold HEAD-package results
    cached = facts.cached.get(key)
    if cached is not None and cached.content_hash == content_hash:
        return _planned(key, Origin.CACHE, verdict.reason, cached)
    return None


def _planned(key: JobKey, origin: Origin, reason: str, job: JobResult) -> PlannedJob:
    source = origin.source
    assert source is not None, origin  # a result that needs no sweep has a source
    result = replace(copy.deepcopy(job), source=source)
    return PlannedJob(model=key[0], target=key[1], origin=origin, reason=reason, result=result)


def _blocked(mode: str, install: InstallPlan) -> str | None:
    """Why the base environment cannot be had at all, known before trying to build it."""
    if mode == "never":
        return "--base-env never"
    if install.unsupported:
        return f"pip cannot install from {shown(install.unsupported)}"
    return None


def _env_origin(install: InstallPlan) -> str:
    files = [*install.requirement_files, *(["pyproject.toml"] if install.requirements else [])]
    return (
        f"built from the merge-base's {shown(files)}"
        if files
        else "HEAD's packages, nothing pinned differently"
    )


# ---------------------------------------------------------------------------------------------
# After the sweep: what each job ended up with


@dataclass(frozen=True, kw_only=True)
class Settlement:
    decisions: tuple[BaseDecision, ...]
    missing: tuple[JobKey, ...]  # to be swept, but the sweep gave no result
    note: str | None = None  # when the base environment could not be had

    @property
    def complete(self) -> bool:
        """False when jobs lack a base result because the base environment failed: the diff
        must not read "no regressions" as final."""
        return self.note is None


def settle(plan: BasePlan, swept: Sequence[JobKey], failure: str | None) -> Settlement:
    """Every job's decision once the sweep is done: ``swept`` are the jobs it gave results for,
    in its order; ``failure`` says why the base environment could not be had, if so."""
    to_sweep = {job.key: job for job in plan.to_sweep}
    where = f"; swept in the base environment ({plan.env_origin})" if plan.in_base_env else ""
    decisions = [
        _decided(job, job.reason)
        for job in plan.jobs
        if job.origin not in SWEEPS and job.origin is not Origin.NONE
    ]
    done = {key: None for key in swept if key in to_sweep}  # ordered, each job once
    decisions += [_decided(to_sweep[key], to_sweep[key].reason + where) for key in done]
    missing = tuple(key for key in to_sweep if key not in done)
    lacking = (
        f"not reproduced in the base's own environment: {failure}"
        if failure
        else "the base sweep gave no result"
    )
    decisions += [
        BaseDecision(model=key[0], target=key[1], source=None, reason=f"{to_sweep[key].reason}; {lacking}")
        for key in missing
    ]
    decisions += [_decided(job, job.reason) for job in plan.jobs if job.origin is Origin.NONE]
    note = None
    if failure and missing:
        models = list(dict.fromkeys(model for model, _ in missing))
        note = (
            f"the merge-base could not be reproduced in its own environment ({failure}): {len(models)}"
            " model(s) have no base result and are compared as new rather than against results of"
            f" HEAD's packages: {shown(models, 10)}"
        )
    return Settlement(decisions=tuple(decisions), missing=missing, note=note)


def _decided(job: PlannedJob, reason: str) -> BaseDecision:
    return BaseDecision(model=job.model, target=job.target, source=job.origin.source, reason=reason)
