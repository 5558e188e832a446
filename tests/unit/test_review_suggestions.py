"""Verified fixes → review suggestions (pure): the diff's lines, what is suggested and why not,
the comment's text, and what to write on the next push."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exportwatch.diff import diff_reports
from exportwatch.github.review import MAX_REVIEW_WRITES, Posted, decide_review
from exportwatch.render.review import (
    MAX_SUGGESTIONS,
    PullDiff,
    Skip,
    candidates,
    parse_patch,
    plan_suggestions,
    read_marker,
    retired_body,
    suggestion_fence,
)
from exportwatch.report.model import FixProof
from tests.factories import job, report, sub
from tests.review_cases import ROUTER, blocker, check_fix, fixed_origin, regressed, router_line, router_patch

pytestmark = pytest.mark.quick

# ------------------------------------------------------------------------------ the diff


def test_parse_patch__added_and_context_lines_are_the_right_side_removed_lines_are_not():
    patch = "@@ -10,4 +10,5 @@ def forward(self, x):\n a = 1\n-b = 2\n+b = 3\n+c = 4\n d = 5\n e = 6"
    assert parse_patch(patch) == {10: "a = 1", 11: "b = 3", 12: "c = 4", 13: "d = 5", 14: "e = 6"}


def test_parse_patch__several_hunks_restart_at_each_header():
    patch = "@@ -1,2 +1,2 @@\n-x = 0\n+x = 1\n y = 2\n@@ -40,2 +40,3 @@ class Net:\n a\n+b\n c"
    assert parse_patch(patch) == {1: "x = 1", 2: "y = 2", 40: "a", 41: "b", 42: "c"}


def test_parse_patch__a_new_file_is_every_line_from_one():
    assert parse_patch("@@ -0,0 +1,3 @@\n+import torch\n+\n+x = 1") == {1: "import torch", 2: "", 3: "x = 1"}


def test_parse_patch__a_deleted_file_has_no_right_side():
    assert parse_patch("@@ -1,3 +0,0 @@\n-import torch\n-\n-x = 1") == {}


def test_parse_patch__omitted_counts_mean_one_line_and_no_newline_markers_are_no_lines():
    patch = "@@ -5 +5 @@\n-old\n+new\n\\ No newline at end of file"
    assert parse_patch(patch) == {5: "new"}


def test_parse_patch__a_context_line_whose_space_was_trimmed_is_an_empty_line():
    assert parse_patch("@@ -1,3 +1,3 @@\n a\n\n c") == {1: "a", 2: "", 3: "c"}


def test_parse_patch__a_malformed_hunk_stops_without_guessing_lines():
    assert parse_patch("@@ -1,3 +1,3 @@\n a\n?what\n c") == {1: "a"}
    assert parse_patch("no hunk at all\n+x") == {}
    assert parse_patch(None) == {} and parse_patch("") == {}


def test_parse_patch__text_after_the_counted_lines_is_not_read():
    assert parse_patch("@@ -1,1 +1,1 @@\n-a\n+b\n+c\n") == {1: "b"}


def test_pull_diff__binary_files_have_no_lines_and_unknown_files_none():
    diff = PullDiff.of([("logo.png", None), (ROUTER, router_patch())])
    assert diff.line("logo.png", 1) is None and diff.line("other.py", 20) is None
    assert diff.line(ROUTER, 20) == router_line(20)


# ------------------------------------------------------------------------------ what is suggested


def _plan(*fixes, diff=None, **kwargs):
    base, head = regressed(*fixes)
    if diff is None:
        diff = PullDiff.of([(ROUTER, router_patch())])
    return plan_suggestions(diff_reports(base, head), diff, **kwargs)


def test_plan__a_fix_on_a_line_of_the_diff_is_one_suggestion_on_that_line():
    plan = _plan(check_fix(20))
    (suggestion,) = plan.suggested
    assert (suggestion.path, suggestion.line) == (ROUTER, 20) and plan.unsuggested == ()
    assert plan.in_review(suggestion.fix)
    block = re.search(r"```suggestion\n(.*?)\n```", suggestion.body, flags=re.DOTALL)
    assert block and block[1] == f"{router_line(20)}\n    torch._check(value20 > 0)"


def test_plan__a_fix_outside_the_diff_is_a_snippet_not_a_suggestion():
    plan = _plan(check_fix(20), check_fix(90))
    assert [s.line for s in plan.suggested] == [20]
    ((unsuggested),) = plan.unsuggested
    assert unsuggested.reason is Skip.NOT_IN_DIFF and not plan.in_review(unsuggested.fix)
    assert plan.skipped(unsuggested.fix) is Skip.NOT_IN_DIFF and plan.skipped(plan.suggested[0].fix) is None


def test_plan__a_line_that_changed_since_the_sweep_is_stale():
    plan = _plan(check_fix(20, original="    value20 = x.max().item()  # as swept"))
    assert plan.suggested == () and plan.unsuggested[0].reason is Skip.STALE


def test_plan__without_a_diff_nothing_is_suggested():
    base, head = regressed(check_fix(20))
    plan = plan_suggestions(diff_reports(base, head), None)
    assert plan.suggested == () and plan.unsuggested[0].reason is Skip.NO_DIFF


@pytest.mark.parametrize(
    "edit",
    [
        {"path": "../outside.py"},
        {"path": "/etc/passwd"},
        {"path": "models\\router.py"},
        {"replacement": router_line(20) + "\n    torch._check(value20 > 0)  # \u202e"},  # bidi override
        {"replacement": router_line(20) + "\r\n    torch._check(value20 > 0)"},
        {"replacement": "x = 1\n" * 2_000},
    ],
)
def test_plan__a_path_or_text_a_suggestion_cannot_carry_as_written_is_refused(edit):
    plan = _plan(check_fix(20, **edit))
    assert plan.suggested == () and plan.unsuggested[0].reason is Skip.REFUSED


def test_plan__two_fixes_on_one_line_suggest_the_one_that_exports():
    past = check_fix(20, proof=FixProof.PAST_BLOCKER, next_blocker="another", summary="first in the report")
    exports = check_fix(20, replacement=router_line(20) + "\n    torch._check(value20 >= 1)", blockers=[1])
    found = [blocker(20), blocker(20, expression="u20 >= 1")]
    base, head = regressed()
    head.jobs[0].submodules[1] = fixed_origin(past, exports, found=found)
    plan = plan_suggestions(diff_reports(base, head), PullDiff.of([(ROUTER, router_patch())]))
    assert [s.fix for s in plan.suggested] == [exports]
    assert [(u.fix, u.reason) for u in plan.unsuggested] == [(past, Skip.SAME_LINE)]


def test_plan__suggestions_are_capped_the_rest_stay_snippets():
    lines = range(1, MAX_SUGGESTIONS + 6)
    diff = PullDiff.of([(ROUTER, router_patch(range(1, MAX_SUGGESTIONS + 6)))])
    plan = _plan(*(check_fix(n) for n in lines), diff=diff)
    assert len(plan.suggested) == MAX_SUGGESTIONS
    assert [u.reason for u in plan.unsuggested] == [Skip.OVER_CAP] * 5


def test_candidates__the_same_fix_in_two_models_is_one_suggestion_that_names_both():
    head = report(
        job("a", "export", sub("", "fail", fp="fp-x"), fixed_origin(check_fix(20), path="block")),
        job("b", "export", sub("", "fail", fp="fp-x"), fixed_origin(check_fix(20), path="block")),
    )
    plan = plan_suggestions(diff_reports(None, head), PullDiff.of([(ROUTER, router_patch())]))
    (suggestion,) = plan.suggested
    assert "a · export · block" in suggestion.body and "b · export · block" in suggestion.body


def test_candidates__only_origins_that_fail_on_the_head_offer_fixes():
    passing = sub("router", "ok")
    passing.blockers = fixed_origin(check_fix(20)).blockers  # a stale field on a passing result
    head = report(job("router", "export", sub("", "ok"), passing))
    assert candidates(diff_reports(None, head)) == []
    still_base = report(job("router", "export", sub("", "fail", fp="fp-router"), fixed_origin(check_fix(20))))
    still_head = report(job("router", "export", sub("", "fail", fp="fp-router"), fixed_origin(check_fix(20))))
    assert len(candidates(diff_reports(still_base, still_head))) == 1, "still failing: still suggested"


def test_candidates__a_fix_without_an_edit_is_no_candidate():
    fix = check_fix(20)
    fix.edit = None
    base, head = regressed(fix)
    assert candidates(diff_reports(base, head)) == []


# ------------------------------------------------------------------------------ the comment's text


def test_suggestion_fence__is_longer_than_any_backtick_run_inside():
    assert suggestion_fence("x = 1") == "```"
    assert suggestion_fence('s = """```"""') == "````"
    assert suggestion_fence("`````") == "``````"


