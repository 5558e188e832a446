"""Changes → aligned plain text for a terminal or a CI log; ANSI colour only when asked.

The caller decides on colour (a TTY, ``NO_COLOR``, ``--color``): this module does no I/O.
Untrusted text goes through :func:`~exportwatch.render.escape.term_text`: control characters are
shown as escapes, so a message cannot move the cursor, retitle the terminal or rewrite earlier
lines, and no line of the result is a GitHub Actions workflow command (``exportwatch diff`` runs
in CI jobs that read untrusted reports).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from exportwatch.diff import Cell, ChangeKind, Changes, GateResult, coverage_drop_note
from exportwatch.render.common import (
    KIND_LABEL,
    SHOWN_BLOCKERS,
    CauseGroup,
    RenderContext,
    blocker_words,
    blockers_headline,
    blockers_left,
    coverage_phrase,
    failures_phrase,
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
    verdict_word,
)
from exportwatch.render.escape import LABEL_LIMIT, no_workflow_commands, term_block, term_text, term_width
from exportwatch.report.model import MAX_SNIPPET_CHARS, Blockers, BlockerStatus

_RESET = "\x1b[0m"
_COLOURS = {"red": "\x1b[31m", "green": "\x1b[32m", "yellow": "\x1b[33m", "bold": "\x1b[1m", "dim": "\x1b[2m"}
_STATUS = {"pass": ("PASS", "green"), "fail": ("FAIL", "red"), "warn": ("WARN", "yellow")}
_KIND_COLOUR = {
    ChangeKind.REGRESSION: "red",
    ChangeKind.CHANGED_FAILURE: "red",
    ChangeKind.STILL_FAILING: "red",
    ChangeKind.FIX: "green",
    ChangeKind.INFRASTRUCTURE: "yellow",
    ChangeKind.ERROR: "red",
    ChangeKind.NEWLY_SKIPPED: "yellow",
    ChangeKind.COVERAGE_DROP: "yellow",
}


def render_text(changes: Changes, gate: GateResult, *, context: RenderContext) -> str:
    paint = _Painter(enabled=context.color)
    line = headline(changes, gate)
    word, colour = _STATUS[line.status]
    title = f"{term_text(context.title, limit=LABEL_LIMIT)}: " if context.title else ""
    text = term_text(line.text, limit=2000)  # quotes report text (skip reasons)
    out = [f"{paint(word, colour, bold=True)}  {title}{text}   (gate: {gate.policy.value})"]
    for note in gate.reasons:
        out.append(f"  {paint('✗', 'red')} {term_text(note, limit=2000)}")
    for note in (*_version_notes(changes), *changes.notes, *gate.notes):
        out.append(f"  ! {term_text(note, limit=500)}")
    out.append("")
    out.extend(_table(changes, paint=paint))

    hints: dict[str, str] = {}  # a hint already printed -> where: a long hint is printed once
    for kind, title_, one in (
        (ChangeKind.REGRESSION, "Regressions", "regression"),
        (ChangeKind.CHANGED_FAILURE, "Changed failures", "changed failure"),
        (
            ChangeKind.ERROR,
            "Not checked: exportwatch failed (a bug in exportwatch: please report it)",
            "check",
        ),
        (ChangeKind.INFRASTRUCTURE, "Crashes, timeouts and out-of-memory", "result"),
        (ChangeKind.FIX, "Fixes", "fix"),
        (ChangeKind.NEW, "New failures", "new failure"),
    ):
        cells = changes.top_level(kind)
        if kind is ChangeKind.NEW:
            cells = [c for c in cells if c.head_fails]
        if cells:
            out.append("")
            colour = _KIND_COLOUR.get(kind, "red")
            out.append(paint(f"{title_} ({failures_phrase(cells, noun=one)})", colour, bold=True))
            for group in group_by_cause(cells):
                out.extend(_cell_lines(changes, group, paint=paint, hints=hints))
    drops = [c for c in changes.top_level(ChangeKind.COVERAGE_DROP) if c.coverage_drop is not None]
    if drops:
        out.append("")
        heading = f"Delegation coverage drops ({plural(len(drops), 'module')})"
        out.append(paint(heading, _KIND_COLOUR[ChangeKind.COVERAGE_DROP], bold=True))
        for cell in drops:
            assert cell.coverage_drop is not None
            note = term_text(coverage_drop_note(cell.coverage_drop), limit=600)  # report text
            out.append(f"  {_label(cell)}: {note}")
    moves = grouped_moves(changes)
    if moves:
        out.append("")
        out.append(paint(f"Moved ({plural(len(moves), 'subtree')})", None, bold=True))
        for model, targets, job_moves in moves:
            where = f"{term_text(model, limit=60)} · {term_text(', '.join(targets), limit=200)}"
            out.append(f"  {where}: {move_phrase(job_moves, code=lambda p: term_text(p, limit=120))}")
    stale = changes.xfail_passing
    if stale:
        out.append("")
        out.append(paint(f"Remove the xfail ({len(stale)}): these now export", "yellow", bold=True))
        out.extend(f"  {_label(c)}  (xfail: {term_text(c.xfail, limit=200)})" for c in stale)
    out.append("")
    out.append(paint(_footer(changes), "dim"))
    return no_workflow_commands("\n".join(out)) + "\n"  # whatever lands at the start of a line


class _Painter:
    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, colour: str | None, *, bold: bool = False) -> str:
        if not self.enabled or (colour is None and not bold):
            return text
        codes = (_COLOURS[colour] if colour else "") + (_COLOURS["bold"] if bold else "")
        return f"{codes}{text}{_RESET}"


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - term_width(text), 0)


def _table(changes: Changes, *, paint: _Painter) -> list[str]:
    header = ["MODEL", "DEVICE", *[term_text(t, limit=60).upper() for t in changes.targets]]
    rows: list[tuple[list[str], list[ChangeKind | None]]] = []
    for row in sorted_rows(changes.models):
        texts = [term_text(row.model, limit=60), term_text(row.device, limit=20)]
        kinds: list[ChangeKind | None] = [None, None]
        for target in changes.targets:
            cell = row.cells.get(target)
            if cell is None:
                texts.append("")
                kinds.append(None)
                continue
            if not changes.has_base or cell.base == cell.head:
                text = verdict_word(cell.head)
            else:
                text = f"{verdict_word(cell.base)} → {verdict_word(cell.head)}"
            if changes.has_base and cell.kind not in (ChangeKind.UNCHANGED_OK, ChangeKind.NEW):
                text += f" ({KIND_LABEL[cell.kind]})"
            if cell.expected:
                text += " xfail"
            n = cell.submodule_kinds.get(ChangeKind.REGRESSION, 0)
            if n and cell.kind is not ChangeKind.REGRESSION:
                text += f" +{plural(n, 'submodule regression')}"
            texts.append(text)
            kinds.append(cell.kind)
        rows.append((texts, kinds))
    widths = [max([term_width(h)] + [term_width(r[0][i]) for r in rows]) for i, h in enumerate(header)]
    out = [_join_cols(header, widths)]
    for texts, kinds in rows:
        cols = [_pad(t, w) for t, w in zip(texts, widths, strict=True)]
        cols = [paint(c, _KIND_COLOUR.get(k)) if k else c for c, k in zip(cols, kinds, strict=True)]
        out.append("  ".join(cols).rstrip())
    return out


def _join_cols(cols: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(_pad(c, w) for c, w in zip(cols, widths, strict=True)).rstrip()


def _label(cell: Cell) -> str:
    where = f"{term_text(cell.model, limit=60)} · {term_text(cell.target)} · {term_text(cell.device)}"
    return f"{where} · {_path(cell)}"


def _path(cell: Cell) -> str:
    path = term_text(cell.path, limit=LABEL_LIMIT) if cell.path else "(root)"
    if cell.moved_from is not None:
        path += f" (was {term_text(cell.moved_from, limit=LABEL_LIMIT)} on base)"
    return path


def _same_cause(group: CauseGroup) -> str:
    """``same cause also on: onnx · blocks.4, …``: each other place, as far as it differs."""
    lead = group.lead
    names = []
    for other in group.others[:12]:
        where = []
        if other.model != lead.model:
            where.append(term_text(other.model, limit=60))
        if other.target != lead.target or other.model != lead.model:
            where.append(term_text(other.target))
        if other.device != lead.device:
            where.append(term_text(other.device))
        names.append(" · ".join([*where, _path(other)]))
    more = f" and {len(group.others) - 12} more" if len(group.others) > 12 else ""
    return f"      same cause also on {plural(len(group.others), 'more place')}: {', '.join(names)}{more}"


def _cell_lines(changes: Changes, group: CauseGroup, *, paint: _Painter, hints: dict[str, str]) -> list[str]:
    cell = group.lead
    result = cell.shown
    about = [term_text(cell.module_type, limit=80)] if cell.module_type else []
    if cell.moved_from is not None:  # one parenthesis: "(Block, was blocks.2 on base)"
        about.append(f"was {term_text(cell.moved_from, limit=LABEL_LIMIT)} on base")
    head = f"  {_label(dataclasses.replace(cell, moved_from=None))}"
    if about:
        head += f" ({', '.join(about)})"
    head += f"  {verdict_word(cell.base)} → {verdict_word(cell.head)}"
    if result is not None and result.category:
        head += f"  [{term_text(result.category, limit=80)}]"
    if cell.expected:
        head += f"  expected: {term_text(cell.xfail, limit=200)}"
    lines = [paint(head, _KIND_COLOUR.get(cell.kind))]
    coverage = coverage_phrase(result.delegation if result is not None else None)
    if coverage is not None:
        lines.append(f"      coverage: {term_text(coverage, limit=200)}")
    if cell.note:
        lines.append(f"      note: {term_text(cell.note)}")
    if cell.kind is ChangeKind.FIX and result is not None:
        was = f"{term_text(result.category, limit=80)}: " if result.category else ""
        lines.append(f"      was: {was}{term_text(result.message or result.verdict.value)}")
    elif result is not None:
        if result.message:
            lines.append(f"      {term_text(result.message)}")
        frame = result.user_frame
        if frame is not None:
            where = f"{term_text(frame.path, limit=LABEL_LIMIT)}:{frame.line}"
            if frame.function:
                where += f" in {term_text(frame.function, limit=80)}"
            if frame.library:
                where += f" (library code: {term_text(frame.library, limit=80)})"
            lines.append(f"      at {where}")
            if frame.source.strip():
                lines.extend(f"      | {s}" for s in term_block(frame.source, limit=600).splitlines())
        if result.blockers is not None:
            lines.extend(_blocker_lines(result.blockers))
        if result.hint:
            seen = hints.get(result.hint)
            if seen is None:
                hints[result.hint] = _label(cell)
                lines.append(f"      hint: {term_text(result.hint, limit=600)}")
            else:
                lines.append(f"      hint: the same as for {seen}, above")
    folded = list({f.path: f for other in group.cells for f in changes.folded(other)}.values())
    if folded:
        names = ", ".join(term_text(c.path, limit=80) if c.path else "(root)" for c in folded[:12])
        lead = "also fixed with it" if cell.kind is ChangeKind.FIX else "also failing because of this"
        lines.append(f"      {lead}: {names}")
    if group.others:
        lines.append(_same_cause(group))
    return lines


def _version_notes(changes: Changes) -> list[str]:
    notes = [
        f"versions differ: {v.package} {v.base or 'none'} → {v.head or 'none'} "
        "(changes may come from the upgrade)"
        for v in changes.version_notes
    ]
    upgrade = changes.upgrade
    if upgrade is not None and upgrade.models:
        notes.append(f"changed by the upgrade (same code on both sides): {', '.join(upgrade.models)}")
    return notes


def _footer(changes: Changes) -> str:
    head = changes.head
    bits = [f"exportwatch {term_text(head.tool_version, limit=40)}".strip()]
    for package in ("torch", "onnx", "onnxruntime", "python"):
        if head.versions.get(package):
            bits.append(f"{package} {term_text(head.versions[package], limit=60)}")
    if head.duration_s:
        bits.append(f"swept in {format_duration(head.duration_s)}")
    if head.run_url:
        bits.append(term_text(head.run_url, limit=300))
    return " · ".join(bits)


def _blocker_lines(found: Blockers) -> list[str]:
    """Every blocker of an origin, numbered, with its line and where its values were made."""
    lines = [f"      {term_text(blockers_headline(found), limit=700)}"]
    if found.status is not BlockerStatus.FOUND:
        return lines
    for number, blocker in enumerate(found.found[:SHOWN_BLOCKERS], start=1):
        lines.append(f"      {number}. {term_text(blocker_words(blocker), limit=400)}")
        if blocker.user_frame is not None:
            lines.append(f"         at {term_text(frame_words(blocker.user_frame), limit=LABEL_LIMIT)}")
            if blocker.user_frame.source.strip():
                lines.append(f"         | {term_text(blocker.user_frame.source.strip(), limit=160)}")
        for made in blocker.created:
            if made.frame is not None:
                where = term_text(frame_words(made.frame), limit=LABEL_LIMIT)
                lines.append(f"         {term_text(made.symbol, limit=40)} made at {where}")
                if made.frame.source.strip():
                    lines.append(f"         | {term_text(made.frame.source.strip(), limit=160)}")
        for fix, shown_under in fixes_under(found, number - 1):
            if shown_under is not None:
                lines.append(f"         fix: the change shown under blocker {shown_under}")
                continue
            lines.append(f"         fix: {term_text(fix.summary, limit=600)}")
            lines.append(f"           {term_text(fix_proof_words(fix), limit=700)}")
            snippet = term_block(fix.snippet, limit=MAX_SNIPPET_CHARS).split("\n")
            lines.extend(f"             {line}" for line in snippet)
    left = blockers_left(found)
    if left > 0:
        lines.append(f"      {left} more not listed")
    lines.extend(f"      {term_text(line, limit=300)}" for line in fixes_footer(found))
    return lines
