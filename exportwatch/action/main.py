"""The GitHub Action: read the runner's environment, sweep, compare, publish, exit per the gate.

``entrypoint/entrypoint.sh`` runs ``python -m exportwatch.action`` (in the Docker image and in
the composite variant alike). Modes:

* ``full``: install → (on a PR) the merge-base's stored baseline artifact, if any → sweep head
  → base results (reused, stored baseline, cache, else swept in a git worktree of the
  merge-base) → diff → gate → render → **outputs and job summary first** → PR comment → check
  run → the review of suggested fixes (``review-suggestions``) → exit code per gate;
* ``sweep``: install → sweep head (+ base for a PR) → write the reports; no token needed. The
  untrusted half of the fork-safe flow, and the push-to-main baseline;
* ``publish``: in a ``workflow_run`` workflow: download the sweep's artifact (untrusted data:
  size-capped, schema-validated), find the PR through the API, render and publish. Never runs
  the PR's code and never imports torch;
* ``merge``: merge the shard reports an earlier step downloaded, then as ``full``.

Each mode returns a frozen :class:`ModeOutcome` (what it found); :func:`conclude` is the one
ending: log, outputs, job summary, then (but in ``sweep``) the comment and check run.

Every mode with a head report also writes the HTML report beside it (``exportwatch-report.html``,
output ``html-report``), for the workflow to upload.

Exit codes: 0 gate passed (or nothing to gate), 1 gate failed, 2 configuration error (or the
step's own files could not be written), 3 internal error. A failure to comment, to create the
check run or to write the HTML report is a warning; only ``fail-on-publish-error`` (by default
in ``mode: publish`` alone) turns "neither a comment nor a check run" into exit 2.

The sweep runs as a subprocess (``python -m exportwatch sweep``), so this module never
imports torch.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from github import GithubException

from exportwatch.action.decide import (
    StepOutputs,
    annotations_for,
    baseline_artifact_name,
    check_annotations,
    check_conclusion,
    choose_baseline_artifact,
    compare_command,
    head_commit,
    html_report_path,
    nothing_published,
    render_context,
    resolve_base,
    sweep_command,
    workspace_relative_report,
)
from exportwatch.diff import Cell, Changes, GateResult, XfailIndex, diff_reports, gate
from exportwatch.errors import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, ExportwatchError, WriteError
from exportwatch.github import workflow_commands as wc
from exportwatch.github.artifacts import (
    download_artifact,
    find_run_artifact,
    safe_extract,
)
from exportwatch.github.client import (
    ClientSettings,
    GitHubError,
    NoArtifact,
    build_github,
    describe,
    describe_failure,
    my_login,
)
from exportwatch.github.config import ActionConfig, ActionConfigError, CommentMode, Mode, Secret
from exportwatch.github.event import Event, load_event
from exportwatch.github.publish import (
    Annotation,
    annotation_text,
    append_summary,
    create_check_run,
    find_pull_request,
    unpublished_summary,
    upsert_comment,
    write_outputs,
)
from exportwatch.github.review import PullState, decide_review, read_pull, write_review
from exportwatch.manifest import ConfigError
from exportwatch.render import comment_marker, headline
from exportwatch.render.escape import marker_key, one_line, repository_path, term_text
from exportwatch.render.html import render_html
from exportwatch.render.markdown import render_comment, render_summary
from exportwatch.render.review import ReviewSuggestions, candidates, plan_suggestions
from exportwatch.report import Report, ReportError, base_report_path, load_report, write_report
from exportwatch.report.io import write_text_atomically
from exportwatch.report.merge import Shard, find_report_files, merge_reports

log = logging.getLogger("exportwatch.action.main")


#: The check run's name.
CHECK_NAME = "exportwatch"
#: GitHub shows at most 10 error annotations per step from workflow commands.
MAX_LOG_ANNOTATIONS = 10
#: Artifacts of one name looked at, newest first, when searching for the merge-base's.
MAX_BASELINE_CANDIDATES = 100
#: Variables the user's code (install commands, the sweep) must not see.
SECRET_VARIABLES = (
    "INPUT_GITHUB-TOKEN",
    "INPUT_GITHUB_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",  # the runner hands it to Docker actions (cache and artifact service)
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",  # OIDC, when the job has id-token: write
)


class StepFailed(ExportwatchError):
    """A step that ends the run with ``exit_code`` (2: configuration, 3: internal)."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # per instance: the step decides


# ============================================================================================
# Steps (I/O)


def scrubbed_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for the user's code: no token."""
    return {k: v for k, v in env.items() if k not in SECRET_VARIABLES}


@contextmanager
def group(title: str, out: TextIO) -> Iterator[None]:
    with wc.grouped(title, stream=out):
        yield


