"""Untrusted text → markdown or terminal text that shows exactly what it says and nothing more.

Messages, paths, module names and tracebacks come from exceptions and user code, and on a fork
PR from a stranger. Text must never become markup: no HTML, no links, no closing of our
``<details>`` blocks, no broken tables or code spans, no ``@mentions`` that notify people,
no ``#123`` references that cross-link issues, no terminal escape sequences, no GitHub Actions
workflow commands.

Each helper names the one context it is safe in; use the one that matches where the text goes.

- **Invisible and control characters** (:data:`UNSAFE_CHARACTERS`): every control (C0 but tab
  and newline, DEL, C1), format (bidi marks, embeddings, overrides and isolates such as U+061C,
  U+200E, U+202E, U+2066; zero-width and tag characters; U+FEFF), surrogate and line/paragraph
  separator character, and Unicode's other default-ignorable ones. Markdown drops them; terminal
  text shows them as ``\\x1b``-style escapes, so a reader sees what was there and the terminal
  receives none of it (no OSC title or hyperlink, no CSI, no carriage-return overwrite).
- **Workflow commands** (:func:`no_workflow_commands`): the Actions runner runs ``::name::`` at
  the start of a line after trimming whitespace (``ActionCommand.TryParseV2``) and the legacy
  ``##[name]`` *anywhere* in a line (``ActionCommand.TryParse``), reading ``\\r`` as a line
  break. Every output we print breaks both visibly: ``\\::name::`` and ``##\\[name]``.
- **Links**: untrusted text never becomes a link. What may: the trusted workflow-run and job
  summary URLs of the :class:`~exportwatch.render.common.RenderContext` (the action fills them
  from the runner's environment, never from a report), source links built by :func:`blob_url`,
  and, inside hints, documentation on this allow-list (:data:`DOCUMENTATION_LINKS`), https only,
  no user, port or ``..`` segment: ``docs.pytorch.org``, ``pytorch.org``, ``onnxruntime.ai``,
  ``onnx.ai``, ``docs.python.org``, ``huggingface.co/docs/`` and ``github.com/exportwatch/``
  (this project's own pages). Any other URL, a report's ``run_url`` included, is inert text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

#: Longest single-line message shown in a comment; the job summary has the traceback.
MESSAGE_LIMIT = 300
#: Longest path, name or other short label.
LABEL_LIMIT = 160
#: Longest traceback shown in a PR comment (the job summary and artifact have more).
DETAIL_LIMIT = 4_000

_ZWJ = "\u200d"  # zero-width joiner: invisible, and breaks @mention / #123 autolinking
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
#: What no output may carry from untrusted text: C0 controls but tab and newline, DEL, C1
#: controls; every format character (Cf: bidi marks, embeddings, overrides and isolates,
#: zero-width characters, U+FEFF, interlinear annotations, tag characters); surrogates; line
#: and paragraph separators (they end a line for some readers but not others); and the rest of
#: Unicode's default-ignorable code points (variation selectors, fillers), which render as nothing.
#: Checked against ``unicodedata`` over every code point in tests/unit/test_inert_outputs.py.
UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    "\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\u3164\ud800-\udfff\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
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
    return UNSAFE_CHARACTERS.sub("", value)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending in an ellipsis when cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def one_line(text: object, *, limit: int = MESSAGE_LIMIT) -> str:
    """Cleaned, newlines folded to ``⏎``, runs of whitespace collapsed, capped."""
    return _fold(clean(text), limit)


def _fold(value: str, limit: int) -> str:
    value = " ⏎ ".join(part.strip() for part in value.split("\n") if part.strip())
    value = re.sub(r"[ \t]+", " ", value)
    return shorten(value, limit)


#: A run of hex digits GitHub may read as a commit: 7 to 40 of them, alone or in ``owner/repo@sha``.
_HEX_RUN = re.compile(r"\b[0-9A-Fa-f]{7,}\b")


def _break_hex(match: re.Match[str]) -> str:
    """A joiner every 6 digits: no piece is long enough for GitHub to link it to a commit."""
    run = match[0]
    return _ZWJ.join(run[i : i + 6] for i in range(0, len(run), 6))


def _break_references(text: str) -> str:
    """``@octocat``, ``#123``, ``GH-123`` must not notify or cross-link, commit shas (``1a2b3c4``,
    40 hex digits, ``owner/repo@sha``) must not link to a commit of this repository, and bare
    URLs (``https://…``, ``www.…``) must not turn into links GitHub's autolinker would make."""
    text = text.replace("@", "@" + _ZWJ).replace("#", "#" + _ZWJ)
    text = text.replace("://", ":" + _ZWJ + "//")
    text = _HEX_RUN.sub(_break_hex, text)
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
#: Where a hint may link (host, path prefix): documentation only, see the module docstring.
#: Hints come from a report, which on a fork PR a stranger wrote; any other URL stays text.
DOCUMENTATION_LINKS: tuple[tuple[str, str], ...] = (
    ("docs.pytorch.org", "/"),
    ("pytorch.org", "/"),
    ("onnxruntime.ai", "/"),
    ("onnx.ai", "/"),
    ("docs.python.org", "/"),
    ("huggingface.co", "/docs/"),
    ("github.com", "/exportwatch/"),
)
#: A code span, or a bare http(s) URL (trailing punctuation is the sentence's, not the URL's).
_CODE_SPAN_OR_URL = re.compile(_CODE_SPAN.pattern + r"""|(?P<url>https?://[^\s<>`]*[^\s<>`.,;:!?)\]'"])""")


def documentation_url(url: str) -> str | None:
    """``url`` ready for a link when it is on :data:`DOCUMENTATION_LINKS`, else None.

    The authority must be the host itself (no user, port, or backslash, which browsers read as
    a path separator) and the path may not climb out of its prefix with ``..``.
    """
    safe = safe_url(url)
    if safe is None:
        return None
    parts = urlsplit(safe)
    path = parts.path or "/"
    segments = path.split("/")
    if parts.scheme != "https" or "%2e" in path.lower() or ".." in segments or "%5c" in safe.lower():
        return None
    for host, prefix in DOCUMENTATION_LINKS:
        if parts.netloc == host and (path + "/").startswith(prefix):
            return safe
    return None


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
            url = documentation_url(match["url"])
            if url is None:
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


def term_clean(text: object) -> str:
    """Text for a terminal: every unsafe character shown as an escape (``\\x1b``, ``\\u202e``).

    Nothing reaches the terminal that it would act on (no OSC title or hyperlink, no CSI, no C1
    control, no backspace), and the reader still sees what the text held. A carriage return
    becomes a line break, so it cannot overwrite what came before it on the line.
    """
    value = "" if text is None else str(text)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return UNSAFE_CHARACTERS.sub(lambda m: _escape_char(m[0]), value)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def term_text(text: object, *, limit: int = MESSAGE_LIMIT) -> str:
    """One line for a terminal or CI log: controls shown as escapes, no workflow command, capped."""
    return no_workflow_commands(_fold(term_clean(text), limit))


def term_block(text: object, *, limit: int = DETAIL_LIMIT) -> str:
    """Several lines for a terminal or CI log, cleaned as by :func:`term_text` and capped."""
    return no_workflow_commands(shorten(term_clean(text).expandtabs(4), limit))


def term_width(text: str) -> int:
    """Display columns: wide (CJK) characters take two, combining marks and joiners none."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\u2060":
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def _runner_ignores(ch: str) -> bool:
    """What the runner's comparison may skip (ICU ignores marks, format and control characters)."""
    return unicodedata.category(ch) in ("Mn", "Me", "Cf", "Cc") or bool(UNSAFE_CHARACTERS.match(ch))


def no_workflow_commands(text: str, *, bracket: str = "\\[") -> str:
    """Every line of ``text`` made inert for the Actions runner, visibly.

    A line whose first character (after whitespace, ANSI colour and characters the runner's
    comparison ignores) begins ``::`` gets a backslash before it; each ``##[`` anywhere gets its
    ``[`` replaced by ``bracket`` (``\\[``; JSON passes ``\\u005b`` to stay valid). Lines break
    where the runner breaks them: ``\\n``, ``\\r`` and ``\\r\\n``. Applying it twice changes
    nothing more.
    """
    parts = re.split(r"(\r\n|\r|\n)", text)
    parts[::2] = [_inert_line(line, bracket) for line in parts[::2]]
    return "".join(parts)


def _inert_line(line: str, bracket: str) -> str:
    if ":" not in line and "#" not in line:
        return line
    out = list(line)
    i = 0
    while i < len(line):
        sequence = _ESCAPE_SEQUENCE.match(line, i)
        if sequence:
            i = sequence.end()
        elif line[i].isspace() or _runner_ignores(line[i]):
            i += 1
        else:
            break
    if line.startswith(":", i) and _next_visible(line, i + 1) == ":":
        out[i] = "\\:"
    start = line.find("#")
    while start >= 0:
        second = _next_visible_at(line, start + 1)
        if second is not None and line[second] == "#":
            third = _next_visible_at(line, second + 1)
            if third is not None and line[third] == "[":
                out[third] = bracket
        start = line.find("#", start + 1)
    return "".join(out)


def _next_visible_at(line: str, i: int) -> int | None:
    while i < len(line) and _runner_ignores(line[i]) and not line[i].isspace():
        i += 1
    return i if i < len(line) else None


def _next_visible(line: str, i: int) -> str:
    at = _next_visible_at(line, i)
    return line[at] if at is not None else ""


def json_text(text: str) -> str:
    """JSON text with every unsafe character and each ``##[`` written as a ``\\u`` escape.

    The decoded data is unchanged; only the bytes a terminal or the runner would act on go.
    """
    escaped = UNSAFE_CHARACTERS.sub(lambda m: json.dumps(m[0])[1:-1], text)
    return no_workflow_commands(escaped, bracket="\\u005b")


def marker_key(key: object) -> str:
    """A suffix for the hidden comment marker: letters, digits and ``._/-`` only, no ``--``."""
    value = re.sub(r"[^A-Za-z0-9_./-]+", "-", clean(key))
    return re.sub(r"-{2,}", "-", value).strip("-")[:80]  # "--" has no place in an HTML comment


def repository_path(path: object) -> str | None:
    """``path`` as a normalised, relative path inside the repository, or None. Pure.

    Annotation paths come from reports, which a fork's run writes: an absolute path, a ``..``
    step, a backslash, a drive letter or a control character is no file of this repository.
    """
    if not isinstance(path, str) or not path or "\\" in path:
        return None
    if UNSAFE_CHARACTERS.search(path) or any(ch in path for ch in "\t\n"):
        return None
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return None
    parts = [p for p in PurePosixPath(path).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)
