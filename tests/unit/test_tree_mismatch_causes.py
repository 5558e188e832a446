"""Mismatches grouped by cause (issue 28, item 1): a mismatch's fingerprint names its output, so
each ancestor of one disagreeing module used to be an origin of its own (ModernBERT's root,
``layers.1``, ``layers.1.attn``, ``layers.2``, ``layers.2.attn``). Pure functions over reports."""

from __future__ import annotations

from exportwatch.report import origin_paths
from exportwatch.report.tree import attribute_mismatches, group_failures, mark_origins
from tests.factories import job, sub


def test_mismatch__ancestors_take_the_innermost_mismatch_fingerprint_and_only_it_is_an_origin() -> None:
    marked = mark_origins(
        job(
            "bert",
            "onnx",
            sub("", "mismatch", fp="root-out0", message="output [0] differs"),
            sub("layers.1", "mismatch", fp="layer-out"),
            sub("layers.1.attn", "mismatch", fp="attn-out"),
            sub("layers.1.ff", "ok"),
        )
    )
    assert [s.fingerprint for s in marked.submodules] == ["attn-out", "attn-out", "attn-out", None]
    assert [s.path for s in marked.submodules if s.origin] == ["layers.1.attn"]
    assert marked.root.message == "output [0] differs"  # its own account of what disagrees is kept
    [group] = group_failures(marked)
    assert group.paths == ["", "layers.1", "layers.1.attn"] and group.origins == ["layers.1.attn"]


def test_mismatch__two_independent_mismatches_stay_two_origins_and_the_root_follows_the_first() -> None:
    marked = mark_origins(
        job(
            "bert",
            "export",
            sub("", "mismatch", fp="root"),
            sub("layers.1", "mismatch", fp="one"),
            sub("layers.2", "mismatch", fp="two"),
        )
    )
    assert sorted(origin_paths(marked)) == ["layers.1", "layers.2"]
    assert marked.root.fingerprint == "one"
    assert sorted(len(g.paths) for g in group_failures(marked)) == [1, 2]


def test_mismatch__a_copy_of_the_innermost_mismatch_explains_its_own_ancestor() -> None:
    marked = attribute_mismatches(
        job(
            "m",
            "export",
            sub("", "mismatch", fp="root"),
            sub("a", "mismatch", fp="a-out"),
            sub("b", "same-as", same_as="a"),
            sub("c", "mismatch", fp="c-out"),
            sub("c.x", "same-as", same_as="a"),
        )
    )
    assert marked.submodule("c").fingerprint == "a-out"  # c's disagreement starts in c.x (= a)
    assert marked.submodule("b").fingerprint is None  # a copy keeps following its original


def test_mismatch__a_failure_below_a_mismatch_does_not_explain_it() -> None:
    marked = mark_origins(job("m", "export", sub("", "mismatch", fp="root"), sub("a", "fail", fp="raised")))
    assert marked.root.fingerprint == "root"
    assert sorted(origin_paths(marked)) == ["", "a"]


def test_mismatch__a_lone_mismatch_is_left_as_it_is() -> None:
    original = job("m", "export", sub("", "mismatch", fp="root"), sub("a", "ok"))
    assert attribute_mismatches(original) is original
