"""Verified fixes → review comments with GitHub suggested changes. Pure: no I/O, no torch.

A fix (``report.model.Fix``) whose ``edit`` changes one line of the repository becomes a review
comment on that line of the pull request's diff, with a ```` ```suggestion ```` block that a
reviewer can commit with one click, when GitHub allows it and it is still right:

* the line is on the RIGHT side of the PR's diff (an added or a context line of a hunk: GitHub
  refuses a review comment anywhere else, 422 "line must be part of the diff"). Each file's
  ``patch`` from ``GET /pulls/{n}/files`` says which lines those are (:func:`parse_patch`), and
  what they hold;
* the line still reads what the sweep read (``edit.original``): else the suggestion would
  replace a line someone changed since, and it is *stale*;
* the path is a plain repository path and the replacement holds nothing invisible (a fork's
  run writes the report: a suggestion is committed as written, so it is refused, never cleaned).

Every other fix is returned too, with the reason (:class:`Unsuggested`): the PR comment shows
those as ready-to-paste snippets. Which fixes are candidates follows the PR comment: the head
side's failing origins (new, regressed, changed or still failing), each fix once (the same
change found through several models is one suggestion), one suggestion per line.

Each comment carries a hidden marker with a stable key (path, line, kind of fix, the blockers
it addresses): the next push finds it and edits it in place instead of posting it again
(``github.review`` decides and writes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from exportwatch.diff import Changes
from exportwatch.render.escape import (
    UNSAFE_CHARACTERS,
    md_code,
    md_text,
    md_text_with_code,
    no_workflow_commands,
    repository_path,
)
from exportwatch.report.model import Blocker, Fix, FixProof, SourceEdit, first_line

#: Suggestions in one pull request (one review); further fixes stay snippets in the PR comment.
MAX_SUGGESTIONS = 20
#: The longest replacement suggested (the report caps a snippet at 4,000 characters).
MAX_REPLACEMENT_CHARS = 8_000
#: The longest explanation above the suggestion block, in characters.
MAX_EXPLANATION_CHARS = 2_000
#: Places (model · target · submodule) named under one suggestion; the rest are counted.
MAX_PLACES = 3
#: Files of a diff read at most (GitHub lists at most 3,000 files of a pull request).
MAX_DIFF_FILES = 3_000

_MARKER = re.compile(
    r"<!-- exportwatch:suggestion(?::(?P<scope>[A-Za-z0-9_./-]+))? key=(?P<key>[0-9a-f]{16})"
    r"(?P<retired> retired)? -->"
)
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


# ============================================================================================
# The diff: which lines of each file a review comment may go on (RIGHT side), and their text


def parse_patch(patch: str | None) -> dict[int, str]:
    """The RIGHT-side lines of a unified-diff ``patch`` (GitHub's ``files[].patch``): line
    number in the new file → its text, for every added (``+``) and context (`` ``) line.

    Removed lines (``-``) are the LEFT side only; ``\\ No newline at end of file`` is no line; a
    new file is one hunk from ``+1``; a deleted file has no RIGHT line. A malformed hunk ends
    where it stops making sense: no line is guessed.
    """
    lines: dict[int, str] = {}
    if not patch:
        return lines
    right = 0
    left_left = right_left = 0  # lines the current hunk still holds, per side
    for raw in patch.split("\n"):
        header = _HUNK.match(raw)
        if header:
            right = int(header[3])
            left_left = int(header[2]) if header[2] is not None else 1
            right_left = int(header[4]) if header[4] is not None else 1
            continue
        if left_left <= 0 and right_left <= 0:
            continue  # outside a hunk (a trailing newline, text after the last line)
        mark, text = raw[:1], raw[1:]
        if mark == "+" and right_left > 0:
            lines[right] = text
            right, right_left = right + 1, right_left - 1
        elif mark == "-" and left_left > 0:
            left_left -= 1
        elif mark in (" ", "") and right_left > 0 and left_left > 0:
            lines[right] = text  # "" : a context line whose one space was trimmed away
            right, right_left, left_left = right + 1, right_left - 1, left_left - 1
        elif mark == "\\":
            continue  # "\ No newline at end of file"
        else:
            left_left = right_left = 0  # malformed: stop reading this hunk
    return lines


@dataclass(frozen=True, kw_only=True)
class PullDiff:
    """The pull request's diff as review comments see it: path → RIGHT-side line → text."""

    files: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, files: Iterable[tuple[str, str | None]]) -> PullDiff:
        """From ``(filename, patch)`` pairs (``patch`` None: binary, or too large to show)."""
        parsed: dict[str, Mapping[int, str]] = {}
        for count, (name, patch) in enumerate(files):
            if count >= MAX_DIFF_FILES:
                break
            parsed[name] = parse_patch(patch)
        return cls(files=parsed)

    def line(self, path: str, line: int) -> str | None:
        """The text of ``line`` of ``path`` when it is on the diff's RIGHT side, else None."""
        return self.files.get(path, {}).get(line)


