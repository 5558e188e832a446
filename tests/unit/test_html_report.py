"""The HTML report (exportwatch.render.html and ``exportwatch report``), read back by an HTML parser:
self-contained, the tree where it broke, links that land, and untrusted text that stays text.

The same page in a real browser (script, filter, search, a screenshot) is tests/browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from exportwatch.cli.main import main
from exportwatch.diff import ChangeKind, diff_reports
from exportwatch.render.escape import UNSAFE_CHARACTERS
from exportwatch.render.html import TRACEBACK_BUDGET, TRACEBACK_CHARS, anchor, render_html
from exportwatch.report import Mismatch, Report, UserFrame, write_report
from tests.factories import base_report, failing, job, ok, report, sub
from tests.unit.test_render import HOSTILE as MARKDOWN_HOSTILE
from tests.unit.test_render import hostile_pair

# --- reading the page back --------------------------------------------------------------------


class Page(HTMLParser):
    """What a browser would build: elements with their attributes, text, and open <details>."""

    VOID = frozenset({"meta", "input", "br", "hr", "img", "link"})

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.underflow = False
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._raw: str | None = None
        self.nodes: dict[str, dict] = {}  # li.node id -> {"open": bool|None, "text": [...]}
        self._node_stack: list[str] = []
        self._name_of: str | None = None
        self.feed(source)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag in ("script", "style"):
            self._raw = tag
        if tag == "li" and "node" in (attributes.get("class") or "").split():
            node_id = attributes["id"] or ""
            self.nodes[node_id] = {
                "open": None,
                "text": [],
                "classes": attributes["class"].split(),
                "name": None,
            }
            self._node_stack.append(node_id)
        if tag == "span" and attributes.get("class") == "name" and self._node_stack:
            self._name_of = self._node_stack[-1]
        if tag == "details" and self._node_stack and self.nodes[self._node_stack[-1]]["open"] is None:
            self.nodes[self._node_stack[-1]]["open"] = "open" in attributes
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.underflow = True
            return
        self.stack.pop()
        self._raw = None if tag in ("script", "style") else self._raw
        if tag == "li" and self._node_stack:
            self._node_stack.pop()

    def handle_data(self, data):
        if self._raw == "script":
            self.scripts.append(data)
        elif self._raw == "style":
            self.styles.append(data)
        else:
            self.text.append(data)
            if self._name_of is not None:
                self.nodes[self._name_of]["name"], self._name_of = data, None
            for node_id in self._node_stack[-1:]:
                self.nodes[node_id]["text"].append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    def node(self, name: str) -> dict:
        """The one node drawn with ``name`` (its path relative to its parent)."""
        found = [n for n in self.nodes.values() if n["name"] == name]
        assert len(found) == 1, (name, len(found))
        return found[0]


def page_of(head: Report, base: Report | None = None) -> tuple[str, Page]:
    source = render_html(head, base=base)
    return source, Page(source)


# --- a self-contained page --------------------------------------------------------------------


def test_html__is_one_self_contained_page_whose_policy_allows_only_its_own_style_and_script():
    _, page = page_of(report(failing("cnn"), ok("mlp")))
    assert not page.underflow and page.stack == []
    assert page.tags("link") == [] and page.tags("img") == [] and page.tags("iframe") == []
    assert all("src" not in attrs for _, attrs in page.elements)  # nothing is fetched
    assert len(page.tags("script")) == 1 and len(page.tags("style")) == 1
    (policy,) = [m["content"] for m in page.tags("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert policy is not None and "default-src 'none'" in policy
    for kind, body in (("script-src", page.scripts[0]), ("style-src", page.styles[0])):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{kind} 'sha256-{digest}'" in policy  # the browser runs ours, and nothing else
    assert "unsafe-inline" not in policy and "http" not in policy


def test_html__failing_branches_are_expanded_and_the_rest_collapsed():
    result = failing("cnn", origin_path="blocks.4")
    result.submodules += [sub("stem"), sub("stem.conv", "covered"), sub("blocks.3")]
    _, page = page_of(report(result))
    assert page.node("cnn")["open"] is True
    assert page.node("blocks")["open"] is True
    assert page.node("4")["open"] is True  # the origin: its message and source line show
    assert page.node("stem")["open"] is False  # passes, with children: collapsed
    assert page.node("3")["open"] is None  # a passing leaf: nothing to open


def test_html__a_node_shows_type_calls_duration_category_message_source_line_and_traceback():
    origin = sub(
        "blocks.4",
        "fail",
        origin=True,
        category="data-dependent-control-flow",
        message="Could not guard on data-dependent expression u0 > 0",
        detail="Traceback (most recent call last):\n  File x\nUserError: guard",
        frame="models/cnn.py:42",
        source="if x.sum() > 0:",
        hint="Use `torch.cond`. See https://docs.pytorch.org/docs/stable/cond.html or https://evil.example/x",
        module_type="models.cnn.Block",
    )
    origin.calls, origin.duration_s = 3, 0.25
    source, page = page_of(report(job("cnn", "export", sub("", "fail"), sub("blocks", "fail"), origin)))
    text = "".join(page.node("4")["text"])
    for expected in (
        "Block",
        "3× called",
        "0.25 s",
        "data-dependent-control-flow",
        "Could not guard on data-dependent expression u0 > 0",
        "models/cnn.py:42",
        "if x.sum() > 0:",
        "UserError: guard",  # in a collapsed <details>: the traceback on demand
    ):
        assert expected in text, expected
    assert re.search(r'<details class="tb"><summary>traceback</summary><pre>Traceback', source)
    hrefs = [a["href"] for a in page.tags("a")]
    assert (
        "https://github.com/acme/vision/blob/0123456789abcdef0123456789abcdef01234567/models/cnn.py#L42"
        in hrefs
    )
    assert "https://docs.pytorch.org/docs/stable/cond.html" in hrefs
    assert not any("evil.example" in (h or "") for h in hrefs)  # not on the allow-list: text
    assert "<code>torch.cond</code>" in source


def test_html__a_library_frame_is_named_and_not_linked_into_the_repository():
    origin = sub("attn", "fail", origin=True, message="boom")
    origin.user_frame = UserFrame(path="transformers/models/llama.py", line=7, function="forward",
                                  source="return cache", library="transformers")  # fmt: skip
    _, page = page_of(report(job("llama", "export", sub("", "fail"), origin)))
    text = "".join(page.node("attn")["text"])
    assert "transformers/models/llama.py:7" in text and "library code: transformers" in text
    assert "return cache" in text
    assert not any("llama.py" in (a["href"] or "") for a in page.tags("a"))


def test_html__a_mismatch_says_which_output_differs():
    bad = sub(
        "post",
        "mismatch",
        origin=True,
        mismatch=Mismatch(input_set="wide", output="out[0]", max_abs_error=0.5),
    )
    _, page = page_of(report(job("np", "onnx-legacy", sub("", "mismatch"), bad)))
    text = "".join(page.node("post")["text"])
    assert "out[0]" in text and "wide" in text and "max abs error 0.5" in text


def test_html__every_verdict_has_its_colour_and_icon():
    verdicts = ["ok", "covered", "same-as", "not-called", "fail", "mismatch", "error", "crash", "timeout",
                "oom", "skipped"]  # fmt: skip
    subs = [sub(f"m{i}", v, same_as="m0" if v == "same-as" else None) for i, v in enumerate(verdicts)]
    _, page = page_of(report(job("all", "export", sub("", "fail"), *subs)))
    tones = {"ok": "pass", "covered": "pass", "same-as": "neutral", "not-called": "neutral", "fail": "fail",
             "mismatch": "fail", "error": "error", "crash": "infra", "timeout": "infra", "oom": "infra",
             "skipped": "neutral"}  # fmt: skip
    for i, verdict in enumerate(verdicts):
        node = page.node(f"m{i}")
        assert f"t-{tones[verdict]}" in node["classes"], verdict
    # One glyph per verdict in the pill (a font every machine has: no emoji needed).
    source = render_html(report(job("all", "export", sub("", "fail"), *subs)))
    spans = re.findall(r'<span class="v t-(\w+)"><span class="glyph" aria-hidden="true">(.)</span>', source)
    assert {g for _, g in spans} >= {"✓", "=", "–", "✗", "≠", "!", "✸", "◷", "▣", "»"}


def test_html__same_as_nodes_link_to_their_twin_by_a_stable_sanitised_id():
    head = report(
        job(
            "enc",
            "export",
            sub("", "fail"),
            sub("encoder.0"),
            sub("encoder.1", "same-as", same_as="encoder.0"),
            sub("encoder.5", "fail", origin=True),
        ),
    )
    source, page = page_of(head)
    ids = [attrs["id"] for _, attrs in page.elements if attrs.get("id")]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i or "") for i in ids)
    (twin,) = [a["href"] for a in page.tags("a") if "twin" in (a.get("class") or "")]
    assert twin is not None and twin[1:] in ids
    assert page.nodes[twin[1:]]["name"] == "encoder.0"  # it lands on its twin (encoder is not listed)
    assert render_html(head) == source  # stable: the same report, the same ids
    assert anchor("m", "t", "a.b") != anchor("m", "t", "a_b") and anchor("m", "t", "a.b") == anchor(
        "m", "t", "a.b"
    )


def test_html__with_a_base_regressions_and_fixes_are_marked_as_the_diff_classifies_them():
    base = base_report(ok("cnn"), failing("mlp", origin_path="layers.1"), ok("vit", "onnx"))
    head = report(failing("cnn", origin_path="blocks.4"), ok("mlp"), ok("vit", "onnx"))
    source, page = page_of(head, base)
    changes = diff_reports(base, head)
    assert changes.cells[("cnn", "export", "cpu", "")].kind is ChangeKind.REGRESSION
    assert changes.cells[("mlp", "export", "cpu", "")].kind is ChangeKind.FIX
    regressions = [n for n in page.nodes.values() if "k-regression" in n["classes"]]
    fixes = [n for n in page.nodes.values() if "k-fix" in n["classes"]]
    assert regressions and fixes
    # Both sides are drawn, and the page can show either: radio buttons CSS reads.
    assert {"show-head", "show-base"} <= {i.get("id") for i in page.tags("input")}
    sides = [d.get("data-side") for d in page.tags("div") if d.get("data-side")]
    assert sides.count("head") == 3 and sides.count("base") == 3
    assert "1 regression<" in source and "1 fix<" in source  # singular, as every view says it


def test_html__a_job_on_one_side_only_says_so_on_the_other():
    _, page = page_of(report(ok("new")), base_report(ok("gone")))
    assert "".join(page.text).count("no result on") == 2


# --- untrusted text ---------------------------------------------------------------------------

#: Event handlers, a closing tag of ours, script, a javascript: URL, bidi controls and NUL.
EXTRA_HOSTILE = (
    '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    "</details></li></ul></section> javascript:alert(1) \u202egnp.exe\u2066 nul\x00byte \x1b[2J"
)
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "input", "header", "h1", "h2", "p", "b",
                "strong", "code", "div", "label", "span", "main", "table", "thead", "tbody", "tr", "th", "td",
                "a", "section", "ul", "li", "details", "summary", "pre", "script"}  # fmt: skip
ALLOWED_ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "name", "type", "id", "class", "checked",
                      "placeholder", "aria-label", "autocomplete", "aria-live", "aria-hidden", "for", "href",
                      "rel", "target", "open", "data-side"}  # fmt: skip


def hostile_reports() -> tuple[Report, Report]:
    base, head = hostile_pair()
    evil = head.jobs[0].submodules[1]
    evil.message = EXTRA_HOSTILE + MARKDOWN_HOSTILE
    evil.detail = (EXTRA_HOSTILE + "\n") * 3 + "x" * 1_000_000
    evil.aliases = [EXTRA_HOSTILE]
    evil.warnings = [EXTRA_HOSTILE] * 50
    head.jobs.append(job(EXTRA_HOSTILE, EXTRA_HOSTILE, sub("", "fail", message="m" * 1_000_000),
                         sub(EXTRA_HOSTILE, "same-as", same_as=""), device=EXTRA_HOSTILE))  # fmt: skip
    head.repository = EXTRA_HOSTILE
    head.git_sha = EXTRA_HOSTILE
    head.created_at = EXTRA_HOSTILE
    head.environment.python = EXTRA_HOSTILE
    return base, head


def test_html__hostile_text_is_only_text():
    base, head = hostile_reports()
    source, page = page_of(head, base)
    assert not page.underflow and page.stack == []
    assert {tag for tag, _ in page.elements} <= ALLOWED_TAGS
    for tag, attrs in page.elements:
        assert set(attrs) <= ALLOWED_ATTRIBUTES, (tag, attrs)
    assert len(page.tags("script")) == 1 and "pwned" not in page.scripts[0]
    hrefs = [a["href"] or "" for a in page.tags("a")]
    assert all(h.startswith(("#", "https://docs.pytorch.org/", "https://github.com/")) for h in hrefs), hrefs
    assert not any(h.startswith("https://github.com/") for h in hrefs)  # the repository is hostile
    assert "javascript:" not in " ".join(hrefs)
    assert all(
        re.fullmatch(r"[A-Za-z0-9_-]+", attrs["id"] or "") for _, attrs in page.elements if "id" in attrs
    )
    visible = "".join(page.text)
    assert '<img src=x onerror="document.title=' in visible  # shown, as text
    assert "<script>" in visible and "</details>" in visible
    assert not UNSAFE_CHARACTERS.search(source)  # no bidi, NUL or escape sequence survives
    assert "\x1b" not in source


def test_html__hostile_sizes_are_capped():
    base, head = hostile_reports()
    source = render_html(head, base=base)
    assert len(source) < 400_000  # two 1 MB strings in, a page that opens out
    assert max(len(line) for line in source.splitlines()) < TRACEBACK_CHARS + 2_000
    assert "more characters in the JSON report" in source


# --- the command ------------------------------------------------------------------------------


def test_report_command__writes_the_page_beside_the_report_by_default(tmp_path: Path, capsys):
    path = tmp_path / "sweep.json"
    write_report(report(failing("cnn")), path)
    assert main(["report", str(path)]) == 0
    page = Page((tmp_path / "sweep.html").read_text(encoding="utf-8"))
    assert page.node("cnn")["open"] is True
    assert "sweep.html" in capsys.readouterr().out


def test_report_command__with_a_base_and_an_output(tmp_path: Path):
    write_report(base_report(ok("cnn")), tmp_path / "base.json")
    write_report(report(failing("cnn")), tmp_path / "head.json")
    out = tmp_path / "out" / "page.html"
    assert main(["report", str(tmp_path / "head.json"), "--base", str(tmp_path / "base.json"), "-o", str(out),
                 "--title", "<b>vision</b>"]) == 0  # fmt: skip
    source = out.read_text(encoding="utf-8")
    assert "k-regression" in source and "&lt;b&gt;vision&lt;/b&gt;" in source


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read report"),
        ("{not json", "not valid JSON"),
        (json.dumps({"schema_version": 99}), "schema_version"),
        (json.dumps({"schema_version": 1, "jobs": [{"model": 1}]}), "report"),
    ],
)
def test_report_command__an_unreadable_report_is_a_usage_error_naming_the_file(
    tmp_path: Path, capsys, content, expected
):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["report", str(path), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err, err
    assert not (tmp_path / "x.html").exists()


def test_report_command__refuses_to_overwrite_its_input_or_write_where_it_cannot(tmp_path: Path, capsys):
    path = tmp_path / "r.json"
    write_report(report(ok("cnn")), path)
    assert main(["report", str(path), "-o", str(path)]) == 2
    assert "would overwrite an input report" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert main(["report", str(path), "-o", str(blocker / "page.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "page.html" in err and "cannot write" in err
    assert path.read_text(encoding="utf-8").startswith("{")


def test_html__tracebacks_beyond_the_page_budget_are_left_to_the_json_report():
    subs = [
        sub(f"layers.{i}", "fail", fp=f"fp-{i}", origin=True, detail="t" * TRACEBACK_CHARS)
        for i in range(700)
    ]
    source = render_html(report(job("big", "export", sub("", "fail", fp="own"), *subs)))
    assert source.count('<details class="tb">') < 700
    assert "traceback left out to keep this page small" in source
    assert "tracebacks were left out to keep this page small" in source
    assert len(source) < TRACEBACK_BUDGET + 1_500_000


def test_html__a_node_shows_the_inputs_it_was_called_with():
    from exportwatch.render.html import render_html
    from tests.factories import job, report, sub

    root = sub("", "fail", origin=True, message="boom")
    root.inputs = ["(f32[2, 16], mask=bool[2, 16])", "<script>x</script>"]
    page = render_html(report(job("m", "export", root)))
    assert "(f32[2, 16], mask=bool[2, 16])" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page


# --- what needs a look comes first (issue 25) ---------------------------------------------------


def test_html__shows_regressions_then_failing_jobs_before_passing_ones():
    base = base_report(ok("a"), ok("b"), failing("c"), ok("d"))
    head = report(ok("a"), ok("b"), failing("c"), failing("d"))
    source, _ = page_of(head, base)
    sections = re.findall(r'<section class="job [^"]*" id="(job-[^"]+)"', source)
    rows = re.findall(r"<tr><th>([a-z])(?: |<)", source)

    assert [s.split("-")[1] for s in sections] == ["d", "c", "a", "b"]  # regression, failing, passing
    assert rows == ["d", "c", "a", "b"]


def test_html__counts_exports_and_regressions_with_the_nouns_of_the_comment():
    base = base_report(ok("a"), ok("b"), ok("c", "onnx"))
    head = report(failing("a"), ok("b"), job("c", "onnx", sub("", "skipped", reason="no onnx")))
    source, _ = page_of(head, base)
    (summary,) = re.findall(r'<p class="summary">(.*?)</p>', source)

    assert re.sub(r"<[^>]+>", "", summary) == (
        "2 exports checked, 1 failing · 1 export skipped · 1 regression · 0 fixes"
    )