def test_body__a_replacement_holding_a_fence_cannot_close_the_suggestion_block():
    replacement = router_line(20) + '\n    doc = """\n```\n</details> @octocat\n"""'
    (suggestion,) = _plan(check_fix(20, replacement=replacement)).suggested
    fence = "`" * 4
    assert f"{fence}suggestion\n{replacement}\n{fence}\n" in suggestion.body


def test_body__hostile_text_in_the_explanation_is_inert():
    hostile = "@octocat <script>alert(1)</script> [x](https://evil.example) #123\n::error::boom"
    fix = check_fix(20, proof=FixProof.PAST_BLOCKER, next_blocker=hostile, summary=f"add `x` {hostile}")
    base, head = regressed(fix)
    head.jobs[0].submodules[1].blockers.found[0].message = hostile  # type: ignore[union-attr]
    head.jobs[0].model = "@admins"
    (suggestion,) = plan_suggestions(
        diff_reports(base, head), PullDiff.of([(ROUTER, router_patch())])
    ).suggested
    prose = suggestion.body.split("```suggestion")[0]
    assert "@octocat" not in prose and "@admins" not in prose, "mentions are broken"
    assert "<script>" not in prose and "](https://evil" not in prose and "#123" not in prose
    assert not any(line.startswith("::") for line in prose.splitlines())
    assert "`x`" in prose, "the summary's code spans stay code"
    assert "next:" in prose and "Verified" in prose


