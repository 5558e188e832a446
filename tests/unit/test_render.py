"""The views: PR comment, job summary, terminal text and JSON, checked by a real markdown parser.

Golden files live in tests/golden; regenerate them with EXPORTWATCH_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from exportwatch.diff import diff_reports, gate
from exportwatch.render import (
    COMMENT_MARKER,
    GITHUB_COMMENT_LIMIT,
    RenderContext,
    comment_marker,
    render,
)
from exportwatch.render.common import headline
from exportwatch.render.markdown import TREE_MAX_NODES, render_comment, render_summary
from exportwatch.render.tree_view import build_tree, changes_by_job, head_jobs
from exportwatch.report import JobResult, Mismatch, Verdict
from tests.factories import (
    HEAD_SHA,
    RUN_URL,
    base_report,
    failing,
    job,
    ok,
    report,
    sub,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
ZWJ = "\u200d"


# --- helpers ----------------------------------------------------------------------------------


class Audit(HTMLParser):
    """What a browser would make of the rendered comment: tags, links, visible prose."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.details_depth = 0
        self.max_details_depth = 0
        self.details_underflow = False
        self.prose: list[str] = []  # text outside <code>/<pre>
        self.code: list[str] = []
        self._in_code = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        if tag == "details":
            self.details_depth += 1
            self.max_details_depth = max(self.max_details_depth, self.details_depth)
        if tag in ("code", "pre"):
            self._in_code += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self.details_depth -= 1
            self.details_underflow |= self.details_depth < 0
        if tag in ("code", "pre"):
            self._in_code -= 1

    def handle_data(self, data):
        (self.code if self._in_code else self.prose).append(data)


def audit(markdown: str) -> Audit:
    parser = Audit()
    parser.feed(MD.render(markdown))
    parser.close()
    return parser


