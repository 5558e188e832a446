"""Every blocker of an origin: ``torch.export.draft_export``'s report as plain data.

``torch.export`` stops at the first problem, so a user fixes one, reruns and meets the next.
``draft_export`` runs once and records every issue it met (data-dependent expressions, custom
ops without a fake kernel or with a wrong one, guards added), with the user's stack. This module
reads that report by duck typing (the package never imports torch): each failure becomes a
:class:`~exportwatch.report.Blocker` with its kind, expression, the user's line (repository, else
library frame, as ``frames`` finds it for exceptions), where each unbacked symbol it involves was
*created* (the ``.item()``, the ``nonzero``: the graph node whose ``unbacked_bindings`` bind it),
and how often it occurred. Running ``draft_export`` is the worker's business: :func:`search`
takes it as a callable, so a draft export that raises leaves the diagnosis as it was and says so.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exportwatch.diagnose.frames import (
    RawFrame,
    _innermost_library,
    _innermost_user,
    _message_frames,
    _real,
)
from exportwatch.report.model import (
    MAX_BLOCKERS,
    MAX_MESSAGE_CHARS,
    Blocker,
    Blockers,
    BlockerStatus,
    CreatedAt,
    UserFrame,
    cap,
    first_line,
)

log = logging.getLogger(__name__)

#: draft_export's ``FailureType`` names → the report's blocker kinds.
KINDS = {
    "DATA_DEPENDENT_ERROR": "data-dependent",
    "MISSING_FAKE_KERNEL": "missing-fake-kernel",
    "MISMATCHED_FAKE_KERNEL": "mismatched-fake-kernel",
    "GUARD_ADDED": "guard-added",
}
#: Failures draft_export can get past, and so list what lies behind them. It cannot get past an
#: input or output type export does not take (a ``DynamicCache``), a numpy call, an unsupported
#: Python construct: on the real-architecture tier those were 28 of 29 origins, each one more
#: export (up to 5 s) that only raised again. ``unknown`` is searched: it may hide any of these.
SEARCHED_CATEGORIES = frozenset(
    {
        "data-dependent-control-flow",
        "data-dependent-value",
        "missing-fake-kernel",
        "fake-kernel-mismatch",
        "constraint-violation",
        "unknown",
    }
)
_NAME = re.compile(r"[A-Za-z_]\w*")
_EXPRESSION_CHARS = 300


@dataclass(frozen=True, kw_only=True)
class Facts:
    """What the report keeps out of a :class:`Blocker` but a fix needs (never shown): the value
    the expression had for the example (``result``), the failing frame's locals that hold an
    unbacked symbol (``n`` → ``u0``), the op, and the raw innermost frame (file, line)."""

    kind: str
    expression: str | None = None
    result: str | None = None
    names: Mapping[str, str] = field(default_factory=dict)  # local name -> the symbol it holds
    op: str | None = None
    file: str | None = None
    line: int | None = None

    def key(self, *, where: Callable[[str, int], tuple[str, int] | None] | None = None) -> tuple[Any, ...]:
        """What identifies this failure between two draft exports of the same code: kind, op or
        expression (symbol numbers left out: a fake kernel's new sizes renumber them), and line
        (``where`` maps a scratch copy's file and line back to the original's)."""
        if self.op:
            return (self.kind, self.op)
        place = (self.file, self.line) if self.file and self.line else None
        if place is not None and where is not None:
            place = where(*place)
        return (self.kind, _SYMBOL_NUMBER.sub(r"\1", self.expression or ""), place)


_SYMBOL = re.compile(r"[a-z]+\d+")
_SYMBOL_NUMBER = re.compile(r"\b([a-z]+)\d+\b")


def worth_searching(category: str | None) -> bool:
    """Whether draft_export could list more blockers behind a failure of ``category``."""
    return category in SEARCHED_CATEGORIES


def search(
    run: Callable[[], Any], *, repo_root: Path, interned: Callable[[], Mapping[str, int]] | None = None
) -> Blockers:
    """:func:`search_with_facts` without the facts."""
    return search_with_facts(run, repo_root=repo_root, interned=interned)[0]


def search_with_facts(
    run: Callable[[], Any], *, repo_root: Path, interned: Callable[[], Mapping[str, int]] | None = None
) -> tuple[Blockers, list[Facts]]:
    """Run ``run`` (a ``draft_export`` call, returning its ``ExportedProgram``) and read its report.

    ``interned``: the process's string table (torch's ``INTERN_TABLE``, filename → index): a file
    interned by an earlier trace in this process is not in the draft report's own table.
    Never raises: a draft export that fails, or a report this module cannot read, is a
    ``failed`` search that names why; the origin's diagnosis stays as it was. The facts are
    one per blocker kept, in the same order (see :class:`Facts`).
    """
    started = time.perf_counter()
    try:
        program = run()
    except Exception as exc:  # draft_export gives up on some failures (a graph break it cannot skip)
        return Blockers(
            status=BlockerStatus.FAILED,
            note=cap(f"draft_export raised {type(exc).__name__}: {first_line(_str(exc))}", MAX_MESSAGE_CHARS),
            duration_s=_since(started),
        ), []
    try:
        table = interned() if interned else None
        found = read_draft(program, repo_root=repo_root, interned=table)
        facts = read_facts(program, interned=table)
    except Exception as exc:  # torch's private report changed shape: say so, never lose the verdict
        log.warning("reading draft_export's report failed: %s: %s", type(exc).__name__, exc)
        return Blockers(
            status=BlockerStatus.FAILED,
            note=f"exportwatch could not read draft_export's report ({type(exc).__name__})",
            duration_s=_since(started),
        ), []
    return Blockers(
        status=BlockerStatus.FOUND if found else BlockerStatus.NONE,
        found=found[:MAX_BLOCKERS],
        total=len(found),
        note=None if found else "draft_export found no issue: the failure above is the only one known",
        duration_s=_since(started),
    ), facts[:MAX_BLOCKERS]


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def read_draft(program: Any, *, repo_root: Path, interned: Mapping[str, int] | None = None) -> list[Blocker]:
    """The blockers of a draft-exported program (``program._report``), in the order torch met them;
    failures torch marks ``xfail`` are left out. ``interned``: see :func:`search`."""
    report = program._report
    names: dict[Any, str] = {index: name for name, index in (interned or {}).items()}
    names.update(getattr(report, "str_to_filename", {}) or {})
    repo = _real(str(repo_root))
    nodes = list(_graph_nodes(program))
    created = creation_sites(nodes, repo=repo)
    blockers = []
    for failure in report.failures:
        if getattr(failure, "xfail", False):
            continue
        kind_name = getattr(failure.failure_type, "name", str(failure.failure_type))
        data: Mapping[str, Any] = failure.data if isinstance(failure.data, Mapping) else {}
        blockers.append(
            _blocker(
                KINDS.get(kind_name, kind_name.lower()),
                data,
                names=names,
                nodes=nodes,
                created=created,
                repo=repo,
            )
        )
    return blockers


def read_facts(program: Any, *, interned: Mapping[str, int] | None = None) -> list[Facts]:
    """One :class:`Facts` per failure :func:`read_draft` keeps, in the same order."""
    report = program._report
    names: dict[Any, str] = {index: name for name, index in (interned or {}).items()}
    names.update(getattr(report, "str_to_filename", {}) or {})
    facts = []
    for failure in report.failures:
        if getattr(failure, "xfail", False):
            continue
        kind_name = getattr(failure.failure_type, "name", str(failure.failure_type))
        data: Mapping[str, Any] = failure.data if isinstance(failure.data, Mapping) else {}
        frames = _stack_frames(data.get("user_stack"), names)
        file, line = (frames[-1][0], frames[-1][1]) if frames else (None, None)
        facts.append(
            Facts(
                kind=KINDS.get(kind_name, kind_name.lower()),
                expression=_text(data.get("expr")),
                result=_text(data.get("result")),
                names=_symbol_names(data.get("frame_locals")),
                op=_text(data.get("op")),
                file=file,
                line=line,
            )
        )
    return facts


def _symbol_names(frame_locals: Any) -> dict[str, str]:
    """The failing frame's locals that hold exactly one symbol: ``{"n": "u0"}``."""
    found: dict[str, str] = {}
    local_values = frame_locals.get("locals") if isinstance(frame_locals, Mapping) else None
    for name, values in (local_values or {}).items() if isinstance(local_values, Mapping) else ():
        value = values[0] if isinstance(values, list) and len(values) == 1 else values
        if (
            isinstance(name, str)
            and name.isidentifier()
            and isinstance(value, str)
            and _SYMBOL.fullmatch(value)
        ):
            found.setdefault(name, value)
    return found


