"""The pure halves of publishing: what to do with the comment, batches, outputs, PR choice."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exportwatch.github.config import CommentMode
from exportwatch.github.publish import (
    MAX_ANNOTATION_BYTES,
    MAX_CHECK_TEXT_BYTES,
    MAX_COMMENT_CHARS,
    Annotation,
    CommentAction,
    PullRef,
    annotation_batches,
    append_summary,
    choose_pull_request,
    decide_comment_action,
    format_outputs,
    is_our_comment,
    shorten_body,
    utf8_size,
    with_marker,
    write_outputs,
)
from exportwatch.render.escape import repository_path
from tests.runner_files import parse_outputs

MARKER = "<!-- exportwatch:comment -->"

# ------------------------------------------------------------------------------ the comment


@pytest.mark.parametrize(
    ("mode", "changed", "existing", "expected"),
    [
        (CommentMode.ALWAYS, False, None, CommentAction.CREATE),
        (CommentMode.ALWAYS, True, None, CommentAction.CREATE),
        (CommentMode.ALWAYS, False, "old", CommentAction.UPDATE),
        (CommentMode.ON_CHANGE, True, None, CommentAction.CREATE),
        (CommentMode.ON_CHANGE, False, None, CommentAction.SKIP),
        (CommentMode.ON_CHANGE, False, "old", CommentAction.UPDATE),  # never leave a stale comment
        (CommentMode.ON_CHANGE, True, "old", CommentAction.UPDATE),
        (CommentMode.ON_CHANGE, False, "new", CommentAction.UNCHANGED),
        (CommentMode.ALWAYS, True, "new", CommentAction.UNCHANGED),
        (CommentMode.OFF, True, None, CommentAction.SKIP),
        (CommentMode.OFF, True, "old", CommentAction.SKIP),
    ],
)
def test_decide_comment_action__follows_the_comment_mode(mode, changed, existing, expected):
    assert decide_comment_action(mode=mode, changed=changed, existing_body=existing, body="new") is expected


def test_is_our_comment__needs_the_marker_and_the_same_author():
    assert is_our_comment(body=f"{MARKER}\nhi", author="Bot", marker=MARKER, author_login="bot")
    assert not is_our_comment(body=f"{MARKER}\nhi", author="mallory", marker=MARKER, author_login="bot")
    assert not is_our_comment(body="hi", author="bot", marker=MARKER, author_login="bot")
    assert not is_our_comment(body=None, author="bot", marker=MARKER, author_login="bot")
    assert not is_our_comment(body=MARKER, author=None, marker=MARKER, author_login="bot")


def test_with_marker__adds_the_marker_once():
    assert with_marker("body", MARKER) == f"{MARKER}\nbody"
    assert with_marker(f"{MARKER}\nbody", MARKER) == f"{MARKER}\nbody"


def test_shorten_body__leaves_a_short_body_alone():
    assert shorten_body("short", note="cut") == "short"


def test_shorten_body__fits_the_limit_keeps_the_start_and_says_so():
    body = MARKER + "\n" + "\n".join(f"| row {i} | ok |" for i in range(10_000))
    short = shorten_body(body, limit=MAX_COMMENT_CHARS, note="see the summary")
    assert len(short) <= MAX_COMMENT_CHARS
    assert short.startswith(MARKER) and short.endswith("see the summary")
    assert "| row 0 | ok |" in short


def test_shorten_body__closes_the_details_blocks_and_code_fence_it_cut_open():
    body = "<details><summary>x</summary>\n\n```\n" + "trace line\n" * 10_000
    short = shorten_body(body, limit=5_000, note="cut")
    assert short.count("```") % 2 == 0
    assert len(re.findall("<details", short)) == len(re.findall("</details>", short))


def test_shorten_body__closes_a_long_fence_whose_content_holds_a_short_one():
    """md_code_block uses ```` when the traceback itself contains ```: close with ````."""
    from markdown_it import MarkdownIt

    body = "<details><summary>Traceback</summary>\n\n````\n```python\nx = 1\n```\n" + "line\n" * 10_000
    short = shorten_body(body, limit=5_000, note="**see the job summary**")
    tokens = MarkdownIt("commonmark", {"html": True}).parse(short)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and "see the job summary" not in fences[0].content
    assert short.endswith("**see the job summary**")
    assert "</details>" in short.split("````")[-1]


# ------------------------------------------------------------------------------ check run


def test_annotation_batches__split_120_annotations_into_50_50_20():
    annotations = [Annotation(path="m.py", start_line=i + 1, message="x") for i in range(120)]
    assert [len(b) for b in annotation_batches(annotations)] == [50, 50, 20]


def test_annotation_batches__no_annotations_is_one_empty_batch():
    assert annotation_batches([]) == [[]]


def test_annotation__to_api_fills_end_line_and_caps_lengths():
    data = Annotation(path="a.py", start_line=3, message="m" * 70_000, title="t" * 300).to_api()
    assert data["end_line"] == 3 and data["annotation_level"] == "failure"
    assert len(data["message"]) < 65_536 and len(data["title"]) == 255
    assert "raw_details" not in data


# ------------------------------------------------------------------------------ outputs / summary


def test_format_outputs__uses_heredocs_that_survive_multiline_values():
    text = format_outputs({"verdict": "failed", "regressions": 2, "note": "a\nb\n\nc", "empty": None})
    assert parse_outputs(text) == {"verdict": "failed", "regressions": "2", "note": "a\nb\n\nc", "empty": ""}


def test_format_outputs__a_value_cannot_end_the_heredoc_early():
    hostile = "x\nghadelimiter_fixed\nname=injected"
    text = format_outputs({"note": hostile, "other": "y"}, delimiter="ghadelimiter_fixed")
    assert parse_outputs(text) == {"note": hostile, "other": "y"}


def test_format_outputs__delimiters_are_random():
    assert format_outputs({"a": "1"}) != format_outputs({"a": "1"})


def test_format_outputs__refuses_an_invalid_output_name():
    with pytest.raises(ValueError, match="invalid output name"):
        format_outputs({"bad name": "x"})


def test_write_outputs__appends_to_the_file(tmp_path):
    path = tmp_path / "output"
    path.write_text("earlier<<EOF\n1\nEOF\n")
    assert write_outputs(path, {"verdict": "passed"})
    assert parse_outputs(path.read_text()) == {"earlier": "1", "verdict": "passed"}


def test_write_outputs__without_a_file_only_logs(caplog):
    caplog.set_level("INFO")
    assert write_outputs(None, {"verdict": "passed"}) is False
    assert "verdict=passed" in caplog.text


def test_append_summary__appends_with_a_trailing_newline(tmp_path):
    path = tmp_path / "summary.md"
    assert append_summary(path, "# one")
    assert append_summary(path, "two\n")
    assert path.read_text() == "# one\ntwo\n"
    assert append_summary(None, "x") is False


# ------------------------------------------------------------------------------ PR lookup


def pr(number: int, *, sha: str, repo: str = "fork/r") -> PullRef:
    return PullRef(number=number, head_sha=sha, head_ref="b", head_repo=repo, base_sha=None, base_ref="main")


def test_choose_pull_request__picks_the_pr_whose_head_is_the_runs_commit():
    chosen = choose_pull_request([pr(1, sha="a"), pr(2, sha="b")], head_repo="fork/r", head_sha="b")
    assert chosen is not None and chosen.number == 2


def test_choose_pull_request__ignores_a_pr_from_another_repository_with_the_same_commit():
    assert choose_pull_request([pr(1, sha="a", repo="other/r")], head_repo="fork/r", head_sha="a") is None


def test_choose_pull_request__ignores_a_pr_whose_head_moved_on():
    assert choose_pull_request([pr(1, sha="newer")], head_repo="fork/r", head_sha="older") is None


def test_is_our_comment__only_the_exact_login_counts_never_another_bot():
    def ours(author: str, login: str = "github-actions[bot]") -> bool:
        return is_our_comment(body=f"{MARKER}\nx", author=author, marker=MARKER, author_login=login)

    assert ours("github-actions[bot]") and ours("GitHub-Actions[bot]")
    assert not ours("exportwatch-app[bot]"), "another app's comment is not ours to edit"
    assert not ours("octocat") and not ours("[bot]")
    assert ours("exportwatch-app[bot]", login="exportwatch-app[bot]")


# ------------------------------------------------------------------------------ annotations: limits, paths


def test_annotation__message_and_raw_details_are_capped_in_utf8_bytes_not_characters():
    """GitHub's 64 KB is bytes: 40,000 x "é" is 80,000 bytes in 40,000 characters."""
    data = Annotation(path="a.py", start_line=1, message="é" * 40_000, raw_details="ß" * 40_000).to_api()
    for key in ("message", "raw_details"):
        assert len(data[key].encode("utf-8")) <= MAX_ANNOTATION_BYTES <= 64 * 1024
        assert set(data[key]) <= {"é", "ß"}, "never half a character"


def test_annotation__characters_above_u_ffff_are_replaced_github_refuses_them():
    data = Annotation(
        path="a.py", start_line=1, message="fails 🔥 here", title="x 𝔸", raw_details="trace 😀"
    ).to_api()
    assert data["message"] == "fails \ufffd here" and data["title"] == "x \ufffd"
    assert data["raw_details"] == "trace \ufffd"


def test_annotation__control_characters_are_stripped_from_title_message_and_details():
    data = Annotation(
        path="a.py",
        start_line=1,
        message="boom\x1b[31m red\x00\x07\u202e\r\nsecond\tline",
        title="reg\nression:\x1b]0;pwned\x07 cnn",
        raw_details="a\x08b\x9bc",
    ).to_api()
    assert data["message"] == "boom[31m red\nsecond\tline"
    assert data["title"] == "reg ression:]0;pwned cnn", "one line, no controls"
    assert data["raw_details"] == "abc"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("models/cnn.py", "models/cnn.py"),
        ("./models//cnn.py", "models/cnn.py"),
        ("../../etc/passwd", None),
        ("models/../../etc/passwd", None),
        ("/etc/passwd", None),
        ("C:/Windows/x.py", None),
        ("models\\cnn.py", None),
        ("models/cnn\n.py", None),
        ("models/\x1b[2Jcnn.py", None),
        ("", None),
        (".", None),
        (None, None),
    ],
)
def test_repository_path__keeps_only_relative_normalised_paths_inside_the_repository(raw, expected):
    assert repository_path(raw) == expected


def test_annotation_batches__leave_out_annotations_without_a_repository_path():
    annotations = [
        Annotation(path="models/a.py", start_line=1, message="ok"),
        Annotation(path=None, start_line=1, message="no file"),
        Annotation(path="../../etc/passwd", start_line=1, message="escapes"),
    ]
    (batch,) = annotation_batches(annotations)
    assert [a["path"] for a in batch] == ["models/a.py"]


# ------------------------------------------------------------------------------ shorten_body: the cap holds

_PIECES = st.sampled_from(
    ["\n", "```", "````", "~~~", "<details>", "</details>", "<DETAILS open>", "x", "é", "😀", " ", "|"]
)
_BODIES = st.lists(_PIECES, max_size=200).map("".join)
_NOTES = st.sampled_from(["", "cut", "**😀 see the job summary**"])


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(body=_BODIES, limit=st.integers(min_value=0, max_value=400), note=_NOTES)
def test_shorten_body__is_always_within_its_cap_in_characters_and_in_bytes(body, limit, note):
    for size in (len, utf8_size):
        short = shorten_body(body, limit=limit, note=note, size=size)
        assert size(short) <= limit


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(body=_BODIES, limit=st.integers(min_value=60, max_value=400))
def test_shorten_body__closes_every_fence_and_details_block_it_cut_open(body, limit):
    from exportwatch.github.publish import _open_blocks

    short = shorten_body(body, limit=limit, note="cut", size=utf8_size)
    if short not in (body, "cut"):
        assert short.endswith("\n\ncut")
        assert _open_blocks(short[: -len("\n\ncut")]) == (None, 0)


def test_shorten_body__many_open_details_blocks_still_fit_a_check_summary():
    """The closers once overran a fixed 200-character allowance (a 65,659-character summary)."""
    body = "<details><summary>m</summary>\n\n" * 300 + "row\n" * 20_000
    short = shorten_body(body, limit=MAX_CHECK_TEXT_BYTES, note="*(cut)*", size=utf8_size)
    assert utf8_size(short) <= MAX_CHECK_TEXT_BYTES
    assert short.count("</details>") == 300


def test_shorten_body__check_summary_cap_counts_bytes_as_github_does():
    body = "\n".join("| 😀 model | ❌ fail |" for _ in range(3_000))
    assert len(body) < MAX_CHECK_TEXT_BYTES < utf8_size(body)
    short = shorten_body(body, limit=MAX_CHECK_TEXT_BYTES, note="cut", size=utf8_size)
    assert short != body and utf8_size(short) <= MAX_CHECK_TEXT_BYTES