def run_install(config: ActionConfig, *, env: Mapping[str, str], out: TextIO) -> None:
    if not config.install.strip():
        return
    shell = shutil.which("bash") or "sh"
    with group("exportwatch: install", out):
        out.flush()
        done = subprocess.run(
            [shell, "-e", "-c", config.install], cwd=config.workdir, env=scrubbed_env(env), check=False
        )
    if done.returncode != 0:
        raise StepFailed(
            f"input 'install': the install commands failed with exit code {done.returncode}",
            exit_code=EXIT_USAGE,
        )


def _run_cli(cmd: list[str], *, cwd: Path, env: Mapping[str, str], title: str, out: TextIO) -> None:
    """Run an exportwatch subcommand with the user's code in it: no token in its environment."""
    with group(f"exportwatch: {title}", out):
        out.flush()
        done = subprocess.run(cmd, cwd=cwd, env=scrubbed_env(env), check=False)
    if done.returncode == EXIT_USAGE:
        raise StepFailed(f"{title}: configuration error (see the log above)", exit_code=EXIT_USAGE)
    if done.returncode != 0:
        raise StepFailed(f"{title}: exited with {done.returncode}", exit_code=EXIT_INTERNAL)


def _load(path: Path, title: str) -> Report:
    try:
        return load_report(path)
    except ReportError as exc:
        raise StepFailed(f"{title}: {exc}", exit_code=EXIT_INTERNAL) from exc


def run_sweeps(
    config: ActionConfig,
    *,
    base_ref: str | None,
    env: Mapping[str, str],
    out: TextIO,
    baseline: Path | None = None,
) -> tuple[Report, Report | None]:
    """Head report, and the base report when there is a base to compare with."""
    manifest = _checked_manifest(config)
    head_file = config.report_file
    head_file.parent.mkdir(parents=True, exist_ok=True)
    if base_ref is None or config.shard:  # a shard sweeps its part of the head only
        cmd = sweep_command(config, manifest=manifest, output=head_file)
        _run_cli(cmd, cwd=config.workdir, env=env, title="sweep", out=out)
        head = _load(head_file, "sweep")
        warm_cache(config, head)
        return head, None
    base_file = base_report_path(head_file)
    with tempfile.TemporaryDirectory(prefix="exportwatch-") as tmp:
        cmd = compare_command(
            config, manifest=manifest, base_ref=base_ref, output=head_file, base_output=base_file,
            rendered=Path(tmp) / "changes.json", baseline=baseline,
        )  # fmt: skip
        _run_cli(cmd, cwd=config.workdir, env=env, title=f"sweep head, compare with {base_ref}", out=out)
    return _load(head_file, "compare"), _load(base_file, "compare")


def warm_cache(config: ActionConfig, head: Report) -> int:
    """After a plain sweep (a push to main, a shard): keep its results in ``cache-dir``, so the
    next pull request finds them (``compare`` reads and writes the cache itself)."""
    if config.cache_path is None:
        return 0
    from exportwatch.baseline.cache import ResultCache
    from exportwatch.report import ResultSource

    cache = ResultCache(config.cache_path)
    stored = sum(cache.put(job) for job in head.jobs if job.source is ResultSource.SWEPT)
    log.info("exportwatch: kept %d result(s) in the cache %s", stored, config.cache_dir)
    return stored


# --------------------------------------------------------------------------------------------
# The merge-base's stored baseline (the push-to-main run's report artifact)


def fetch_stored_baseline(
    repo: Any, *, name: str, sha: str, token: Any, dest: Path, settings: ClientSettings
) -> tuple[Path, str]:
    """``GET /repos/{o}/{r}/actions/artifacts?name=NAME`` → the newest artifact of a run on
    ``sha`` in this repository → download (size-capped), extract (safely) → the report in it,
    schema-validated and about ``sha``. Returns (report path, where it came from).

    Raises :class:`NoArtifact` (or a PyGithub/requests error) when there is none to use.
    """
    listed: list[Mapping[str, Any]] = []
    for artifact in repo.get_artifacts(name=name):
        listed.append(artifact.raw_data)
        if len(listed) >= MAX_BASELINE_CANDIDATES:
            break
    ref, origin = choose_baseline_artifact(listed, name=name, sha=sha)
    if ref is None:
        raise NoArtifact(origin)
    archive = download_artifact(ref, dest / "baseline.zip", token=token, settings=settings)
    files = safe_extract(archive, dest / "baseline")
    problems: list[str] = []
    reports = sorted((f for f in files if f.suffix == ".json"), key=lambda f: (".base." in f.name, f.name))
    for candidate in reports:
        try:
            stored = load_untrusted_report(candidate)
        except ReportError as exc:
            problems.append(str(exc))
            continue
        if stored.git_sha not in (sha, None):
            problems.append(f"{candidate.name} is about {stored.git_sha[:12]}, not {sha[:12]}")
            continue
        return candidate, f"{origin}: {candidate.name}"
    why = f" ({'; '.join(problems)})" if problems else ""
    raise NoArtifact(f"{origin} holds no report of {sha[:12]}{why}")


