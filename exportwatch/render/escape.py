"""Untrusted text → markdown or terminal text that shows exactly what it says and nothing more.

Messages, paths, module names and tracebacks come from exceptions and user code, and on a fork
PR from a stranger. Text must never become markup: no HTML, no links, no closing of our
``<details>`` blocks, no broken tables or code spans, no ``@mentions`` that notify people,
no ``#123`` references that cross-link issues, no terminal escape sequences.

Each helper names the one context it is safe in; use the one that matches where the text goes.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

#: Longest single-line message shown in a comment; the job summary has the traceback.
MESSAGE_LIMIT = 300
#: Longest path, name or other short label.
LABEL_LIMIT = 160
#: Longest traceback shown in a PR comment (the job summary and artifact have more).
DETAIL_LIMIT = 4_000

_ZWJ = "\u200d"  # zero-width joiner: invisible, and breaks @mention / #123 autolinking
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# C0 controls but tab and newline, DEL, C1 controls, bidi overrides ("trojan source"),
# line/paragraph separators (they end a line for some renderers but not for others).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]")
# Punctuation that can start markup anywhere in a line in CommonMark/GFM (GitHub adds $ math
# and ~ strikethrough). Parentheses and "!" are harmless once "[" and "]" are escaped; "&" is
# escaped so that "&#64;" cannot decode to a mention.
_MD_SPECIAL = set("\\`*_[]<>&|~$#")
# What starts a block only at the start of a line: list items, quotes, headings, setext rules,
# ordered lists ("1." / "1)"). Text may begin a line (e.g. after "> "), so its first mark is escaped.
_LINE_START = re.compile(r"^(\d{1,9})([.)])(?=\s|$)|^([-+=>])")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


def clean(text: object) -> str:
    """Printable text only: no terminal escapes, control characters or bidi overrides."""
    value = "" if text is None else str(text)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _ANSI.sub("", value)
    return _CONTROL.sub("", value)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending in an ellipsis when cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def one_line(text: object, *, limit: int = MESSAGE_LIMIT) -> str:
    """Cleaned, newlines folded to ``⏎``, runs of whitespace collapsed, capped."""
    value = clean(text)
    value = " ⏎ ".join(part.strip() for part in value.split("\n") if part.strip())
    value = re.sub(r"[ \t]+", " ", value)
    return shorten(value, limit)


def _break_references(text: str) -> str:
    """``@octocat``, ``#123``, ``GH-123`` must not notify or cross-link, and bare URLs
    (``https://…``, ``www.…``) must not turn into links GitHub's autolinker would make."""
    text = text.replace("@", "@" + _ZWJ).replace("#", "#" + _ZWJ)
    text = text.replace("://", ":" + _ZWJ + "//")
    return re.sub(r"(?i)\b(www|gh)([.-])", lambda m: m[1] + _ZWJ + m[2], text)


def md_text(text: object, *, limit: int = MESSAGE_LIMIT) -> str:
    """Inline markdown text, safe in a paragraph, a list item, a blockquote and a table cell.

    Every punctuation character that could start markup is backslash-escaped (so ``|`` cannot
    split a table cell and ``<`` cannot open a tag), and the text is kept on one line.
    """
    return _escape_inline(one_line(text, limit=limit), line_start=True)


def _escape_inline(value: str, *, line_start: bool) -> str:
    escaped = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in value)
    if line_start:
        escaped = _LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", escaped)
    return _break_references(escaped)


_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
#: Hints link to these; any other URL in report text (which may come from an untrusted run) is
#: shown as inert text.
DOCUMENTATION_HOSTS = frozenset(
    {"docs.pytorch.org", "pytorch.org", "onnxruntime.ai", "onnx.ai", "github.com", "huggingface.co"}
)
#: A code span, or a bare http(s) URL (trailing punctuation is the sentence's, not the URL's).
_CODE_SPAN_OR_URL = re.compile(_CODE_SPAN.pattern + r"""|(?P<url>https?://[^\s<>`]*[^\s<>`.,;:!?)\]'"])""")


