"""Subtrees one job lists under another prefix on head (a model wrapped, a child renamed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from exportwatch.diff.changes import Move
from exportwatch.report import JobResult

#: A move needs this many submodules found again under the new prefix ...
_MOVE_MIN = 2
#: ... and a suffix shared by more removed paths than this is too ambiguous to vote with.
_MOVE_MAX_CANDIDATES = 64


def find_moves(base: JobResult, head: JobResult) -> list[Move]:
    """The prefixes under which head lists what base listed elsewhere, with their pairs.

    A removed path ``P + rest`` and an added path ``Q + rest`` of the same module type vote for
    the move ``P → Q`` (the longest shared ``rest`` only); a move is kept when at least half of
    the paths removed under ``P`` reappear under ``Q`` (and at least :data:`_MOVE_MIN`).
    """
    base_types = {s.path: s.module_type for s in base.submodules if s.path}
    head_types = {s.path: s.module_type for s in head.submodules if s.path}
    removed = [p for p in base_types if p not in head_types]
    added = [p for p in head_types if p not in base_types]
    if len(removed) < _MOVE_MIN or len(added) < _MOVE_MIN:
        return []
    by_suffix: dict[str, list[tuple[str, str]]] = {}  # rest -> [(P, removed path)]
    for path in removed:
        parts = path.split(".")
        for k in range(len(parts)):
            prefix = ".".join(parts[:k]) + "." if k else ""
            by_suffix.setdefault(".".join(parts[k:]), []).append((prefix, path))
    votes: dict[tuple[str, str], dict[str, str]] = {}  # (P, Q) -> {removed: added}
    for path in added:
        parts = path.split(".")
        for k in range(len(parts)):
            found = by_suffix.get(".".join(parts[k:]))
            if not found:
                continue
            if len(found) <= _MOVE_MAX_CANDIDATES:
                new_prefix = ".".join(parts[:k]) + "." if k else ""
                for old_prefix, old in found:
                    if old_prefix != new_prefix and base_types[old] == head_types[path]:
                        votes.setdefault((old_prefix, new_prefix), {}).setdefault(old, path)
            break  # the longest shared rest only
    left_under: Counter[str] = Counter()  # prefix -> removed paths under it, not yet moved
    for path in removed:
        left_under.update(_prefixes_of(path))
    order = {p: i for i, p in enumerate(base_types)}
    moves: list[Move] = []
    used_old: set[str] = set()
    used_new: set[str] = set()
    for (old_prefix, new_prefix), pairs in sorted(votes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(pairs) < _MOVE_MIN:
            continue
        kept = {o: n for o, n in pairs.items() if o not in used_old and n not in used_new}
        if len(kept) < _MOVE_MIN or 2 * len(kept) < left_under[old_prefix]:
            continue
        # The renamed child itself ("encoder" → "trunk"), when both are there with one type.
        old_top, new_top = old_prefix[:-1], new_prefix[:-1]
        if (
            old_top
            and new_top
            and old_top in base_types
            and new_top in head_types
            and old_top not in head_types
            and new_top not in base_types
            and base_types[old_top] == head_types[new_top]
        ):
            kept[old_top] = new_top
        used_old.update(kept)
        used_new.update(kept.values())
        for path in kept:
            left_under.subtract(_prefixes_of(path))
        moves.append(
            Move(
                model=head.model,
                target=head.target,
                device=head.device,
                old_prefix=old_prefix,
                new_prefix=new_prefix,
                paths=tuple(sorted(kept.items(), key=lambda kv: order[kv[0]])),
            )
        )
    return moves


def _prefixes_of(path: str) -> list[str]:
    """``"a.b.c"`` → ``["", "a.", "a.b."]``: the prefixes a move may take it from."""
    parts = path.split(".")
    return ["", *(".".join(parts[:k]) + "." for k in range(1, len(parts)))]


def rename_paths(job: JobResult, renames: Mapping[str, str]) -> JobResult:
    """``job`` with its submodules' paths (and the paths they name) renamed by ``renames``."""

    def name(path: str | None) -> str | None:
        return renames.get(path, path) if path is not None else None

    return replace(
        job,
        submodules=[
            replace(
                s,
                path=renames.get(s.path, s.path),
                same_as=name(s.same_as),
                covered_by=name(s.covered_by),
                aliases=[renames.get(a, a) for a in s.aliases],
            )
            for s in job.submodules
        ],
    )