def stored_baseline(
    config: ActionConfig, *, base_ref: str, dest: Path, out: TextIO, settings: ClientSettings
) -> Path | None:
    """The merge-base's stored baseline report, downloaded into ``dest``, or None.

    Optional by nature: no token, no merge-base, no run, an expired or missing artifact, an
    API outage, an unusable report are all a notice in the log, never an error; ``compare``
    then reuses, reads the cache or sweeps. The token is used here, in this process only.
    """
    if not config.baseline_artifact:
        return None
    if not config.github_token or not config.repository:  # the token's first read, in mode full
        log.info("exportwatch: no github-token: the stored baseline is not looked up")
        return None
    from exportwatch.git import find_merge_base

    try:
        merge_base = find_merge_base(config.workdir, base_ref)
    except Exception as exc:  # compare says it again, as the error it is there
        log.info("exportwatch: no merge-base of %s yet (%s): no stored baseline", base_ref, exc)
        return None
    name = baseline_artifact_name(config.baseline_artifact, merge_base)
    settings = replace(settings, retries=min(settings.retries, 2))  # optional: do not hold the run
    try:
        with group("exportwatch: stored baseline", out):
            repo = build_github(config.github_token, settings).get_repo(config.repository)
            path, origin = fetch_stored_baseline(
                repo, name=name, sha=merge_base, token=config.github_token, dest=dest, settings=settings
            )
    except GitHubError as exc:
        reason = str(exc)
    except GithubException as exc:
        reason = describe(exc) + (" (the token needs actions: read)" if exc.status in (401, 403) else "")
    except Exception as exc:  # network down, a bad archive: optional, never fatal
        reason = f"{type(exc).__name__}"
    else:
        print(wc.notice(f"exportwatch: stored baseline of {merge_base[:12]}: {origin}"), file=out)
        return path
    print(
        wc.notice(
            f"exportwatch: no stored baseline of {merge_base[:12]} ({reason}); "
            "base results are reused, cached or swept"
        ),
        file=out,
    )
    return None


def xfail_index(config: ActionConfig) -> XfailIndex | None:
    """Expected failures from the head manifest (reports carry them too; this adds new ones)."""
    from exportwatch.manifest import load_manifest

    try:
        return XfailIndex.from_manifest(load_manifest(config.workdir / config.manifest))
    except (ConfigError, NotImplementedError, OSError):
        return None


def write_html_report(config: ActionConfig, head: Report, base: Report | None, *, out: TextIO) -> str:
    """Write the HTML report beside the head report; its path as an output (workspace-relative
    like ``report-path``), or "" after a one-line warning: the page is a picture of the result,
    so a failure here never changes the verdict or the exit code."""
    relative = html_report_path(config)
    path = config.workspace / relative
    try:
        write_text_atomically(path, render_html(head, base=base, title=config.manifest.as_posix()))
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        print(
            wc.warning(f"exportwatch: {relative.as_posix()}: cannot write the HTML report: {reason}"),
            file=out,
        )
        return ""
    log.info("exportwatch: wrote the HTML report %s", relative.as_posix())
    return relative.as_posix() if not relative.is_absolute() else str(path)


def analyse(
    head: Report, base: Report | None, *, config: ActionConfig, xfail: XfailIndex | None
) -> tuple[Changes, GateResult]:
    changes = diff_reports(base, head, xfail=xfail, coverage_threshold=config.coverage_threshold)
    verdict = gate(
        changes,
        config.fail_on,
        allow_errors=config.allow_errors,
        fail_on_coverage_drop=config.fail_on_coverage_drop,
    )
    return changes, verdict


def log_models(changes: Changes, *, out: TextIO) -> None:
    """One ``::group::`` per model (and device) in the log, with each cell's change."""
    by_model: dict[tuple[str, str], list[Cell]] = {}  # one pass: linear in the report's size
    for cell in changes.top_level():
        by_model.setdefault((cell.model, cell.device), []).append(cell)
    for row in changes.models:
        cells = by_model.get((row.model, row.device), [])
        with group(f"{row.model} ({row.device}): {row.worst.value}", out), wc.commands_stopped(stream=out):
            for cell in cells:
                base = cell.base.value if cell.base else "-"
                head = cell.head.value if cell.head else "-"
                msg = cell.head_result.message if cell.head_result and cell.head_result.message else ""
                target, path = term_text(cell.target, limit=60), term_text(cell.path or "(root)", limit=200)
                line = f"{target:14} {path:40} {base:>10} -> {head:<10} {cell.kind.value} {term_text(msg)}"
                print(f"- {line}".rstrip(), file=out)  # a fixed first character: no line is a command


