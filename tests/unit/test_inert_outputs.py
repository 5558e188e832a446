"""Untrusted text is inert in every output that is not the PR comment (issue 15, item 1).

A report (on a fork PR: a stranger's artifact) and a sweep's exceptions and module paths reach
the terminal, CI logs and the markdown views. Whatever they hold, no line we print may be a
GitHub Actions workflow command, the terminal sees no control characters, bidi and invisible
format characters are gone from every view, and only trusted URLs become links.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from exportwatch.diagnose.catalogue import HINTS, LIBRARY_HINTS
from exportwatch.diff import diff_reports, gate
from exportwatch.render import RenderContext, render
from exportwatch.render.escape import (
    UNSAFE_CHARACTERS,
    clean,
    md_text_with_code,
    no_workflow_commands,
    term_block,
    term_text,
)
from exportwatch.report import BUG_REPORT_URL, JobResult, Report, SubmoduleResult, Verdict, write_report
from exportwatch.sweep.progress import Progress, sweep_table
from tests.conftest import REPO_ROOT
from tests.factories import RUN_URL, base_report, job, report, sub

# --- the runner's parser, ported -------------------------------------------------------------

#: Commands the runner registers (src/Runner.Worker/ActionCommandManager.cs and its extensions).
REGISTERED = {
    "stop-commands", "set-env", "set-output", "save-state", "add-mask", "add-path", "add-matcher",
    "remove-matcher", "debug", "notice", "warning", "error", "group", "endgroup", "echo",
}  # fmt: skip


def _ignorable(ch: str) -> bool:
    """What a culture-sensitive .NET comparison (ICU) may skip: marks, format and control chars."""
    return unicodedata.category(ch) in ("Mn", "Me", "Cf", "Cc") and not ch.isspace()


def runner_command(line: str) -> str | None:
    """The workflow command the Actions runner would run for ``line``, or None.

    A port of ``ActionCommand.TryParseV2`` (``::name …::data`` after ``TrimStart``) and
    ``ActionCommand.TryParse`` (legacy ``##[name …]data``, found *anywhere* in the line)
    from actions/runner ``src/Runner.Common/ActionCommand.cs``. Both are tried on the line as
    printed and with ignorable characters dropped, as an ICU comparison would.
    """
    for text in (line, "".join(ch for ch in line if not _ignorable(ch))):
        message = text.lstrip()
        if message.startswith("::"):
            end = message.find("::", 2)
            if end >= 0 and message[2:end].split(" ", 1)[0].lower() in REGISTERED:
                return message[2:end].split(" ", 1)[0]
        start = text.find("##[")
        if start >= 0:
            end = text.find("]", start)
            if end >= 0 and text[start + 3 : end].split(" ", 1)[0].lower() in REGISTERED:
                return text[start + 3 : end].split(" ", 1)[0]
    return None


def runner_lines(text: str) -> list[str]:
    """Lines as the runner reads a step's output (.NET ``ReadLine``: ``\\r``, ``\\n``, ``\\r\\n``)."""
    return re.split(r"\r\n|\r|\n", text)


def commands_in(text: str) -> list[tuple[str, str]]:
    return [(cmd, line) for line in runner_lines(text) if (cmd := runner_command(line))]


def test_runner_port__recognises_the_forms_the_runner_runs():
    """The port itself: without it the checks below would prove nothing."""
    assert runner_command("::set-output name=x::y") == "set-output"
    assert runner_command("   \t::add-mask::secret") == "add-mask"
    assert runner_command("text then ##[error]boom") == "error"
    assert runner_command("\u200b::warning::zero-width first") == "warning"
    assert runner_command("#\u200d#[group]joined") == "group"
    assert runner_command("a ::set-output name=x::y") is None
    assert runner_command("::not-a-command::x") is None


# --- a hostile corpus -------------------------------------------------------------------------

WORKFLOW = [
    "::set-output name=gate::pass",
    "  ::add-mask::hidden",
    "\t::stop-commands::tok",
    "\u200b::warning::after a zero-width space",
    "\u00a0::error::after a no-break space",
    "prefix ##[set-output name=gate;]pass",
    "##[group]fold the log",
    "#\u0301#[error]a mark between the hashes",
    "\ufe0f::notice::after a variation selector",
    ":\u200d:debug::a joiner between the colons",
]
TERMINAL = [
    "\x1b]0;PWNED title\x07",
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "\x1b[2J\x1b[H",
    "\x9b2J C1 CSI",
    "\x9d0;C1 OSC\x9c",
    "innocent\rEVIL overwrite",
    "backspace\x08\x08\x08\x08gone",
    "nul\x00byte",
    "del\x7f",
    "lone \ud800 surrogate",
]
INVISIBLE = [
    "\u061c",  # ARABIC LETTER MARK
    "\u200e", "\u200f",  # LRM, RLM
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # embeddings and overrides
    "\u2066", "\u2067", "\u2068", "\u2069",  # isolates
    "\u2028", "\u2029",  # line and paragraph separators
    "\ufeff", "\u200b", "\u2060", "\u00ad", "\u180e", "\u3164",
    "\U000e0041",  # a TAG character (invisible "ASCII smuggling")
    "\ufff9",  # interlinear annotation anchor
]  # fmt: skip
HOSTILE = "\n".join(WORKFLOW + TERMINAL) + "".join(INVISIBLE)
#: What a report on disk can hold: the loader refuses lone surrogates (tests/unit/test_report_untrusted.py).
ON_DISK = HOSTILE.replace("\ud800", "")


def hostile_pair(text: str = HOSTILE) -> tuple[Report, Report]:
    """Every untrusted field of a report holds the corpus: names, paths, messages, hints, URL."""
    evil = sub(
        f"blocks.{WORKFLOW[0]}",
        "fail",
        origin=True,
        module_type=text,
        category=text,
        message=text,
        detail=text,
        frame=f"{WORKFLOW[1]}.py:7",
        function=text,
        source=text,
        hint=text,
    )
    head = report(
        job(WORKFLOW[0], WORKFLOW[5], sub("", "fail", message=text), evil),
        job("fixed", "export", sub("", "ok")),
        job(text, "export", sub("", "skipped", reason=text)),
        job("::group::m", "export", sub("", "fail", message=text)),
        run_url="https://evil.example/phish?" + text,
        torch=WORKFLOW[2],
    )
    base = base_report(
        job(WORKFLOW[0], WORKFLOW[5], sub("", "ok")),
        job("fixed", "export", sub("", "fail", message=text, category=text)),
        job(text, "export", sub("", "ok")),
        torch="2.5",
    )
    return base, head


def rendered(fmt: str, *, pair: tuple[Report, Report] | None = None, **context: object) -> str:
    base, head = pair or hostile_pair()
    changes = diff_reports(base, head)
    return render(changes, gate(changes, "regression"), fmt, context=RenderContext(**context))  # type: ignore[arg-type]


def control_characters(text: str) -> list[str]:
    """Control characters other than the newlines that give the output its lines."""
    return sorted({repr(ch) for ch in text if unicodedata.category(ch) == "Cc" and ch != "\n"})


# --- 1. no line starts a workflow command -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "summary"])
def test_inert__no_line_of_any_format_is_a_workflow_command(fmt):
    text = rendered(fmt, color=True)
    assert commands_in(text) == []


def test_inert__the_text_format_still_shows_what_the_message_said():
    text = rendered("text")
    assert "\\::set-output name=gate::pass" in text  # visibly broken, not hidden
    assert "##\\[group]fold the log" in text


@pytest.mark.slow
def test_inert__exportwatch_diff_prints_no_workflow_command(tmp_path):
    """The CLI as a workflow runs it: default text format, untrusted reports, real stdout."""
    base, head = hostile_pair(ON_DISK)
    write_report(base, tmp_path / "base.json")
    write_report(head, tmp_path / "head.json")
    for fmt in ("text", "json", "markdown"):
        run = subprocess.run(
            [sys.executable, "-m", "exportwatch", "diff", "base.json", "head.json", "--format", fmt],
            cwd=tmp_path,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "PYTHONIOENCODING": "utf-8"},
            timeout=120,
        )
        assert run.returncode == 1, run.stderr.decode(errors="replace")  # the gate fails; no crash
        stdout = run.stdout.decode("utf-8")
        assert commands_in(stdout) == [], fmt
        assert control_characters(stdout) == [], fmt