# ============================================================================================
# What is suggested, and what is not (and why)


class Skip(str, Enum):
    """Why a fix with an edit is not a suggestion (it stays a snippet in the PR comment)."""

    NO_DIFF = "no-diff"  # no pull request diff to place it on (not a PR, or not read)
    NOT_IN_DIFF = "not-in-diff"  # its line is not an added or context line of the PR's diff
    STALE = "stale"  # the line no longer reads what the sweep read
    REFUSED = "refused"  # not a repository path, or text a suggestion cannot carry as written
    SAME_LINE = "same-line"  # another fix takes the line (two suggestions on one line conflict)
    OVER_CAP = "over-cap"  # over MAX_SUGGESTIONS

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A fix with an edit, once, with the blockers it addresses and where it was found."""

    key: str
    fix: Fix
    edit: SourceEdit
    blockers: tuple[Blocker, ...]
    places: tuple[str, ...]  # "model · target · submodule", first found first


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    """One review comment: on ``line`` of ``path`` (RIGHT side), ``body`` with its marker."""

    key: str
    path: str
    line: int
    body: str
    fix: Fix


@dataclass(frozen=True, kw_only=True)
class Unsuggested:
    key: str
    fix: Fix
    reason: Skip


@dataclass(frozen=True, kw_only=True)
class ReviewSuggestions:
    """Every fix with an edit: suggested in the review, or not (with the reason)."""

    suggested: tuple[Suggestion, ...] = ()
    unsuggested: tuple[Unsuggested, ...] = ()

    def in_review(self, fix: Fix) -> bool:
        """Whether ``fix`` is a suggestion of the review (the PR comment then points there)."""
        return any(s.fix == fix for s in self.suggested)

    def skipped(self, fix: Fix) -> Skip | None:
        """Why ``fix`` is not in the review (None: it is, or it has no edit to suggest)."""
        return next((u.reason for u in self.unsuggested if u.fix == fix), None)


def fix_key(edit: SourceEdit, fix: Fix, blockers: Sequence[Blocker]) -> str:
    """A stable key for a suggestion: path, line, kind of fix, the blockers it addresses
    (kind, expression or first line of the message, where). 16 hex digits."""
    identity: list[object] = [
        [b.kind, b.expression or first_line(b.message)[:200], *_frame(b)] for b in blockers
    ] or [fix.summary[:200]]
    data = json.dumps([edit.path, edit.line, fix.kind.value, identity], sort_keys=True)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _frame(blocker: Blocker) -> list[object]:
    frame = blocker.user_frame
    return [frame.path, frame.line] if frame is not None else []


def candidates(changes: Changes) -> list[Candidate]:
    """Fixes with an edit of the head side's failing origins, each once, in report order."""
    found: dict[str, Candidate] = {}
    for cell in changes.cells.values():
        result = cell.head_result
        if not cell.head_fails or result is None or result.blockers is None:
            continue
        place = " · ".join(p for p in (cell.model, cell.target, cell.path or "(root)"))
        for fix in result.blockers.fixes:
            if fix.edit is None:
                continue
            addressed = tuple(
                result.blockers.found[i] for i in fix.blockers if 0 <= i < len(result.blockers.found)
            )
            key = fix_key(fix.edit, fix, addressed)
            known = found.get(key)
            if known is None:
                found[key] = Candidate(key=key, fix=fix, edit=fix.edit, blockers=addressed, places=(place,))
            elif place not in known.places:
                found[key] = Candidate(
                    key=key, fix=known.fix, edit=known.edit, blockers=known.blockers,
                    places=(*known.places, place),
                )  # fmt: skip
    return list(found.values())


def plan_suggestions(
    changes: Changes, diff: PullDiff | None, *, scope: str | None = None, limit: int = MAX_SUGGESTIONS
) -> ReviewSuggestions:
    """Which fixes become suggestions on ``diff`` (None: no PR diff known), and the others.

    ``scope`` keeps several manifests' suggestions apart (the PR comment's marker key).
    On one line, a fix the module exports with goes before one that gets past its blocker.
    """
    found = candidates(changes)
    order = sorted(range(len(found)), key=lambda i: (found[i].fix.proof is not FixProof.EXPORTS, i))
    taken: set[tuple[str, int]] = set()
    suggested: list[Suggestion] = []
    unsuggested: list[Unsuggested] = []
    for i in order:
        candidate = found[i]
        reason = _skip(candidate, diff)
        place = (candidate.edit.path, candidate.edit.line)
        if reason is None and place in taken:
            reason = Skip.SAME_LINE
        if reason is None and len(suggested) >= limit:
            reason = Skip.OVER_CAP
        if reason is not None:
            unsuggested.append(Unsuggested(key=candidate.key, fix=candidate.fix, reason=reason))
            continue
        taken.add(place)
        suggested.append(
            Suggestion(
                key=candidate.key,
                path=candidate.edit.path,
                line=candidate.edit.line,
                body=suggestion_body(candidate, scope=scope),
                fix=candidate.fix,
            )
        )
    rank = {c.key: n for n, c in enumerate(found)}  # back to report order
    return ReviewSuggestions(
        suggested=tuple(sorted(suggested, key=lambda s: rank[s.key])),
        unsuggested=tuple(sorted(unsuggested, key=lambda u: rank[u.key])),
    )


