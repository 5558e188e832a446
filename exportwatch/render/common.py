"""What every view shares: the headline, labels, ordering, and fitting text into a size budget.

Kept apart from the markdown and terminal modules so both say the same thing in their own way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from exportwatch.diff import SEVERITY, Cell, ChangeKind, Changes, GateResult, ModelRow, Policy
from exportwatch.render.escape import one_line
from exportwatch.report import FAILING, INFRASTRUCTURE, PASSING, Verdict


@dataclass(frozen=True, kw_only=True)
class RenderContext:
    """What a view needs beyond the diff: links, the marker key, size and colour choices.

    Fields left None fall back to the head report's own metadata.
    """

    repository: str | None = None  # OWNER/REPO for source links
    sha: str | None = None  # head commit for source links
    run_url: str | None = None  # the workflow run
    summary_url: str | None = None  # where the job summary can be read, if known
    artifact_name: str | None = "exportwatch-report"
    marker_key: str | None = None  # several manifests → several comments
    title: str | None = None  # e.g. the manifest's name, shown beside the headline
    max_chars: int | None = None  # None: the format's default
    color: bool = False  # terminal only


@dataclass(frozen=True, kw_only=True)
class Headline:
    status: str  # "pass" | "fail" | "warn"
    text: str  # plain text, no markup


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def headline(changes: Changes, gate: GateResult) -> Headline:
    """The one line a reviewer reads: what the gate decided and the biggest reason. When the
    library versions differ, it leads with the upgrade and what it changed ("torch 2.13.0 →
    2.14.1: 3 regressions in 2 models"), and names what the code change did besides."""
    line = _headline(changes, gate)
    upgrade = changes.upgrade
    if upgrade is None or not (upgrade.regressions or upgrade.fixes):
        return line
    top = changes.top_level()
    regressions = sum(1 for c in top if c.kind is ChangeKind.REGRESSION and not c.expected)
    fixes = sum(1 for c in top if c.kind is ChangeKind.FIX)
    others = []
    if regressions > len(upgrade.regressions):
        others.append(plural(regressions - len(upgrade.regressions), "regression"))
    if fixes > len(upgrade.fixes):
        others.append(plural(fixes - len(upgrade.fixes), "fix", "fixes"))
    text = upgrade.summary()
    if others:
        text += f"; and {', '.join(others)} where the code changed too"
    if gate.passed and upgrade.regressions:
        text += " (not gated)"
    return Headline(status=line.status, text=text)


def _headline(changes: Changes, gate: GateResult) -> Headline:
    top = changes.top_level()
    regressions = [c for c in top if c.kind is ChangeKind.REGRESSION and not c.expected]
    expected_regressions = [c for c in top if c.kind is ChangeKind.REGRESSION and c.expected]
    infra = [c for c in top if c.kind is ChangeKind.INFRASTRUCTURE]
    errors = [c for c in top if c.kind is ChangeKind.ERROR]
    fixes = [c for c in top if c.kind is ChangeKind.FIX]

    if not gate.passed:
        failing = [changes.cells[k] for k in gate.failing]
        unchecked = [c for c in failing if c.kind is ChangeKind.ERROR]
        failing = [c for c in failing if c.kind is not ChangeKind.ERROR]
        if not failing:
            models = plural(len({c.model for c in unchecked}), "model")
            return Headline(
                status="fail",
                text=f"exportwatch could not check {plural(len(unchecked), 'export')} in {models} "
                "(an exportwatch bug: please report it)",
            )
        models = plural(len({c.model for c in failing}), "model")
        n = len(failing)
        text = {
            Policy.REGRESSION: f"{plural(n, 'export regression')} in {models}",
            Policy.NEW_FAILURE: f"{plural(n, 'new export failure')} in {models}",
            Policy.ANY_FAILURE: f"{plural(n, 'failing export')} in {models}",
        }.get(gate.policy, f"{plural(n, 'failure')} in {models}")
        if unchecked:
            text += f", and {plural(len(unchecked), 'export')} exportwatch could not check"
        return Headline(status="fail", text=text)

    skipped = [c for c in changes.cells.values() if c.is_root and c.head is Verdict.SKIPPED]
    not_run = f"{plural(len(skipped), 'export')} not run ({_skip_reasons(skipped)})" if skipped else ""
    if not changes.has_base:
        roots = [c for c in changes.cells.values() if c.is_root]
        failing_roots = [c for c in roots if c.head in FAILING and not c.expected]
        checked = len(roots) - len(skipped)
        if not checked:
            return Headline(
                status="warn", text=f"No base to compare with, and nothing was checked: {not_run}"
            )
        text = f"No base to compare with: {plural(checked, 'export')} checked"
        if failing_roots:
            extra = f"; {not_run}" if skipped else ""
            return Headline(status="warn", text=f"{text}, {len(failing_roots)} failing{extra}")
        if skipped:  # a skipped export is never a passing one
            return Headline(status="warn", text=f"{text}, all pass; {not_run}")
        return Headline(status="pass", text=f"{text}, all pass")

    extras: list[str] = []
    if fixes:
        extras.append(f"{len(fixes)} fixed")
    if expected_regressions:
        extras.append(plural(len(expected_regressions), "expected failure"))
    if changes.xfail_passing:
        extras.append(f"{plural(len(changes.xfail_passing), 'xfail')} to remove")
    tail = f" · {' · '.join(extras)}" if extras else ""
    if regressions:  # gate passed anyway: policy "never"
        models = plural(len({c.model for c in regressions}), "model")
        return Headline(
            status="warn",
            text=f"{plural(len(regressions), 'export regression')} in {models} (not gated){tail}",
        )
    if errors:
        return Headline(
            status="warn",
            text=f"No export regressions found, but exportwatch could not check "
            f"{plural(len(errors), 'export')}: results incomplete{tail}",
        )
    if infra:
        return Headline(
            status="warn",
            text=f"No export regressions found, but {plural(len(infra), 'export')} hit a crash, "
            f"timeout or out-of-memory: results incomplete{tail}",
        )
    if skipped:
        return Headline(
            status="warn", text=f"No export regressions found, but {not_run}: results incomplete{tail}"
        )
    partial = [
        side for side, meta in (("base", changes.base), ("head", changes.head)) if meta and not meta.complete
    ]
    if partial:  # what is missing may be a regression
        return Headline(
            status="warn",
            text=f"No export regressions found, but the {' and '.join(partial)} report "
            f"{'is' if len(partial) == 1 else 'are'} partial: results incomplete{tail}",
        )
    if not changes.has_changes:
        return Headline(status="pass", text="No change in export status")
    return Headline(status="pass", text=f"No export regressions{tail}")


def _skip_reasons(cells: Sequence[Cell]) -> str:
    """``skipped: CUDA is not available``: the distinct reasons, the commonest first."""
    reasons = Counter(
        (c.head_result.reason if c.head_result is not None else None) or "no reason given" for c in cells
    )
    shown = [one_line(r, limit=120) for r, _ in reasons.most_common(2)]
    more = f" and {len(reasons) - 2} more reasons" if len(reasons) > 2 else ""
    return f"skipped: {'; '.join(shown)}{more}"


KIND_LABEL: dict[ChangeKind, str] = {
    ChangeKind.REGRESSION: "regression",
    ChangeKind.FIX: "fixed",
    ChangeKind.CHANGED_FAILURE: "changed failure",
    ChangeKind.STILL_FAILING: "still failing",
    ChangeKind.NEW: "new",
    ChangeKind.REMOVED: "removed",
    ChangeKind.NEWLY_SKIPPED: "newly skipped",
    ChangeKind.INFRASTRUCTURE: "infrastructure",
    ChangeKind.ERROR: "exportwatch error",
    ChangeKind.UNCHANGED_OK: "unchanged",
}


def verdict_word(verdict: Verdict | None) -> str:
    if verdict is None:
        return "—"
    if verdict is Verdict.COVERED:
        return "ok"
    return verdict.value


def severity_rank(kind: ChangeKind) -> int:
    return SEVERITY.index(kind)


def sorted_rows(rows: Sequence[ModelRow]) -> list[ModelRow]:
    """Most urgent first; report order among equals."""
    return sorted(rows, key=lambda r: severity_rank(r.worst))


def is_failing(verdict: Verdict | None) -> bool:
    return verdict in FAILING and verdict not in INFRASTRUCTURE and verdict is not Verdict.ERROR


def is_passing(verdict: Verdict | None) -> bool:
    return verdict in PASSING


def cell_sort_key(cell: Cell) -> tuple[str, str, str, int, str]:
    return (cell.model, cell.target, cell.device, cell.path.count(".") + bool(cell.path), cell.path)


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# ---------------------------------------------------------------------------------------------
# Fitting a document into a size budget, by priority


@dataclass(kw_only=True)
class Part:
    """One item of a section; ``extra`` (e.g. a traceback) is kept only if ``text`` is."""

    text: str
    priority: int
    extra: str = ""
    extra_priority: int = 99


@dataclass(kw_only=True)
class Section:
    """A run of parts under a heading; a cut drops a tail of the section, never a hole."""

    noun: str  # "regressions", "table rows": for the cut note
    head: str = ""
    parts: list[Part] = field(default_factory=list)
    joiner: str = "\n\n"
    extra_noun: str = "tracebacks"
    more: Callable[[int], str] | None = None  # the line that says n parts were cut
    keep_extras: bool = True


@dataclass(frozen=True, kw_only=True)
class Fitted:
    blocks: tuple[str, ...]  # rendered sections, in display order (empty ones left out)
    cut: dict[str, int]  # noun -> how many were left out


def fit(sections: Sequence[Section], *, budget: int, measure: Callable[[str], int] = len) -> Fitted:
    """Keep parts by priority (then display order) while they fit in ``budget``.

    Once a part of a section does not fit, the rest of that section is cut too, so what is
    shown is always a prefix in display order, followed by a line saying how many were cut.
    """
    candidates = []
    for s_i, section in enumerate(sections):
        for p_i, part in enumerate(section.parts):
            candidates.append((part.priority, s_i, p_i, False))
            if part.extra and section.keep_extras:
                candidates.append((part.extra_priority, s_i, p_i, True))
    candidates.sort()

    kept = [[False] * len(s.parts) for s in sections]
    kept_extra = [[False] * len(s.parts) for s in sections]
    closed = [False] * len(sections)
    closed_extra = [False] * len(sections)
    opened = [False] * len(sections)
    remaining = budget
    for _, s_i, p_i, is_extra in candidates:
        section = sections[s_i]
        part = section.parts[p_i]
        if is_extra:
            if closed_extra[s_i] or not kept[s_i][p_i]:
                continue
            cost = measure(part.extra) + measure(section.joiner)
            if cost <= remaining:
                kept_extra[s_i][p_i] = True
                remaining -= cost
            else:
                closed_extra[s_i] = True
            continue
        if closed[s_i]:
            continue
        cost = measure(part.text) + measure(section.joiner)
        if not opened[s_i]:
            # The heading, and room for a "n more were cut" line.
            cost += measure(section.head) + measure(section.joiner)
            cost += measure(section.more(10**6)) + 2 if section.more else 0
        if cost <= remaining:
            kept[s_i][p_i] = True
            opened[s_i] = True
            remaining -= cost
        else:
            closed[s_i] = True

    blocks: list[str] = []
    cut: dict[str, int] = {}
    for s_i, section in enumerate(sections):
        texts = []
        for p_i, part in enumerate(section.parts):
            if not kept[s_i][p_i]:
                continue
            text = part.text
            if part.extra and kept_extra[s_i][p_i]:
                text = f"{text}\n\n{part.extra}"
            texts.append(text)
        dropped = len(section.parts) - len(texts)
        dropped_extra = sum(
            1
            for p_i, part in enumerate(section.parts)
            if part.extra and section.keep_extras and kept[s_i][p_i] and not kept_extra[s_i][p_i]
        )
        if dropped:
            cut[section.noun] = cut.get(section.noun, 0) + dropped
        if dropped_extra:
            cut[section.extra_noun] = cut.get(section.extra_noun, 0) + dropped_extra
        if not texts:
            continue
        block = section.joiner.join(texts)
        if section.head:
            block = f"{section.head}{section.joiner}{block}"
        if dropped and section.more is not None:
            block = f"{block}\n\n{section.more(dropped)}"
        blocks.append(block)
    return Fitted(blocks=tuple(blocks), cut=cut)