def test_inert__term_helpers_neutralise_a_fragment_that_starts_a_line():
    """Callers that put one fragment at the start of a line (the action's log) are safe too."""
    for text in WORKFLOW:
        assert runner_command(term_text(text)) is None
        assert commands_in(term_block(text)) == []


def test_inert__neutralising_twice_changes_nothing_more():
    once = no_workflow_commands(HOSTILE)
    assert no_workflow_commands(once) == once


# --- 2. the sweep's terminal output -----------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def hostile_job(name: str) -> JobResult:
    subs = [
        SubmoduleResult(path="", module_type="M", verdict=Verdict.FAIL, message=HOSTILE),
        SubmoduleResult(path=name, module_type=HOSTILE, verdict=Verdict.FAIL, origin=True),
    ]
    return JobResult(model=name, target=name, device=name, verdict=Verdict.FAIL, duration_s=1.0,
                     reason=name, submodules=subs)  # fmt: skip


@pytest.mark.parametrize("stream_type", [io.StringIO, Terminal])
def test_inert__sweep_progress_sends_no_control_characters(stream_type):
    stream = stream_type()
    progress = Progress(total=2, stream=stream)
    progress.start(HOSTILE, HOSTILE)
    progress.result(hostile_job(HOSTILE))
    skipped = hostile_job(HOSTILE)
    skipped.verdict = Verdict.SKIPPED
    progress.result(skipped)
    progress.message(f"error: {HOSTILE}")
    progress.close()
    text = stream.getvalue()
    ours = "\r\x1b[2K"  # the live line rewrites itself on a terminal, and only there
    assert control_characters(text.replace(ours, "")) == []
    assert "\\x1b]0;PWNED title\\x07" in text  # shown, escaped, not sent
    assert commands_in(text.replace(ours, "\n")) == []
    assert "\ud800" not in text
    text.encode("utf-8")  # a lone surrogate would make the real stream raise