def _blocker(
    kind: str,
    data: Mapping[str, Any],
    *,
    names: Mapping[Any, str],
    nodes: list[Any],
    created: dict[str, UserFrame],
    repo: str,
) -> Blocker:
    expression = _text(data.get("expr"))
    op = _text(data.get("op"))
    frame = _frame_of(_stack_frames(data.get("user_stack"), names), repo)
    if frame is None and op:  # a custom op's failures carry no stack: the node that calls it does
        frame = next((f for n in nodes if str(n.target) == op and (f := _node_frame(n, repo))), None)
    symbols = _symbols_of(expression or "", data.get("frame_locals"))
    return Blocker(
        kind=kind,
        message=_message(kind, data, expression=expression, op=op),
        expression=expression,
        user_frame=frame,
        created=[CreatedAt(symbol=s, frame=created[s]) for s in symbols if s in created],
        occurrences=_count(data.get("occurrences")),
    )


def _message(kind: str, data: Mapping[str, Any], *, expression: str | None, op: str | None) -> str:
    if kind == "data-dependent":
        # Not the value it was traced as: that is the example's, and a report must not change
        # between two sweeps of the same code (the shards of one sweep, base and head).
        text = f"cannot decide `{expression}` from the tensors' shapes: it depends on their values"
    elif kind == "missing-fake-kernel":
        text = f"custom op `torch.ops.{op}` has no fake kernel (register one with `register_fake`)"
    elif kind == "mismatched-fake-kernel":
        text = f"the fake kernel of `torch.ops.{op}` disagrees with the real one: {_text(data.get('reason'))}"
    elif kind == "guard-added":
        text = f"a guard was added: `{expression}` (a dynamic dimension was specialised)"
    else:
        text = f"{kind}: {expression or op or ''}".rstrip(": ")
    return cap(first_line(text), MAX_MESSAGE_CHARS) or kind


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(_str(value).split())
    return text[:_EXPRESSION_CHARS] + "…" if len(text) > _EXPRESSION_CHARS else text


