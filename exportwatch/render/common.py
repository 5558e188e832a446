"""What every view shares: the headline, labels, ordering, and fitting text into a size budget.

Kept apart from the markdown and terminal modules so both say the same thing in their own way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from exportwatch.diff import SEVERITY, Cell, ChangeKind, Changes, GateResult, JobKey, ModelRow, Move, Policy
from exportwatch.render.escape import one_line
from exportwatch.report import (
    FAILING,
    INFRASTRUCTURE,
    Delegation,
    SubmoduleResult,
    UserFrame,
    Verdict,
    failure_identity,
)
from exportwatch.report.model import Blocker, Blockers, BlockerStatus, Fix, FixProof


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
    #: ``(path, line)`` of the verified fixes this publish suggests as changes in the PR's review:
    #: the comment says so beside their snippets (which stay, should the review's write fail).
    in_review: frozenset[tuple[str, int]] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Headline:
    status: str  # "pass" | "fail" | "warn"
    text: str  # plain text, no markup


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


# ---------------------------------------------------------------------------------------------
# Counts: one function per number, so every view quotes the same one with the same noun.
#
#   export   a job: one (model, target, device); "checked" when it ran on head (not skipped)
#   failure  a top-level cell: one place that broke in one export, its failing ancestors folded
#            into it (so one export may hold several failures, and a failure is never counted twice)
#   group    failures that share a cause (the same line, or the same fingerprint), across targets
#            and models: shown once, with one hint and one traceback


@dataclass(frozen=True, kw_only=True)
class Tally:
    """The headline numbers of one diff."""

    exports: int  # exports checked on head (skipped ones are not checked)
    skipped: int  # exports skipped on head
    failing_exports: int  # checked exports whose root fails for the model's own reason, xfail excluded
    unfinished: int  # checked exports that hit a crash, timeout, out-of-memory or exportwatch error
    regressions: int  # failures that exported on base, xfail excluded
    fixes: int  # failures of base that export on head


def tally(changes: Changes) -> Tally:
    """Count what every view quotes (see the units above)."""
    roots = [c for c in changes.cells.values() if c.is_root and c.head is not None]
    skipped = [c for c in roots if c.head is Verdict.SKIPPED]
    top = changes.top_level()
    return Tally(
        exports=len(roots) - len(skipped),
        skipped=len(skipped),
        failing_exports=sum(1 for c in roots if c.head_fails and not c.expected),
        unfinished=sum(1 for c in roots if c.head in INFRASTRUCTURE or c.head is Verdict.ERROR),
        regressions=sum(1 for c in top if c.kind is ChangeKind.REGRESSION and not c.expected),
        fixes=sum(1 for c in top if c.kind is ChangeKind.FIX),
    )


def exports_phrase(counts: Tally) -> str:
    """``28 exports checked, 13 failing`` (``, 2 unfinished`` after a crash or timeout)."""
    text = f"{plural(counts.exports, 'export')} checked, {counts.failing_exports} failing"
    if counts.unfinished:
        text += f", {counts.unfinished} unfinished (crash, timeout, out of memory or exportwatch error)"
    return text


def failures_phrase(cells: Sequence[Cell], *, noun: str = "failure") -> str:
    """``17 new failures in 13 exports`` (``, 2 expected`` when some are xfail): what a section
    of failures holds, in the units of :class:`Tally`; ``noun`` names one failure of it."""
    unexpected = [c for c in cells if not c.expected]
    expected = len(cells) - len(unexpected)
    exports = len({c.job_key for c in unexpected})
    many = f"{noun}es" if noun.endswith("x") else None
    text = f"{plural(len(unexpected), noun, many)} in {plural(exports, 'export')}"
    if expected:
        text += f", {expected} expected"
    return text


@dataclass(frozen=True, kw_only=True)
class CauseGroup:
    """Failures with one cause: the first is shown in full, the others are named."""

    cells: tuple[Cell, ...]

    @property
    def lead(self) -> Cell:
        return self.cells[0]

    @property
    def others(self) -> tuple[Cell, ...]:
        return self.cells[1:]

    @property
    def jobs(self) -> tuple[JobKey, ...]:
        return tuple(dict.fromkeys(c.job_key for c in self.cells))

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.target for c in self.cells))


def cause_key(result: SubmoduleResult | None) -> tuple[object, ...] | None:
    """What makes two failures one cause across targets and models: the line that broke and
    the category, else the failure's identity (a fingerprint names the target, a line does not)."""
    if result is None or result.verdict not in FAILING:
        return None
    frame = result.user_frame
    if frame is not None and frame.path:
        return ("line", frame.path, frame.line, frame.library, result.category)
    return ("identity", *failure_identity(result))


