"""Reports with verified fixes, and the pull-request diffs they land on (shared by the review tests).

    head = report(job("router", "export", sub("", "fail", fp="fp-r"), fixed_origin(check_fix(20))))

A fix's ``edit`` changes one line of ``models/router.py``; :func:`router_patch` is a diff of that
file whose RIGHT side holds the lines the tests put fixes on.
"""

from __future__ import annotations

from exportwatch.report.model import (
    Blocker,
    Blockers,
    BlockerStatus,
    Fix,
    FixKind,
    FixProof,
    SourceEdit,
    SubmoduleResult,
    UserFrame,
)
from tests.factories import base_report, job, ok, report, sub

ROUTER = "models/router.py"


def router_line(line: int) -> str:
    """What line ``line`` of models/router.py reads (in the diff and in every fix's ``original``)."""
    return f"    value{line} = x[{line}].max().item()"


def router_patch(lines: range = range(18, 24), *, start: int | None = None) -> str:
    """A hunk whose RIGHT side is ``lines``: the first two context, the rest added."""
    first = lines[0] if start is None else start
    body = []
    for n in lines:
        mark = " " if n < first + 2 else "+"
        body.append(f"{mark}{router_line(n)}")
    context = min(2, len(lines))
    return f"@@ -{first},{context} +{first},{len(lines)} @@ class Router:\n" + "\n".join(body)


def blocker(line: int, *, message: str | None = None, expression: str | None = None) -> Blocker:
    return Blocker(
        kind="data-dependent",
        message=message or f"Could not guard on data-dependent expression u{line} > 0",
        expression=expression if expression is not None else f"u{line} > 0",
        user_frame=UserFrame(path=ROUTER, line=line + 1, function="forward", source="if value > 0:"),
    )


def check_fix(
    line: int,
    *,
    path: str = ROUTER,
    original: str | None = None,
    replacement: str | None = None,
    proof: FixProof = FixProof.EXPORTS,
    next_blocker: str | None = None,
    blockers: list[int] | None = None,
    summary: str | None = None,
) -> Fix:
    """A ``torch._check`` after ``line``, proven by a re-export."""
    original = router_line(line) if original is None else original
    added = f"    torch._check(value{line} > 0)"
    return Fix(
        kind=FixKind.CHECK,
        summary=summary or f"add `torch._check(value{line} > 0)` after line {line} of {path}",
        snippet=added.strip(),
        edit=SourceEdit(
            path=path,
            line=line,
            original=original,
            replacement=f"{original}\n{added}" if replacement is None else replacement,
        ),
        blockers=[] if blockers is None else blockers,  # []: fixed_origin gives it a blocker
        proof=proof,
        next_blocker=next_blocker,
    )


def fixed_origin(*fixes: Fix, path: str = "router", found: list[Blocker] | None = None) -> SubmoduleResult:
    """A failing origin whose blockers carry ``fixes``; without ``found``, a blocker at each
    fix's line, the one each fix without blockers addresses."""
    origin = sub(path, "fail", fp=f"fp-{path}", origin=True, frame=f"{ROUTER}:21")
    if found is None:
        found = []
        for fix in fixes:
            if not fix.blockers:
                fix.blockers = [len(found)]
                found.append(blocker(fix.edit.line if fix.edit else 20))
    origin.blockers = Blockers(status=BlockerStatus.FOUND, found=found, total=len(found), fixes=list(fixes))
    return origin


def regressed(*fixes: Fix, model: str = "router", origin_path: str = "router"):
    """(base, head): ``model`` exported on the base; on the head it fails at an origin with ``fixes``."""
    head = report(
        job(model, "export", sub("", "fail", fp=f"fp-{origin_path}"), fixed_origin(*fixes, path=origin_path))
    )
    return base_report(ok(model)), head