@dataclass(frozen=True, kw_only=True)
class ModeOutcome:
    """What a mode found, for :func:`conclude` to write and publish: every mode ends the same way.

    ``publishes`` False: ``mode: sweep``, the untrusted half, writes its outputs and summary
    only (verdict ``swept``, exit 0 whatever the gate says)."""

    changes: Changes
    result: GateResult
    sha: str | None  # the commit the results are about (the check run goes on it)
    pr_number: int | None = None  # the pull request to comment on, when there is one
    html_report: str = ""  # the HTML report's output ("" when it could not be written)
    publishes: bool = True


@dataclass(frozen=True, kw_only=True)
class Published:
    """What publishing left on GitHub, and what went wrong on the way (warnings for the log)."""

    attempted: bool = False  # a token and a place to write: publishing was tried
    comment_url: str = ""
    check_created: bool = False
    warnings: tuple[str, ...] = ()


def publish(
    config: ActionConfig, outcome: ModeOutcome, *, out: TextIO, settings: ClientSettings
) -> Published:
    """Comment, check run, then the review of suggested fixes (read before the comment, written
    last), within :data:`MAX_API_WRITES_PER_PUBLISH` writes. Never raises GitHubError: every
    failure is a warning in the returned :class:`Published`; the review's never counts as
    "nothing published" (``fail-on-publish-error`` looks at the comment and check run)."""
    changes, result, pr_number, sha = outcome.changes, outcome.result, outcome.pr_number, outcome.sha
    if not config.github_token or not config.repository:  # reads the token: user code is done
        return Published(warnings=("no github-token or GITHUB_REPOSITORY: nothing published to GitHub",))
    warnings: list[str] = []
    commenting = pr_number is not None and config.comment != CommentMode.OFF
    attempted = commenting or bool(sha)
    context = render_context(config, sha=sha)
    annotations = annotations_for(changes, result)
    try:  # an older PyGithub, a bad URL: the gate's verdict stands, the rest goes to the log
        gh = build_github(config.github_token, settings)
        repo = gh.get_repo(config.repository)
    except Exception as exc:
        warnings.append(f"cannot publish to GitHub: {describe_failure(exc)}: {one_line(exc, limit=200)}")
        log_annotations(annotations, out=out)
        return Published(attempted=attempted, warnings=tuple(warnings))
    logins: list[str | None] = []

    def author() -> str | None:
        """``GET /user`` once (the comment and the review both check authors)."""
        if not logins:
            logins.append(my_login(gh))
        return logins[0]

    review = read_review(config, outcome, repo=repo, author=author, warnings=warnings)
    if review is not None:  # the comment says which fixes the review suggests
        suggested = frozenset((s.path, s.line) for s in review.suggestions.suggested)
        context = replace(context, in_review=suggested)
    comment_body = render_comment(changes, result, context=context, html_artifact=config.html_artifact)
    comment_url = ""
    if commenting:
        assert pr_number is not None  # commenting says so; checked again so the type narrows
        try:
            comment = upsert_comment(
                repo,
                pr_number,
                comment_body,
                marker=comment_marker(context.marker_key),
                mode=config.comment,
                changed=changes.has_changes,
                author_login=author(),
                full_report_url=config.run_url,
                settings=settings,
            )
            comment_url = comment.url or ""
            log.info("comment: %s %s", comment.action, comment_url)
            if comment.shortened:
                warnings.append("the comment was too long for GitHub: a shortened one was posted")
        except GitHubError as exc:
            warnings.append(str(exc))
        except Exception as exc:  # GET /user, the network: the comment never decides the exit code
            warnings.append(f"cannot comment on PR #{pr_number}: {describe_failure(exc)}")
    check_created = False
    if sha:
        shown, left_out = check_annotations(annotations, limit=config.max_annotations)
        try:
            check = create_check_run(
                repo,
                sha,
                name=CHECK_NAME + (f" ({context.marker_key})" if context.marker_key else ""),
                conclusion=check_conclusion(result),
                title=headline(changes, result).text,
                summary=comment_body,
                annotations=shown,
                left_out=left_out,
                details_url=config.run_url,
                settings=settings,
            )
            check_created = True
            log.info(
                "check run %s: %d annotation(s) in %d request(s)",
                check.url,
                check.annotations,
                check.requests,
            )
        except GitHubError as exc:
            warnings.append(str(exc))
            log_annotations(annotations, out=out)
        except Exception as exc:
            warnings.append(f"cannot create the check run: {describe_failure(exc)}")
            log_annotations(annotations, out=out)
    if review is not None:  # last: the comment and the check run never wait on it
        publish_review(review, repo=repo, author=author, settings=settings, warnings=warnings)
    return Published(
        attempted=attempted, comment_url=comment_url, check_created=check_created, warnings=tuple(warnings)
    )