def group_by_cause(cells: Sequence[Cell]) -> list[CauseGroup]:
    """``cells`` grouped by change kind and :func:`cause_key`, in order of first appearance."""
    groups: dict[tuple[object, ...], list[Cell]] = {}
    ordered: list[list[Cell]] = []
    for cell in cells:
        cause = cause_key(cell.shown) if cell.head_fails or cell.kind is ChangeKind.FIX else None
        if cause is None:
            ordered.append([cell])
            continue
        key = (cell.kind, cell.expected, *cause)
        if key in groups:
            groups[key].append(cell)
            continue
        groups[key] = [cell]
        ordered.append(groups[key])
    return [CauseGroup(cells=tuple(g)) for g in ordered]


def move_phrase(moves: Sequence[Move], *, code: Callable[[str], str]) -> str:
    """``55 submodules moved under `backbone.` (compared at their new paths)``: one move of one
    model, over its targets; ``code`` formats a prefix."""
    count = max(m.count for m in moves)
    old, new = moves[0].old_prefix, moves[0].new_prefix
    if not old:
        where = f"moved under {code(new)}"
    elif not new:
        where = f"moved out of {code(old)} to the top"
    else:
        where = f"moved from {code(old)} to {code(new)}"
    return f"{plural(count, 'submodule')} {where} (compared at their new paths)"


def grouped_moves(changes: Changes) -> list[tuple[str, tuple[str, ...], list[Move]]]:
    """(model, targets, moves) per (model, device, old prefix, new prefix): one line each."""
    found: dict[tuple[str, str, str, str], list[Move]] = {}
    for move in changes.moves:
        found.setdefault((move.model, move.device, move.old_prefix, move.new_prefix), []).append(move)
    return [
        (model, tuple(dict.fromkeys(m.target for m in moves)), moves)
        for (model, _, _, _), moves in found.items()
    ]


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
    if not gate.passed:
        return _failed_headline(changes, gate)
    skipped = [c for c in changes.cells.values() if c.is_root and c.head is Verdict.SKIPPED]
    not_run = f"{plural(len(skipped), 'export')} not run ({_skip_reasons(skipped)})" if skipped else ""
    if not changes.has_base:
        return _no_base_headline(changes, not_run=not_run, skipped=bool(skipped))
    return _passed_headline(changes, not_run=not_run, skipped=bool(skipped))


