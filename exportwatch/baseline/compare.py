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

Every base ``JobResult`` records its ``source``. Reuse comes before a stored baseline on
purpose: an unchanged model then cannot show a (flaky) difference at all.

This module runs no export itself: it hands :class:`~exportwatch.sweep.runner.SweepRequest`s to a
sweeper (``run_sweep`` by default). Must not import torch.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from exportwatch import __version__, git
from exportwatch.baseline.cache import ResultCache
from exportwatch.baseline.provenance import (
    Fingerprinter,
    ModelFingerprint,
    WorkingTree,
    manifest_dir_in_repo,
)
from exportwatch.errors import UsageError
from exportwatch.git import GitTree, base_worktree, is_shallow, read_file_at, resolve_commit
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
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.progress import Progress
from exportwatch.sweep.runner import SweepRequest, SweepResult, environment, new_report, run_sweep

log = logging.getLogger(__name__)

#: History fetched per step while looking for the merge-base in a shallow checkout.
DEEPEN_STEPS = (50, 200, 1000)

Sweeper = Callable[..., SweepResult]  # run_sweep(request, progress=...)
JobKey = tuple[str, str]  # (model, target): one device per model in a run


class BaselineError(UsageError):
    """No base can be had (unknown ref, unrelated histories, git failure); exit code 2."""


class ShallowCheckoutError(BaselineError):
    """The history needed for the merge-base is not in the (shallow) checkout."""


def shallow_message(ref: str) -> str:
    return (
        f"the checkout is too shallow to find the merge-base of {ref} and HEAD; "
        "use `actions/checkout` with `fetch-depth: 0`"
    )


# ---------------------------------------------------------------------------------------------
# Git: merge-base, files at a commit, a worktree


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
            git.try_git(
                "fetch", "--no-tags", f"--depth={deepen_steps[0]}", "origin", _fetch_name(ref), cwd=repo_root
            )
            is not None
        ):
            commit = resolve_commit(repo_root, "FETCH_HEAD")
    if commit is None:
        if is_shallow(repo_root):
            raise ShallowCheckoutError(shallow_message(ref))
        fetched = " and could not be fetched from origin" if fetch else ""
        raise BaselineError(f"base {ref!r} is not a commit in this checkout{fetched}")
    found = git.try_git("merge-base", commit, "HEAD", cwd=repo_root)
    if found:
        return found
    if fetch and is_shallow(repo_root):
        for step in deepen_steps:
            log.info("no merge-base of %s and HEAD yet; deepening the history by %d commits", ref, step)
            if git.try_git("fetch", "--no-tags", f"--deepen={step}", "origin", commit, cwd=repo_root) is None:
                break
            found = git.try_git("merge-base", commit, "HEAD", cwd=repo_root)
            if found:
                return found
            if not is_shallow(repo_root):
                break
    if is_shallow(repo_root):
        raise ShallowCheckoutError(shallow_message(ref))
    raise BaselineError(f"{ref} and HEAD have no common ancestor (unrelated histories)")


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
    root = repo_root.resolve()
    # The entry exportwatch itself comes from stays: the workers must run this exportwatch.
    own = Path(__file__).resolve().parents[2]  # the directory holding the exportwatch package

    def remap(entry: str) -> str:
        try:
            path = Path(entry or os.getcwd()).resolve()
        except OSError:
            return entry
        if not path.is_relative_to(root) or path == own:
            return entry
        moved = tree / path.relative_to(root)
        return str(moved) if moved.exists() else entry

    sys.path[:] = [remap(e) for e in sys.path]
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


def baseline_incompatibility(stored: Report, *, tool_version: str, env: Environment) -> str | None:
    """Why a stored report cannot stand in for the base, or None. Pure.

    Report level: same exportwatch major version and torch version. Job level (elsewhere):
    the job's content hash must equal the base's, which covers the manifest entry and files.
    """
    if _major(stored.tool_version) != _major(tool_version):
        return (
            f"it was made by exportwatch {stored.tool_version or '(unknown)'} and this is "
            f"{tool_version} (the major versions differ)"
        )
    if stored.environment.torch != env.torch:
        return (
            f"it was made with torch {stored.environment.torch or '(unknown)'} and this run uses "
            f"torch {env.torch or '(none)'}"
        )
    return None