def _skip(candidate: Candidate, diff: PullDiff | None) -> Skip | None:
    edit = candidate.edit
    if repository_path(edit.path) != edit.path or edit.line < 1 or not suggestible_text(edit.replacement):
        return Skip.REFUSED
    if diff is None:
        return Skip.NO_DIFF
    text = diff.line(edit.path, edit.line)
    if text is None:
        return Skip.NOT_IN_DIFF
    if text.removesuffix("\r") != edit.original.removesuffix("\r"):
        return Skip.STALE
    return None


def suggestible_text(text: str) -> bool:
    """Text a suggestion may carry as written: within the size cap, no carriage return, no
    control, invisible or bidirectional character (a reviewer commits what the block holds)."""
    return len(text) <= MAX_REPLACEMENT_CHARS and "\r" not in text and not UNSAFE_CHARACTERS.search(text)


# ============================================================================================
# The comment's text


def suggestion_marker(key: str, *, scope: str | None = None, retired: bool = False) -> str:
    """The hidden marker of a suggestion (``retired``: one that is no longer suggested)."""
    where = f":{scope}" if scope else ""
    state = " retired" if retired else ""
    return f"<!-- exportwatch:suggestion{where} key={key}{state} -->"


@dataclass(frozen=True, kw_only=True)
class Marker:
    key: str
    scope: str | None
    retired: bool


def read_marker(body: str | None) -> Marker | None:
    """The marker a comment carries (the first), or None."""
    match = _MARKER.search(body or "")
    if match is None:
        return None
    return Marker(key=match["key"], scope=match["scope"], retired=bool(match["retired"]))


def suggestion_fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text`` (three at least)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def suggestion_body(candidate: Candidate, *, scope: str | None = None) -> str:
    """The comment: what it fixes and what re-exporting proved, then the suggested change.

    The prose is escaped and capped like every other view (it quotes torch and the user's
    code); the block holds ``edit.replacement`` exactly, in a fence nothing in it can close.
    """
    fix = candidate.fix
    lines = [f"**exportwatch: a verified fix** · {md_text_with_code(fix.summary, limit=300)}"]
    for blocker in candidate.blockers[:2]:
        lines.append(f"🧱 Blocker: {md_text(f'{blocker.kind}: {blocker.message}', limit=300)}")
    if len(candidate.blockers) > 2:
        lines.append(f"…and {len(candidate.blockers) - 2} more blocker(s) it addresses.")
    if fix.proof is FixProof.EXPORTS:
        lines.append("✅ Verified: with this change, the module exports.")
    else:
        nxt = md_text(fix.next_blocker, limit=300) if fix.next_blocker else "another blocker"
        lines.append(f"⏩ Verified: with this change, the export gets past this blocker; next: {nxt}")
    places = ", ".join(md_text(p, limit=160) for p in candidate.places[:MAX_PLACES])
    more = len(candidate.places) - MAX_PLACES
    lines.append(f"Found in {places}" + (f" and {more} more" if more > 0 else "") + ".")
    prose = "\n\n".join(lines)
    if len(prose) > MAX_EXPLANATION_CHARS:  # each part is capped: a safety net only
        prose = lines[0][:MAX_EXPLANATION_CHARS]
    replacement = candidate.edit.replacement.removesuffix("\n")
    fence = suggestion_fence(replacement)
    block = f"{fence}suggestion\n{replacement}\n{fence}" if replacement else f"{fence}suggestion\n{fence}"
    marker = suggestion_marker(candidate.key, scope=scope)
    # The prose cannot start a workflow command; the block is the code as it will be committed.
    return f"{marker}\n{no_workflow_commands(prose)}\n\n{block}\n"


def retired_body(key: str, *, scope: str | None = None, sha: str | None = None) -> str:
    """The text a suggestion is edited to when it is no longer suggested: no suggestion block
    (nothing left to commit), why, and the marker (so it is not edited again). GitHub keeps the
    earlier text in the comment's edit history, and the thread's replies stay in place."""
    when = f" as of {md_code(sha[:12])}" if sha else ""
    return (
        f"{suggestion_marker(key, scope=scope, retired=True)}\n"
        f"**exportwatch** no longer suggests a change here{when}: the blocker it addressed is "
        "gone, or this line changed since. (The earlier suggestion is in this comment's edit history.)\n"
    )


def review_body(count: int) -> str:
    """The review's own text (a ``COMMENT`` review needs one)."""
    noun = "fix" if count == 1 else "fixes"
    return (
        f"**exportwatch**: {count} verified {noun} for export blockers, as suggested changes. "
        "Each was applied and re-exported before being suggested; commit one from its comment."
    )
