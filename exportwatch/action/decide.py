"""The action's pure decisions and builders: which base to compare with, which stored baseline
to trust, the sweep's command line, the step's outputs, what to annotate, how the check
concludes, whether publishing failed. Data in, data out: no I/O, no environment."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from exportwatch.diff import Cell, ChangeKind, Changes, GateResult
from exportwatch.errors import EXIT_OK
from exportwatch.github.artifacts import ArtifactRef
from exportwatch.github.config import ActionConfig
from exportwatch.github.event import Event
from exportwatch.github.publish import Annotation
from exportwatch.render import RenderContext
from exportwatch.render.escape import repository_path
from exportwatch.report import FAILING
from exportwatch.sweep.options import SweepOptions

#: In ``baseline-artifact``, the commit whose report the artifact holds.
SHA_PLACEHOLDER = "{sha}"


class BaseSource(str, Enum):
    INPUT = "input"  # the `base` input
    PULL_REQUEST = "pull-request"  # the PR's base commit
    NONE = "none"  # nothing to compare against (push, dispatch)

    def __str__(self) -> str:
        return self.value


def resolve_base(config: ActionConfig, event: Event) -> tuple[BaseSource, str | None]:
    """Which ref the head is compared with. Pure."""
    if config.base:
        return BaseSource.INPUT, config.base
    if event.is_pull_request and event.base_sha:
        return BaseSource.PULL_REQUEST, event.base_sha
    return BaseSource.NONE, None


def head_commit(config: ActionConfig, event: Event) -> str | None:
    """The commit results are about: a PR's head (not the merge commit the runner checks out)."""
    return event.head_sha or config.sha


def baseline_artifact_name(template: str, sha: str) -> str:
    """``exportwatch-baseline-{sha}`` → the name of ``sha``'s baseline artifact. Pure."""
    return template.replace(SHA_PLACEHOLDER, sha)


def baseline_artifact_problem(artifact: Mapping[str, Any], *, name: str, sha: str) -> str | None:
    """Why a listed artifact (the API's JSON) cannot be the stored baseline of ``sha``, or None.

    Only a run *on* that commit *in this repository* counts: a fork's ``pull_request`` run
    stores its artifacts in this repository too, under any name it likes. Pure.
    """
    run = artifact.get("workflow_run") or {}
    if artifact.get("name") != name:
        return "another name"
    if artifact.get("expired"):
        return "expired"
    if run.get("head_sha") != sha:
        return "from a run on another commit"
    repo_id, head_repo_id = run.get("repository_id"), run.get("head_repository_id")
    if repo_id is None or head_repo_id != repo_id:
        return "from a run on a fork"
    return None


def choose_baseline_artifact(
    listed: Sequence[Mapping[str, Any]], *, name: str, sha: str
) -> tuple[ArtifactRef | None, str]:
    """The newest usable artifact (re-runs repeat names), or None and why none is. Pure."""
    usable = [a for a in listed if baseline_artifact_problem(a, name=name, sha=sha) is None]
    if not usable:
        if not listed:
            return None, f"no artifact named {name!r}"
        problems = sorted({baseline_artifact_problem(a, name=name, sha=sha) or "" for a in listed})
        return None, f"{len(listed)} artifact(s) named {name!r}, none usable ({', '.join(problems)})"
    best = max(usable, key=lambda a: int(a.get("id") or 0))
    return (
        ArtifactRef(
            id=int(best["id"]),
            name=str(best["name"]),
            size_in_bytes=int(best.get("size_in_bytes") or 0),
            download_url=str(best["archive_download_url"]),
            head_sha=sha,
        ),
        f"artifact {best['name']!r} of run {(best.get('workflow_run') or {}).get('id', '?')}",
    )


def marker_key(config: ActionConfig) -> str | None:
    """One comment per manifest: the default manifest keeps the plain marker."""
    default = ActionConfig().manifest
    return None if config.manifest == default else config.manifest.as_posix()


def check_conclusion(result: GateResult) -> str:
    return "success" if result.passed else "failure"


def annotations_for(changes: Changes, result: GateResult) -> list[Annotation]:
    """One annotation per distinct failure (fingerprint × file × line) that fails on head, on
    the user's line: gating failures first. Pure.

    A shared layer that breaks fails thousands of cells with one cause: they are one
    annotation, its message counting the other places. The path comes from a report (a fork's
    run writes it): one that is not a relative path inside the repository becomes None (no
    file annotation; the log shows it without a file)."""
    failing_keys = set(result.failing)
    cells = [c for c in changes.top_level() if c.head in FAILING and c.head_result is not None]
    cells.sort(key=lambda c: (c.key not in failing_keys, c.kind is ChangeKind.STILL_FAILING))
    firsts: dict[tuple[str, str, int], list[Cell]] = {}  # fingerprint × file × line → its cells
    for cell in cells:
        sub = cell.head_result
        if sub is None:  # filtered out above; checked again so the type narrows
            continue
        frame = sub.user_frame
        if frame is None or frame.library or not frame.path or frame.line < 1:
            continue  # annotations go on repository files only
        key = (sub.fingerprint or sub.message or sub.category or "", frame.path, frame.line)
        firsts.setdefault(key, []).append(cell)
    out: list[Annotation] = []
    for same in firsts.values():
        cell, places = same[0], len(same)
        sub = cell.head_result
        frame = sub.user_frame if sub is not None else None
        if sub is None or frame is None:  # kept above only with both; checked so the types narrow
            continue
        where = f"{cell.model} [{cell.target}, {cell.device}] {cell.path or '(root)'}"
        if places > 1:
            where += f" and {places - 1} more"
        message = sub.message or sub.category or "export failed"
        if places > 1:
            message += f"\nThe same failure in {places - 1} more place(s)."
        if sub.hint:
            message += f"\nHint: {sub.hint}"
        out.append(
            Annotation(
                path=repository_path(frame.path),  # a report's path: None if not in the repository
                start_line=frame.line,
                level="failure" if cell.key in failing_keys else "warning",
                title=f"{cell.kind.value}: {where}"[:255],
                message=message,
                raw_details=(sub.detail or None),
            )
        )
    return out