def _failed_headline(changes: Changes, gate: GateResult) -> Headline:
    """The gate failed: what it holds against the pull request, most telling first."""
    failing = [changes.cells[k] for k in gate.failing]
    unchecked = [c for c in failing if c.kind is ChangeKind.ERROR]
    stopped = [c for c in failing if c.head is Verdict.INTERRUPTED]  # the head report is partial
    drops = [c for c in failing if c.kind is ChangeKind.COVERAGE_DROP]  # fail_on_coverage_drop
    failing = [
        c
        for c in failing
        if c.kind not in (ChangeKind.ERROR, ChangeKind.COVERAGE_DROP) and c.head is not Verdict.INTERRUPTED
    ]
    if stopped:
        text = f"The head's sweep was interrupted: {plural(len(stopped), 'export')} not checked"
        if failing:
            text += f", and {_failures_in(failing, ('failing export', 'failure'))}"
        if unchecked:
            text += f", and {plural(len(unchecked), 'export')} exportwatch could not check"
        return Headline(status="fail", text=f"{text} (a partial report)")
    if drops and not failing and not unchecked:
        models = plural(len({c.model for c in drops}), "model")
        return Headline(status="fail", text=f"{plural(len(drops), 'delegation coverage drop')} in {models}")
    if not failing and not drops:
        models = plural(len({c.model for c in unchecked}), "model")
        return Headline(
            status="fail",
            text=f"exportwatch could not check {plural(len(unchecked), 'export')} in {models} "
            "(an exportwatch bug: please report it)",
        )
    text = ", and ".join(
        part
        for part in (
            _failures_in(
                failing,
                {
                    Policy.REGRESSION: ("export regression", "regression"),
                    Policy.NEW_FAILURE: ("new export failure", "new failure"),
                    Policy.ANY_FAILURE: ("failing export", "failure"),
                }.get(gate.policy, ("failure", "failure")),
            )
            if failing
            else "",
            plural(len(drops), "delegation coverage drop") if drops else "",
        )
        if part
    )
    if unchecked:
        text += f", and {plural(len(unchecked), 'export')} exportwatch could not check"
    return Headline(status="fail", text=text)


def _no_base_headline(changes: Changes, *, not_run: str, skipped: bool) -> Headline:
    """Nothing to compare with: what head alone says."""
    counts = tally(changes)
    troubled = counts.failing_exports or counts.unfinished
    if not counts.exports:
        return Headline(status="warn", text=f"No base to compare with, and nothing was checked: {not_run}")
    text = f"No base to compare with: {exports_phrase(counts)}"
    if troubled:
        extra = f"; {not_run}" if skipped else ""
        return Headline(status="warn", text=f"{text}{extra}")
    text = f"No base to compare with: {plural(counts.exports, 'export')} checked"
    if skipped:  # a skipped export is never a passing one
        return Headline(status="warn", text=f"{text}, all pass; {not_run}")
    return Headline(status="pass", text=f"{text}, all pass")


def _passed_headline(changes: Changes, *, not_run: str, skipped: bool) -> Headline:
    """The gate passed: whether anything still calls for a look, and what changed."""
    top = changes.top_level()
    regressions = [c for c in top if c.kind is ChangeKind.REGRESSION and not c.expected]
    expected_regressions = [c for c in top if c.kind is ChangeKind.REGRESSION and c.expected]
    infra = [c for c in top if c.kind is ChangeKind.INFRASTRUCTURE]
    errors = [c for c in top if c.kind is ChangeKind.ERROR]
    fixes = [c for c in top if c.kind is ChangeKind.FIX]
    extras: list[str] = []
    if fixes:
        extras.append(f"{len(fixes)} fixed")
    if expected_regressions:
        extras.append(plural(len(expected_regressions), "expected failure"))
    if changes.xfail_passing:
        extras.append(f"{plural(len(changes.xfail_passing), 'xfail')} to remove")
    drops = [c for c in top if c.kind is ChangeKind.COVERAGE_DROP and not c.expected]
    if drops:  # reported, not gated (fail_on_coverage_drop is off)
        extras.append(plural(len(drops), "delegation coverage drop"))
    tail = f" · {' · '.join(extras)}" if extras else ""
    if regressions:  # gate passed anyway: policy "never"
        text = _failures_in(regressions, ("export regression", "regression"))
        return Headline(status="warn", text=f"{text} (not gated){tail}")
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