@dataclass(frozen=True, kw_only=True)
class ReviewInput:
    """The pull request as the review of suggested fixes sees it, and what to suggest."""

    number: int
    sha: str
    scope: str | None  # the manifest's marker key: several manifests keep their suggestions apart
    state: PullState
    suggestions: ReviewSuggestions


def read_review(
    config: ActionConfig,
    outcome: ModeOutcome,
    *,
    repo: Any,
    author: Callable[[], str | None],
    warnings: list[str],
) -> ReviewInput | None:
    """Our earlier suggestions on the PR, its diff, and which fixes become suggestions; None
    when there is no review to write (``review-suggestions: false``, no PR, or GitHub failed:
    a warning). Read before the comment, so the comment could say which fixes are in the review."""
    if not config.review_suggestions or outcome.pr_number is None or not outcome.sha:
        return None
    context = render_context(config, sha=outcome.sha)
    scope = marker_key(context.marker_key) if context.marker_key else None
    try:
        state = read_pull(
            repo, outcome.pr_number, sha=outcome.sha, scope=scope, author_login=author(),
            need_diff=bool(candidates(outcome.changes)),
        )  # fmt: skip
    except GitHubError as exc:
        warnings.append(str(exc))
        return None
    except Exception as exc:  # GET /user, the network: the review never decides anything
        why = describe_failure(exc)
        warnings.append(f"cannot read PR #{outcome.pr_number} for review suggestions: {why}")
        return None
    if state.head_moved:  # a newer push has its own run: this one neither adds nor retires
        log.info("review suggestions: PR #%s moved on to %s", outcome.pr_number, state.head_moved[:12])
        return None
    suggestions = plan_suggestions(outcome.changes, state.diff, scope=scope)
    return ReviewInput(
        number=outcome.pr_number, sha=outcome.sha, scope=scope, state=state, suggestions=suggestions
    )


def publish_review(
    review: ReviewInput,
    *,
    repo: Any,
    author: Callable[[], str | None],
    settings: ClientSettings,
    warnings: list[str],
) -> None:
    """The one review of new suggestions, then edits of earlier ones; failures are warnings."""
    plan = decide_review(
        review.state.posted, review.suggestions.suggested, scope=review.scope, sha=review.sha
    )
    if not plan.writes:
        log.info("review suggestions: nothing to write (%d unchanged)", plan.unchanged)
        return
    try:
        done = write_review(
            repo, review.number, plan, state=review.state, sha=review.sha, scope=review.scope,
            author_login=author(), settings=settings,
        )  # fmt: skip
    except GitHubError as exc:
        warnings.append(str(exc))
        return
    except Exception as exc:
        warnings.append(f"cannot post review suggestions on PR #{review.number}: {describe_failure(exc)}")
        return
    warnings.extend(done.warnings)
    log.info(
        "review suggestions: %d new%s, %d edited, %d retired, %d unchanged, %d left for the next push",
        done.created, f" ({done.review_url})" if done.review_url else "", done.updated, done.retired,
        done.unchanged, done.left_out,
    )  # fmt: skip


def log_annotations(annotations: Sequence[Annotation], *, out: TextIO) -> None:
    """Where check runs are unavailable: ``::error file=…,line=…::`` lines (GitHub shows 10).

    An annotation without a repository path is shown without a file (and without a line)."""
    for a in annotations[:MAX_LOG_ANNOTATIONS]:
        level = "error" if a.level == "failure" else "warning"
        path = repository_path(a.path)
        print(
            wc.annotation(
                level,
                annotation_text(a.message),
                file=path,
                line=a.start_line if path else None,
                title=annotation_text(a.title, one_line=True) if a.title else None,
            ),
            file=out,
        )


