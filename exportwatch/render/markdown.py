"""Changes → GitHub-flavoured markdown: the PR comment and the job summary.

The comment is for a reviewer: verdict first, regressions with the user's line of code, then
fixes, then the rest, cut by priority to fit GitHub's 65,536-character limit. The job summary
is the complete picture, unchanged failures included, and ends with a text tree of each failing
job's failing branch (a cut drops it before any item, after most tracebacks). All untrusted
text goes through :mod:`exportwatch.render.escape`. Links come from the :class:`RenderContext`
(the trusted run and summary URLs), :func:`blob_url` and the documentation allow-list; a
report's own ``run_url`` is shown as code, never linked (on a fork PR the report is a
stranger's artifact). The markdown is printed to CI logs too (``exportwatch diff --format
markdown``), so no line of it is a workflow command either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from exportwatch.diff import (
    Cell,
    ChangeKind,
    Changes,
    GateResult,
    JobKey,
    ModelCell,
    ModelRow,
    Move,
    coverage_drop_note,
)
from exportwatch.render.common import (
    SHOWN_BLOCKERS,
    CauseGroup,
    InOrder,
    Part,
    RenderContext,
    Section,
    blocker_words,
    blockers_headline,
    blockers_left,
    coverage_phrase,
    deferred,
    failures_phrase,
    fit,
    fix_proof_words,
    fixes_footer,
    fixes_under,
    format_duration,
    frame_words,
    group_by_cause,
    grouped_moves,
    headline,
    move_phrase,
    plural,
    sorted_rows,
)
from exportwatch.render.escape import (
    LABEL_LIMIT,
    blob_url,
    html_text,
    marker_key,
    md_code,
    md_code_block,
    md_details,
    md_link,
    md_text,
    md_text_with_code,
    no_workflow_commands,
    one_line,
    safe_url,
)
from exportwatch.render.tree_view import (
    TreeNode,
    changes_by_job,
    failing_tree,
    head_cells_by_job,
    head_job,
    walk,
)
from exportwatch.report import BUG_REPORT_URL, FAILING, PASSING, SubmoduleResult, UserFrame, Verdict
from exportwatch.report.model import MAX_SNIPPET_CHARS, Blockers, BlockerStatus

#: The hidden marker that finds our comment again (the github module also checks the author).
COMMENT_MARKER = "<!-- exportwatch:comment -->"
#: GitHub rejects issue comments longer than this.
GITHUB_COMMENT_LIMIT = 65_536
#: What a comment aims for: a margin for the marker, emoji counted differently, edits.
COMMENT_BUDGET = 60_000
#: GitHub's job summary limit is 1 MiB per step; measured in UTF-8 bytes.
SUMMARY_BUDGET = 900_000

_STATUS_EMOJI = {"pass": "✅", "fail": "❌", "warn": "⚠️"}
_SYMBOL: dict[Verdict | None, str] = {
    Verdict.OK: "✅",
    Verdict.COVERED: "✅",
    Verdict.FAIL: "❌",
    Verdict.MISMATCH: "❗ mismatch",
    Verdict.CRASH: "💥 crash",
    Verdict.TIMEOUT: "⏱️ timeout",
    Verdict.OOM: "💥 oom",
    Verdict.ERROR: "🐞 error",
    Verdict.INTERRUPTED: "⏹️ interrupted",
    Verdict.SKIPPED: "⏭️ skipped",
    Verdict.NOT_CALLED: "➖ not called",
    Verdict.SAME_AS: "🔗 same as",
    None: "—",
}
_KIND_TAG = {
    ChangeKind.REGRESSION: "**regression**",
    ChangeKind.FIX: "fixed",
    ChangeKind.CHANGED_FAILURE: "changed",
    ChangeKind.COVERAGE_DROP: "coverage drop",
    ChangeKind.NEW: "new",
    ChangeKind.REMOVED: "removed",
    ChangeKind.NEWLY_SKIPPED: "newly skipped",
    ChangeKind.INFRASTRUCTURE: "infrastructure",
    ChangeKind.ERROR: "**not checked**",
}
_MAX_FOLDED_NAMES = 12
#: What one failure of a section is called in its count.
_ONE_FAILURE = {
    ChangeKind.REGRESSION: "regression",
    ChangeKind.CHANGED_FAILURE: "changed failure",
    ChangeKind.STILL_FAILING: "failure",
    ChangeKind.NEW: "new failure",
}
#: A failing branch in the job summary shows at most this many nodes (the HTML report has all).
TREE_MAX_NODES = 150
#: A tree's block is cut to this many characters (each of its lines is short: every field is capped).
TREE_BLOCK_LIMIT = 40_000
#: Deeper nodes are drawn at this indentation (a hostile report cannot widen every line).
_TREE_MAX_INDENT = 24


def comment_marker(key: str | None = None) -> str:
    """The hidden marker; a key (e.g. the manifest path) keeps several manifests apart."""
    suffix = marker_key(key) if key else ""
    return f"<!-- exportwatch:comment:{suffix} -->" if suffix else COMMENT_MARKER


def render_comment(
    changes: Changes, gate: GateResult, *, context: RenderContext, html_artifact: str | None = None
) -> str:
    """The PR comment: short when nothing changed, cut by priority when long.

    ``html_artifact`` names the artifact this run uploads the HTML report in (None: no link).
    """
    budget = context.max_chars or COMMENT_BUDGET
    marker = comment_marker(context.marker_key)
    title = _headline_md(changes, gate, context=context)
    footer = _join([html_report_line(html_artifact, context=context), _footer(changes, context=context)])
    if not changes.has_changes:
        return no_workflow_commands(
            _join([title, _no_change_body(changes), *_version_lines(changes), footer, marker])
        )

    # What holds the pull request back is open; every other change is one click away.
    gating = {changes.cells[k].kind for k in gate.failing} | {ChangeKind.REGRESSION, ChangeKind.ERROR}
    sections = [
        Section(noun="notes", parts=[Part(text=t, priority=0) for t in _note_lines(changes, gate)]),
        _table_section(changes, rows=[r for r in changes.models if r.changed], priority=4),
        _cells_section(changes, context, ChangeKind.REGRESSION, "❌ Regressions", priority=1, extra=3),
        _folded(_fix_section(changes, priority=2), ChangeKind.FIX not in gating),
        _folded(
            _cells_section(
                changes, context, ChangeKind.CHANGED_FAILURE, "🔁 Changed failures", priority=5, extra=7
            ),
            ChangeKind.CHANGED_FAILURE not in gating,
        ),
        _folded(_new_failures_section(changes, context, priority=5, extra=7), ChangeKind.NEW not in gating),
        _folded(_coverage_section(changes, priority=5), ChangeKind.COVERAGE_DROP not in gating),
        _error_section(changes, priority=1),
        _folded(_infra_section(changes, priority=6), ChangeKind.INFRASTRUCTURE not in gating),
        _folded(_other_section(changes, priority=6), True),
    ]
    quiet = [r for r in changes.models if not r.changed]
    if quiet:
        still = sum(1 for r in quiet if ChangeKind.STILL_FAILING in r.kinds)
        line = f"{plural(len(quiet), 'other model')} unchanged"
        if still:
            line += f" ({still} of them still failing: see the job summary)"
        sections.insert(2, Section(noun="notes", parts=[Part(text=f"_{line}._", priority=4)]))
    return no_workflow_commands(
        _assemble(marker, title, sections, footer, budget=budget, context=context, measure=len)
    )


def render_summary(
    changes: Changes, gate: GateResult, *, context: RenderContext, html_artifact: str | None = None
) -> str:
    """The job summary: every model, every change, unchanged failures included, then where each
    failing job broke. ``html_artifact``: as for :func:`render_comment`."""
    budget = context.max_chars or SUMMARY_BUDGET
    title = _headline_md(changes, gate, context=context)
    gate_line = f"Gate `{gate.policy.value}`: **{'passed' if gate.passed else 'failed'}**"
    if gate.notes:
        gate_line += " · " + " · ".join(md_text(n) for n in gate.notes)
    sections = [
        Section(noun="notes", parts=[Part(text=gate_line, priority=0)]),
        Section(noun="notes", parts=[Part(text=t, priority=0) for t in _note_lines(changes, gate)]),
        _table_section(changes, rows=list(changes.models), priority=1),
        _cells_section(changes, context, ChangeKind.REGRESSION, "❌ Regressions", priority=1, extra=3),
        _fix_section(changes, priority=2),
        _cells_section(
            changes, context, ChangeKind.CHANGED_FAILURE, "🔁 Changed failures", priority=3, extra=5
        ),
        _new_failures_section(changes, context, priority=3, extra=5),
        _coverage_section(changes, priority=3),
        _infra_section(changes, priority=3),
        _cells_section(changes, context, ChangeKind.STILL_FAILING, "🟥 Still failing", priority=4, extra=6),
        _other_section(changes, priority=4),
        # The picture, last: a cut drops it after every item above but before their long
        # tracebacks (except a regression's): a few lines per job say more than 8 kB of frames.
        _tree_section(changes, priority=4),
    ]
    text = _assemble(
        "",
        title,
        sections,
        _join([html_report_line(html_artifact, context=context), _footer(changes, context=context)]),
        budget=budget,
        context=context,
        measure=lambda s: len(s.encode("utf-8")),
    )
    return no_workflow_commands(text)


# ---------------------------------------------------------------------------------------------
# Assembly


def _folded(section: Section, fold: bool) -> Section:
    """``section`` inside ``<details>``, its heading the summary, when ``fold``."""
    if not fold or not section.head.startswith("#### "):
        return section
    section.head = f"<details><summary>{html_text(section.head.removeprefix('#### '))}</summary>\n"
    section.tail = "</details>"
    return section


def _assemble(
    marker: str,
    title: str,
    sections: list[Section],
    footer: str,
    *,
    budget: int,
    context: RenderContext,
    measure: Callable[[str], int],
) -> str:
    reserve = 700  # the cut note
    fixed = measure(_join([title, footer, marker])) + reserve
    fitted = fit(sections, budget=max(budget - fixed, 0), measure=measure)
    cut_note = _cut_note(fitted.cut, context=context, is_comment=bool(marker)) if fitted.cut else ""
    text = _join([title, *fitted.blocks, cut_note, footer, marker])
    if measure(text) > budget or (len(text) > GITHUB_COMMENT_LIMIT and marker):
        # Never expected: a last resort that is still valid markdown and says where to look.
        text = _join(
            [
                title,
                _cut_note(
                    {"everything but the verdict": 1},
                    context=context,
                    is_comment=bool(marker),
                ),
                marker,
            ]
        )
    return text


def _join(blocks: Iterable[str]) -> str:
    return "\n\n".join(b.strip("\n") for b in blocks if b and b.strip()) + "\n"


def _headline_md(changes: Changes, gate: GateResult, *, context: RenderContext) -> str:
    line = headline(changes, gate)
    prefix = f"{md_text(context.title, limit=LABEL_LIMIT)}: " if context.title else ""
    return f"### {_STATUS_EMOJI[line.status]} {prefix}{md_text(line.text, limit=500)}"


def _no_change_body(changes: Changes) -> str:
    roots = [c for c in changes.cells.values() if c.is_root]
    still = [c for c in roots if c.kind is ChangeKind.STILL_FAILING]
    text = f"{plural(len(roots), 'export')} across {plural(len(changes.models), 'model')}, all as on the base"
    if still:
        text += f"; {len(still)} still failing (see the job summary)"
    return text + "."


def _cut_note(cut: dict[str, int], *, context: RenderContext, is_comment: bool) -> str:
    """Where the rest is; linked only through the context's trusted URLs, never the report's."""
    what = ", ".join(f"{n} {noun}" for noun, n in cut.items())
    where = []
    if is_comment:
        summary = safe_url(context.summary_url) or safe_url(context.run_url)
        where.append(md_link("the job summary", summary) if summary else "the job summary")
    if context.artifact_name:
        where.append(f"the {md_code(context.artifact_name)} artifact")
    if not where:
        where.append("the report file")
    limit = "GitHub's comment limit" if is_comment else "GitHub's job summary limit"
    return (
        f"✂️ **Shortened to fit {limit}**: left out {md_text(what)}. "
        f"The complete report is in {' and '.join(where)}."
    )


def _footer(changes: Changes, *, context: RenderContext) -> str:
    head = changes.head
    bits = [f"exportwatch {md_text(head.tool_version, limit=40)}" if head.tool_version else "exportwatch"]
    for package in ("torch", "onnx", "onnxscript", "onnxruntime", "python"):
        version = head.versions.get(package)
        if version:
            bits.append(f"{package} {md_text(version, limit=60)}")
    if head.duration_s:
        bits.append(f"swept in {format_duration(head.duration_s)}")
    base_sha = changes.base.git_sha if changes.base else None
    head_sha = context.sha or head.git_sha
    if base_sha and head_sha:
        bits.append(f"{md_code(base_sha[:7], limit=12)} → {md_code(head_sha[:7], limit=12)}")  # never a link
    run = safe_url(context.run_url)
    if run:
        bits.append(md_link("workflow run", run))
    if head.run_url and head.run_url != context.run_url:
        bits.append(f"report from {md_code(head.run_url, limit=300)}")  # the report's word: text
    return f"<sub>{' · '.join(bits)}</sub>"


def html_report_line(artifact: str | None, *, context: RenderContext) -> str:
    """Where the HTML report is, or "": only when the workflow uploads it (``artifact``), and
    linked only through the trusted run URL of the context, never a report's own ``run_url``."""
    run = safe_url(context.run_url)
    if not artifact or not run:
        return ""
    return f"🌳 HTML report: in the {md_code(artifact, limit=100)} artifact of {md_link('this run', run)}"