def tables(markdown: str) -> list[list[int]]:
    """For each table: the number of cells in each row."""
    found: list[list[int]] = []
    row = 0
    for token in MD.parse(markdown):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            row = 0
        elif token.type in ("th_open", "td_open"):
            row += 1
        elif token.type == "tr_close":
            found[-1].append(row)
    return found


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("EXPORTWATCH_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with EXPORTWATCH_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed: EXPORTWATCH_UPDATE_GOLDEN=1 to accept"


def example_pair():
    """A PR that breaks tiny_cnn's head, fixes numpy_postprocess, and leaves the rest."""
    regression = job(
        "tiny_cnn",
        "export",
        sub("", "fail", fp="r-head", category="data-dependent-control-flow", module_type="TinyCNN"),
        sub("features", "covered", module_type="Sequential"),
        sub(
            "head",
            "fail",
            origin=True,
            fp="r-head",
            module_type="ScaledHead",
            category="data-dependent-control-flow",
            message="Could not guard on data-dependent expression u0 > 10",
            frame="models/vision.py:14",
            source="if logits.abs().max() > 10:  # rescale large logits",
            hint="Replace the branch with `torch.cond` (or `torch.where`).",
            detail=(
                "Traceback (most recent call last):\n"
                '  File "models/vision.py", line 14, in forward\n'
                "    if logits.abs().max() > 10:\n"
                "torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode: Could not guard"
            ),
        ),
    )
    base = base_report(
        ok("tiny_cnn"),
        ok("tiny_cnn", "onnx"),
        failing("numpy_postprocess", origin_path="post"),
        ok("numpy_postprocess", "onnx"),
        failing("stacked_encoder", origin_path="encoder.5"),
        failing("stacked_encoder", "onnx", origin_path="encoder.5"),
        ok("transformer_block"),
        ok("transformer_block", "onnx"),
    )
    head = report(
        regression,
        ok("tiny_cnn", "onnx"),
        ok("numpy_postprocess"),
        ok("numpy_postprocess", "onnx"),
        failing("stacked_encoder", origin_path="encoder.5"),
        failing("stacked_encoder", "onnx", origin_path="encoder.5"),
        ok("transformer_block"),
        ok("transformer_block", "onnx"),
    )
    return base, head


def rendered(base, head, fmt="markdown", *, policy="regression", **context):
    changes = diff_reports(base, head)
    return render(changes, gate(changes, policy), fmt, context=RenderContext(**context))


# --- the PR comment ---------------------------------------------------------------------------


def test_comment__starts_with_a_one_line_verdict():
    assert rendered(*example_pair()).splitlines()[0] == "### ❌ 1 export regression in 1 model"


def test_comment__says_no_export_regressions_when_the_gate_passes():
    text = rendered(base_report(failing("cnn")), report(ok("cnn")))
    assert text.splitlines()[0] == "### ✅ No export regressions · 1 fixed"


def test_comment__ends_with_the_hidden_marker_and_takes_a_key():
    text = rendered(*example_pair())
    assert text.rstrip().endswith(COMMENT_MARKER)
    keyed = rendered(*example_pair(), marker_key="config/vision.yml")
    assert keyed.rstrip().endswith("<!-- exportwatch:comment:config/vision.yml -->")
    assert comment_marker(None) == COMMENT_MARKER


def test_comment__has_a_table_with_a_column_per_target():
    text = rendered(*example_pair())
    (table,) = tables(text)
    assert set(table) == {3}  # model + export + onnx
    assert len(table) == 1 + 2  # header + the two models that changed
    assert "✅ → ❌ **regression**" in text and "❌ → ✅ fixed" in text


def test_comment__lists_regressions_first_with_path_category_message_and_hint():
    text = rendered(*example_pair())
    regressions = text.index("#### ❌ Regressions")
    assert regressions < text.index("✅ Fixes")
    block = text[regressions : text.index("✅ Fixes")]
    assert "`head` (ScaledHead)" in block
    assert "`data-dependent-control-flow`" in block
    assert "Could not guard on data-dependent expression u0 \\> 10" in block
    assert "💡 Replace the branch with `torch.cond` (or `torch.where`)." in block


def test_comment__links_the_users_line_at_the_head_commit():
    text = rendered(*example_pair())
    url = f"https://github.com/acme/vision/blob/{HEAD_SHA}/models/vision.py#L14"
    assert f"[`models/vision.py:14`]({url})" in text
    assert url in audit(text).hrefs
    assert "```python\nif logits.abs().max() > 10:  # rescale large logits\n```" in text


def test_comment__shows_a_plain_path_when_repository_or_sha_is_unknown():
    base, head = example_pair()
    head.repository = None
    text = rendered(base, head)
    assert "📍 `models/vision.py:14` in `forward`" in text
    assert not any("/blob/" in h for h in audit(text).hrefs)


def test_comment__folds_ancestors_that_fail_only_because_of_the_origin():
    text = rendered(*example_pair())
    assert "↳ Also failing because of this: model root (TinyCNN)" in text
    assert text.count("**tiny\\_cnn** · export · cpu —") == 1


def test_comment__puts_tracebacks_in_balanced_details_blocks():
    text = rendered(*example_pair())
    checked = audit(text)
    assert checked.details_depth == 0 and not checked.details_underflow
    assert checked.max_details_depth == 1
    # One traceback; the fixes are folded.
    assert text.count("<details>") == 2
    assert text.count("<details><summary>Traceback</summary>") == 1
    assert "GuardOnDataDependentSymNode" in "".join(checked.code)


def test_comment__has_a_footer_with_versions_run_link_and_duration():
    text = rendered(*example_pair(), run_url=RUN_URL)  # the trusted run, from the context
    footer = next(line for line in text.splitlines() if line.startswith("<sub>"))
    assert "torch 2.6.0" in footer and "python 3.11.7" in footer
    assert "swept in 1 min 23 s" in footer
    assert f"[workflow run]({RUN_URL})" in footer
    assert "`fedcba9` → `0123456`" in footer  # code spans: GitHub never links them to a commit


def test_comment__is_short_when_nothing_changed():
    base, _ = example_pair()
    text = rendered(base, report(*base.jobs))
    assert text.splitlines()[0] == "### ✅ No change in export status"
    assert "still failing" in text
    assert len(text) < 600
    assert "<table>" not in MD.render(text)


def test_comment__calls_out_an_xfail_that_now_passes():
    base = base_report(job("cnn", "export", sub("", "fail"), xfail="upstream bug"))
    head = report(job("cnn", "export", sub("", "ok"), xfail="upstream bug"))
    text = rendered(base, head)
    assert "🧹 **Remove the xfail**" in text
    assert "remove the xfail" in text  # on the fix line too


def test_comment__marks_expected_failures_and_passes_the_gate():
    head = report(job("cnn", "export", sub("", "fail", origin=True, xfail="known upstream")))
    text = rendered(base_report(ok("cnn")), head)
    assert text.startswith("### ✅") and "1 expected failure" in text.splitlines()[0]
    assert "expected to fail: known upstream" in text


def test_comment__notes_a_version_mismatch():
    base, head = example_pair()
    base.environment.torch = "2.5.1"
    text = rendered(base, head)
    assert "**Versions differ between base and head**: torch 2.5.1 → 2.6.0" in text


def test_comment__keeps_infrastructure_failures_apart_and_visible():
    base = base_report(ok("cnn"), ok("vit"))
    head = report(job("cnn", "export", sub("", "timeout", message="killed after 300 s")), ok("vit"))
    text = rendered(base, head)
    first = text.splitlines()[0]
    assert first.startswith("### ⚠️") and "timeout" in first
    assert "#### ❌ Regressions" not in text
    assert "<summary>💥 Crashes, timeouts and out-of-memory (1)</summary>" in text
    assert "✅ → ⏱️ timeout" in text


def test_comment__shows_a_mismatch_with_its_error():
    mismatch = Mismatch(input_set="default", output="out0", max_abs_error=0.25, max_rel_error=0.01)
    head = report(job("cnn", "export", sub("", "mismatch", mismatch=mismatch, origin=True)))
    text = rendered(base_report(ok("cnn")), head)
    assert "✅ → ❗ mismatch **regression**" in text
    assert "Output `out0` of input set `default` differs from eager: max abs error 0.25" in text


def test_comment__without_a_base_reports_failures_as_new():
    text = rendered(None, report(ok("cnn"), failing("vit")), policy="new-failure")
    assert text.splitlines()[0] == "### ❌ 1 new export failure in 1 model"
    assert "No base report" in text
    assert "#### 🆕 New failures (1 new failure in 1 export)" in text


def test_comment__lists_several_devices_in_the_model_column():
    base = base_report(ok("cnn", device="cpu"), ok("cnn", device="cuda"))
    head = report(ok("cnn", device="cpu"), job("cnn", "export", sub("", "fail"), device="cuda"))
    text = rendered(base, head)
    assert "| **cnn** (cuda) |" in text


# --- size -------------------------------------------------------------------------------------


def big_pair(*, models: int = 200, regressions: int = 20, fixes: int = 30):
    """``models`` models × 2 targets with long messages and 8 kB tracebacks."""
    long_detail = "Traceback (most recent call last):\n" + "  File 'x.py', line 1, in f\n" * 300
    long_message = "export failed: " + "very long message " * 40

    def broken(name: str, target: str) -> object:
        return job(
            name,
            target,
            sub("", "fail", fp=f"{name}-origin"),
            sub(
                "blocks.3",
                "fail",
                origin=True,
                fp=f"{name}-origin",
                message=long_message,
                detail=long_detail,
                frame=f"models/{name}.py:12",
                source="if x.sum() > 0:",
                hint="Use torch.cond.",
            ),
        )

    base_jobs, head_jobs = [], []
    for i in range(models):
        name = f"model_{i:03d}"
        for target in ("export", "onnx"):
            if i < regressions:
                base_jobs.append(ok(name, target))
                head_jobs.append(broken(name, target) if target == "export" else ok(name, target))
            elif i < regressions + fixes:
                base_jobs.append(broken(name, target) if target == "export" else ok(name, target))
                head_jobs.append(ok(name, target))
            else:  # changed failures: different fingerprints, long tracebacks
                base_jobs.append(broken(name, target))
                head_jobs.append(broken(f"{name}", target))
                head_jobs[-1].submodules[1].fingerprint += "-new"
                head_jobs[-1].submodules[0].fingerprint += "-new"
    return base_report(*base_jobs), report(*head_jobs)


def test_comment__a_200_model_report_fits_in_a_github_comment():
    text = rendered(*big_pair(), run_url=RUN_URL)
    assert len(text) <= 60_000 < GITHUB_COMMENT_LIMIT
    assert text.splitlines()[0] == "### ❌ 20 export regressions in 20 models"
    assert "✂️ **Shortened to fit GitHub's comment limit**" in text
    assert "The complete report is in [the job summary]" in text and "artifact" in text
    checked = audit(text)
    assert checked.details_depth == 0 and not checked.details_underflow
    assert all(cols == 3 for table in tables(text) for cols in table)


def test_comment__truncation_keeps_every_regression_and_fix_before_the_rest():
    text = rendered(*big_pair())
    for i in range(20):
        assert f"**model\\_{i:03d}** · export · cpu — `blocks.3`" in text
    assert "<summary>✅ Fixes (30 fixes in 30 exports)</summary>" in text
    assert text.count(" now exports (was ") == 30
    cut_note = next(line for line in text.splitlines() if line.startswith("✂️"))
    assert "changed failures" in cut_note or "tracebacks" in cut_note


def test_comment__truncation_says_how_many_regressions_were_cut_when_even_they_overflow():
    text = rendered(*big_pair(models=200, regressions=200, fixes=0))
    assert len(text) <= 60_000
    assert text.splitlines()[0] == "### ❌ 200 export regressions in 200 models"
    assert "**model\\_000** · export · cpu" in text
    match = re.search(r"_…and (\d+) more \(cut to fit\)\._", text)
    assert match and 0 < int(match[1]) < 200
    assert re.search(r"left out [^.]*\d+ regressions", text)


def test_comment__respects_a_smaller_budget():
    assert len(rendered(*big_pair(), max_chars=20_000)) <= 20_000


@pytest.mark.slow
def test_summary__keeps_the_complete_200_model_picture():
    text = rendered(*big_pair(), fmt="summary")
    assert len(text.encode()) <= 900_000
    # Every row and item stays; only tracebacks may give way, and the note points at the artifact.
    cut_note = next((line for line in text.splitlines() if line.startswith("✂️")), "")
    assert re.fullmatch(
        r".*left out \d+ tracebacks\. The complete report is in the `exportwatch-report` artifact\.", cut_note
    )
    (table,) = tables(text)
    assert len(table) == 1 + 200
    assert "#### 🔁 Changed failures (300 changed failures in 300 exports)" in text


# --- hostile strings --------------------------------------------------------------------------

HOSTILE = (
    "</details></summary><script>alert(1)</script> @octocat #1 | a | b | ``` "
    "](javascript:alert(1)) <img src=x onerror=alert(1)> **bold**\n- item\n# heading\n\n| x |"
)


def hostile_pair():
    evil = sub(
        f"blocks.{HOSTILE}",
        "fail",
        origin=True,
        module_type=HOSTILE,
        category=HOSTILE,
        message=HOSTILE * 20,
        detail=f"{HOSTILE}\n</details>\n```\n<details>\n" * 5,
        frame=f"models/{HOSTILE}.py:7",
        function=HOSTILE,
        source=HOSTILE,
        hint=HOSTILE,
    )
    head = report(
        job(HOSTILE, HOSTILE, sub("", "fail"), evil),
        job("fixed", "export", sub("", "ok")),
        job(HOSTILE, "export", sub("", "skipped", reason=HOSTILE)),
        run_url="javascript:alert(1)",
        torch=HOSTILE,
    )
    base = base_report(
        job(HOSTILE, HOSTILE, sub("", "ok")),
        job("fixed", "export", sub("", "fail", message=HOSTILE, category=HOSTILE)),
        job(HOSTILE, "export", sub("", "ok")),
        torch="2.5",
    )
    return base, head


@pytest.mark.parametrize("fmt", ["markdown", "summary"])
def test_hostile__strings_cannot_inject_html_links_or_mentions(fmt):
    text = rendered(*hostile_pair(), fmt=fmt, title=HOSTILE, marker_key=HOSTILE)
    checked = audit(text)
    allowed = {"h3", "h4", "p", "table", "thead", "tbody", "tr", "th", "td", "strong", "em", "code", "pre",
               "a", "blockquote", "ul", "li", "details", "summary", "sub"}  # fmt: skip
    assert set(checked.tags) <= allowed, set(checked.tags) - allowed
    assert all(h.startswith("https://") for h in checked.hrefs), checked.hrefs
    assert checked.details_depth == 0 and not checked.details_underflow
    assert checked.max_details_depth == 1
    prose = "".join(checked.prose)
    assert "@octocat" not in prose and not re.search(r"(?<!\w)#\d", prose)
    assert "<script>" in "".join(checked.prose + checked.code)  # shown as text, not run


def test_hostile__strings_do_not_break_the_table():
    text = rendered(*hostile_pair())
    assert all(len(set(t)) == 1 for t in tables(text))
    (table,) = tables(text)
    assert table[0] == 3  # model + the hostile target + export


def test_hostile__messages_are_capped():
    text = rendered(*hostile_pair())
    longest = max(len(line) for line in text.splitlines())
    assert longest < 2_000
    assert "…" in text


def test_hostile__the_marker_stays_one_closed_html_comment():
    text = rendered(*hostile_pair(), marker_key=HOSTILE)
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("<!-- exportwatch:comment:") and last.endswith(" -->")
    assert last.count("--") == 2


def test_hostile__terminal_output_has_no_escape_sequences():
    base, head = hostile_pair()
    head.jobs[0].submodules[1].message = "\x1b[2J\x1b]0;pwned\x07" + HOSTILE
    text = rendered(base, head, fmt="text")
    assert "\x1b" not in text


# --- the other views --------------------------------------------------------------------------


def test_summary__includes_unchanged_failures_and_the_gate():
    text = rendered(*example_pair(), fmt="summary")
    assert "#### 🟥 Still failing (2 failures in 2 exports)" in text
    assert "Gate `regression`: **failed**" in text
    (table,) = tables(text)
    assert len(table) == 1 + 4  # every model
    assert COMMENT_MARKER not in text


def test_text__aligns_columns_without_colour_by_default():
    text = rendered(*example_pair(), fmt="text")
    assert "\x1b[" not in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("MODEL"))
    assert header.index("EXPORT") == lines[lines.index(header) + 1].index("ok → fail")
    assert lines[0] == "FAIL  1 export regression in 1 model   (gate: regression)"