def conclude(config: ActionConfig, outcome: ModeOutcome, *, out: TextIO, settings: ClientSettings) -> int:
    """Every mode's one ending: the log, outputs and job summary first (a GitHub failure must not
    lose them), then publish; the exit code per the gate, 2 when the step's own files are not
    whole or (``fail-on-publish-error``) nothing could be published."""
    changes, result = outcome.changes, outcome.result
    log_models(changes, out=out)
    verdict = ("passed" if result.passed else "failed") if outcome.publishes else "swept"
    step = StepOutputs.of(
        verdict,
        changes,
        report_path=workspace_relative_report(config),
        html_report=outcome.html_report,
        exit_code=result.exit_code if outcome.publishes else EXIT_OK,
    )
    write_errors: list[WriteError] = []  # a full disk must not cost the PR its comment
    with _kept(write_errors):
        unpublished = {} if outcome.publishes else {"comment-url": ""}
        write_outputs(config.output_path, step.outputs() | unpublished)
    context = render_context(config, sha=outcome.sha)
    with _kept(write_errors):
        summary = render_summary(changes, result, context=context, html_artifact=config.html_artifact)
        append_summary(config.summary_path, summary, artifact=config.artifact)
    if not outcome.publishes:
        return _step_exit(step.exit_code, write_errors, out=out)
    published = publish(config, outcome, out=out, settings=settings)
    with _kept(write_errors):
        write_outputs(config.output_path, {"comment-url": published.comment_url})
    for warning in published.warnings:
        print(wc.warning(f"exportwatch: {warning}"), file=out)
    line = headline(changes, result).text
    print(wc.error(f"exportwatch: {line}") if not result.passed else f"exportwatch: {line}", file=out)
    failed_to_publish = nothing_published(
        attempted=published.attempted,
        comment_url=published.comment_url,
        check_created=published.check_created,
    )
    if failed_to_publish and config.fails_when_nothing_published:
        print(
            wc.error(
                "exportwatch: nothing was published: no check run and no PR comment could be written "
                "(see the warnings above; fail-on-publish-error)"
            ),
            file=out,
        )
        return _step_exit(EXIT_USAGE, write_errors, out=out)
    return _step_exit(step.exit_code, write_errors, out=out)


def _step_exit(exit_code: int, write_errors: Sequence[WriteError], *, out: TextIO) -> int:
    """``exit_code``, unless the step's own files are not whole: then say so, and never pass."""
    for error in write_errors:
        print(wc.error(f"exportwatch: {error}"), file=out)
    return EXIT_USAGE if write_errors else exit_code


@contextlib.contextmanager
def _kept(errors: list[WriteError]) -> Iterator[None]:
    """Record a ``WriteError`` and go on: the comment and check run still get published."""
    try:
        yield
    except WriteError as exc:
        errors.append(exc)


# ============================================================================================
# Modes


def run_full(
    config: ActionConfig, event: Event, *, env: Mapping[str, str], out: TextIO, settings: ClientSettings
) -> ModeOutcome:
    _checked_manifest(config)
    run_install(config, env=env, out=out)
    source, ref = resolve_base(config, event)
    log.info("exportwatch: base %s (from %s)", ref or "-", source)
    if ref is None:
        print(wc.notice(f"exportwatch: no base to compare with on a {event.name or 'local'} run"), file=out)
    with tempfile.TemporaryDirectory(prefix="exportwatch-stored-") as stored:
        baseline = None
        if ref is not None:
            baseline = stored_baseline(config, base_ref=ref, dest=Path(stored), out=out, settings=settings)
        head, base = run_sweeps(config, base_ref=ref, env=env, out=out, baseline=baseline)
    changes, result = analyse(head, base, config=config, xfail=xfail_index(config))
    return ModeOutcome(
        changes=changes, result=result, pr_number=event.pr_number, sha=head_commit(config, event),
        html_report=write_html_report(config, head, base, out=out),
    )  # fmt: skip


def run_sweep_mode(
    config: ActionConfig, event: Event, *, env: Mapping[str, str], out: TextIO, settings: ClientSettings
) -> ModeOutcome:
    """The untrusted half: sweep head (and the base for a PR), write the reports, publish nothing."""
    _checked_manifest(config)
    run_install(config, env=env, out=out)
    _, ref = resolve_base(config, event)
    head, base = run_sweeps(config, base_ref=ref, env=env, out=out)
    changes, result = analyse(head, base, config=config, xfail=xfail_index(config))
    return ModeOutcome(
        changes=changes, result=result, sha=head_commit(config, event),
        html_report=write_html_report(config, head, base, out=out), publishes=False,
    )  # fmt: skip


