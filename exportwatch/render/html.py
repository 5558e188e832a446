"""Report(s) → one self-contained HTML page: each job's module tree, where it broke, in colour.

The page is a file to open offline or download as a workflow artifact, so it carries its own
styles and script and fetches nothing. Its Content-Security-Policy allows exactly those two
(by hash), no other script, no inline handler, no network: escaping is the first defence and
the policy the second. Every untrusted string (names, paths, messages, tracebacks, the
report's metadata) is cleaned (:func:`exportwatch.render.escape.clean`: no controls, bidi or
invisible characters), capped, and escaped with ``html.escape(..., quote=True)``; attributes
hold only our own words and sanitised ids. Links: anchors within the page, source links built
by :func:`~exportwatch.render.escape.blob_url`, and documentation on the hint allow-list.

It works without the script: failing branches are ``<details open>``, the "failing only"
filter and the base/head toggle are CSS on form controls; the script adds search and opens
the branch a link or a search leads into. The tree itself comes from
:mod:`exportwatch.render.tree_view`; with a base, what changed comes from
:func:`exportwatch.diff.diff_reports`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exportwatch.diff import QUIET, ChangeKind, Changes, JobKey, diff_reports
from exportwatch.render.common import (
    SHOWN_BLOCKERS,
    blocker_words,
    blockers_headline,
    blockers_left,
    coverage_phrase,
    exports_phrase,
    fix_proof_words,
    fixes_footer,
    fixes_under,
    frame_words,
    plural,
    tally,
)
from exportwatch.render.escape import blob_url, clean, documentation_url, one_line
from exportwatch.render.tree_view import STYLES, TreeNode, VerdictStyle, build_tree, changes_by_job
from exportwatch.report import FAILING, JobResult, Report, Verdict
from exportwatch.report.model import MAX_SNIPPET_CHARS, Blockers, BlockerStatus

#: Caps on what one node shows (a report may come from a stranger's fork: a 1 MB message
#: must not make a 1 MB line, nor a million nodes' tracebacks a gigabyte page).
LABEL_CHARS = 160
MESSAGE_CHARS = 1_000
SOURCE_CHARS = 600
HINT_CHARS = 600
TRACEBACK_CHARS = 8_000
#: Tracebacks of the whole page, beyond which they are left to the JSON report.
TRACEBACK_BUDGET = 4_000_000
MAX_WARNINGS = 5

_CHANGE_LABEL: Mapping[ChangeKind, str] = {
    ChangeKind.REGRESSION: "regression",
    ChangeKind.FIX: "fixed",
    ChangeKind.CHANGED_FAILURE: "changed failure",
    ChangeKind.COVERAGE_DROP: "coverage drop",
    ChangeKind.NEW: "new",
    ChangeKind.REMOVED: "removed",
    ChangeKind.NEWLY_SKIPPED: "newly skipped",
    ChangeKind.INFRASTRUCTURE: "infrastructure",
    ChangeKind.ERROR: "not checked",
}
_URL_OR_CODE = re.compile(r"""(?P<url>https?://[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])|(`+)(?P<code>[^`]+?)\2""")


# ---------------------------------------------------------------------------------------------
# Escaping: the only ways untrusted text enters the page


def text(value: object, *, limit: int = LABEL_CHARS) -> str:
    """One line of untrusted text, cleaned, capped and escaped for an element or attribute."""
    return html.escape(one_line(value, limit=limit), quote=True)


def block(value: object, *, limit: int) -> str:
    """Several lines of untrusted text (for ``<pre>``), cleaned, capped and escaped."""
    value = clean(value).expandtabs(4)
    if len(value) > limit:
        value = f"{value[:limit]}\n… [{len(value) - limit} more characters in the JSON report]"
    return html.escape(value.rstrip("\n"), quote=True)


def with_links(value: object, *, limit: int) -> str:
    """Escaped text in which `code` spans become ``<code>`` and documentation URLs on the
    allow-list become links (for hints); any other URL stays text."""
    line = one_line(value, limit=limit)
    out: list[str] = []
    pos = 0
    for match in _URL_OR_CODE.finditer(line):
        if match["code"] is not None:
            replacement = f"<code>{html.escape(match['code'], quote=True)}</code>"
        else:
            url = documentation_url(match["url"])
            if url is None:
                continue
            replacement = _external_link(url, html.escape(match["url"], quote=True))
        out.append(html.escape(line[pos : match.start()], quote=True))
        out.append(replacement)
        pos = match.end()
    out.append(html.escape(line[pos:], quote=True))
    return "".join(out)


def _number(value: object, template: str) -> str:
    """A number from the report, formatted; a report that holds something else shows ``?``."""
    try:
        return html.escape(template.format(value), quote=True)
    except (TypeError, ValueError):
        return html.escape(re.sub(r"\{[^}]*\}", "?", template), quote=True)


def _external_link(url: str, label_html: str) -> str:
    """A link out of the page; ``url`` must be one our own code built or allowed."""
    return (
        f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer" target="_blank">{label_html}</a>'
    )


def anchor(*parts: str) -> str:
    """A stable, unique id: a readable slug of ``parts`` plus a hash of them.

    Only ``[A-Za-z0-9_-]``, so it is safe in an attribute, a URL fragment and a CSS selector;
    the same report renders the same ids, so links into the page keep working.
    """
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", clean("-".join(p for p in parts if p))).strip("-")[:48]
    return f"{slug}-{digest}" if slug else f"n-{digest}"


# ---------------------------------------------------------------------------------------------
# The page


@dataclass
class _Budget:
    """What is left of the page's traceback allowance."""

    chars: int = TRACEBACK_BUDGET
    dropped: int = 0

    def take(self, n: int) -> bool:
        if n > self.chars:
            self.dropped += 1
            return False
        self.chars -= n
        return True


@dataclass(frozen=True, kw_only=True)
class _Side:
    """One report's jobs, drawn as trees; its name keeps both sides' ids apart."""

    name: str  # "head" | "base"
    jobs: Mapping[tuple[str, str, str], JobResult]
    repository: str | None
    sha: str | None


@dataclass(kw_only=True)
class _Page:
    changes: Changes
    budget: _Budget = field(default_factory=_Budget)


def render_html(head: Report, *, base: Report | None = None, title: str | None = None) -> str:
    """The whole page for ``head`` (and, with ``base``, what changed since it)."""
    changes = diff_reports(base, head)
    page = _Page(changes=changes)
    sides = [_side("head", head)]
    if base is not None:
        sides.append(_side("base", base))
    keys = list(dict.fromkeys([j.key for j in head.jobs] + [j.key for j in (base.jobs if base else [])]))
    kinds_by_job = changes_by_job(changes)
    targets = list(dict.fromkeys(t for _, t, _ in keys))  # report order, whatever fails
    urgency = _urgency(changes)
    keys.sort(key=lambda key: urgency.get(key, 2))

    heading = "exportwatch report" + (f" · {one_line(title, limit=80)}" if title else "")
    body = [
        _controls(with_base=base is not None),
        "<header>",
        f"<h1>{html.escape(heading, quote=True)}</h1>",
        _summary_line(head, base, changes),
        _metadata(head, base),
        _toolbar(with_base=base is not None),
        "</header>",
        "<main>",
        _overview(keys, sides, kinds_by_job, targets=targets),
    ]
    for key in keys:
        body.append(_job_section(key, sides, kinds_by_job.get(key, {}), page))
    if page.budget.dropped:
        body.append(
            f'<p class="note">{page.budget.dropped} tracebacks were left out to keep this page small; '
            "the JSON report has them.</p>"
        )
    body.append("</main>")
    return _document(title=heading, body="\n".join(body))


def _side(name: str, report: Report) -> _Side:
    jobs: dict[tuple[str, str, str], JobResult] = {}
    for job in report.jobs:
        jobs.setdefault(job.key, job)
    return _Side(name=name, jobs=jobs, repository=report.repository, sha=report.git_sha)


def _urgency(changes: Changes) -> dict[JobKey, int]:
    """Per job, 0: a regression or a result exportwatch could not check; 1: failing on head;
    2: the rest. Jobs are shown in this order (a stable sort keeps report order within each)."""
    out: dict[JobKey, int] = {}
    for cell in changes.cells.values():
        if cell.folded_under is None and cell.kind in (ChangeKind.REGRESSION, ChangeKind.ERROR):
            out[cell.job_key] = 0
        elif cell.is_root and cell.job_key not in out:
            out[cell.job_key] = 1 if cell.head in FAILING else 2
    return out


def _document(*, title: str, body: str) -> str:
    policy = (
        "default-src 'none'; "
        f"style-src '{_sha256(_CSS)}'; script-src '{_sha256(_SCRIPT)}'; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title, quote=True)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _sha256(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")


def _controls(*, with_base: bool) -> str:
    """Form controls before ``<main>``, so CSS can filter the page without the script."""
    parts = ['<input type="checkbox" id="failing-only" class="control">']
    if with_base:
        parts.append('<input type="radio" name="side" id="show-head" class="control" checked>')
        parts.append('<input type="radio" name="side" id="show-base" class="control">')
    return "\n".join(parts)


def _toolbar(*, with_base: bool) -> str:
    parts = [
        '<div class="toolbar">',
        '<input type="search" id="search" placeholder="Search modules, types, messages…" '
        'aria-label="Search" autocomplete="off">',
        '<span id="search-count" aria-live="polite"></span>',
        '<label for="failing-only" class="toggle">failing only</label>',
    ]
    if with_base:
        parts.append(
            '<span class="sides">show <label for="show-head" class="toggle side-head-label">head</label>'
        )
        parts.append('<label for="show-base" class="toggle side-base-label">base</label></span>')
    parts.append("</div>")
    return "\n".join(parts)


def _summary_line(head: Report, base: Report | None, changes: Changes) -> str:
    """The counts the comment and the terminal quote, with the same nouns (render.common)."""
    counts = tally(changes)
    parts = [html.escape(exports_phrase(counts), quote=True)]
    if counts.skipped:
        parts.append(f"{plural(counts.skipped, 'export')} skipped")
    if base is not None:
        parts.append(f'<span class="c-regression">{plural(counts.regressions, "regression")}</span>')
        parts.append(f'<span class="c-fix">{plural(counts.fixes, "fix", "fixes")}</span>')
    return f'<p class="summary">{" · ".join(parts)}</p>'


def _metadata(head: Report, base: Report | None) -> str:
    rows = [("head", head)] + ([("base", base)] if base is not None else [])
    lines = []
    for name, report in rows:
        env = report.environment
        versions = ", ".join(
            f"{package} {text(version, limit=40)}"
            for package, version in (
                ("python", env.python),
                ("torch", env.torch),
                ("onnx", env.onnx),
                ("onnxruntime", env.onnxruntime),
            )
            if version
        )
        facts = [
            text(report.repository, limit=100) if report.repository else None,
            f"<code>{text(report.git_sha[:12], limit=12)}</code>" if report.git_sha else None,
            text(report.created_at, limit=40) if report.created_at else None,
            f"exportwatch {text(report.tool_version, limit=40)}" if report.tool_version else None,
            versions or None,
            '<strong class="warn">partial: the sweep did not finish</strong>'
            if not report.complete
            else None,
        ]
        lines.append(f'<p class="meta"><b>{name}</b> {" · ".join(f for f in facts if f)}</p>')
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Overview: models × targets, each cell a link to its tree


def _overview(
    keys: list[tuple[str, str, str]], sides: list[_Side], kinds: Mapping, *, targets: list[str]
) -> str:
    rows = list(dict.fromkeys((m, d) for m, _, d in keys))
    head = sides[0]
    out = ['<table class="overview"><thead><tr><th>model</th>']
    out += [f"<th>{text(t, limit=60)}</th>" for t in targets]
    out.append("</tr></thead><tbody>")
    for model, device in rows:
        label = text(model) + (f' <span class="device">{text(device, limit=40)}</span>' if device else "")
        out.append(f"<tr><th>{label}</th>")
        for target in targets:
            key = (model, target, device)
            job = head.jobs.get(key) or next((s.jobs[key] for s in sides if key in s.jobs), None)
            if job is None:
                out.append("<td></td>")
                continue
            change = kinds.get(key, {}).get("")
            out.append(
                f'<td><a href="#{job_anchor(key)}">{_pill(STYLES[job.verdict])}</a>'
                f"{_change_badge(change)}{_xfail_badge(job.xfail)}</td>"
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def job_anchor(key: tuple[str, str, str]) -> str:
    """The id of one job's section (``key`` is model, target, device)."""
    return "job-" + anchor(*key)


def _node_id(side: _Side, key: tuple[str, str, str], path: str) -> str:
    return node_anchor(key, path, side=side.name)


def node_anchor(key: tuple[str, str, str], path: str, *, side: str = "head") -> str:
    """The id of one node of one job (``key`` is model, target, device) on ``side``: link to
    ``report.html#ID`` from elsewhere (a comment, a summary)."""
    return ("b-" if side == "base" else "h-") + anchor(*key, path or "(root)")


def _pill(style: VerdictStyle, *, label: bool = True) -> str:
    glyph = f'<span class="glyph" aria-hidden="true">{style.glyph}</span>'
    word = f'<span class="label">{style.label}</span>' if label else ""
    return f'<span class="v t-{style.tone}">{glyph}{word}</span>'


def _change_badge(kind: ChangeKind | None) -> str:
    if kind is None or kind in QUIET:
        return ""
    return f' <span class="badge k-{kind.value}">{_CHANGE_LABEL[kind]}</span>'


def _xfail_badge(reason: str | None) -> str:
    return ' <span class="badge xfail">expected</span>' if reason else ""


# ---------------------------------------------------------------------------------------------
# One job: a section with one tree per side


def _job_section(
    key: tuple[str, str, str], sides: list[_Side], kinds: Mapping[str, ChangeKind], page: _Page
) -> str:
    model, target, device = key
    trees = []
    any_fails = False
    for side in sides:
        job = side.jobs.get(key)
        if job is None:
            trees.append(
                f'<div class="side side-{side.name}"><p class="absent">no result on {side.name}</p></div>'
            )
            continue
        root = build_tree(job, changes=kinds)
        any_fails |= root.branch_fails
        trees.append(_tree(side, key, job, root, page))
    shown = next(s.jobs[key] for s in sides if key in s.jobs)
    header = (
        f"<h2>{_pill(STYLES[shown.verdict], label=False)} {text(model)}"
        f' <span class="sep">·</span> {text(target, limit=60)}'
        f' <span class="sep">·</span> <span class="device">{text(device, limit=40)}</span>'
        f"{_change_badge(kinds.get(''))}{_xfail_badge(shown.xfail)}</h2>"
    )
    klass = "job branch-fail" if any_fails else "job branch-pass"
    return f'<section class="{klass}" id="{job_anchor(key)}">{header}{"".join(trees)}</section>'


def _tree(side: _Side, key: tuple[str, str, str], job: JobResult, root: TreeNode, page: _Page) -> str:
    facts = [_number(job.duration_s, "{:.1f} s")]
    if job.source.value != "swept":
        facts.append(f"result {html.escape(job.source.value)}")
    if job.parameters:
        facts.append(_number(job.parameters, "{:,} parameters"))
    if job.peak_rss_mb:
        facts.append(_number(job.peak_rss_mb, "peak {:.0f} MB"))
    if job.xfail:
        facts.append(f"expected to fail: {text(job.xfail, limit=200)}")
    if job.reason:
        facts.append(text(job.reason, limit=300))
    nodes = root.count()
    failing = sum(1 for n in _nodes(root) if n.failing)
    facts.append(f"{nodes} modules, {failing} failing")
    klass = "branch-fail" if root.branch_fails else "branch-pass"
    out = [
        f'<div class="side side-{side.name} {klass}" data-side="{side.name}">',
        f'<p class="jobfacts">{" · ".join(facts)}</p>',
        '<ul class="tree">',
    ]
    _node(out, side, key, root, page)
    out.append("</ul></div>")
    return "".join(out)


def _nodes(root: TreeNode) -> Iterable[TreeNode]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _node(out: list[str], side: _Side, key: tuple[str, str, str], node: TreeNode, page: _Page) -> None:
    """Append one node and its subtree (depth is bounded by tree_view.MAX_DEPTH)."""
    style = node.style
    classes = ["node", f"t-{style.tone}", "branch-fail" if node.branch_fails else "branch-pass"]
    if node.change is not None and node.change not in QUIET:
        classes.append(f"k-{node.change.value}")
    out.append(f'<li class="{" ".join(classes)}" id="{_node_id(side, key, node.path)}">')
    row = _row(side, key, node)
    why = _why(side, key, node) if node.failing or node.shown.mismatch is not None else ""
    traceback = _traceback(node, page) if node.failing else ""
    if not node.children and not why:
        out.append(f'<div class="row">{row}</div></li>')
        return
    opened = " open" if node.branch_fails else ""
    out.append(f'<details{opened}><summary class="row">{row}</summary>{why}{traceback}')
    if node.children:
        out.append("<ul>")
        for child in node.children:
            _node(out, side, key, child, page)
        out.append("</ul>")
    out.append("</details></li>")


def _row(side: _Side, key: tuple[str, str, str], node: TreeNode) -> str:
    result, shown = node.result, node.shown
    parts = [_pill(node.style, label=False), f'<span class="name">{text(node.name)}</span>']
    if result.module_type:
        short = result.module_type.rpartition(".")[2]
        parts.append(f'<span class="type">{text(short, limit=80)}</span>')
    parts.append(f'<span class="verdict">{_verdict_words(side, key, node)}</span>')
    if node.origin:
        parts.append('<span class="badge origin">origin</span>')
    parts.append(_change_badge(node.change))
    parts.append(_xfail_badge(result.xfail))
    facts = []
    if shown.category and node.failing:
        facts.append(f'<span class="category">{text(shown.category, limit=80)}</span>')
    coverage = coverage_phrase(shown.delegation)
    if coverage is not None:  # operator names come from the report: escaped
        facts.append(f'<span class="coverage">{text(coverage, limit=200)}</span>')
    if result.calls:
        facts.append(_number(result.calls, "{:d}× called"))
    if result.inputs:  # how it was called: shapes and dtypes (text from the report: escaped)
        shapes = " | ".join(text(s, limit=200) for s in result.inputs[:4])
        facts.append(f'<span class="inputs">{shapes}</span>')
    if result.duration_s:
        facts.append(_number(result.duration_s, "{:.2f} s"))
    if facts:
        parts.append(f'<span class="facts">{" · ".join(facts)}</span>')
    return " ".join(p for p in parts if p)


def _verdict_words(side: _Side, key: tuple[str, str, str], node: TreeNode) -> str:
    result = node.result
    label = STYLES[result.verdict].label
    if result.verdict == Verdict.SAME_AS and result.same_as is not None:
        twin = text(result.same_as)
        if node.twin is not None:
            twin = f'<a class="twin" href="#{_node_id(side, key, node.twin)}">{twin}</a>'
        shared = STYLES[node.shown.verdict].label if node.shown is not result else "?"
        return f"same as {twin} ({shared})"
    if result.verdict == Verdict.COVERED and result.covered_by is not None:
        return f"covered by {text(result.covered_by or 'the root')}"
    if result.reason:
        return f"{label}: {text(result.reason, limit=200)}"
    return label


def _blockers(found: Blockers) -> str:
    """Every blocker of an origin (draft_export): a numbered list, each with its lines."""
    out = [f'<div class="blockers"><p class="blockers-head">{text(blockers_headline(found), limit=700)}</p>']
    if found.status is BlockerStatus.FOUND:
        out.append("<ol>")
        for number, blocker in enumerate(found.found[:SHOWN_BLOCKERS]):
            item = text(blocker_words(blocker), limit=400)
            if blocker.user_frame is not None:
                item += f" at <code>{text(frame_words(blocker.user_frame))}</code>"
                if blocker.user_frame.source.strip():
                    item += f": <code>{text(blocker.user_frame.source.strip(), limit=160)}</code>"
            for made in blocker.created:
                if made.frame is not None:
                    item += f"; <code>{text(made.symbol, limit=40)}</code> made at "
                    item += f"<code>{text(frame_words(made.frame))}</code>"
                    if made.frame.source.strip():
                        item += f": <code>{text(made.frame.source.strip(), limit=160)}</code>"
            for fix, shown_under in fixes_under(found, number):
                if shown_under is not None:
                    item += f'<p class="fix">fixed by the change shown under blocker {shown_under}</p>'
                    continue
                item += (
                    f'<div class="fix"><p>{text(fix.summary, limit=600)}: '
                    f'<span class="proof">{text(fix_proof_words(fix), limit=700)}</span></p>'
                    f'<pre class="src">{block(fix.snippet, limit=MAX_SNIPPET_CHARS)}</pre></div>'
                )
            out.append(f"<li>{item}</li>")
        out.append("</ol>")
        left = blockers_left(found)
        if left > 0:
            out.append(f"<p>{plural(left, 'more blocker')} not listed</p>")
        out.extend(f'<p class="fix">{text(line, limit=300)}</p>' for line in fixes_footer(found))
    out.append("</div>")
    return "".join(out)


def _why(side: _Side, key: tuple[str, str, str], node: TreeNode) -> str:
    """Why a node fails: message, the origin it fails because of, the source line, the hint."""
    result = node.shown
    out = ['<div class="why">']
    if node.caused_by is not None:
        link = f'<a href="#{_node_id(side, key, node.caused_by)}">{text(node.caused_by)}</a>'
        out.append(f'<p class="caused">fails because of {link} (the same failure)</p>')
    if result.message:
        out.append(f'<p class="msg">{text(result.message, limit=MESSAGE_CHARS)}</p>')
    if node.caused_by is not None:  # the origin below shows the line, the hint and the facts
        out.append("</div>")
        return "".join(out)
    if result.mismatch is not None:
        m = result.mismatch
        errors = [f"max abs error {m.max_abs_error:.3g}" if m.max_abs_error is not None else "",
                  f"max rel error {m.max_rel_error:.3g}" if m.max_rel_error is not None else ""]  # fmt: skip
        errors_text = ", ".join(e for e in errors if e)
        out.append(
            f'<p class="mismatch">output <code>{text(m.output, limit=80)}</code> of input set '
            f"<code>{text(m.input_set, limit=80)}</code> differs from eager"
            + (f": {errors_text}" if errors_text else "")
            + "</p>"
        )
    frame = result.user_frame
    if frame is not None:
        where = f"{text(frame.path)}:{_number(frame.line, '{:d}')}"
        url = (
            None
            if frame.library
            else blob_url(repository=side.repository, sha=side.sha, path=frame.path, line=frame.line)
        )
        location = _external_link(url, f"<code>{where}</code>") if url else f"<code>{where}</code>"
        if frame.function:
            location += f" in <code>{text(frame.function, limit=80)}</code>"
        if frame.library:
            location += f' <span class="library">library code: {text(frame.library, limit=80)}</span>'
        out.append(f'<p class="where">at {location}</p>')
        if frame.source and frame.source.strip():
            out.append(f'<pre class="src">{block(frame.source.strip(chr(10)), limit=SOURCE_CHARS)}</pre>')
    if result.blockers is not None:
        out.append(_blockers(result.blockers))
    if result.hint:
        out.append(f'<p class="hint">hint: {with_links(result.hint, limit=HINT_CHARS)}</p>')
    facts = _facts(node)
    if facts:
        out.append(f'<p class="more">{" · ".join(facts)}</p>')
    out.append("</div>")
    return "".join(out)


def _facts(node: TreeNode) -> list[str]:
    result, shown = node.result, node.shown
    facts = []
    if result.module_type:
        facts.append(f"type <code>{text(result.module_type)}</code>")
    if shown.stage:
        facts.append(f"stage {text(shown.stage, limit=40)}")
    if shown.exception_type:
        facts.append(f"raised <code>{text(shown.exception_type)}</code>")
    if shown.root_cause and shown.root_cause != shown.exception_type:
        facts.append(f"root cause <code>{text(shown.root_cause)}</code>")
    if result.attempts:
        facts.append(_number(result.attempts, "{:d} attempts" if result.attempts != 1 else "{:d} attempt"))
    if result.aliases:
        facts.append("also named " + ", ".join(f"<code>{text(a)}</code>" for a in result.aliases[:5]))
    for warning in shown.warnings[:MAX_WARNINGS]:
        facts.append(f'<span class="warning">warning: {text(warning, limit=300)}</span>')
    return facts


def _traceback(node: TreeNode, page: _Page) -> str:
    detail = node.shown.detail
    if not detail:
        return ""
    body = block(detail, limit=TRACEBACK_CHARS)
    if not page.budget.take(len(body)):
        return '<p class="note">traceback left out to keep this page small: the JSON report has it</p>'
    return f'<details class="tb"><summary>traceback</summary><pre>{body}</pre></details>'


# ---------------------------------------------------------------------------------------------
# Style and script (inline: the page fetches nothing; the CSP allows these two by hash)

_CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--infra:#bc4c00;--error:#8250df;--neutral:#6e7781;
--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--reg:#ffebe9;--fix:#dafbe1;--hit:#fff8c5}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
header{position:sticky;top:0;z-index:2;background:var(--bg);border-bottom:1px solid var(--line);
padding:10px 20px}
h1{font-size:18px;margin:0 0 4px}
h2{font-size:15px;margin:0 0 6px;display:flex;gap:6px;align-items:center;flex-wrap:wrap}
main{padding:12px 20px 40px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;overflow-wrap:anywhere;background:#f6f8fa;
border:1px solid var(--line);border-radius:6px;padding:6px 8px;margin:4px 0;max-height:28em;
overflow:auto}
.summary{margin:0 0 2px;font-weight:600}
.meta{margin:0;color:var(--muted);font-size:12.5px;overflow-wrap:anywhere}
.warn{color:var(--infra)}
.toolbar{display:flex;gap:10px;align-items:center;margin-top:8px;flex-wrap:wrap}
#search{width:22em;max-width:100%;padding:4px 8px;border:1px solid var(--line);border-radius:6px;
font:inherit}
#search-count{color:var(--muted);min-width:6em}
.control{position:absolute;opacity:0;pointer-events:none}
.toggle{cursor:pointer;user-select:none;border:1px solid var(--line);border-radius:6px;padding:3px 10px}
#failing-only:checked~header label[for=failing-only],#show-head:checked~header .side-head-label,
#show-base:checked~header .side-base-label{background:#0969da;border-color:#0969da;color:#fff}
#failing-only:checked~main .branch-pass{display:none}
#show-head:checked~main .side-base,#show-base:checked~main .side-head{display:none}
.overview{border-collapse:collapse;margin:4px 0 18px}
.overview th,.overview td{border:1px solid var(--line);padding:3px 8px;text-align:left;
white-space:nowrap}
.overview a{text-decoration:none}
section.job{border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:0 0 14px}
.jobfacts{margin:0 0 4px;color:var(--muted);font-size:12.5px}
.device,.sep{color:var(--muted);font-weight:400}
.tree,.tree ul{list-style:none;margin:0;padding-left:18px}
.tree{padding-left:0}
.tree ul{border-left:1px dotted var(--line);margin-left:7px}
.row{display:block;padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
summary.row{cursor:pointer;list-style:none}
summary.row::-webkit-details-marker{display:none}
summary.row::before{content:"▸";display:inline-block;width:14px;color:var(--muted)}
details[open]>summary.row::before{content:"▾"}
div.row{padding-left:18px}
.node.k-regression>.row,.node.k-regression>details>.row{background:var(--reg);
box-shadow:inset 3px 0 var(--fail)}
.node.k-fix>.row,.node.k-fix>details>.row{background:var(--fix);box-shadow:inset 3px 0 var(--pass)}
.node.hit>.row,.node.hit>details>.row{background:var(--hit)}
.node:target>.row,.node:target>details>.row{outline:2px solid #0969da}
.searching .node:not(.on-path),.searching section.job:not(.has-hit){display:none}
.v{display:inline-flex;align-items:center;gap:3px;border-radius:10px;padding:0 6px;color:#fff;
font-size:12px;line-height:18px;font-weight:600}
.v .glyph{min-width:10px;text-align:center}
.t-pass{--tone:var(--pass)}.t-fail{--tone:var(--fail)}.t-infra{--tone:var(--infra)}
.t-error{--tone:var(--error)}.t-neutral{--tone:var(--neutral)}
.v{background:var(--tone)}
.name{font-weight:600}
.type{color:var(--muted);font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.verdict{color:var(--tone)}
.node.t-fail>details>.row .name,.node.t-fail>.row .name{color:var(--fail)}
.facts,.category{color:var(--muted);font-size:12px}
.category{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.badge{display:inline-block;border-radius:10px;padding:0 7px;font-size:11.5px;line-height:17px;
border:1px solid var(--line);color:var(--muted)}
.badge.origin{border-color:var(--fail);color:var(--fail)}
.badge.k-regression{background:var(--fail);border-color:var(--fail);color:#fff}
.badge.k-fix{background:var(--pass);border-color:var(--pass);color:#fff}
.badge.k-changed-failure,.badge.k-new{border-color:var(--infra);color:var(--infra)}
.badge.k-coverage-drop{background:var(--infra);border-color:var(--infra);color:#fff}
.c-regression{color:var(--fail)}.c-fix{color:var(--pass)}
.why{margin:2px 0 4px 22px;padding:4px 10px;border-left:3px solid var(--tone);background:#fafbfc}
.why p{margin:2px 0;overflow-wrap:anywhere}
.msg{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px;white-space:pre-wrap}
.more,.library,.caused{color:var(--muted);font-size:12px}
.tb{margin:0 0 4px 22px}
.tb>summary{cursor:pointer;color:var(--muted);font-size:12px}
.note,.absent{color:var(--muted)}
"""

_SCRIPT = """
(function(){
"use strict";
var search=document.getElementById("search"),count=document.getElementById("search-count");
var nodes=Array.prototype.slice.call(document.querySelectorAll("li.node"));
var texts=null;
function nameOf(n){var e=n.querySelector(".name");return e?e.textContent:"";}
function pathOf(n){
  var names=[];for(var p=n;parentNode(p);p=parentNode(p))names.unshift(nameOf(p));return names.join(".");
}
function ownText(n){
  var row=n.querySelector(".row"),why=n.querySelector(":scope>details>.why");
  return (pathOf(n)+" "+(row?row.textContent:"")+" "+(why?why.textContent:"")).toLowerCase();
}
function side(){var b=document.getElementById("show-base");return b&&b.checked?"base":"head";}
function parentNode(n){var p=n.parentElement;return p?p.closest("li.node"):null;}
function reveal(n){
  for(var p=n;p;p=parentNode(p)){var d=p.querySelector(":scope>details");if(d&&p!==n)d.open=true;}
}
function run(){
  var q=search.value.trim().toLowerCase(),hits=0,i,n;
  document.querySelectorAll(".hit,.on-path,.has-hit").forEach(function(e){e.classList.remove("hit","on-path","has-hit");});
  document.body.classList.toggle("searching",q.length>0);
  if(!q){count.textContent="";return;}
  if(!texts)texts=nodes.map(ownText);
  var current=side();
  for(i=0;i<nodes.length;i++){
    n=nodes[i];
    if(texts[i].indexOf(q)<0)continue;
    var s=n.closest(".side");
    if(s&&s.getAttribute("data-side")!==current)continue;
    n.classList.add("hit");hits++;
    for(var p=n;p;p=parentNode(p)){p.classList.add("on-path");}
    reveal(n);
    var sec=n.closest("section.job");if(sec)sec.classList.add("has-hit");
  }
  count.textContent=hits+(hits===1?" match":" matches");
}
search.addEventListener("input",run);
document.querySelectorAll("input[name=side]").forEach(function(r){r.addEventListener("change",run);});
function follow(){
  var id=decodeURIComponent(location.hash.slice(1));if(!id)return;
  var t=document.getElementById(id);if(!t)return;
  reveal(t);var d=t.querySelector(":scope>details");if(d)d.open=true;
  t.scrollIntoView({block:"center"});
}
window.addEventListener("hashchange",follow);
follow();
})();
"""
