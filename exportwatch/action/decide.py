"""The action's pure decisions: which base to compare with, which stored baseline to trust,
what to annotate, how the check concludes. Data in, data out: no I/O, no environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from exportwatch.diff import ChangeKind, Changes, GateResult
from exportwatch.github.artifacts import (
    ArtifactRef,
)
from exportwatch.github.config import ActionConfig
from exportwatch.github.event import Event
from exportwatch.github.publish import (
    Annotation,
    repository_path,
)
from exportwatch.report import FAILING

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
    """Annotations on the user's lines for what fails on head: gating cells first. Pure.

    The path comes from a report (a fork's run writes it): one that is not a relative path
    inside the repository becomes None (no file annotation; the log shows it without a file)."""
    failing_keys = set(result.failing)
    cells = [c for c in changes.top_level() if c.head in FAILING and c.head_result is not None]
    cells.sort(key=lambda c: (c.key not in failing_keys, c.kind is ChangeKind.STILL_FAILING))
    out: list[Annotation] = []
    for cell in cells:
        sub = cell.head_result
        if sub is None:  # filtered out above; checked again so the type narrows
            continue
        frame = sub.user_frame
        if frame is None or frame.library or not frame.path or frame.line < 1:
            continue  # annotations go on repository files only
        where = f"{cell.model} [{cell.target}, {cell.device}] {cell.path or '(root)'}"
        message = sub.message or sub.category or "export failed"
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