def run_publish(
    config: ActionConfig, event: Event, *, env: Mapping[str, str], out: TextIO, settings: ClientSettings
) -> ModeOutcome:
    """The trusted half: the artifact is data from an untrusted run; the PR comes from the API."""
    config.require("github_token", "repository")
    run = event.workflow_run
    if run is None:
        raise ActionConfigError("mode", "mode 'publish' runs in a workflow_run workflow (see the examples)")
    assert config.github_token is not None and config.repository is not None
    if not config.github_token:  # handed over empty
        raise ActionConfigError("input 'github-token'", "is empty (pass github-token: ${{ github.token }})")
    gh = build_github(config.github_token, settings)
    repo = gh.get_repo(config.repository)
    try:
        with group("exportwatch: fetch the sweep's reports", out):
            try:
                info = find_run_artifact(repo, run.id, config.artifact)
                with tempfile.TemporaryDirectory(prefix="exportwatch-artifact-") as tmp:
                    archive = download_artifact(
                        info.artifact,
                        Path(tmp) / "artifact.zip",
                        token=config.github_token,
                        settings=settings,
                    )
                    files = safe_extract(archive, Path(tmp) / "files")
                    head, base = _reports_from(files, config=config)
            except GithubException as exc:  # a refusal or a rate limit over the cap, on the download
                raise NoArtifact(f"artifact {config.artifact!r}: {describe(exc)}") from exc
    except ExportwatchError as exc:  # no comment and no check run will say it: the run's page does
        sweep_run = f"{config.server_url}/{config.repository}/actions/runs/{run.id}"
        summary = unpublished_summary(
            str(exc), artifact=config.artifact, sweep_run_url=sweep_run, publish_run_url=config.run_url
        )
        with contextlib.suppress(WriteError):  # the error below is the one to report
            append_summary(config.summary_path, summary)
        raise
    pr = None
    try:
        pr = find_pull_request(
            repo, head_repo=info.head_repository, head_branch=info.head_branch, head_sha=info.head_sha
        )
        log.info("run %s belongs to PR #%s", info.id, pr.number)
    except GitHubError as exc:
        print(wc.warning(f"exportwatch: {exc}; publishing the check run only"), file=out)
    changes, result = analyse(head, base, config=config, xfail=None)
    write_report(head, config.report_file)  # atomic; a full disk is one WriteError (exit 2)
    return ModeOutcome(
        changes=changes, result=result, pr_number=pr.number if pr else None, sha=info.head_sha,
        html_report=write_html_report(config, head, base, out=out),
    )  # fmt: skip


def _reports_from(files: list[Path], *, config: ActionConfig) -> tuple[Report, Report | None]:
    by_name = {f.name: f for f in files}
    head_name = config.report_path.name
    base_name = base_report_path(config.report_path).name
    if head_name not in by_name:
        present = ", ".join(sorted(by_name)) or "nothing"
        raise GitHubError(f"artifact {config.artifact!r} has no {head_name} (it has: {present})")
    where = f"artifact {config.artifact!r}"
    head = load_untrusted_report(by_name[head_name], shown_as=f"{where}: {head_name}")
    base = (
        load_untrusted_report(by_name[base_name], shown_as=f"{where}: {base_name}")
        if base_name in by_name
        else None
    )
    return head, base


def load_untrusted_report(path: Path, *, shown_as: str | None = None) -> Report:
    """A report from an untrusted run: size cap and JSON Schema first (``report.load_report``);
    errors name it ``shown_as`` (the artifact and member), not a temporary path."""
    return load_report(path, untrusted=True, shown_as=shown_as)


def _checked_manifest(config: ActionConfig) -> Path:
    if config.shard and config.mode is not Mode.SWEEP:
        raise ActionConfigError(
            "input 'shard'",
            "a shard is one part of a job matrix: use it with mode: sweep, then merge the shard "
            "reports with mode: merge or `exportwatch merge` (see config/workflows/exportwatch-sharded.yml)",
        )
    if not config.workdir.is_dir():
        raise ActionConfigError("input 'working-directory'", f"{config.working_directory} is not a directory")
    manifest = config.workdir / config.manifest
    if not manifest.is_file():
        raise ActionConfigError(
            "input 'manifest'", f"{config.manifest} not found in {config.working_directory}"
        )
    return manifest


def run_merge(
    config: ActionConfig, event: Event, *, env: Mapping[str, str], out: TextIO, settings: ClientSettings
) -> ModeOutcome:
    """After a sharded sweep: merge the shard reports an earlier step downloaded, then publish
    like ``full`` mode. Runs no code from the pull request and never imports torch; the shards
    are data (size-capped, schema-checked) and ``exportwatch merge``'s refusals apply."""
    folder = config.workspace / config.shards
    files = find_report_files([folder]) if folder.is_dir() else []
    base_files = [f for f in files if f.name.endswith(".base.json")]
    head_files = [f for f in files if f not in base_files]
    if not head_files:
        raise ActionConfigError("input 'shards'", f"no shard reports (*.json) under {config.shards}")
    with group("exportwatch: merge the shard reports", out):
        head = merge_reports([Shard(name=str(f), report=load_untrusted_report(f)) for f in head_files])
        base = None
        if base_files:
            base = merge_reports([Shard(name=str(f), report=load_untrusted_report(f)) for f in base_files])
        counts = f"{len(head_files)} head shard(s), {len(head.jobs)} job(s), {len(base_files)} base shard(s)"
        print(f"exportwatch: merged {counts}", file=out)
    if base is None and event.pr_number is not None:
        print(
            wc.warning(
                "exportwatch: no base shards (*.base.json) to compare with, so nothing can count as "
                "a regression; sweep the base commit too (a matrix leg that checks out the base and "
                "sets report-path to exportwatch-report.base.json)"
            ),
            file=out,
        )
    write_report(head, config.report_file)
    if base is not None:
        write_report(base, base_report_path(config.report_file))
    changes, result = analyse(head, base, config=config, xfail=xfail_index(config))
    return ModeOutcome(
        changes=changes, result=result, pr_number=event.pr_number, sha=head_commit(config, event),
        html_report=write_html_report(config, head, base, out=out),
    )  # fmt: skip