def _version_lines(changes: Changes) -> list[str]:
    if not changes.version_notes:
        return []
    diffs = ", ".join(
        f"{md_text(v.package, limit=40)} {md_text(v.base or 'none', limit=60)} → "
        f"{md_text(v.head or 'none', limit=60)}"
        for v in changes.version_notes
    )
    lines = [
        f"ℹ️ **Versions differ between base and head**: {diffs}. "
        "Some changes may come from the upgrade rather than from this pull request."
    ]
    upgrade = changes.upgrade
    if upgrade is not None and upgrade.models:
        models = ", ".join(md_code(m) for m in upgrade.models[:20])
        more = f" and {len(upgrade.models) - 20} more" if len(upgrade.models) > 20 else ""
        lines.append(f"⬆️ **Changed by the upgrade** (the same code on both sides): {models}{more}.")
    return lines


def _note_lines(changes: Changes, gate: GateResult) -> list[str]:
    lines = _version_lines(changes)
    for note in changes.notes:
        lines.append(f"ℹ️ {md_text(note, limit=500)}")
    stale = changes.xfail_passing
    if stale:
        names = ", ".join(_short_label(c) for c in stale[:20])
        more = f" and {len(stale) - 20} more" if len(stale) > 20 else ""
        lines.append(
            f"🧹 **Remove the xfail**: {plural(len(stale), 'export')} marked as expected to fail "
            f"now pass{'es' if len(stale) == 1 else ''}: {names}{more}."
        )
    infra = [c for c in changes.top_level(ChangeKind.INFRASTRUCTURE) if c.head is not Verdict.INTERRUPTED]
    if infra:  # (an interrupted one is gated, and the headline says so)
        lines.append(
            f"⚠️ **{plural(len(infra), 'result')} hit a crash, timeout or out-of-memory** on the "
            "runner: they are not counted as regressions, and they may hide one. Rerun to confirm."
        )
    return lines