def _str(value: Any) -> str:
    """``str(value)`` that never raises (a torch object's ``__str__`` may)."""
    try:
        return str(value)
    except Exception as exc:
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _stack_frames(stack: Any, names: Mapping[Any, str]) -> list[RawFrame]:
    """draft_export's ``user_stack`` (``filename`` an index into its string table) as frames."""
    frames: list[RawFrame] = []
    for entry in stack if isinstance(stack, list) else []:
        if not isinstance(entry, Mapping):
            continue
        filename = names.get(entry.get("filename"), entry.get("filename"))
        line = entry.get("line")
        if isinstance(filename, str) and isinstance(line, int):
            frames.append((filename, line, _str(entry.get("name") or "")))
    return frames


def _frame_of(frames: list[RawFrame], repo: str) -> UserFrame | None:
    return _innermost_user(frames, repo) or _innermost_library(frames, repo)


def _node_frame(node: Any, repo: str) -> UserFrame | None:
    trace = node.meta.get("stack_trace") if isinstance(getattr(node, "meta", None), Mapping) else None
    if not isinstance(trace, str):
        return None
    frames = _message_frames(trace)
    return _innermost_user(frames, repo, from_text=True) or _innermost_library(frames, repo, from_text=True)


def _graph_nodes(program: Any) -> Iterable[Any]:
    """Every node of the program's graph and of its nested graphs (``cond`` branches)."""
    graph_module = getattr(program, "graph_module", None)
    modules = graph_module.modules() if graph_module is not None else ()
    for module in modules:
        graph = getattr(module, "graph", None)
        yield from getattr(graph, "nodes", ())


def creation_sites(nodes: Iterable[Any], *, repo: str) -> dict[str, UserFrame]:
    """Unbacked symbol (``u0``, ``zuf0``) → the line that created it: the node whose
    ``meta['unbacked_bindings']`` binds it (an ``.item()``, a ``nonzero``), by its stack trace."""
    sites: dict[str, UserFrame] = {}
    for node in nodes:
        meta = getattr(node, "meta", None)
        bindings = meta.get("unbacked_bindings") if isinstance(meta, Mapping) else None
        if not bindings:
            continue
        frame = _node_frame(node, repo)
        if frame is None:
            continue
        for symbol in bindings:
            sites.setdefault(str(symbol), frame)
    return sites


def _symbols_of(expression: str, frame_locals: Any) -> list[str]:
    """The names an expression and the failing frame's locals mention (``u0``, ``zuf0``), in order."""
    names = _NAME.findall(expression)
    if isinstance(frame_locals, Mapping) and isinstance(frame_locals.get("locals"), Mapping):
        for values in frame_locals["locals"].values():
            for value in values if isinstance(values, list) else [values]:
                names += _NAME.findall(_str(value)) if isinstance(value, str) and len(value) < 40 else []
    return list(dict.fromkeys(names))