#: Each mode finds its result; :func:`conclude` writes and publishes it.
MODES: dict[Mode, Callable[..., ModeOutcome]] = {
    Mode.FULL: run_full,
    Mode.SWEEP: run_sweep_mode,
    Mode.PUBLISH: run_publish,
    Mode.MERGE: run_merge,
}


# ============================================================================================
# Entry


#: The entrypoint hands the token over on this file descriptor instead of the environment.
TOKEN_FD_VARIABLE = "EXPORTWATCH_TOKEN_FD"
#: What the action imports only after user code ran (lazily, on some path) and so imports first:
#: an ``install:`` step may rewrite any installed module, and a module first imported after
#: that runs its new code in this process, next to the token. tests/integration/
#: test_publish_token_isolation.py checks that publishing imports nothing beyond this list.
PUBLISH_MODULES = (
    "exportwatch.baseline.cache",  # warm_cache
    "exportwatch.git",  # stored_baseline (find_merge_base)
    "exportwatch.manifest",  # xfail_index
    # zipfile decodes a member name without the UTF-8 flag with it (the stored baseline's
    # artifact); charset-normalizer < 3.5 imported every codec along with requests, hiding this.
    "encodings.cp437",
    "netrc",  # requests reads ~/.netrc on each request
    "shlex",  # netrc's parser
)


def preload_publish_modules() -> None:
    """Import, before any user code runs, every module publishing needs later (see above)."""
    for name in PUBLISH_MODULES:
        importlib.import_module(name)


def _not_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: processes of the same user (the install commands, the
    sweep) cannot read this process's memory, descriptors (the token's) or environment through
    ``/proc`` unless they hold ``CAP_SYS_PTRACE``. Linux only; best effort."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0)  # 4: PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False


def _handed_over_token(env: Mapping[str, str]) -> tuple[Mapping[str, str], Secret | None]:
    """The token on the descriptor the entrypoint opened, *not yet read*: it is read (and the
    descriptor closed) at its first use, after the install commands; publishing happens after
    the sweep; ``mode: sweep`` never reads it. No child inherits the descriptor."""
    fd_text = env.get(TOKEN_FD_VARIABLE)
    if not fd_text:
        return env, None
    rest = {k: v for k, v in env.items() if k != TOKEN_FD_VARIABLE}
    try:
        fd = int(fd_text)
        os.set_inheritable(fd, False)
    except (OSError, ValueError):
        return rest, None

    def read() -> str:
        try:
            with os.fdopen(fd, "r", encoding="utf-8") as handle:
                return handle.read().strip()
        except (OSError, ValueError):
            return ""

    return rest, Secret.handed_over(read)


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    settings: ClientSettings | None = None,
) -> int:
    preload_publish_modules()  # before any user code: see PUBLISH_MODULES
    _not_dumpable()
    env, handed_over = _handed_over_token(os.environ if env is None else env)
    out = out or sys.stdout
    handler = logging.StreamHandler(sys.stderr)  # the Actions log: no line may be a command
    handler.setFormatter(wc.InertFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        config = ActionConfig.from_env(env)
        if handed_over is not None and config.github_token is None:
            config = replace(config, github_token=handed_over)
        event = load_event(config.event_name, config.event_path)
        settings = settings or ClientSettings(api_url=config.api_url)
        log.info("exportwatch: mode %s on %s", config.mode, event.name or "a local run")
        outcome = MODES[config.mode](config, event, env=env, out=out, settings=settings)
        return conclude(config, outcome, out=out, settings=settings)
    except ExportwatchError as exc:  # the one mapping: a usage error (2), a failed step, ...
        print(wc.error(f"exportwatch: {exc}"), file=out)
        return exc.exit_code
    except Exception as exc:
        log.exception("exportwatch: internal error (please report it)")
        print(wc.error(f"exportwatch: internal error: {type(exc).__name__}"), file=out)
        return EXIT_INTERNAL
