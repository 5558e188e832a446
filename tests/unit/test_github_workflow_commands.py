"""Workflow commands: ::group::, ::error file=…,line=…:: with the runner's escaping."""

from __future__ import annotations

import io

import pytest

from exportwatch.github import workflow_commands as wc


def test_escape_data__escapes_percent_and_line_breaks():
    assert wc.escape_data("100%\r\ndone\n") == "100%25%0D%0Adone%0A"


def test_escape_property__also_escapes_colon_and_comma():
    assert wc.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_error__points_at_file_and_line_with_escaped_properties():
    line = wc.error("boom\nsecond line", file="src/a,b:c.py", line=12, title="x: y")
    assert line == "::error file=src/a%2Cb%3Ac.py,line=12,title=x%3A y::boom%0Asecond line"


def test_annotation__leaves_out_unknown_properties_and_rejects_unknown_levels():
    assert wc.warning("careful") == "::warning::careful"
    assert wc.notice("n", file="f.py", line=None) == "::notice file=f.py::n"
    with pytest.raises(ValueError):
        wc.annotation("fatal", "x")


def test_annotation__a_message_cannot_start_a_new_command():
    line = wc.error("x\n::add-mask::leak")
    assert "\n" not in line and line.count("::") == 4


def test_grouped__closes_the_group_even_when_the_block_raises():
    out = io.StringIO()
    with pytest.raises(RuntimeError), wc.grouped("model a", stream=out):
        print("inside", file=out)
        raise RuntimeError
    assert out.getvalue() == "::group::model a\ninside\n::endgroup::\n"


def test_group__a_hostile_title_stays_one_line_without_controls():
    title = "evil\n::error file=SECURITY.md::approved\r\x1b]0;pwned\x07 %0A ##[warning]x"
    line = wc.group(title)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert line.startswith("::group::evil ::error"), "inside the data, a '::' is only text"
    assert "%250A" in line, "a literal %0A is escaped, so the runner cannot unescape it to a newline"
    assert "##[" not in line


@pytest.mark.parametrize(
    "text",
    [
        "::error::pwned",
        "  ::add-mask::x",
        "\x1b[31m::warning::x",
        "ok ##[error]x",
        "a\n::error::b",
        "a\r::set-output::b",
    ],
)
def test_inert__no_line_of_untrusted_text_can_start_a_workflow_command(text):
    line = wc.inert(text)
    assert "\n" not in line and "\r" not in line
    assert not line.lstrip().startswith("::") and "##[" not in line


def test_inert_formatter__every_logged_line_is_inert_tracebacks_included():
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(wc.InertFormatter("%(message)s"))
    logger = logging.getLogger("test.inert")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("model %s", "m\n::error file=a.py::pwned\x1b[2J")
        try:
            raise ValueError("boom\n::add-mask::secret ##[error]x")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert any("pwned" in line for line in lines) and any("add-mask" in line for line in lines)
    assert all(not line.lstrip().startswith("::") for line in lines)
    assert "##[" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_annotation__control_characters_are_dropped_from_message_and_properties():
    line = wc.error("bad\x1b[2J\x00 thing", file="a\x07.py", title="t\x1b]0;x\x07")
    assert "\x1b" not in line and "\x00" not in line and "\x07" not in line
    assert line == "::error file=a.py,title=t::bad thing"