def test_text__colours_only_when_asked():
    assert "\x1b[31m" in rendered(*example_pair(), fmt="text", color=True)


def test_json__carries_the_gate_counts_and_cells():
    data = json.loads(rendered(*example_pair(), fmt="json"))
    assert data["gate"] == {
        "policy": "regression",
        "passed": False,
        "exit_code": 1,
        "failing": [{"model": "tiny_cnn", "target": "export", "device": "cpu", "path": "head"}],
        "reasons": ["1 regression: tiny_cnn/export/cpu:head"],
        "notes": [],
    }
    assert data["counts"]["regression"] == 1 and data["counts"]["fix"] == 1
    head_cell = next(c for c in data["cells"] if c["path"] == "head")
    assert head_cell["head_result"]["user_frame"]["line"] == 14


def test_render__rejects_an_unknown_format():
    changes = diff_reports(None, report(ok("cnn")))
    with pytest.raises(ValueError, match="markdown, summary, text, json"):
        render(changes, gate(changes), "html")


# --- golden files -----------------------------------------------------------------------------


def test_golden__regression_comment():
    check_golden("comment_regression.md", rendered(*example_pair()))


def test_golden__no_change_comment():
    base, _ = example_pair()
    check_golden("comment_no_change.md", rendered(base, report(*base.jobs)))