# ---------------------------------------------------------------------------------------------
# The table


def _table_section(changes: Changes, *, rows: list[ModelRow], priority: int) -> Section:
    several_devices = len(changes.devices) > 1
    header = "| model | " + " | ".join(md_text(t, limit=60) for t in changes.targets) + " |"
    rule = "|" + "---|" * (len(changes.targets) + 1)

    def line(row: ModelRow) -> str:
        name = f"**{md_text(row.model, limit=LABEL_LIMIT)}**"
        if several_devices:
            name += f" ({md_text(row.device, limit=40)})"
        cells = [_table_cell(row.cells.get(t), has_base=changes.has_base) for t in changes.targets]
        return f"| {name} | " + " | ".join(cells) + " |"

    parts = [deferred(partial(line, row), priority=priority) for row in sorted_rows(rows)]
    return Section(
        noun="table rows",
        head=f"{header}\n{rule}",
        parts=parts,
        joiner="\n",
        more=lambda n: f"_…and {plural(n, 'more model')} (cut to fit)._",
    )


def _table_cell(cell: ModelCell | None, *, has_base: bool) -> str:
    if cell is None:
        return " "
    head = _SYMBOL.get(cell.head, "?")
    if not has_base or (
        cell.kind in (ChangeKind.UNCHANGED_OK, ChangeKind.STILL_FAILING) and cell.base == cell.head
    ):
        text = head
    else:
        text = f"{_SYMBOL.get(cell.base, '?')} → {head}"
    tag = _KIND_TAG.get(cell.kind) if has_base else None
    if tag and cell.kind is not ChangeKind.NEW:
        text += f" {tag}"
    if cell.expected:
        text += " (xfail)"
    below = []
    for kind, word in ((ChangeKind.REGRESSION, "regression"), (ChangeKind.FIX, "fix")):
        n = cell.submodule_kinds.get(kind, 0)
        if n and kind is not cell.kind:
            below.append(plural(n, f"submodule {word}"))
    if below:
        text += " · " + ", ".join(below)
    return text