def test_body__says_what_the_re_export_proved():
    (exports,) = _plan(check_fix(20)).suggested
    assert "the module exports" in exports.body
    (past,) = _plan(
        check_fix(20, proof=FixProof.PAST_BLOCKER, next_blocker="no fake kernel for mylib::op")
    ).suggested
    assert "gets past this blocker; next: no fake kernel for mylib::op" in past.body


def test_marker__round_trips_with_scope_and_retirement_and_ignores_look_alikes():
    (suggestion,) = _plan(check_fix(20), scope="models/a.yml").suggested
    marker = read_marker(suggestion.body)
    assert marker is not None and marker.key == suggestion.key and marker.scope == "models/a.yml"
    assert not marker.retired
    retired = read_marker(retired_body(suggestion.key, scope="models/a.yml", sha="1" * 40))
    assert retired is not None and retired.retired and retired.key == suggestion.key
    assert read_marker("<!-- exportwatch:suggestion key=XYZ -->") is None
    assert read_marker("plain text") is None


def test_key__is_stable_across_runs_and_moves_with_the_line():
    first = _plan(check_fix(20)).suggested[0]
    again = _plan(check_fix(20)).suggested[0]
    other = _plan(check_fix(21)).suggested[0]
    assert first.key == again.key and first.body == again.body
    assert first.key != other.key


def test_retired_body__has_no_suggestion_block():
    body = retired_body("0123456789abcdef", sha="2" * 40)
    assert "suggestion\n" not in body and "```" not in body.replace("`222222222222`", "")
    assert "no longer suggests" in body


# ------------------------------------------------------------------------------ the next push


def _posted(suggestion, *, id: int, line=None, body=None, retired=False) -> Posted:
    return Posted(
        id=id, key=suggestion.key, path=suggestion.path, line=suggestion.line if line is None else line,
        body=suggestion.body if body is None else body, retired=retired,
    )  # fmt: skip


def test_decide_review__new_suggestions_go_in_one_review_posted_ones_are_left_alone():
    a, b = _plan(check_fix(20), check_fix(21)).suggested
    plan = decide_review([_posted(a, id=1)], [a, b])
    assert plan.create == (b,) and plan.update == () and plan.retire == () and plan.unchanged == 1
    assert plan.writes == 1


def test_decide_review__a_changed_text_is_edited_in_place():
    (a,) = _plan(check_fix(20)).suggested
    plan = decide_review([_posted(a, id=1, body="older text")], [a])
    assert plan.create == () and plan.update == ((1, a.body),)


