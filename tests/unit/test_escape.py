"""Untrusted text helpers: each one is safe in the one context it names."""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from exportwatch.render.escape import (
    blob_url,
    clean,
    documentation_url,
    html_text,
    json_text,
    marker_key,
    md_code,
    md_code_block,
    md_details,
    md_link,
    md_text,
    md_text_with_code,
    one_line,
    safe_url,
    shorten,
    term_text,
)

MD = MarkdownIt("commonmark", {"html": True}).enable("table")
ZWJ = "\u200d"


def html(markdown: str) -> str:
    return MD.render(markdown)


def test_clean__strips_terminal_escapes_controls_and_bidi_overrides():
    text = "a\x1b[31mred\x1b[0m\x07b\u202ec\x00d\r\ne"
    assert clean(text) == "aredbcd\ne"


def test_one_line__folds_newlines_and_caps_the_length():
    assert one_line("first\n\n  second  \nthird") == "first ⏎ second ⏎ third"
    assert len(one_line("x" * 1000, limit=50)) == 50
    assert one_line("x" * 1000, limit=50).endswith("…")


def test_shorten__leaves_short_text_alone():
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd", 3) == "ab…"


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "</details>",
        "[click](javascript:alert(1))",
        "](javascript:alert(1))",
        "<img src=x onerror=alert(1)>",
        "**bold** _it_ ~~gone~~ $x^2$",
        "&lt;script&gt;",
        "&#60;script&#62;",
    ],
)
def test_md_text__renders_markup_as_literal_text(hostile):
    rendered = html(md_text(hostile))
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert "<strong>" not in rendered and "<em>" not in rendered and "</details>" not in rendered


def test_md_text__keeps_the_visible_text():
    assert html(md_text("a < b && c > d")) == "<p>a &lt; b &amp;&amp; c &gt; d</p>\n"


def test_md_text__breaks_mentions_and_issue_references():
    escaped = md_text("ping @octocat about #123 and acme/repo#7")
    assert "@octocat" not in escaped and "#123" not in escaped and "#7" not in escaped
    assert f"@{ZWJ}octocat" in escaped


def test_md_text__keeps_pipes_from_splitting_a_table_cell():
    table = f"| a | b |\n|---|---|\n| {md_text('x | y | z')} | 2 |\n"
    tokens = MD.parse(table)
    assert sum(t.type == "td_open" for t in tokens) == 2


@pytest.mark.parametrize("start", ["- item", "+ item", "1. item", "2) item", "# heading", "> quote", "==="])
def test_md_text__cannot_start_a_block_at_the_start_of_a_line(start):
    rendered = html(f"> {md_text(start)}")
    assert rendered.count("<blockquote>") == 1
    for tag in ("<ul>", "<ol>", "<h1>", "<h2>"):
        assert tag not in rendered


def test_md_text__leaves_version_strings_readable():
    assert md_text("2.6.0+cu124") == "2.6.0+cu124"


@pytest.mark.parametrize("text", ["plain", "a`b", "``double``", "`edge`", " spaced ", "</details>"])
def test_md_code__contains_any_backticks_and_shows_the_text(text):
    rendered = html(md_code(text))
    assert rendered.startswith("<p><code>") and rendered.endswith("</code></p>\n")
    assert "<details>" not in rendered


def test_md_code__keeps_the_code_on_one_line():
    assert "\n" not in md_code("a\n\nb")


def test_md_code_block__cannot_be_closed_by_its_content():
    hostile = "line\n```\n</details>\n````\n<script>x</script>"
    rendered = html(md_code_block(hostile))
    assert rendered.count("<pre>") == 1
    assert "&lt;/details&gt;" in rendered and "<script>" not in rendered


def test_md_code_block__caps_long_text_and_says_so():
    block = md_code_block("x" * 10_000, limit=100)
    assert len(block) < 300 and "more characters" in block


def test_md_details__keeps_hostile_text_inside_the_block():
    body = md_code_block("</details>\n<details>\n</summary>")
    rendered = html(md_details("Trace </summary></details>", body))
    assert rendered.count("<details>") == 1 and rendered.count("</details>") == 1
    assert rendered.index("&lt;/details&gt;") < rendered.index("</details>")


def test_html_text__escapes_tags_and_breaks_mentions():
    assert html_text("<b>@me</b>") == f"&lt;b&gt;@{ZWJ}me&lt;/b&gt;"


def test_md_text_with_code__keeps_code_spans_and_escapes_the_rest():
    text = "Use `torch.cond` for <branches> @team"
    out = md_text_with_code(text)
    rendered = html(out)
    assert "<code>torch.cond</code>" in rendered
    assert "&lt;branches&gt;" in rendered and f"@{ZWJ}team" in out


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "//evil.example", "ftp://x", "", "https://"],
)
def test_safe_url__refuses_anything_but_http_links(url):
    assert safe_url(url) is None


