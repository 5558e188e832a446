"""Untrusted text in a comment must not link to a commit of this repository (issue 29, item 6)."""

from __future__ import annotations

import re

import pytest

from exportwatch.render.escape import md_text

ZWJ = "\u200d"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "text",
    [
        f"fixed in {SHA}",
        "fixed in 1a2b3c4",
        f"see octo/vision@{SHA}",
        "see octo/vision@1a2b3c4d",
        f"({SHA.upper()})",
    ],
)
def test_md_text__breaks_every_hex_run_github_could_link_to_a_commit(text):
    out = md_text(text)
    assert re.search(r"\b[0-9A-Fa-f]{7,}\b", out) is None, out
    assert out.replace(ZWJ, "").replace("\\", "") == text  # the reader sees the same text


def test_md_text__leaves_short_hex_and_ordinary_words_alone():
    assert md_text("bad input 0x1f at layer 12 of encoder") == "bad input 0x1f at layer 12 of encoder"
