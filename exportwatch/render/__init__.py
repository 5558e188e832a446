"""Changes → the views people read: PR comment, job summary, terminal text, JSON.

One data model (:class:`exportwatch.diff.Changes`), several views; none of them does I/O or
imports torch. Call :func:`render` with the format name the CLI was given.
"""

from __future__ import annotations

from exportwatch.diff import Changes, GateResult
from exportwatch.render.common import Headline, RenderContext, headline
from exportwatch.render.markdown import (
    COMMENT_BUDGET,
    COMMENT_MARKER,
    GITHUB_COMMENT_LIMIT,
    comment_marker,
    render_comment,
    render_summary,
)

#: ``--format`` choices. "markdown" is the PR comment; "summary" the job summary.
FORMATS = ("markdown", "summary", "text", "json")

__all__ = [
    "COMMENT_BUDGET",
    "COMMENT_MARKER",
    "FORMATS",
    "GITHUB_COMMENT_LIMIT",
    "Headline",
    "RenderContext",
    "comment_marker",
    "headline",
    "render",
]


def render(changes: Changes, gate: GateResult, fmt: str, *, context: RenderContext | None = None) -> str:
    """Render ``changes`` and ``gate`` as ``fmt`` (one of :data:`FORMATS`)."""
    context = context or RenderContext()
    if fmt == "markdown":
        return render_comment(changes, gate, context=context)
    if fmt == "summary":
        return render_summary(changes, gate, context=context)
    if fmt == "text":
        from exportwatch.render.terminal import render_text

        return render_text(changes, gate, context=context)
    if fmt == "json":
        from exportwatch.render.json import render_json

        return render_json(changes, gate)
    raise ValueError(f"unknown format {fmt!r} (choose one of: {', '.join(FORMATS)})")