def _failures_in(cells: Sequence[Cell], nouns: tuple[str, str]) -> str:
    """``3 export regressions in 2 models`` when each failure is an export of its own, else
    ``12 regressions in 4 exports of 2 models``: never more "exports" than the table shows.
    ``nouns`` is (one per export, one per failure)."""
    per_export, per_failure = nouns
    exports = len({c.job_key for c in cells})
    models = plural(len({c.model for c in cells}), "model")
    if exports == len(cells):
        return f"{plural(len(cells), per_export)} in {models}"
    return f"{plural(len(cells), per_failure)} in {plural(exports, 'export')} of {models}"


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
    ChangeKind.COVERAGE_DROP: "coverage drop",
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
    """One item of a section; ``extra`` (e.g. a traceback) is kept only if ``text`` is.

    ``render`` defers the text: it returns ``(text, extra)`` and is called at most once, when
    :func:`fit` reaches the part, so the items a cut drops are counted, never rendered (the
    cost of a comment then follows what it shows, not the size of the report).
    """

    text: str = ""
    priority: int
    extra: str = ""
    extra_priority: int = 99
    count: int = 1  # the items it tells (a group of failures with one cause): what a cut leaves out
    render: Callable[[], tuple[str, str]] | None = None

    def rendered(self) -> Part:
        """The part with its text (and extra) filled in; renders a deferred part once."""
        if self.render is not None:
            self.text, self.extra = self.render()
            self.render = None
        return self


def deferred(make: Callable[[], str], *, priority: int, count: int = 1) -> Part:
    """A part whose text ``make`` renders only if :func:`fit` reaches it."""
    return Part(priority=priority, count=count, render=lambda: (make(), ""))