def load_stored_baseline(
    path: Path, *, tool_version: str = __version__, env: Environment | None = None
) -> tuple[Report | None, str | None]:
    """(report, None) when ``path`` is usable, else (None, a message saying why not)."""
    env = env or environment()
    try:
        stored = load_report(path, untrusted=True)
    except ReportError as exc:
        return None, f"stored baseline not used: {exc}; sweeping the base instead"
    why = baseline_incompatibility(stored, tool_version=tool_version, env=env)
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
    run = _Comparison(
        request=request,
        sweeper=sweeper or run_sweep,
        say=say,
        manifest=manifest,
        units=units,
        repo_root=repo_root,
        merge_base=merge_base,
        manifest_dir=manifest_dir,
        manifest_rel=Path(manifest_dir, manifest.path.name).as_posix()
        if manifest_dir
        else manifest.path.name,
        env=environment(),
        cache=ResultCache(request.cache_dir) if request.cache_dir else None,
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
    )


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
            report = new_report(self.manifest)
        jobs = [j for j in report.jobs if (j.model, j.target) not in cached] + list(cached.values())
        jobs = [self._stamp(job, self.head_prints.get(job.model)) for job in jobs]
        return replace(report, jobs=_in_order(jobs, self.units))

    def base(self, head: Report) -> Report:
        """The merge-base's report: reused, stored, cached, or swept in a worktree."""
        started = time.monotonic()
        report = replace(new_report(self.manifest), git_sha=self.merge_base, run_url=None)
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
                self.decisions[key] = BaseDecision(
                    model=fp.model, target=target, source=job.source, reason=verdict.reason
                )

        self.base_swept = list(dict.fromkeys(model for model, _ in pending))
        if self.base_swept:
            why = {model: reason for (model, _), reason in reversed(pending.items())}
            self.say(
                f"sweeping {len(self.base_swept)} of {len(units)} model(s) on the merge-base: "
                + "; ".join(f"{m} ({why[m]})" for m in self.base_swept)
            )
            for job in self._sweep_base(units):
                key = (job.model, job.target)
                if key in pending:
                    jobs[key] = self._stamp(job, prints[job.model])
                    self.decisions[key] = BaseDecision(
                        model=job.model, target=job.target, source=ResultSource.SWEPT, reason=pending[key]
                    )
        else:
            self.say("no model to sweep on the merge-base: every base result is reused, stored or cached")
        for key, reason in pending.items():
            if key not in jobs:
                self.decisions[key] = BaseDecision(
                    model=key[0],
                    target=key[1],
                    source=None,
                    reason=f"{reason}; the base sweep gave no result",
                )
        self._no_base_for(head, reason="new model (not in the base manifest)")
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
        if stored is not None and stored.content_hash == content_hash:
            return _copy(stored, ResultSource.BASELINE)
        return self._cached(fp, key[1], content_hash)

    def _stored_jobs(self) -> dict[JobKey, JobResult]:
        if self.request.baseline is None:
            return {}
        stored, refusal = load_stored_baseline(self.request.baseline, env=self.env)
        if refusal:
            self.notes.append(refusal)
        return {(j.model, j.target): j for j in stored.jobs} if stored else {}

    def _no_base_for(self, head: Report, *, reason: str) -> None:
        for job in head.jobs:
            key = (job.model, job.target)
            if key not in self.decisions:
                self.decisions[key] = BaseDecision(
                    model=job.model, target=job.target, source=None, reason=reason
                )

    def _sweep_base(self, units: list[Unit]) -> list[JobResult]:
        """Sweep ``self.base_swept`` in a worktree of the merge-base, removed afterwards."""
        with base_worktree(self.repo_root, self.merge_base) as tree:
            manifest = load_manifest(tree / self.manifest_rel)
            with _sys_path_into(self.repo_root, tree):
                result = self.sweeper(
                    self._sweep_request(manifest, output=tree.parent / "base.json", models=self.base_swept),
                    progress=self._progress(units, self.base_swept),
                )
        self.notes += [f"on the merge-base: {error}" for error in result.config_errors]
        return [replace(job, source=ResultSource.SWEPT) for job in result.report.jobs]

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
