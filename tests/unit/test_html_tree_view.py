"""The tree every tree view draws (exportwatch.render.tree_view): where each node hangs, what it
stands for, which branches fail, and the failing branch alone (for a text tree)."""

from __future__ import annotations

from exportwatch.diff import ChangeKind
from exportwatch.render.tree_view import MAX_DEPTH, STYLES, build_tree, failing_branch, walk
from exportwatch.report import Verdict
from tests.factories import failing, job, sub


def paths(node) -> list[tuple[int, str]]:
    return [(depth, n.path) for depth, n in walk(node)]


def test_tree__nodes_hang_from_their_nearest_listed_ancestor_in_report_order():
    root = build_tree(
        job(
            "cnn",
            "export",
            sub(""),
            sub("blocks"),
            sub("blocks.0.conv"),  # blocks.0 is not listed: hangs from blocks
            sub("head"),
            sub("blocks.1"),
        )
    )
    assert paths(root) == [(0, ""), (1, "blocks"), (2, "blocks.0.conv"), (2, "blocks.1"), (1, "head")]
    blocks = root.children[0]
    assert [c.name for c in blocks.children] == ["0.conv", "1"]
    assert root.name == "cnn"


def test_tree__a_missing_root_is_the_jobs_own_verdict_and_a_repeated_path_is_drawn_once():
    root = build_tree(job("m", "export", sub("a", "fail"), sub("a", "ok"), verdict="crash"))
    assert root.verdict is Verdict.CRASH and root.result.module_type == ""
    assert [n.path for _, n in walk(root)] == ["", "a"]
    assert root.children[0].verdict is Verdict.FAIL


def test_tree__failing_branches_are_marked_and_passing_ones_are_not():
    root = build_tree(failing("cnn", origin_path="blocks.4"))
    nodes = {n.path: n for _, n in walk(root)}
    assert nodes[""].branch_fails and nodes["blocks"].branch_fails and nodes["blocks.4"].branch_fails
    assert nodes["blocks.4"].origin and not nodes["blocks"].origin
    # The ancestors re-raise the origin's failure: they are explained by it.
    assert nodes["blocks"].caused_by == "blocks.4" and nodes[""].caused_by == "blocks.4"
    assert nodes["blocks.4"].caused_by is None


def test_tree__an_ancestor_failing_for_its_own_reason_is_an_origin_too():
    root = build_tree(
        job("llama", "export", sub("", "fail", fp="cache"), sub("layers.0", "fail", fp="attn", origin=True))
    )
    assert root.origin and root.caused_by is None


def test_tree__same_as_nodes_stand_for_their_twin_and_look_like_it_when_it_fails():
    root = build_tree(
        job(
            "enc",
            "export",
            sub("", "fail"),
            sub("b0", "fail"),
            sub("b1", "same-as", same_as="b0"),
            sub("b2", "same-as", same_as="missing"),
            sub("ok0"),
            sub("ok1", "same-as", same_as="ok0"),
        )
    )
    nodes = {n.path: n for _, n in walk(root)}
    assert nodes["b1"].twin == "b0" and nodes["b1"].failing and nodes["b1"].branch_fails
    assert nodes["b1"].style is STYLES[Verdict.FAIL]
    assert nodes["b2"].twin is None and not nodes["b2"].failing  # a link to nothing is not followed
    assert nodes["ok1"].style is STYLES[Verdict.SAME_AS] and nodes["ok1"].passing


def test_tree__every_verdict_has_an_emoji_a_glyph_and_a_tone():
    assert set(STYLES) == set(Verdict)
    for verdict, style in STYLES.items():
        assert style.emoji and style.glyph and style.label
        assert style.tone in {"pass", "fail", "infra", "error", "neutral"}, verdict
    assert STYLES[Verdict.OOM].tone == "infra" and STYLES[Verdict.ERROR].tone == "error"


def test_tree__a_hostile_depth_is_flattened_under_max_depth():
    deep = ".".join(["a"] * (MAX_DEPTH * 50))
    subs = [sub(".".join(["a"] * n)) for n in range(1, MAX_DEPTH * 50 + 1)]
    root = build_tree(job("m", "export", sub(""), *subs))
    depths = [depth for depth, _ in walk(root)]
    assert max(depths) <= MAX_DEPTH + 1
    assert any(n.path == deep for _, n in walk(root))
    assert root.count() == MAX_DEPTH * 50 + 1


def test_failing_branch__keeps_only_what_broke_for_a_text_tree():
    result = job(
        "enc",
        "export",
        sub("", "fail"),
        sub("embed"),
        sub("encoder", "fail"),
        sub("encoder.0"),
        sub("encoder.5", "fail", origin=True),
        sub("encoder.5.norm"),
    )
    branch = failing_branch(build_tree(result))
    assert branch is not None
    assert paths(branch) == [(0, ""), (1, "encoder"), (2, "encoder.5")]
    assert failing_branch(build_tree(job("ok", "export", sub(""), sub("a")))) is None


def test_tree__changes_from_the_diff_are_carried_by_path():
    root = build_tree(failing("cnn"), changes={"blocks.4": ChangeKind.REGRESSION})
    nodes = {n.path: n for _, n in walk(root)}
    assert nodes["blocks.4"].change is ChangeKind.REGRESSION and nodes[""].change is None