# ---------------------------------------------------------------------------------------------
# Items


def _where(cell: Cell) -> str:
    """``**model** · target · device — `path` (Type)``"""
    head = (
        f"**{md_text(cell.model, limit=LABEL_LIMIT)}** · {md_text(cell.target, limit=60)}"
        f" · {md_text(cell.device, limit=40)}"
    )
    return f"{head} — {_path_label(cell)}"


def _path_label(cell: Cell) -> str:
    label = "model root" if cell.is_root else md_code(cell.path, limit=LABEL_LIMIT)
    about = [md_text(cell.module_type, limit=80)] if cell.module_type else []
    if cell.moved_from is not None:
        about.append(f"was {md_code(cell.moved_from, limit=LABEL_LIMIT)} on base")
    if about:
        label += f" ({', '.join(about)})"
    return label


def _short_label(cell: Cell) -> str:
    where = f"{md_text(cell.model, limit=LABEL_LIMIT)} · {md_text(cell.target, limit=60)}"
    return f"{where} {md_code(cell.path)}" if cell.path else where


def _failure_lines(
    result: SubmoduleResult,
    *,
    repository: str | None,
    sha: str | None,
    in_review: frozenset[tuple[str, int]] = frozenset(),
) -> list[str]:
    lines: list[str] = []
    if result.message:
        lines.append(f"> {md_text(result.message)}")
    if result.mismatch is not None:
        m = result.mismatch
        errors = []
        if m.max_abs_error is not None:
            errors.append(f"max abs error {m.max_abs_error:.3g}")
        if m.max_rel_error is not None:
            errors.append(f"max rel error {m.max_rel_error:.3g}")
        lines.append(
            f"🔢 Output {md_code(m.output, limit=80)} of input set {md_code(m.input_set, limit=80)} "
            f"differs from eager" + (f": {', '.join(errors)}" if errors else "")
        )
    frame = result.user_frame
    if frame is not None:
        label = md_code(f"{frame.path}:{frame.line}", limit=LABEL_LIMIT)
        if frame.library:  # installed code: no link into the repository
            location = f"📍 {label}"
        else:
            url = blob_url(repository=repository, sha=sha, path=frame.path, line=frame.line)
            location = f"📍 {md_link(label, url)}"
        if frame.function:
            location += f" in {md_code(frame.function, limit=80)}"
        if frame.library:
            location += f" (library code: {md_code(frame.library, limit=80)})"
        lines.append(location)
        if frame.source and frame.source.strip():
            lines.append(md_code_block(frame.source.strip("\n"), lang="python", limit=600))
    if result.blockers is not None:
        lines.extend(_blocker_lines(result.blockers, repository=repository, sha=sha, in_review=in_review))
    if result.hint:
        lines.append(f"💡 {md_text_with_code(result.hint, limit=600)}")
    return lines