def check_annotations(annotations: Sequence[Annotation], *, limit: int) -> tuple[list[Annotation], int]:
    """The annotations the check run carries (those on a repository file, the first ``limit``
    of them: gating failures come first) and how many more were left out. Pure."""
    placed = [a for a in annotations if a.path]
    return placed[: max(limit, 0)], max(len(placed) - max(limit, 0), 0)


def nothing_published(*, attempted: bool, comment_url: str, check_created: bool) -> bool:
    """Publishing was tried and left no trace on GitHub: no comment and no check run. Pure."""
    return attempted and not comment_url and not check_created


# --------------------------------------------------------------------------------------------
# Builders: the sweep's command line, the step's outputs, the renderer's context


def sweep_options(config: ActionConfig) -> SweepOptions:
    """The action's inputs as the CLI's sweep options (turned into flags by ``to_argv``)."""
    return SweepOptions(
        targets=config.targets,
        device=config.device,
        workers=config.workers,
        timeout_s=config.timeout,
        blockers=config.blockers,
    )


def sweep_command(config: ActionConfig, *, manifest: Path, output: Path) -> list[str]:
    """``python -m exportwatch sweep``: the head only (no base to compare with)."""
    cmd = [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(output)]
    cmd += sweep_options(config).to_argv()
    if config.shard:
        cmd += ["--shard", config.shard]
    return cmd


def compare_command(
    config: ActionConfig,
    *,
    manifest: Path,
    base_ref: str,
    output: Path,
    base_output: Path,
    rendered: Path,
    baseline: Path | None = None,
) -> list[str]:
    """``python -m exportwatch compare``: head, and the merge-base's results (reused where the
    code did not change, else from the stored ``baseline`` or the cache where compatible, else
    swept in a worktree). The action gates and renders itself, so compare runs with
    ``--fail-on never``."""
    cmd = [
        sys.executable, "-m", "exportwatch", "compare", str(manifest), "--base", base_ref,
        "-o", str(output), "--base-output", str(base_output),
        "--fail-on", "never", "--format", "json", "--rendered", str(rendered),
        *sweep_options(config).to_argv(),
    ]  # fmt: skip
    if baseline is not None:
        cmd += ["--baseline", str(baseline)]
    if config.cache_path is not None:
        cmd += ["--cache-dir", str(config.cache_path)]
    if config.base_env != "auto":
        cmd += ["--base-env", config.base_env]
    for path in config.dependency_files:
        cmd += ["--dependency-file", path]
    return cmd


def workspace_relative_report(config: ActionConfig) -> str:
    """The ``report-path`` output: as given when relative, else the absolute path."""
    path = config.report_path
    return path.as_posix() if not path.is_absolute() else str(config.report_file)


def html_report_path(config: ActionConfig) -> Path:
    """``report-path`` with ``.html`` for its suffix: the page lies beside the report."""
    path = config.report_path
    return path.with_suffix(".html") if path.suffix != ".html" else path.with_name(f"{path.name}.html")


def render_context(config: ActionConfig, *, sha: str | None) -> RenderContext:
    return RenderContext(
        repository=config.repository,
        sha=sha,
        run_url=config.run_url,
        summary_url=config.run_url,
        artifact_name=config.artifact,
        marker_key=marker_key(config),
    )


@dataclass(frozen=True, kw_only=True)
class StepOutputs:
    """The step's outputs (``comment-url`` is written once published)."""

    verdict: str
    regressions: int = 0
    fixes: int = 0
    coverage_drops: int = 0  # modules delegating less to their backend (executorch target)
    report_path: str = ""
    html_report: str = ""  # "" when it could not be written
    exit_code: int = EXIT_OK
    environment_change: str = ""  # "torch 2.13.0 → 2.14.1: 3 regressions in 2 models"
    upgrade_regressions: int = 0  # regressions of models whose code did not change

    @classmethod
    def of(cls, verdict: str, changes: Changes, **fields: Any) -> StepOutputs:
        """The counts from ``changes``, and what the library upgrade did, if versions differ."""
        upgrade = changes.upgrade
        return cls(
            verdict=verdict,
            regressions=changes.counts.get(ChangeKind.REGRESSION, 0),
            fixes=changes.counts.get(ChangeKind.FIX, 0),
            coverage_drops=changes.counts.get(ChangeKind.COVERAGE_DROP, 0),
            environment_change=upgrade.summary() if upgrade is not None else "",
            upgrade_regressions=len(upgrade.regressions) if upgrade is not None else 0,
            **fields,
        )

    def outputs(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "regressions": self.regressions,
            "fixes": self.fixes,
            "coverage-drops": self.coverage_drops,
            "report-path": self.report_path,
            "html-report": self.html_report,
            "environment-change": self.environment_change,
            "upgrade-regressions": self.upgrade_regressions,
        }
