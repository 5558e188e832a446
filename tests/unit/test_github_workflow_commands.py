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