def test_golden__job_summary():
    check_golden("summary.md", rendered(*example_pair(), fmt="summary"))


def test_golden__terminal_text():
    check_golden("terminal.txt", rendered(*example_pair(), fmt="text"))


def test_comment__groups_submodules_that_fail_for_the_same_reason():
    base = report(job("enc", "export", sub(""), sub("a"), sub("b"), sub("c"), sub("d")))
    head = report(
        job(
            "enc",
            "export",
            sub("", "fail", fp="root"),
            sub("a", "fail", fp="same", origin=True, message="guard on u0"),
            sub("b", "fail", fp="same", origin=True, message="guard on u0"),
            sub("c", "fail", fp="same", origin=True, message="guard on u0"),
            sub("d", "fail", fp="other", origin=True, message="no fake kernel"),
        )
    )
    changes = diff_reports(base, head)
    text = render(changes, gate(changes, "regression"), "markdown")
    assert "3 submodules fail for the same reason; also: `b` (Block), `c` (Block)" in text
    assert text.count("guard on u0") == 1  # shown once, not three times
    assert "no fake kernel" in text  # a different reason keeps its own entry


def test_terminal__target_names_from_a_report_cannot_send_escape_sequences():
    hostile = report(job("m", "export\x1b]0;PWNED\x07\x1b[31m", sub("")))
    changes = diff_reports(None, hostile)
    text = render(changes, gate(changes, "regression"), "text")
    assert "\x1b" not in text and "\x07" not in text