def _blocker_lines(
    found: Blockers,
    *,
    repository: str | None,
    sha: str | None,
    in_review: frozenset[tuple[str, int]] = frozenset(),
) -> list[str]:
    """Every blocker of an origin, numbered, each with its line and where its values were made."""
    headline = f"🧱 {md_text(blockers_headline(found), limit=700)}"
    if found.status is not BlockerStatus.FOUND:
        return [headline]
    lines = [f"🧱 **{md_text(blockers_headline(found), limit=700)}**"]
    for number, blocker in enumerate(found.found[:SHOWN_BLOCKERS], start=1):
        item = f"{number}. {md_text_with_code(blocker_words(blocker), limit=400)}"
        if blocker.user_frame is not None:
            item += f" at {_frame_link(blocker.user_frame, repository=repository, sha=sha)}"
            if blocker.user_frame.source.strip():
                item += f": {md_code(blocker.user_frame.source.strip(), limit=160)}"
        for made in blocker.created:
            if made.frame is not None:
                item += f"; {md_code(made.symbol, limit=40)} made at "
                item += _frame_link(made.frame, repository=repository, sha=sha)
                if made.frame.source.strip():
                    item += f": {md_code(made.frame.source.strip(), limit=160)}"
        for fix, shown_under in fixes_under(found, number - 1):
            if shown_under is not None:
                item += f"\n   🔧 fixed by the change shown under blocker {shown_under}"
                continue
            proof = md_text_with_code(fix_proof_words(fix), limit=700)
            item += f"\n   🔧 {md_text_with_code(fix.summary, limit=600)}: ✅ {proof}"
            if fix.edit is not None and (fix.edit.path, fix.edit.line) in in_review:
                item += " · suggested as a one-click change in this PR's review"
            block = md_code_block(fix.snippet, lang=fix.language, limit=MAX_SNIPPET_CHARS)
            item += "\n" + "\n".join(f"   {line}" for line in block.split("\n"))
        lines.append(item)
    left = blockers_left(found)
    if left > 0:
        lines.append(f"{plural(left, 'more blocker')} not listed")
    lines.extend(f"🔧 {md_text(line, limit=300)}" for line in fixes_footer(found))
    return lines


def _frame_link(frame: UserFrame, *, repository: str | None, sha: str | None) -> str:
    label = md_code(frame_words(frame), limit=LABEL_LIMIT)
    if frame.library:
        return label
    return md_link(label, blob_url(repository=repository, sha=sha, path=frame.path, line=frame.line))


def _cell_part(
    changes: Changes,
    cell: Cell,
    *,
    context: RenderContext,
    priority: int,
    extra: int,
    group: CauseGroup | None = None,
) -> Part:
    repository = context.repository or changes.head.repository
    sha = context.sha or changes.head.git_sha
    result = cell.shown
    title = _where(cell)
    if result is not None and result.category:
        title += f" · {md_code(result.category, limit=80)}"
    if cell.expected:
        title += f" · expected to fail: {md_text(cell.xfail, limit=200)}"
    lines = [title]
    if cell.note:
        lines.append(f"_{md_text(cell.note)}_")
    if result is not None:
        lines.extend(_failure_lines(result, repository=repository, sha=sha, in_review=context.in_review))
        coverage = coverage_phrase(result.delegation)
        if coverage is not None:  # operator names come from the report: escaped
            lines.append(f"Coverage: {md_text(coverage, limit=200)}")
        if cell.kind is ChangeKind.CHANGED_FAILURE and cell.base_result is not None:
            was = cell.base_result
            lines.append(
                "Was: "
                + (f"{md_code(was.category, limit=80)}: " if was.category else "")
                + md_text(was.message or was.verdict.value)
            )
    others = list(group.others) if group is not None else []
    # One name per path: the same ancestors on other targets say nothing new.
    folded = list(
        {
            f.path: f
            for f in (*changes.folded(cell), *(f for other in others for f in changes.folded(other)))
        }.values()
    )
    if folded:
        names = ", ".join(_path_label(c) for c in folded[:_MAX_FOLDED_NAMES])
        more = f" and {len(folded) - _MAX_FOLDED_NAMES} more" if len(folded) > _MAX_FOLDED_NAMES else ""
        lead = "Also fixed with it" if cell.kind is ChangeKind.FIX else "Also failing because of this"
        lines.append(f"↳ {lead}: {names}{more}")
    elif cell.caused_by is not None:
        lines.append(f"↳ Fails because of {md_code(cell.caused_by) if cell.caused_by else 'model root'}")
    if group is not None and others:
        lines.append(_same_cause_line(group))
    details = ""
    if result is not None and result.detail and result.detail.strip():
        details = md_details("Traceback", md_code_block(result.detail))
    return Part(text="\n\n".join(lines), priority=priority, extra=details, extra_priority=extra)