def test_safe_url__percent_encodes_characters_that_end_a_link():
    url = safe_url("https://github.com/a/b/actions/runs/1?x=(1) <y>")
    assert url is not None and " " not in url and "<" not in url and ")" not in url


def test_md_link__falls_back_to_the_label_for_unsafe_urls():
    assert md_link("label", "javascript:alert(1)") == "label"
    assert md_link("label", "https://example.com/a") == "[label](https://example.com/a)"


def test_blob_url__links_a_repo_relative_path_at_the_head_commit():
    url = blob_url(repository="acme/vision", sha="0123abc", path="models/cnn.py", line=42)
    assert url == "https://github.com/acme/vision/blob/0123abc/models/cnn.py#L42"


@pytest.mark.parametrize(
    ("repository", "sha", "path"),
    [
        (None, "0123abc", "models/cnn.py"),
        ("acme/vision", None, "models/cnn.py"),
        ("acme/vision", "0123abc", "/etc/passwd"),
        ("acme/vision", "0123abc", "../outside.py"),
        ("acme/vision", "0123abc", "https://evil.example/x.py"),
        ("acme vision", "0123abc", "models/cnn.py"),
        ("acme/vision", "not-a-sha", "models/cnn.py"),
    ],
)
def test_blob_url__refuses_paths_and_ids_it_cannot_trust(repository, sha, path):
    assert blob_url(repository=repository, sha=sha, path=path, line=1) is None


def test_blob_url__percent_encodes_odd_file_names():
    url = blob_url(repository="a/b", sha="0123abc", path="my models/(v2).py", line=3)
    assert url == "https://github.com/a/b/blob/0123abc/my%20models/%28v2%29.py#L3"


def test_term_text__cannot_move_the_cursor_or_recolour_the_terminal():
    assert "\x1b" not in term_text("\x1b[2J\x1b[1;1Hgotcha\x1b]0;title\x07")


def test_marker_key__keeps_the_html_comment_closed():
    key = marker_key("config/a.yml --> <script>")
    assert key == "config/a.yml-script"
    assert "--" not in marker_key("a--b")


def test_md_text_with_code__keeps_a_documentation_url_intact_as_a_link():
    url = "https://docs.pytorch.org/docs/stable/compile/dynamic_shapes_troubleshooting_guardon_errors.html"
    rendered = md_text_with_code(f"Use `torch._check(n >= 0)`. See {url}.")
    assert f"<{url}>." in rendered  # no backslash inside the URL, the full stop stays outside
    html = MarkdownIt("commonmark").render(rendered)
    assert f'href="{url}"' in html


def test_md_text_with_code__links_only_documentation_hosts_and_leaves_other_urls_inert():
    rendered = md_text_with_code("javascript:alert(1) http://evil.example/a_b>c <script> www.evil.example")
    assert "<javascript" not in rendered and "<http" not in rendered
    assert "http:\u200d//evil.example" in rendered  # GitHub's autolinker no longer sees a URL
    assert "www\u200d.evil.example" in rendered
    assert "\\<script\\>" in rendered


def test_md_text__breaks_bare_urls_and_gh_references_in_untrusted_text():
    text = md_text("log in at https://evil.example/login, see GH-12")
    assert "https://" not in text and "GH-12" not in text


def test_term_text__shows_control_and_bidi_characters_as_escapes_instead_of_sending_them():
    assert term_text("a\x1b[2Jb\x9bc\u202ed\x08") == "a\\x1b[2Jb\\x9bc\\u202ed\\x08"
    assert term_text("\U000e0041") == "\\U000e0041"


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("https://docs.pytorch.org/docs/stable/cond.html", True),
        ("https://huggingface.co/docs/transformers/serialization", True),
        ("https://github.com/exportwatch/exportwatch/issues", True),
        ("https://github.com/someone/else", False),
        ("https://huggingface.co/someone/model", False),
        ("https://huggingface.co/docs/%2e%2e/someone", False),
        ("https://user@docs.pytorch.org/x", False),
        ("http://docs.pytorch.org/x", False),
    ],
)
def test_documentation_url__links_only_the_allow_list(url, linked):
    assert (documentation_url(url) is not None) is linked


def test_json_text__escapes_what_a_terminal_or_the_runner_would_act_on_and_stays_json():
    value = {"m": "\x9b2J \u061c ##[error]x \ud800"}
    text = json_text(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert "##[" not in text and "\x9b" not in text and "\u061c" not in text