def test_comment__names_the_ancestors_of_every_origin_that_fails_for_the_same_reason():
    """Two decoder layers fail on one cause: both layers are named, not only the first's."""
    head = report(
        job(
            "llama",
            "export",
            sub("", "fail", fp="cache"),
            sub("layers.0", "fail", fp="cache"),
            sub("layers.0.attn", "fail", fp="cache", origin=True, message="Unsupported input type Cache"),
            sub("layers.1", "fail", fp="cache"),
            sub("layers.1.attn", "fail", fp="cache", origin=True, message="Unsupported input type Cache"),
        )
    )
    base = base_report(job("llama", "export", sub("", "ok")))
    text = rendered(base, head)
    assert "2 submodules fail for the same reason" in text
    also = next(line for line in text.splitlines() if "Also failing because of this" in line)
    assert "layers.0" in also and "layers.1" in also and "model root" in also


# --- skipped exports are never passing ---------------------------------------------------------


def _skipped(model: str) -> JobResult:
    return job(model, "export", sub("", "skipped", reason="CUDA is not available"), device="cuda")


def test_headline__all_skipped_without_a_base_is_a_warning_not_all_pass():
    changes = diff_reports(None, report(_skipped("cnn"), _skipped("vit")))
    line = headline(changes, gate(changes, "regression"))
    assert line.status == "warn"
    assert line.text == (
        "No base to compare with, and nothing was checked: 2 exports not run (skipped: CUDA is not available)"
    )


def test_headline__skipped_on_both_sides_is_not_no_change():
    changes = diff_reports(base_report(_skipped("cnn"), ok("vit")), report(_skipped("cnn"), ok("vit")))
    line = headline(changes, gate(changes, "regression"))
    assert line.status == "warn"
    assert "1 export not run (skipped: CUDA is not available): results incomplete" in line.text


def test_headline__some_skipped_without_a_base_still_says_so():
    changes = diff_reports(None, report(_skipped("cnn"), ok("vit")))
    line = headline(changes, gate(changes, "regression"))
    assert (line.status, line.text) == (
        "warn",
        "No base to compare with: 1 export checked, all pass; "
        "1 export not run (skipped: CUDA is not available)",
    )


# --- the torch upgrade: the comment leads with it -------------------------------------------------


def _stamped(j: JobResult, code: str = "aaa") -> JobResult:
    return replace(j, dependencies={"models/net.py": code}, content_hash="hash")


def _upgrade_changes():
    base = base_report(_stamped(ok("cnn")), _stamped(ok("vit")), _stamped(ok("rnn")), torch="2.13.0")
    head = report(
        _stamped(failing("cnn")),
        _stamped(failing("vit", origin_path="blocks.2")),
        _stamped(failing("rnn", origin_path="cell"), code="bbb"),  # this PR edited its code
        torch="2.14.1",
    )
    changes = diff_reports(base, head)
    return changes, gate(changes, "regression")


def test_upgrade__every_view_leads_with_the_environment_change():
    changes, verdict = _upgrade_changes()
    assert not verdict.passed
    line = headline(changes, verdict)
    assert (line.status, line.text) == (
        "fail",
        "torch 2.13.0 → 2.14.1: 2 regressions in 2 models; and 1 regression where the code changed too",
    )
    comment = render(changes, verdict, "markdown")
    assert (
        "torch 2.13.0 → 2.14.1: 2 regressions in 2 models"
        in comment.splitlines()[0] + comment.splitlines()[1]
    )
    assert "**Changed by the upgrade** (the same code on both sides): `cnn`, `vit`." in comment
    text = render(changes, verdict, "text")
    assert text.startswith("FAIL  torch 2.13.0 → 2.14.1: 2 regressions in 2 models")
    assert "changed by the upgrade (same code on both sides): cnn, vit" in text
    data = json.loads(render(changes, verdict, "json"))
    assert data["upgrade"]["models"] == ["cnn", "vit"]
    assert data["upgrade"]["summary"] == "torch 2.13.0 → 2.14.1: 2 regressions in 2 models"


# --- where it broke: the job summary's failing-branch trees (issue 18, part 3) --------------------


def _tree_of(text: str, label: str) -> str:
    """The fenced block inside ``<details><summary>LABEL</summary>``."""
    body = text.split(f"<details><summary>{label}</summary>", 1)[1].split("</details>", 1)[0]
    return body.strip()


def _encoder_pair():
    """A real-looking failing job: the sweep went down root → encoder → encoder.5, and the
    siblings it tried on the way exported."""
    broken = failing("stacked_encoder", origin_path="encoder.5")
    broken.submodules[1:1] = [sub("embed", "ok", module_type="Embedding")]
    broken.submodules += [
        sub("encoder.4", "ok"),
        sub("encoder.5.attn", "ok", module_type="Attention"),
        sub("head", "covered", module_type="Linear"),
    ]
    base = base_report(ok("stacked_encoder"), ok("mlp"))
    return base, report(broken, ok("mlp"))


def test_summary_tree__shows_each_failing_jobs_failing_branch_and_not_its_passing_siblings():
    text = rendered(*_encoder_pair(), fmt="summary")
    assert "#### 🌳 Where it broke (1)" in text
    assert _tree_of(text, "stacked_encoder · export").splitlines() == [
        "```",
        "❌ stacked_encoder (Net) · fail [regression]",
        "  ❌ encoder (Block) · fail [regression]",
        "    ❌ encoder.5 (Block) · data-dependent-control-flow  ◀ origin [regression]",
        "```",
    ]
    assert "mlp · export</summary>" not in text, "an exporting job has no tree"
    checked = audit(text)
    assert checked.details_depth == 0 and not checked.details_underflow