def test_inert__a_multi_line_message_keeps_its_lines_but_starts_no_command():
    stream = io.StringIO()
    Progress(total=1, stream=stream).message("note: first\n::set-output name=x::y\n##[error]z")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0] == "note: first"
    assert commands_in(stream.getvalue()) == []


def test_inert__the_sweep_table_sends_no_control_characters_or_commands():
    table = sweep_table(Report(jobs=[hostile_job(HOSTILE), hostile_job(WORKFLOW[0])]))
    assert control_characters(table) == []
    assert commands_in(table) == []
    widths = {len(line) for line in table.splitlines()[:2]}
    assert len(widths) == 1  # still a table: header and rule line up


def test_inert__text_format_sends_no_control_characters_but_its_own_colour():
    plain = rendered("text")
    assert control_characters(plain) == []
    coloured = rendered("text", color=True)
    assert control_characters(re.sub(r"\x1b\[[0-9;]*m", "", coloured)) == []
    assert "\\x1b[2J" in plain  # the reader sees what the message held


def test_inert__terminal_text_turns_a_carriage_return_into_a_visible_break():
    assert "EVIL" in term_text("innocent\rEVIL") and "\r" not in term_text("innocent\rEVIL")
    assert term_text("innocent\rEVIL").startswith("innocent")


# --- 3. bidi and invisible format characters --------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "markdown", "summary"])
def test_inert__no_bidi_or_invisible_character_reaches_any_view(fmt):
    text = rendered(fmt)
    found = sorted({f"U+{ord(ch):04X}" for ch in INVISIBLE if ch in text})
    assert found == []


def test_inert__json_keeps_the_data_but_escapes_the_characters():
    text = rendered("json")
    data = json.loads(text)
    messages = [c["head_result"]["message"] for c in data["cells"] if c["head_result"]]
    assert HOSTILE in messages  # the exact value, for users who write their own gate
    assert "\\u202e" in text and "\\u061c" in text


def test_inert__the_unsafe_set_covers_every_control_format_and_separator_character():
    """Unicode's own categories decide, so a new bidi or format character cannot slip past."""
    missing = [
        f"U+{cp:04X}"
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs", "Zl", "Zp")
        and chr(cp) not in "\t\n"
        and not UNSAFE_CHARACTERS.fullmatch(chr(cp))
    ]
    assert missing == []
    assert clean("a\u061cb\u202ec\U000e0041d") == "abcd"


# --- 4. only trusted URLs become links --------------------------------------------------------