def test_decide_review__a_suggestion_no_longer_wanted_is_retired_once():
    (a,) = _plan(check_fix(20)).suggested
    plan = decide_review([_posted(a, id=1)], [], sha="3" * 40)
    ((cid, body),) = plan.retire
    assert cid == 1 and read_marker(body).retired  # type: ignore[union-attr]
    assert decide_review([_posted(a, id=1, body=body, retired=True)], []).writes == 0


def test_decide_review__an_outdated_suggestion_is_left_as_github_shows_it():
    (a,) = _plan(check_fix(20)).suggested
    outdated = Posted(id=1, key=a.key, path=a.path, line=None, body=a.body, retired=False)
    plan = decide_review([outdated], [a])
    assert plan.create == (a,) and plan.retire == (), "a new one on the line; the outdated one stays"


def test_decide_review__a_retired_suggestion_wanted_again_at_its_line_is_revived():
    (a,) = _plan(check_fix(20)).suggested
    plan = decide_review([_posted(a, id=1, body=retired_body(a.key), retired=True)], [a])
    assert plan.update == ((1, a.body),) and plan.create == ()


def test_decide_review__a_second_copy_is_retired():
    (a,) = _plan(check_fix(20)).suggested
    plan = decide_review([_posted(a, id=1), _posted(a, id=2)], [a])
    assert plan.unchanged == 1 and [cid for cid, _ in plan.retire] == [2]


def test_decide_review__writes_stay_within_the_budget_retirements_first():
    diff = PullDiff.of([(ROUTER, router_patch(range(1, 40)))])
    wanted = list(_plan(*(check_fix(n) for n in range(1, 11)), diff=diff).suggested)
    old = list(_plan(*(check_fix(n) for n in range(20, 35)), diff=diff).suggested)
    posted = [_posted(s, id=100 + i) for i, s in enumerate(old)]  # 15 to retire
    posted += [_posted(s, id=i, body="older") for i, s in enumerate(wanted[:5])]  # 5 to edit
    plan = decide_review(posted, wanted)
    assert plan.writes == MAX_REVIEW_WRITES and len(plan.create) == 5
    assert len(plan.retire) == MAX_REVIEW_WRITES - 1 and plan.update == ()
    assert plan.left_out == 15 + 5 - (MAX_REVIEW_WRITES - 1)


# ------------------------------------------------------------------------------ any text at all

_ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("`@#<>[]:\n\r|~\u202e"),
    max_size=60,
)


@given(message=_ANY_TEXT, summary=_ANY_TEXT, nxt=_ANY_TEXT, model=_ANY_TEXT, code=_ANY_TEXT)
@settings(max_examples=25, deadline=None)
def test_body__whatever_the_report_says_the_prose_is_inert_and_the_block_is_exact(
    message, summary, nxt, model, code
):
    replacement = router_line(20) + "\n" + code.replace("\r", "")
    fix = check_fix(
        20, proof=FixProof.PAST_BLOCKER, next_blocker=nxt, summary=summary or "s", replacement=replacement
    )
    base, head = regressed(fix)
    head.jobs[0].submodules[1].blockers.found[0].message = message  # type: ignore[union-attr]
    head.jobs[0].model = model or "m"
    plan = plan_suggestions(diff_reports(base, head), PullDiff.of([(ROUTER, router_patch())]))
    if not plan.suggested:  # the replacement holds an invisible character: refused, never cleaned
        assert plan.unsuggested[0].reason is Skip.REFUSED
        return
    body = plan.suggested[0].body
    fence = suggestion_fence(replacement.removesuffix("\n"))
    prose, _, block = body.partition(f"\n\n{fence}suggestion\n")
    assert block == f"{replacement.removesuffix(chr(10))}\n{fence}\n" or block == f"{fence}\n"
    assert not re.search(r"@[A-Za-z0-9]", prose), "no mention notifies"
    assert not re.search(r"(?<!\\)<", prose.replace("<!-- exportwatch:suggestion", "")), "no tag"
    assert read_marker(body) is not None and read_marker(body).key == plan.suggested[0].key  # type: ignore[union-attr]
    assert not any(line.lstrip().startswith("::") for line in prose.splitlines())