def md_text_with_code(text: object, *, limit: int = MESSAGE_LIMIT) -> str:
    """Like :func:`md_text`, but `code` spans in ``text`` stay code spans (for hints).

    Each span is rebuilt by :func:`md_code` and the text around it escaped as by
    :func:`md_text`, so the result is exactly as safe; only the intent to show code survives.
    """
    value = one_line(text, limit=limit)
    out: list[str] = []
    pos = 0
    for match in _CODE_SPAN_OR_URL.finditer(value):
        if match["url"]:
            url = safe_url(match["url"])
            if url is None or urlsplit(url).hostname not in DOCUMENTATION_HOSTS:
                continue  # stays text, escaped (and unlinked) with the rest
            replacement = f"<{url}>"  # an autolink: escaping inside it would break the URL
        else:
            replacement = md_code(match[2], limit=limit)
        out.append(_escape_inline(value[pos : match.start()], line_start=pos == 0))
        out.append(replacement)
        pos = match.end()
    out.append(_escape_inline(value[pos:], line_start=pos == 0))
    return "".join(out)


def md_code(text: object, *, limit: int = LABEL_LIMIT) -> str:
    """An inline code span that contains ``text`` whatever backticks it holds.

    Not for table cells: GitHub and CommonMark disagree about ``\\|`` inside code spans there,
    so tables use :func:`md_text`. Mentions and references are inert inside code.
    """
    value = one_line(text, limit=limit) or " "
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    if value.startswith(("`", " ")) or value.endswith(("`", " ")):
        value = f" {value} "
    return f"{fence}{value}{fence}"


def md_code_block(text: object, *, lang: str = "", limit: int = DETAIL_LIMIT) -> str:
    """A fenced code block whose fence no line of ``text`` can close.

    Inside it, ``</details>``, ``<script>`` and friends are plain text, so a traceback can sit
    in a ``<details>`` block without ending it early.
    """
    value = clean(text).expandtabs(4)
    if len(value) > limit:
        cut = len(value) - limit
        value = f"{value[:limit]}\n… [{cut} more characters in the job summary and report artifact]"
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * max(3, longest + 1)
    info = re.sub(r"[^a-z0-9+-]", "", lang.lower())
    return f"{fence}{info}\n{value.rstrip()}\n{fence}"


def html_text(text: object, *, limit: int = LABEL_LIMIT) -> str:
    """Text inside an HTML element (e.g. ``<summary>``), where markdown is not parsed."""
    value = one_line(text, limit=limit)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return _break_references(value)


def md_details(summary: str, body: str) -> str:
    """A ``<details>`` block; ``summary`` goes through :func:`html_text`, ``body`` is markdown.

    The blank lines around ``body`` make GitHub parse it as markdown; ``body`` must come from
    this module's helpers (a fenced block keeps ``</details>`` in it inert).
    """
    return f"<details><summary>{html_text(summary)}</summary>\n\n{body.strip()}\n\n</details>"


def safe_url(url: object) -> str | None:
    """``url`` percent-encoded for a markdown link, or None unless it is http(s)."""
    value = clean(url).strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return quote(value, safe="/:?=&%#@!$',;~+-._")


def blob_url(*, repository: str | None, sha: str | None, path: str, line: int | None) -> str | None:
    """``https://github.com/OWNER/REPO/blob/SHA/PATH#L123``, or None when it cannot be trusted.

    Absolute paths, ``..`` segments and URLs are refused: the path comes from a traceback.
    """
    if not repository or not sha or not _REPO.match(repository) or not _SHA.match(sha):
        return None
    path = clean(path).strip().replace("\\", "/")
    segments = path.split("/")
    if not path or path.startswith("/") or ":" in path or any(s in ("", ".", "..") for s in segments):
        return None
    anchor = f"#L{int(line)}" if line is not None and int(line) > 0 else ""
    return f"https://github.com/{repository}/blob/{sha}/{quote(path, safe='/-_.~')}{anchor}"


def md_link(label_markdown: str, url: str | None) -> str:
    """``[label](url)`` when ``url`` is safe, else just the label (already-escaped markdown)."""
    safe = safe_url(url) if url else None
    if safe is None:
        return label_markdown
    return f"[{label_markdown}]({safe.replace('(', '%28').replace(')', '%29')})"


def term_text(text: object, *, limit: int = MESSAGE_LIMIT) -> str:
    """One line for a terminal: no escape sequences or control characters, capped."""
    return one_line(text, limit=limit)


def term_block(text: object, *, limit: int = DETAIL_LIMIT) -> str:
    """Several lines for a terminal, cleaned and capped."""
    value = clean(text).expandtabs(4)
    return shorten(value, limit)


def marker_key(key: object) -> str:
    """A suffix for the hidden comment marker: letters, digits and ``._/-`` only, no ``--``."""
    value = re.sub(r"[^A-Za-z0-9_./-]+", "-", clean(key))
    return re.sub(r"-{2,}", "-", value).strip("-")[:80]  # "--" has no place in an HTML comment