class Links(HTMLParser):
    """Links as GitHub would make them: ``<a href>``, and bare URLs in prose (GFM autolinks)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self._in_code = 0  # inside code, or a link's own text

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        self._in_code += tag in ("code", "pre", "a")

    def handle_endtag(self, tag):
        self._in_code -= tag in ("code", "pre", "a")

    def handle_data(self, data):
        if not self._in_code:
            self.hrefs.extend(re.findall(r"(?i)(?:https?://|www\.)[^\s<]+", data))


def hrefs(markdown: str) -> list[str]:
    parser = Links()
    parser.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))
    parser.close()
    return parser.hrefs


def trusted_pair() -> tuple[Report, Report]:
    base, head = hostile_pair()
    head.run_url = "https://evil.example/actions/runs/1"
    return base, head


@pytest.mark.parametrize("fmt", ["markdown", "summary"])
def test_inert__the_reports_run_url_is_never_a_link(fmt):
    text = rendered(fmt, pair=trusted_pair())
    assert not any("evil.example" in h for h in hrefs(text)), hrefs(text)
    assert "`https://evil.example/actions/runs/1`" in text  # still shown, as code


@pytest.mark.parametrize("fmt", ["markdown", "summary"])
def test_inert__the_trusted_run_url_from_the_context_is_the_run_link(fmt):
    text = rendered(fmt, pair=trusted_pair(), run_url=RUN_URL)
    assert RUN_URL in hrefs(text)
    assert not any("evil.example" in h for h in hrefs(text))


def test_inert__a_shortened_comment_points_at_the_job_summary_only_through_the_context():
    text = rendered("markdown", pair=trusted_pair(), max_chars=3_000)
    assert "Shortened to fit" in text
    assert not any("evil.example" in h for h in hrefs(text))
    text = rendered("markdown", pair=trusted_pair(), max_chars=3_000, summary_url=RUN_URL)
    assert f"[the job summary]({RUN_URL})" in text


HINT_URLS = [
    "https://github.com/attacker/phish",
    "https://huggingface.co/attacker/model",
    "https://pytorch.org@evil.example/x",
    "https://evil.example\\@pytorch.org/x",
    "https://huggingface.co/docs/../attacker",
    "https://docs.pytorch.org:8443/x",
    "http://docs.pytorch.org/docs/stable/x.html",
    "https://docs.pytorch.org.evil.example/x",
    "https://github.com/exportwatch/exportwatch/../../attacker/x",
]


@pytest.mark.parametrize("url", HINT_URLS)
def test_inert__a_hint_links_only_to_documentation(url):
    hint = f"Use `torch.cond`. See {url} for details."
    for text in (md_text_with_code(hint), rendered("markdown", pair=hint_pair(hint))):
        assert hrefs(text) == [] or all(_documentation(h) for h in hrefs(text)), hrefs(text)
        assert not any("attacker" in h or "evil" in h for h in hrefs(text))


def _documentation(href: str) -> bool:
    return href == BUG_REPORT_URL or href.startswith("https://github.com/acme/vision/blob/")


def hint_pair(hint: str) -> tuple[Report, Report]:
    base = base_report(job("m", "export", sub("", "ok")))
    head = report(job("m", "export", sub("", "fail", hint=hint)), run_url=None)
    return base, head


def test_inert__every_hint_exportwatch_writes_still_links_its_page():
    hints = [*HINTS.values(), *(entry.hint for entry in LIBRARY_HINTS)]
    flat = [h for item in hints for h in (item if isinstance(item, tuple) else (item,))]
    for hint in flat:
        assert hint.url in hrefs(rendered("markdown", pair=hint_pair(str(hint)))), hint.url


def test_inert__the_documentation_allow_list_is_in_the_module_docstring():
    import exportwatch.render.escape as escape

    doc = escape.__doc__ or ""
    for host in ("docs.pytorch.org", "pytorch.org", "onnxruntime.ai", "onnx.ai", "huggingface.co/docs/"):
        assert host in doc


def test_inert__the_corpus_file_round_trips(tmp_path: Path):
    """The hostile report is a valid report: the loader takes it, as it would a fork's."""
    from exportwatch.report import load_report

    _, head = hostile_pair(ON_DISK)
    write_report(head, tmp_path / "head.json")
    assert load_report(tmp_path / "head.json", untrusted=True).jobs[0].submodules[0].message == ON_DISK