def _same_cause_line(group: CauseGroup) -> str:
    """``↳ The same cause in 2 more places: onnx · `blocks.4`, …``: the place of each other
    failure, named only as far as it differs from the one shown."""
    lead = group.lead
    names = []
    for other in group.others[:_MAX_FOLDED_NAMES]:
        where = []
        if other.model != lead.model:
            where.append(f"**{md_text(other.model, limit=LABEL_LIMIT)}**")
        if other.target != lead.target or other.model != lead.model:
            where.append(md_text(other.target, limit=60))
        if other.device != lead.device:
            where.append(md_text(other.device, limit=40))
        where.append(_path_label(other))
        names.append(" · ".join(where))
    hidden = len(group.others) - _MAX_FOLDED_NAMES
    more = f" and {hidden} more" if hidden > 0 else ""
    if len(group.jobs) == 1:
        return f"↳ {len(group.cells)} submodules fail for the same reason; also: {', '.join(names)}{more}"
    targets = ""
    if len(group.targets) > 1:
        targets = f" (on {plural(len(group.targets), 'target')}: {md_text(', '.join(group.targets))})"
    return f"↳ The same cause in {plural(len(group.others), 'more place')}{targets}: {', '.join(names)}{more}"


def _group_section(
    changes: Changes,
    context: RenderContext,
    cells: list[Cell],
    *,
    title: str,
    noun: str,
    one: str,
    priority: int,
    extra: int,
) -> Section:
    """One item per cause (a line failing on three targets is one item, one traceback)."""
    cells = sorted(cells, key=lambda c: c.expected)  # unexpected first
    groups = group_by_cause(cells)
    hints: dict[str, str] = {}  # a hint line shown -> where: a long hint is shown once a section

    def make(g: CauseGroup) -> tuple[str, str]:
        part = _cell_part(changes, g.lead, context=context, priority=priority, extra=extra, group=g)
        result = g.lead.shown
        if result is not None and result.hint:
            line = f"💡 {md_text_with_code(result.hint, limit=600)}"
            if line in hints:  # a cut keeps a prefix of a section: the first one is kept too
                return part.text.replace(
                    line, f"💡 The same hint as for {hints[line]}, above.", 1
                ), part.extra
            hints[line] = _where(g.lead)
        return part.text, part.extra

    in_order = InOrder([partial(make, g) for g in groups])  # the hints depend on the groups before
    parts = [
        Part(priority=priority, extra_priority=extra, count=len(g.cells), render=partial(in_order.get, i))
        for i, g in enumerate(groups)
    ]
    return Section(
        noun=noun,
        head=f"#### {title} ({failures_phrase(cells, noun=one)})",
        parts=parts,
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def _cells_section(
    changes: Changes,
    context: RenderContext,
    kind: ChangeKind,
    title: str,
    *,
    priority: int,
    extra: int,
) -> Section:
    return _group_section(
        changes,
        context,
        changes.top_level(kind),
        title=title,
        noun=title.split(" ", 1)[1].lower(),
        one=_ONE_FAILURE[kind],
        priority=priority,
        extra=extra,
    )


def _new_failures_section(changes: Changes, context: RenderContext, *, priority: int, extra: int) -> Section:
    return _group_section(
        changes,
        context,
        [c for c in changes.top_level(ChangeKind.NEW) if c.head_fails],
        title="🆕 New failures",
        noun="new failures",
        one="new failure",
        priority=priority,
        extra=extra,
    )


def _fix_section(changes: Changes, *, priority: int) -> Section:

    def line(cell: Cell) -> str:
        was = cell.base_result
        reason = ""
        if was is not None:
            reason = (f"{md_code(was.category, limit=80)}: " if was.category else "") + md_text(
                was.message or was.verdict.value, limit=200
            )
        text = f"- {_where(cell)} now exports" + (f" (was {reason})" if reason else "")
        if cell.xfail_passes:
            text += " · 🧹 remove the xfail"
        return text

    parts = [deferred(partial(line, cell), priority=priority) for cell in changes.top_level(ChangeKind.FIX)]
    return Section(
        noun="fixes",
        head=f"#### ✅ Fixes ({failures_phrase(changes.top_level(ChangeKind.FIX), noun='fix')})",
        parts=parts,
        joiner="\n",
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def _stopped_lines(
    changes: Changes, kind: ChangeKind, *, priority: int, shown: Callable[[Cell], SubmoduleResult | None]
) -> list[Part]:
    """One line per cell that could not be checked: verdicts, note, and ``shown``'s message."""

    def line(cell: Cell) -> str:
        verdicts = f"{_SYMBOL.get(cell.base, '?')} → {_SYMBOL.get(cell.head, '?')}"
        text = f"- {_where(cell)}: {verdicts}"
        if cell.note:
            text += f" · {md_text(cell.note)}"
        result = shown(cell)
        if result is not None and result.message:
            text += f" · {md_text(result.message, limit=200)}"
        return text

    return [deferred(partial(line, cell), priority=priority) for cell in changes.top_level(kind)]


def _error_section(changes: Changes, *, priority: int) -> Section:
    """Checks exportwatch itself could not complete: never passes, and a bug to report."""
    parts = _stopped_lines(
        changes,
        ChangeKind.ERROR,
        priority=priority,
        shown=lambda cell: cell.head_result if cell.head is Verdict.ERROR else cell.base_result,
    )
    return Section(
        noun="exportwatch errors",
        head=(
            f"#### 🐞 Not checked: exportwatch failed ({len(parts)})\n\n"
            f"_A bug in exportwatch, not in your model; rerunning will not help. Please "
            f"[report it]({BUG_REPORT_URL}) with the detail from the job summary._"
        ),
        parts=parts,
        joiner="\n",
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def _coverage_section(changes: Changes, *, priority: int) -> Section:
    """Modules that export on both sides but delegate less to their backend on head."""
    several_devices = len(changes.devices) > 1

    def line(cell: Cell) -> str:
        drop = cell.coverage_drop
        assert drop is not None
        where = f"**{md_text(cell.model, limit=LABEL_LIMIT)}** · {md_text(cell.target, limit=60)}"
        if several_devices:
            where += f" · {md_text(cell.device, limit=40)}"
        path = md_code(cell.path) if cell.path else "(root)"
        note = coverage_drop_note(drop, text=lambda t: md_text(t, limit=200), code=md_code)
        return f"- 📉 {where}: {path}: {note}"

    cells = [c for c in changes.top_level(ChangeKind.COVERAGE_DROP) if c.coverage_drop is not None]
    parts = [deferred(partial(line, cell), priority=priority) for cell in cells]
    return Section(
        noun="coverage drops",
        head=f"#### 📉 Delegation coverage drops ({len(parts)})",
        parts=parts,
        joiner="\n",
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def _infra_section(changes: Changes, *, priority: int) -> Section:
    parts = _stopped_lines(
        changes,
        ChangeKind.INFRASTRUCTURE,
        priority=priority,
        shown=lambda cell: cell.head_result if cell.head_result is not None else cell.base_result,
    )
    return Section(
        noun="infrastructure problems",
        head=f"#### 💥 Crashes, timeouts and out-of-memory ({len(parts)})",
        parts=parts,
        joiner="\n",
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def _other_section(changes: Changes, *, priority: int) -> Section:
    """New and removed models / targets, new passing submodules, newly skipped results.

    Which items there are is decided first (cheaply, over the cells); their text is rendered
    only for the items the budget keeps: a report with thousands of them costs what is shown.
    """
    several_devices = len(changes.devices) > 1

    def move_line(model: str, targets: tuple[str, ...], moves: list[Move]) -> str:
        return (
            f"- 🔀 **{md_text(model, limit=LABEL_LIMIT)}** · {md_text(', '.join(targets), limit=200)}: "
            f"{move_phrase(moves, code=md_code)}"
        )

    def skipped_line(model: str, device: str, verdict: Verdict | None, reason: str, cells: list[Cell]) -> str:
        targets = ", ".join(dict.fromkeys(c.target for c in cells))
        paths = len({c.path for c in cells})
        return (
            f"- ⏭️ **{md_text(model, limit=LABEL_LIMIT)}** · {md_text(targets, limit=200)}"
            + (f" · {md_text(device, limit=40)}" if several_devices else "")
            + f": {plural(paths, 'submodule')} now {_SYMBOL.get(verdict, '?')}"
            + (f": {md_text(reason, limit=200)}" if reason else "")
        )

    parts = [
        deferred(partial(move_line, model, targets, moves), priority=priority)
        for model, targets, moves in grouped_moves(changes)
    ]
    new_jobs = {c.job_key for c in changes.cells.values() if c.is_root and c.base is None}
    gone_jobs = {c.job_key for c in changes.cells.values() if c.is_root and c.head is None}
    skipped = _skipped_together(changes, gone=new_jobs | gone_jobs)
    for (model, device, verdict, reason), cells in skipped.items():
        if len(cells) < 2:
            continue
        parts.append(
            deferred(partial(skipped_line, model, device, verdict, reason, cells), priority=priority)
        )
    grouped = {c.key for cells in skipped.values() if len(cells) > 1 for c in cells}
    for cell in changes.top_level(ChangeKind.NEW, ChangeKind.REMOVED, ChangeKind.NEWLY_SKIPPED):
        if cell.kind is ChangeKind.NEW and cell.head_fails:
            continue  # under "New failures"
        if cell.key in grouped:
            continue  # one line for all of them, above
        whole_job = cell.job_key in new_jobs or cell.job_key in gone_jobs
        if whole_job and not cell.is_root:
            continue  # the root's line says it
        if cell.kind is ChangeKind.NEW and not cell.is_root and cell.head in PASSING:
            continue  # a newly seen submodule that exports: nothing to act on
        parts.append(deferred(partial(_other_line, cell), priority=priority))
    return Section(
        noun="other changes",
        head=f"#### Other changes ({len(parts)})",
        parts=parts,
        joiner="\n",
        more=lambda n: f"_…and {n} more (cut to fit)._",
    )


def _other_line(cell: Cell) -> str:
    """One new, removed or newly skipped cell of "Other changes"."""
    if cell.kind is ChangeKind.NEW:
        text = f"🆕 {_where(cell)}: {_SYMBOL.get(cell.head, '?')}"
    elif cell.kind is ChangeKind.REMOVED:
        text = f"🗑️ {_where(cell)}: no longer in the report (was {_SYMBOL.get(cell.base, '?')})"
    else:
        result = cell.head_result
        reason = f": {md_text(result.reason, limit=200)}" if result and result.reason else ""
        text = f"⏭️ {_where(cell)}: now {_SYMBOL.get(cell.head, '?')}{reason}"
    if cell.note:
        text += f" ({md_text(cell.note, limit=200)})"
    return f"- {text}"


def _skipped_together(
    changes: Changes, *, gone: set[tuple[str, str, str]]
) -> dict[tuple[str, str, Verdict | None, str], list[Cell]]:
    """Submodules newly skipped (or not called) for one reason, per (model, device, verdict,
    reason), over the targets: a model whose own forward fails skips every submodule, and that
    is one story, not fifty."""
    out: dict[tuple[str, str, Verdict | None, str], list[Cell]] = {}
    for cell in changes.top_level(ChangeKind.NEWLY_SKIPPED):
        if cell.is_root or cell.job_key in gone:
            continue
        result = cell.head_result
        reason = (result.reason if result is not None else None) or ""
        out.setdefault((cell.model, cell.device, cell.head, reason), []).append(cell)
    return out


# ---------------------------------------------------------------------------------------------
# Where it broke: each failing job's failing branch as a text tree


def _tree_section(changes: Changes, *, priority: int) -> Section:
    """One collapsed tree per failing job, worst first; a cut drops whole trees from the end.

    A job is in it when a cell of it fails on head (what makes its failing branch); its tree is
    built and drawn only if the budget reaches it."""
    kinds = changes_by_job(changes)
    several_devices = len(changes.devices) > 1
    rank = {row.model: i for i, row in enumerate(sorted_rows(changes.models))}
    cells_by_job = head_cells_by_job(changes)
    failing = [key for key, cells in cells_by_job.items() if any(c.head in FAILING for c in cells)]
    failing.sort(key=lambda key: rank.get(key[0], len(rank)))

    def block(key: JobKey) -> str:
        job = head_job(key, cells_by_job[key])
        branch = failing_tree(job, changes=kinds.get(key))
        label = f"{job.model} · {job.target}" + (f" · {job.device}" if several_devices else "")
        lines = tree_lines(branch) if branch is not None else []
        return md_details(label, md_code_block("\n".join(lines), limit=TREE_BLOCK_LIMIT))

    parts = [deferred(partial(block, key), priority=priority) for key in failing]
    return Section(
        noun="failing-branch trees",
        head=f"#### 🌳 Where it broke ({len(parts)})",
        parts=parts,
        more=lambda n: f"_…and {plural(n, 'more tree')} (cut to fit)._",
    )


def tree_lines(branch: TreeNode, *, max_nodes: int = TREE_MAX_NODES) -> list[str]:
    """``branch`` drawn as indented plain text, one node a line: the verdict's emoji, the path
    (the model at the root), the module type and category, and marks for the origin, a
    ``same-as`` twin and a change since the base. Plain text for a fenced block: every field is
    one line and capped, so untrusted names can neither add lines nor push the marks away."""
    lines: list[str] = []
    nodes = list(walk(branch))
    for depth, node in nodes[:max_nodes]:
        label = node.name if not node.path else node.path
        line = f"{'  ' * min(depth, _TREE_MAX_INDENT)}{node.style.emoji} {one_line(label, limit=120)}"
        if node.result.module_type:
            line += f" ({one_line(node.result.module_type, limit=60)})"
        if node.shown.category:
            line += f" · {one_line(node.shown.category, limit=60)}"
        coverage = coverage_phrase(node.shown.delegation)
        if coverage is not None:
            line += f" · {one_line(coverage, limit=160)}"
        if node.twin is not None:
            line += f" = same as {one_line(node.twin, limit=120)}"
        if node.origin:
            line += "  ◀ origin"
        if node.change is ChangeKind.REGRESSION:
            line += " [regression]"
        lines.append(line)
    if len(nodes) > max_nodes:
        lines.append(f"… and {plural(len(nodes) - max_nodes, 'more failing node')} (see the HTML report)")
    return lines