def test_summary_tree__marks_same_as_twins_and_has_no_tree_without_a_failure():
    head = report(
        job(
            "twins",
            "export",
            sub("", "fail", fp="f"),
            sub("a", "fail", fp="f", origin=True, category="graph-break"),
            sub("b", "same-as", same_as="a"),
        ),
        ok("fine"),
    )
    text = rendered(None, head, fmt="summary")
    tree = _tree_of(text, "twins · export")
    assert "  ❌ a (Block) · graph-break  ◀ origin" in tree
    assert "  ❌ b (Block) · graph-break = same as a" in tree  # drawn as the failure it shares
    assert "#### 🌳 Where it broke (1)" in text
    assert "#### 🌳" not in rendered(None, report(ok("fine")), fmt="summary")


def test_summary_tree__hostile_names_stay_text_inside_one_fenced_block():
    base, head = hostile_pair()
    head.jobs[0].submodules[1].module_type = "x\n::error::pwned\n```\n</details>@octocat"
    text = rendered(base, head, fmt="summary")
    checked = audit(text)
    assert checked.details_depth == 0 and not checked.details_underflow and checked.max_details_depth == 1
    code = "".join(checked.code)
    assert "◀ origin" in code and "::error::pwned" in code  # in the block, folded onto its line
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())
    assert "@octocat" not in "".join(checked.prose)
    tree = next(block for block in MD.parse(text) if block.type == "fence" and "◀ origin" in block.content)
    assert len(tree.content.splitlines()) == 2  # root and origin: no name added a line


def test_summary_tree__a_long_branch_shows_its_first_nodes_and_says_how_many_more():
    chain = [sub("", "fail", fp="deep")]
    path = ""
    for i in range(400):
        path = f"{path}.l{i}" if path else f"l{i}"
        chain.append(sub(path, "fail", fp="deep", origin=i == 399))
    text = rendered(None, report(job("deep", "export", *chain)), fmt="summary")
    lines = _tree_of(text, "deep · export").splitlines()[1:-1]
    assert len(lines) == TREE_MAX_NODES + 1
    assert lines[-1] == f"… and {401 - TREE_MAX_NODES} more failing nodes (see the HTML report)"
    assert max(len(line) for line in lines) < 600  # deep paths do not widen without end