class InOrder:
    """Renders items strictly in order, whichever is asked for first: for sections whose items
    depend on the ones before them (a hint shown once, then "the same hint as above")."""

    def __init__(self, makers: Sequence[Callable[[], tuple[str, str]]]) -> None:
        self._makers = makers
        self._done: list[tuple[str, str]] = []

    def get(self, index: int) -> tuple[str, str]:
        while len(self._done) <= index:
            self._done.append(self._makers[len(self._done)]())
        return self._done[index]


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
    tail: str = ""  # closes what ``head`` opened (``</details>``)


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
            if section.keep_extras and (part.extra or part.render is not None):
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
            if closed_extra[s_i] or not kept[s_i][p_i] or not part.extra:
                continue  # kept: rendered, so whether it has an extra is known
            cost = measure(part.extra) + measure(section.joiner)
            if cost <= remaining:
                kept_extra[s_i][p_i] = True
                remaining -= cost
            else:
                closed_extra[s_i] = True
            continue
        if closed[s_i]:
            continue  # never rendered: only counted
        cost = measure(part.rendered().text) + measure(section.joiner)
        if not opened[s_i]:
            # The heading, and room for a "n more were cut" line.
            cost += measure(section.head) + measure(section.joiner)
            cost += measure(section.tail) + 2 if section.tail else 0
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
        dropped = sum(part.count for p_i, part in enumerate(section.parts) if not kept[s_i][p_i])
        dropped_extra = sum(
            1
            for p_i, part in enumerate(section.parts)
            if kept[s_i][p_i] and part.extra and section.keep_extras and not kept_extra[s_i][p_i]
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
        if section.tail:
            block = f"{block}\n\n{section.tail}"
        blocks.append(block)
    return Fitted(blocks=tuple(blocks), cut=cut)


#: Undelegated operators named in a coverage phrase; the rest are counted.
COVERAGE_OPERATORS = 3


def coverage_phrase(delegation: Delegation | None) -> str | None:
    """``XNNPACK 80% (4/5 nodes), not delegated: aten.cumsum ×1``: one short line of plain,
    unescaped text (the operator names come from the report: each renderer escapes it)."""
    if delegation is None:
        return None
    left = list(delegation.not_delegated.items())
    named = ", ".join(f"{name} ×{count}" for name, count in left[:COVERAGE_OPERATORS])
    if len(left) > COVERAGE_OPERATORS:
        named += f", +{len(left) - COVERAGE_OPERATORS} more"
    if delegation.backend == "portable":
        nodes = plural(delegation.compute_nodes, "node")
        return f"portable kernels, {nodes}: {named}" if named else f"portable kernels, {nodes}"
    coverage = delegation.coverage
    share = "–" if coverage is None else f"{coverage * 100:.0f}%"
    counts = f"{delegation.delegated_nodes}/{delegation.compute_nodes} nodes"
    phrase = f"{delegation.backend.upper()} {share} ({counts})"
    return f"{phrase}, not delegated: {named}" if named else phrase


# ---------------------------------------------------------------------------------------------
# Blockers: every issue draft_export found for an origin, said the same way in every view (each
# view escapes these plain texts its own way: they hold the user's code and torch's words)

#: Blockers listed under one origin; the rest are counted.
SHOWN_BLOCKERS = 5


def blockers_headline(found: Blockers) -> str:
    """``3 blockers (draft_export: every issue, where export stops at the first)``, or why none."""
    if found.status is BlockerStatus.FOUND:
        total = max(found.total, len(found.found))
        return f"{plural(total, 'blocker')} (draft_export lists every issue; export stops at the first)"
    if found.status is BlockerStatus.NONE:
        return "draft_export found no blocker besides the failure above"
    reason = f": {found.note}" if found.note else ""
    return f"draft_export could not list the blockers{reason}; the diagnosis above stands"


def blocker_words(blocker: Blocker) -> str:
    """``data-dependent: cannot decide `u0 > 2` … (2 times)``: kind, message, occurrences."""
    words = f"{blocker.kind}: {blocker.message}"
    return words + (f" ({blocker.occurrences} times)" if blocker.occurrences > 1 else "")


def frame_words(frame: UserFrame) -> str:
    """``models/net.py:12 in forward (library code: timm)``."""
    words = f"{frame.path}:{frame.line}"
    if frame.function:
        words += f" in {frame.function}"
    return words + (f" (library code: {frame.library})" if frame.library else "")


def blockers_left(found: Blockers) -> int:
    """Blockers found but not listed (over ``SHOWN_BLOCKERS``, or over the report's cap)."""
    return max(found.total, len(found.found)) - min(len(found.found), SHOWN_BLOCKERS)


# ---------------------------------------------------------------------------------------------
# Fixes: each one applied and exported again before it is shown (said the same way everywhere)


def fix_proof_words(fix: Fix) -> str:
    """``verified: exports with this change`` or ``verified: gets past this blocker; next: …``."""
    if fix.proof is FixProof.EXPORTS:
        return "verified: exports with this change"
    what = "this blocker" if len(fix.blockers) < 2 else "these blockers"
    return (
        f"verified: gets past {what}; next: {fix.next_blocker}"
        if fix.next_blocker
        else f"verified: gets past {what}"
    )


def fixes_under(found: Blockers, index: int) -> list[tuple[Fix, int | None]]:
    """The fixes shown under blocker ``index``: (fix, None) where it is shown in full, (fix, n)
    where it was shown under blocker number ``n`` (1-based) already."""
    shown = []
    for fix in found.fixes:
        if index in fix.blockers:
            first = min(fix.blockers)
            shown.append((fix, None if first == index else first + 1))
    return shown


def fixes_footer(found: Blockers) -> list[str]:
    """What all of an origin's fixes did together, and how many were proposed but not shown."""
    lines = []
    count = len(found.fixes)
    if count > 1 and found.fixes_together is FixProof.EXPORTS:
        lines.append(f"verified: with all {count} fixes applied, the module exports")
    elif count > 1 and found.fixes_together is FixProof.PAST_BLOCKER:
        lines.append(f"verified: with all {count} fixes applied, export gets past every blocker they address")
    if found.fixes_dropped:
        lines.append(
            f"{plural(found.fixes_dropped, 'proposed fix', 'proposed fixes')} not shown: exporting again "
            "with it applied did not prove it (or there was no time left to)"
        )
    return lines
