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

This module runs no export itself: it hands :class:`~exportwatch.runner.SweepRequest`s to a
sweeper (``run_sweep`` by default). Must not import torch.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exportwatch import __version__, git
from exportwatch.cache import ResultCache
from exportwatch.deps import (
    Fingerprinter,
    GitTree,
    ModelFingerprint,
    WorkingTree,
    manifest_dir_in_repo,
)
from exportwatch.manifest import ConfigError, Manifest, load_manifest
from exportwatch.progress import Progress
from exportwatch.report import (
    Environment,
    JobResult,
    Report,
    ReportError,
    ResultSource,
    load_report,
    write_report,
)
from exportwatch.runner import SweepRequest, SweepResult, environment, new_report, plan_units, run_sweep

log = logging.getLogger(__name__)

#: History fetched per step while looking for the merge-base in a shallow checkout.
DEEPEN_STEPS = (50, 200, 1000)
#: Reports read from files or artifacts larger than this are refused.
MAX_BASELINE_BYTES = 64 * 1024 * 1024

Sweeper = Callable[..., SweepResult]  # run_sweep(request, progress=...)
JobKey = tuple[str, str]  # (model, target): one device per model in a run


class BaselineError(Exception):
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


def _try(*args: str, cwd: Path) -> str | None:
    try:
        return git.git(*args, cwd=cwd)
    except git.GitError as exc:
        log.debug("%s", exc)
        return None