def test_summary_tree__is_cut_before_any_item_of_the_summary_and_says_so():
    base, head = big_pair(models=60, regressions=60, fixes=0)  # 60 regressions, 8 kB tracebacks each
    full = rendered(base, head, fmt="summary")
    trees = full.split("#### 🌳 Where it broke (60)", 1)[1]
    text = rendered(base, head, fmt="summary", max_chars=len(full.encode()) - len(trees.encode()) // 2)

    cut_note = next(line for line in text.splitlines() if line.startswith("✂️"))
    assert re.search(r"left out (\d+) failing-branch trees\. ", cut_note), cut_note
    kept = text.count("<details><summary>model_")
    assert 0 < kept < 60 and f"_…and {60 - kept} more trees (cut to fit)._" in text
    before = text.split("#### 🌳", 1)[0]
    assert before == full.split("#### 🌳", 1)[0], "every row, item and traceback above stays"


def test_summary_tree__head_jobs_rebuilt_from_the_diff_draw_the_same_tree_as_the_report():
    base, head = _encoder_pair()
    changes = diff_reports(base, head)
    (rebuilt,) = [j for j in head_jobs(changes) if j.model == "stacked_encoder"]
    kinds = changes_by_job(changes)[rebuilt.key]
    assert build_tree(rebuilt, changes=kinds) == build_tree(head.jobs[0], changes=kinds)


# --- the HTML report's artifact: linked only when uploaded, only through the trusted run ---------

TRUSTED_RUN = "https://github.com/acme/vision/actions/runs/777"


@pytest.mark.parametrize("fmt", ["markdown", "summary"])
def test_html_action__links_the_artifact_through_the_trusted_run_only_when_it_is_uploaded(fmt):
    changes = diff_reports(*example_pair())
    verdict = gate(changes, "regression")
    view = render_comment if fmt == "markdown" else render_summary
    line = f"🌳 HTML report: in the `exportwatch-html` artifact of [this run]({TRUSTED_RUN})"

    linked = view(
        changes, verdict, context=RenderContext(run_url=TRUSTED_RUN), html_artifact="exportwatch-html"
    )
    assert line in linked
    assert f"]({RUN_URL})" not in linked, "a report's own run_url is never a link"
    assert "HTML report" not in view(changes, verdict, context=RenderContext(run_url=TRUSTED_RUN))
    # no trusted run to point into: no link (the report's own run_url does not stand in)
    assert "HTML report" not in view(
        changes, verdict, context=RenderContext(), html_artifact="exportwatch-html"
    )


def test_html_action__a_quiet_comment_links_the_artifact_too():
    base, _ = example_pair()
    changes = diff_reports(base, report(*base.jobs))
    text = render_comment(
        changes, gate(changes, "regression"), context=RenderContext(run_url=TRUSTED_RUN), html_artifact="x`y"
    )
    assert not changes.has_changes
    assert f"of [this run]({TRUSTED_RUN})" in text and "``x`y``" in text
    assert text.rstrip().endswith(COMMENT_MARKER)


def test_headline__a_partial_base_is_never_a_plain_pass():
    base = base_report(ok("cnn"), complete=False)  # e.g. the base could not be reproduced
    changes = diff_reports(base, report(ok("cnn"), ok("vit")))
    line = headline(changes, gate(changes, "regression"))
    assert (line.status, line.text) == (
        "warn",
        "No export regressions found, but the base report is partial: results incomplete",
    )


# --- a comment that reads at a glance (issue 25) -----------------------------------------------

_CACHE_HINT = "Return a tuple of tensors instead of a Cache object: " + "pass use_cache=False. " * 30


def _cache_failure(model: str, target: str, path: str = "h.0.attn") -> JobResult:
    """One line of a library failing on ``target``: the fingerprint names the target, the line does not."""
    return job(
        model,
        target,
        sub("", "fail", fp=f"cache-{target}"),
        sub(path.split(".")[0], "fail", fp=f"cache-{target}"),
        sub(
            path,
            "fail",
            fp=f"cache-{target}",
            origin=True,
            category="unsupported-output",
            message=f"{target}: Unsupported output type DynamicCache",
            detail=f"Traceback (most recent call last):\n  {target} frames\nTypeError: DynamicCache",
            frame="transformers/cache_utils.py:120",
            hint=_CACHE_HINT,
        ),
    )


def _three_targets_pair():
    targets = ("export", "onnx", "onnx-legacy")
    base = base_report(*(ok("gpt2", t) for t in targets))
    head = report(*(_cache_failure("gpt2", t) for t in targets))
    return base, head


def test_comment__shows_one_line_failing_on_three_targets_as_one_item_with_one_traceback():
    text = rendered(*_three_targets_pair())

    assert "#### ❌ Regressions (3 regressions in 3 exports)" in text
    assert text.count("<details><summary>Traceback</summary>") == 1
    assert text.count("Return a tuple of tensors") == 1
    assert "↳ The same cause in 2 more places (on 3 targets: export, onnx, onnx-legacy)" in text


def test_text__prints_a_hint_shared_by_many_failures_once():
    base, head = _three_targets_pair()
    # A second model failing on the same library line: another group, the same hint.
    base = base_report(*base.jobs, ok("llama"))
    head = report(*head.jobs, _cache_failure("llama", "export", path="layers.0.attn"))
    text = rendered(base, head, fmt="text")

    assert text.count("Return a tuple of tensors") == 1
    assert "same cause also on 3 more places: onnx · h.0.attn, onnx-legacy · h.0.attn, llama · export" in text
    assert "Regressions (4 regressions in 4 exports)" in text


def test_comment__folds_every_change_but_regressions_into_details():
    base = base_report(ok("cnn"), failing("mlp"), ok("vit"))
    head = report(failing("cnn"), ok("mlp"), job("vit", "export", sub("", "skipped", reason="no CUDA")))
    text = rendered(base, head)
    checked = audit(text)

    assert "#### ❌ Regressions (1 regression in 1 export)" in text  # a heading, open
    assert "<details><summary>✅ Fixes (1 fix in 1 export)</summary>" in text
    assert "<details><summary>Other changes (1)</summary>" in text
    assert checked.details_depth == 0 and not checked.details_underflow


def test_comment__keeps_what_fails_the_gate_open_under_the_new_failure_policy():
    text = rendered(base_report(ok("cnn")), report(ok("cnn"), failing("vit")), policy="new-failure")

    assert "#### 🆕 New failures (1 new failure in 1 export)" in text


def test_comment__says_a_wrapped_models_subtree_moved_in_one_line():
    def vit(prefix: str) -> list:
        return [
            sub(f"{prefix}blocks.{i}{leaf}", "covered", module_type=kind)
            for i in range(20)
            for leaf, kind in (("", "Block"), (".attn", "Attention"), (".attn.attn_drop", "Dropout"))
        ]

    base = base_report(job("vit", "export", sub("", "ok"), *vit("")))
    head = report(
        job(
            "vit",
            "export",
            sub("", "fail", origin=True, module_type="CalibratedViT"),
            sub("backbone", "ok", module_type="VisionTransformer"),
            *[
                sub(s.path, "not-called", module_type=s.module_type) if s.path.endswith("attn_drop") else s
                for s in vit("backbone.")
            ],
        )
    )
    text = rendered(base, head)

    assert "60 submodules moved under `backbone.` (compared at their new paths)" in text
    assert "no longer in the report" not in text
    # The 20 dropouts no longer called (once the root fails, its children are walked) are one line.
    assert "- ⏭️ **vit** · export: 20 submodules now ➖ not called" in text
    assert "`backbone.blocks.3.attn.attn_drop`" not in text

    # A change inside the move names both paths, and its base verdict is the old path's.
    head.jobs[0].submodules = [
        replace(s, verdict=Verdict.COVERED)
        if s.path.endswith("attn_drop") and s.path != "backbone.blocks.0.attn.attn_drop"
        else s
        for s in head.jobs[0].submodules
    ]
    text = rendered(base, head)
    assert "`backbone.blocks.0.attn.attn_drop` (Dropout, was `blocks.0.attn.attn_drop` on base)" in text


def test_views__quote_the_same_counts_with_the_same_nouns():
    base = base_report(ok("cnn"), ok("vit"), ok("mlp"))
    # cnn: two origins in one export; vit: one; mlp passes.
    head = report(
        job(
            "cnn",
            "export",
            sub("", "fail", fp="a"),
            sub("a", "fail", fp="a", origin=True, frame="m.py:1"),
            sub("b", "fail", fp="b", origin=True, frame="m.py:2"),
        ),
        failing("vit"),
        ok("mlp"),
    )
    markdown, text = rendered(base, head), rendered(base, head, fmt="text")

    assert "(3 regressions in 2 exports)" in markdown
    assert "Regressions (3 regressions in 2 exports)" in text
    # Three failures in two exports: the headline never claims three exports.
    assert markdown.splitlines()[0] == "### ❌ 3 regressions in 2 exports of 2 models"
    assert text.splitlines()[0].startswith("FAIL  3 regressions in 2 exports of 2 models")


def test_headline__without_a_base_counts_exports_as_the_new_failures_section_does():
    head = report(
        job(
            "cnn",
            "export",
            sub("", "fail", fp="a"),
            sub("a", "fail", fp="a", origin=True),
            sub("b", "fail", fp="b", origin=True, frame="m.py:2"),
        ),
        ok("mlp"),
    )
    text = rendered(None, head, policy="never")

    assert text.splitlines()[0] == "### ⚠️ No base to compare with: 2 exports checked, 1 failing"
    assert "New failures (2 new failures in 1 export)" in text


def test_json__carries_the_counts_every_view_quotes_and_the_moves():
    base = base_report(job("m", "export", sub(""), *(sub(f"blocks.{i}", "covered") for i in range(3))))
    head = report(
        job(
            "m",
            "export",
            sub(""),
            sub("backbone", "covered"),
            *(sub(f"backbone.blocks.{i}", "covered") for i in range(3)),
        )
    )
    data = json.loads(rendered(base, head, fmt="json"))

    assert data["tally"] == {
        "exports": 1,
        "skipped": 0,
        "failing_exports": 0,
        "unfinished": 0,
        "regressions": 0,
        "fixes": 0,
    }
    assert data["moves"] == [
        {
            "model": "m",
            "target": "export",
            "device": "cpu",
            "old_prefix": "",
            "new_prefix": "backbone.",
            "count": 3,
        }
    ]
    (moved,) = [c for c in data["cells"] if c["path"] == "backbone.blocks.1"]
    assert moved["moved_from"] == "blocks.1" and moved["kind"] == "unchanged-ok"


def test_comment__says_once_that_a_models_submodules_are_skipped_for_one_reason():
    # A bad input shape: the root is model-error, every submodule is skipped for the same
    # reason on both targets. That is one line in "Other changes", not one per submodule.
    reason = "not reached: the model's own forward raised before calling it"
    paths = [f"encoder.{i}" for i in range(8)]
    base = base_report(
        *(job("enc", t, sub("", "ok"), *(sub(p, "covered") for p in paths)) for t in ("export", "onnx"))
    )
    head = report(
        *(
            job(
                "enc",
                t,
                sub("", "fail", category="model-error", fp="shape"),
                *(sub(p, "skipped", reason=reason) for p in paths),
            )
            for t in ("export", "onnx")
        )
    )
    text = rendered(base, head)

    assert "<summary>Other changes (1)</summary>" in text
    assert f"**enc** · export, onnx: 8 submodules now ⏭️ skipped: {reason}" in text
    assert "`encoder.3`" not in text


def test_text__names_a_moved_failures_type_and_old_path_in_one_parenthesis():
    blocks = [(f"blocks.{i}", "Block") for i in range(3)] + [(f"blocks.{i}.fc", "Linear") for i in range(3)]
    base = base_report(
        job("net", "export", sub("", "ok"), *(sub(p, "covered", module_type=t) for p, t in blocks))
    )
    head = report(
        job(
            "net",
            "export",
            sub("", "fail", fp="dd"),
            sub("inner", "fail", fp="dd"),
            *(
                sub(f"inner.{p}", "fail", fp="dd", origin=True, module_type=t)
                if p == "blocks.2"
                else sub(f"inner.{p}", "covered", module_type=t)
                for p, t in blocks
            ),
        )
    )
    text = rendered(base, head, fmt="text")

    assert "net · export · cpu · inner.blocks.2 (Block, was blocks.2 on base)  ok → fail" in text


def test_comment__a_cut_counts_the_regressions_it_left_out_not_their_groups():
    # 60 models, each failing at one line on 3 targets: 60 items of 3 regressions each.
    targets = ("export", "onnx", "onnx-legacy")
    base = base_report(*(ok(f"m{i:02d}", t) for i in range(60) for t in targets))
    head = report(
        *(
            job(
                f"m{i:02d}",
                t,
                sub("", "fail", fp=f"r{i}-{t}"),
                sub("blocks.4", "fail", fp=f"r{i}-{t}", origin=True, frame=f"m{i}.py:3", message="x" * 300),
            )
            for i in range(60)
            for t in targets
        )
    )
    text = rendered(base, head, max_chars=12_000)

    shown = text.count("↳ The same cause in 2 more places")
    more = re.search(r"_…and (\d+) more \(cut to fit\)\._", text)
    assert 0 < shown < 60 and more is not None
    assert int(more[1]) == 3 * (60 - shown)
    assert re.search(rf"left out [^.]*\b{3 * (60 - shown)} regressions", text)


def test_comment__shows_a_long_hint_once_a_section_when_several_causes_share_it():
    hint = "Pass `use_cache=False`, or register the cache classes as pytree nodes. " * 6
    base = base_report(ok("gpt2"), ok("llama"))
    head = report(
        *(
            job(
                m,
                "export",
                sub("", "fail", fp=m),
                sub("h", "fail", fp=m, origin=True, frame=f"{m}.py:9", hint=hint),
            )
            for m in ("gpt2", "llama")
        )
    )
    text = rendered(base, head)

    assert text.count("register the cache classes") == 6
    assert "💡 The same hint as for **gpt2** · export · cpu — `h` (Block), above." in text