def resolve_commit(repo_root: Path, ref: str) -> str | None:
    return _try("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo_root) or None


def is_shallow(repo_root: Path) -> bool:
    return _try("rev-parse", "--is-shallow-repository", cwd=repo_root) == "true"


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
            _try(
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
    found = _try("merge-base", commit, "HEAD", cwd=repo_root)
    if found:
        return found
    if fetch and is_shallow(repo_root):
        for step in deepen_steps:
            log.info("no merge-base of %s and HEAD yet; deepening the history by %d commits", ref, step)
            if _try("fetch", "--no-tags", f"--deepen={step}", "origin", commit, cwd=repo_root) is None:
                break
            found = _try("merge-base", commit, "HEAD", cwd=repo_root)
            if found:
                return found
            if not is_shallow(repo_root):
                break
    if is_shallow(repo_root):
        raise ShallowCheckoutError(shallow_message(ref))
    raise BaselineError(f"{ref} and HEAD have no common ancestor (unrelated histories)")


def read_file_at(repo_root: Path, commit: str, path: str) -> bytes | None:
    """``path`` (repo-relative) as it is in ``commit``, without a checkout; None if absent."""
    tree = GitTree(repo_root, commit)
    return tree.read(path)


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
def base_worktree(repo_root: Path, commit: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``commit`` in a temporary directory, removed (and pruned)
    on the way out, also when the body raises."""
    tmp = Path(tempfile.mkdtemp(prefix="exportwatch-base-"))
    tree = tmp / "tree"
    try:
        git.git("worktree", "add", "--detach", str(tree), commit, cwd=repo_root)
        yield tree
    finally:
        _try("worktree", "remove", "--force", str(tree), cwd=repo_root)
        shutil.rmtree(tmp, ignore_errors=True)
        _try("worktree", "prune", cwd=repo_root)


@contextlib.contextmanager
def _sys_path_into(repo_root: Path, tree: Path) -> Iterator[None]:
    """Point ``sys.path`` entries inside the head checkout at the worktree while the base sweep
    spawns its workers (spawn children start from the parent's ``sys.path``). Entries that do
    not exist in the worktree (a ``.venv`` inside the repository) stay as they are."""
    saved = list(sys.path)
    root = repo_root.resolve()

    def remap(entry: str) -> str:
        try:
            path = Path(entry or os.getcwd()).resolve()
        except OSError:
            return entry
        if not path.is_relative_to(root):
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
        stored = load_report(path, max_bytes=MAX_BASELINE_BYTES)
    except ReportError as exc:
        return None, f"stored baseline not used: {exc}; sweeping the base instead"
    why = baseline_incompatibility(stored, tool_version=tool_version, env=env)
    if why:
        return None, f"stored baseline {path} not used: {why}; sweeping the base instead"
    return stored, None


# ---------------------------------------------------------------------------------------------
# The base commit's report artifact (GitHub)


def download_base_report(
    repo: Any, *, sha: str, artifact_name: str, token: Any, dest: Path, settings: Any = None
) -> Path | None:
    """Download the report artifact of a workflow run on ``sha`` and return the report's path
    (use it as ``--baseline``), or None when no run on that commit has one.

    ``repo`` is a PyGithub ``Repository``; ``token`` an ``exportwatch.github.config.Secret``.
    Plugs in where the action resolves the base (``exportwatch.action``): download, then pass
    the file as ``CompareRequest.baseline``. The archive is untrusted and size-capped
    (``exportwatch.github.artifacts``).
    """
    from github import GithubException

    from exportwatch.github.artifacts import download_artifact, find_run_artifact, safe_extract
    from exportwatch.github.client import NoArtifact

    try:
        runs = list(repo.get_workflow_runs(head_sha=sha))
    except GithubException as exc:
        log.warning("cannot list the workflow runs of %s: %s", sha[:12], exc)
        return None
    runs.sort(key=lambda r: getattr(r, "id", 0), reverse=True)
    for run in runs:
        if getattr(run, "conclusion", None) in ("cancelled", "skipped"):
            continue
        try:
            info = find_run_artifact(repo, run.id, artifact_name)
            archive = download_artifact(info.artifact, dest / f"{run.id}.zip", token=token, settings=settings)
            files = safe_extract(archive, dest / str(run.id))
        except NoArtifact as exc:
            log.info("run %s: %s", run.id, exc)
            continue
        reports = sorted((f for f in files if f.suffix == ".json"), key=lambda f: ".base." in f.name)
        for candidate in reports:
            try:
                if load_report(candidate, max_bytes=MAX_BASELINE_BYTES).git_sha in (sha, None):
                    return candidate
            except ReportError:
                continue
    return None


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
    targets: list[str] | None = None
    device: str | None = None
    workers: int | None = None
    timeout_s: float | None = None
    max_memory_mb: float | None = None
    fetch: bool = True
    quiet: bool = True
    verbose: bool = False


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
    sweeper: Sweeper = run_sweep,
    say: Callable[[str], None] | None = None,
) -> CompareResult:
    """Sweep HEAD (minus cached jobs) and obtain a base result for the same jobs.

    Raises :class:`ConfigError` for a bad head manifest and :class:`BaselineError` when no
    merge-base can be found. Writes both reports.
    """
    say = say or (lambda text: log.info("%s", text))
    manifest = load_manifest(request.manifest_path)
    units = plan_units(manifest, models=None, targets=request.targets, device=request.device)
    repo_root = git.toplevel(manifest.root)
    if repo_root is None:
        raise BaselineError(
            f"{request.manifest_path} is not inside a git repository: no base to compare with"
        )
    merge_base = find_merge_base(repo_root, request.base_ref, fetch=request.fetch)
    say(
        f"exportwatch {__version__}: base is the merge-base of {request.base_ref} and HEAD: {merge_base[:12]}"
    )
    manifest_dir = manifest_dir_in_repo(manifest, repo_root)
    manifest_rel = Path(manifest_dir, manifest.path.name).as_posix() if manifest_dir else manifest.path.name
    env = environment()
    cache = ResultCache(request.cache_dir) if request.cache_dir else None
    notes: list[str] = []

    # HEAD ---------------------------------------------------------------------------------
    head_printer = Fingerprinter(WorkingTree(repo_root), manifest_dir=manifest_dir)
    head_prints = {u.spec.name: head_printer.fingerprint(u.spec, device=request.device) for u in units}
    cached: dict[JobKey, JobResult] = {}
    head_to_sweep: list[str] = []
    for unit in units:
        fp = head_prints[unit.spec.name]
        hits = {
            t: cache.get(fp.content_hash(t, env), key=(fp.model, t, fp.device)) if cache else None
            for t in unit.targets
        }
        if all(hits.values()):
            cached.update({(fp.model, t): job for t, job in hits.items() if job is not None})
        else:
            head_to_sweep.append(unit.spec.name)
    config_errors: list[str] = []
    if head_to_sweep:
        say(
            f"sweeping {len(head_to_sweep)} of {len(units)} model(s) on HEAD"
            f" ({len(units) - len(head_to_sweep)} cached)"
        )
        result = sweeper(
            _sweep_request(request, manifest=manifest, output=request.head_output, models=head_to_sweep),
            progress=_progress(request, units, head_to_sweep),
        )
        head = result.report
        config_errors += result.config_errors
    else:
        say(f"all {len(units)} model(s) on HEAD are cached: no export to run")
        head = new_report(manifest)
    order = {(u.spec.name, t): (u.order, i) for u in units for i, t in enumerate(u.targets)}
    jobs = [j for j in head.jobs if (j.model, j.target) not in cached] + list(cached.values())
    for job in jobs:
        fp = head_prints.get(job.model)
        if fp is not None:
            job.dependencies = dict(fp.dependencies)
            job.content_hash = fp.content_hash(job.target, env)
        if cache and job.source is ResultSource.SWEPT:
            cache.put(job)
    head.jobs = sorted(jobs, key=lambda j: order.get((j.model, j.target), (1 << 30, 0)))
    write_report(head, request.head_output)

    # BASE ---------------------------------------------------------------------------------
    started = time.monotonic()
    base = new_report(manifest)
    base.git_sha = merge_base
    base.run_url = None
    try:
        base_manifest = load_manifest_at(repo_root, merge_base, manifest_rel)
    except ConfigError as exc:
        base_manifest = None
        notes.append(f"the manifest at the merge-base is invalid ({exc}); every model is compared as new")
    if base_manifest is None:
        if not notes:
            notes.append(f"the merge-base {merge_base[:12]} has no {manifest_rel}: every model is new")
        decisions = [
            BaseDecision(model=j.model, target=j.target, source=None, reason="no base manifest")
            for j in head.jobs
        ]
        base.jobs = []
        base.duration_s = round(time.monotonic() - started, 3)
        write_report(base, request.base_output)
        return CompareResult(
            head=head,
            base=base,
            merge_base=merge_base,
            decisions=decisions,
            notes=notes,
            config_errors=config_errors,
            head_swept=head_to_sweep,
        )

    stored: Report | None = None
    if request.baseline is not None:
        stored, refusal = load_stored_baseline(request.baseline, env=env)
        if refusal:
            notes.append(refusal)
            say(f"warning: {refusal}")
    stored_jobs = {(j.model, j.target): j for j in stored.jobs} if stored else {}

    base_units = plan_units(base_manifest, models=None, targets=request.targets, device=request.device)
    base_printer = Fingerprinter(GitTree(repo_root, merge_base), manifest_dir=manifest_dir)
    head_jobs = {(j.model, j.target): j for j in head.jobs}
    base_jobs: dict[JobKey, JobResult] = {}
    base_prints: dict[str, ModelFingerprint] = {}
    pending: dict[JobKey, str] = {}  # job -> why it is swept
    decisions: dict[JobKey, BaseDecision] = {}
    for unit in base_units:
        fp = base_printer.fingerprint(unit.spec, device=request.device)
        base_prints[fp.model] = fp
        verdict = decide_reuse(head_prints.get(fp.model), fp)
        for target in unit.targets:
            key = (fp.model, target)
            content_hash = fp.content_hash(target, env)
            job = _base_job(
                key,
                content_hash,
                verdict=verdict,
                head_jobs=head_jobs,
                stored_jobs=stored_jobs,
                cache=cache,
                device=fp.device,
            )
            if job is None:
                pending[key] = verdict.reason
                continue
            base_jobs[key] = job
            decisions[key] = BaseDecision(
                model=fp.model, target=target, source=job.source, reason=verdict.reason
            )

    base_swept = list(dict.fromkeys(model for model, _ in pending))
    if base_swept:
        say(
            f"sweeping {len(base_swept)} of {len(base_units)} model(s) on the merge-base {merge_base[:12]}: "
            + "; ".join(f"{m}: {pending[next(k for k in pending if k[0] == m)]}" for m in base_swept)
        )
        swept, base_notes = _sweep_base(
            request,
            repo_root=repo_root,
            commit=merge_base,
            manifest_rel=manifest_rel,
            models=base_swept,
            sweeper=sweeper,
            units=base_units,
        )
        notes += base_notes
        for job in swept:
            key = (job.model, job.target)
            if key not in pending:
                continue
            fp = base_prints[job.model]
            job.dependencies = dict(fp.dependencies)
            job.content_hash = fp.content_hash(job.target, env)
            job.source = ResultSource.SWEPT
            if cache:
                cache.put(job)
            base_jobs[key] = job
            decisions[key] = BaseDecision(
                model=job.model, target=job.target, source=ResultSource.SWEPT, reason=pending[key]
            )
    else:
        say(
            f"no model to sweep on the merge-base {merge_base[:12]}:"
            " every base result is reused, stored or cached"
        )
    for key, reason in pending.items():
        if key not in base_jobs:
            decisions[key] = BaseDecision(
                model=key[0], target=key[1], source=None, reason=f"{reason}; the base sweep gave no result"
            )
    for job in head.jobs:
        key = (job.model, job.target)
        if key not in decisions:
            decisions[key] = BaseDecision(
                model=job.model, target=job.target, source=None, reason="new model (not in the base manifest)"
            )

    base_order = {(u.spec.name, t): (u.order, i) for u in base_units for i, t in enumerate(u.targets)}
    base.jobs = sorted(base_jobs.values(), key=lambda j: base_order.get((j.model, j.target), (1 << 30, 0)))
    base.duration_s = round(time.monotonic() - started, 3)
    write_report(base, request.base_output)
    return CompareResult(
        head=head,
        base=base,
        merge_base=merge_base,
        decisions=list(decisions.values()),
        notes=notes,
        config_errors=config_errors,
        head_swept=head_to_sweep,
        base_swept=base_swept,
    )


def _base_job(
    key: JobKey,
    content_hash: str,
    *,
    verdict: ReuseDecision,
    head_jobs: Mapping[JobKey, JobResult],
    stored_jobs: Mapping[JobKey, JobResult],
    cache: ResultCache | None,
    device: str,
) -> JobResult | None:
    """The base result that needs no sweep, or None. Reused, then stored, then cached."""
    head_job = head_jobs.get(key)
    if verdict.reuse and head_job is not None and head_job.content_hash == content_hash:
        job = copy.deepcopy(head_job)
        job.source = ResultSource.REUSED
        return job
    stored = stored_jobs.get(key)
    if stored is not None and stored.content_hash == content_hash:
        job = copy.deepcopy(stored)
        job.source = ResultSource.BASELINE
        return job
    if cache is not None:
        return cache.get(content_hash, key=(*key, device))
    return None


def _sweep_base(
    request: CompareRequest,
    *,
    repo_root: Path,
    commit: str,
    manifest_rel: str,
    models: list[str],
    sweeper: Sweeper,
    units: list[Any],
) -> tuple[list[JobResult], list[str]]:
    """Sweep ``models`` in a worktree of ``commit``; the worktree is removed afterwards."""
    notes: list[str] = []
    with base_worktree(repo_root, commit) as tree:
        manifest = load_manifest(tree / manifest_rel)
        with _sys_path_into(repo_root, tree):
            result = sweeper(
                _sweep_request(
                    request, manifest=manifest, output=tree.parent / "base-sweep.json", models=models
                ),
                progress=_progress(request, units, models),
            )
    for error in result.config_errors:
        notes.append(f"on the merge-base: {error}")
    return result.report.jobs, notes


def _sweep_request(
    request: CompareRequest, *, manifest: Manifest, output: Path, models: list[str]
) -> SweepRequest:
    return SweepRequest(
        manifest=manifest,
        output=output,
        models=models,
        targets=request.targets,
        device=request.device,
        workers=request.workers,
        timeout_s=request.timeout_s,
        max_memory_mb=request.max_memory_mb,
        verbose=request.verbose,
    )


def _progress(request: CompareRequest, units: list[Any], models: list[str]) -> Progress:
    total = sum(len(u.targets) for u in units if u.spec.name in models)
    return Progress(total=total, quiet=request.quiet)
