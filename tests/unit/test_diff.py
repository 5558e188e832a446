"""diff_reports and gate on hand-built report pairs: every change class, policy and xfail rule."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from exportwatch.diff import (
    ChangeKind,
    Policy,
    XfailIndex,
    classify,
    diff_reports,
    gate,
    parse_policy,
)
from exportwatch.report import JobResult, Verdict
from tests.factories import base_report, failing, job, ok, report, sub


def kinds(changes) -> dict[tuple[str, str, str, str], str]:
    return {key: cell.kind.value for key, cell in changes.cells.items()}


def root(changes, model: str, target: str = "export", device: str = "cpu"):
    return changes.cells[(model, target, device, "")]


# --- change classes ---------------------------------------------------------------------------


def test_diff__reports_regression_when_base_ok_and_head_fails():
    changes = diff_reports(base_report(ok("cnn")), report(job("cnn", "export", sub("", "fail"))))
    assert root(changes, "cnn").kind is ChangeKind.REGRESSION
    assert changes.counts[ChangeKind.REGRESSION] == 1


def test_diff__reports_fix_when_base_fails_and_head_ok():
    changes = diff_reports(base_report(job("cnn", "export", sub("", "fail"))), report(ok("cnn")))
    assert root(changes, "cnn").kind is ChangeKind.FIX


def test_diff__reports_changed_failure_when_fingerprints_differ():
    base = base_report(job("cnn", "export", sub("", "fail", fp="aaa")))
    head = report(job("cnn", "export", sub("", "fail", fp="bbb")))
    cell = root(diff_reports(base, head), "cnn")
    assert cell.kind is ChangeKind.CHANGED_FAILURE
    assert (cell.base_fingerprint, cell.head_fingerprint) == ("aaa", "bbb")


def test_diff__reports_still_failing_when_fingerprints_match():
    base = base_report(job("cnn", "export", sub("", "fail", fp="aaa", message="old words")))
    head = report(job("cnn", "export", sub("", "fail", fp="aaa", message="new words")))
    assert root(diff_reports(base, head), "cnn").kind is ChangeKind.STILL_FAILING


def test_diff__reports_changed_failure_when_a_failure_becomes_a_mismatch():
    base = base_report(job("cnn", "export", sub("", "fail", fp="aaa")))
    head = report(job("cnn", "export", sub("", "mismatch", fp="aaa")))
    assert root(diff_reports(base, head), "cnn").kind is ChangeKind.CHANGED_FAILURE


def test_diff__compares_messages_when_fingerprints_are_missing():
    same = classify(sub("", "fail", fp="", message="m"), sub("", "fail", fp="", message="m"))
    other = classify(sub("", "fail", fp="", message="m"), sub("", "fail", fp="", message="n"))
    assert same[0] is ChangeKind.STILL_FAILING
    assert other[0] is ChangeKind.CHANGED_FAILURE


def test_diff__reports_new_model_and_new_target_only_in_head():
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn"), ok("cnn", "onnx"), ok("vit")))
    assert root(changes, "cnn", "onnx").kind is ChangeKind.NEW
    assert root(changes, "vit").kind is ChangeKind.NEW
    assert root(changes, "cnn").kind is ChangeKind.UNCHANGED_OK


def test_diff__reports_removed_model_only_in_base():
    changes = diff_reports(base_report(ok("cnn"), ok("vit")), report(ok("cnn")))
    assert root(changes, "vit").kind is ChangeKind.REMOVED
    assert root(changes, "vit").head is None


def test_diff__reports_newly_skipped_when_head_skips_a_result_base_had():
    base = base_report(ok("cnn"))
    head = report(job("cnn", "export", sub("", "skipped", reason="no CUDA on this runner")))
    cell = root(diff_reports(base, head), "cnn")
    assert cell.kind is ChangeKind.NEWLY_SKIPPED
    assert cell.note == "was ok on base"


def test_diff__reports_new_when_base_skipped_and_head_has_a_result():
    base = base_report(job("cnn", "export", sub("", "skipped")))
    cell = root(diff_reports(base, report(job("cnn", "export", sub("", "fail")))), "cnn")
    assert cell.kind is ChangeKind.NEW
    assert cell.note == "was skipped on base"


def test_diff__reports_unchanged_ok_when_both_pass_or_both_skip():
    base = base_report(ok("cnn"), job("vit", "export", sub("", "skipped")))
    head = report(ok("cnn"), job("vit", "export", sub("", "skipped")))
    assert set(kinds(diff_reports(base, head)).values()) == {"unchanged-ok"}


# --- infrastructure ---------------------------------------------------------------------------


def test_diff__keeps_a_head_crash_apart_from_regressions():
    changes = diff_reports(base_report(ok("cnn")), report(job("cnn", "export", sub("", "crash"))))
    cell = root(changes, "cnn")
    assert cell.kind is ChangeKind.INFRASTRUCTURE
    assert "may be a regression" in cell.note
    assert gate(changes, "regression").passed
    assert any("infrastructure" in n for n in gate(changes, "regression").notes)


@pytest.mark.parametrize("verdict", ["timeout", "oom"])
def test_diff__treats_timeout_and_oom_on_head_as_infrastructure(verdict):
    changes = diff_reports(base_report(ok("cnn")), report(job("cnn", "export", sub("", verdict))))
    assert root(changes, "cnn").kind is ChangeKind.INFRASTRUCTURE


def test_diff__reports_base_crash_then_head_fail_as_infrastructure_with_a_note():
    base = base_report(job("cnn", "export", sub("", "crash")))
    changes = diff_reports(base, report(job("cnn", "export", sub("", "fail"))))
    cell = root(changes, "cnn")
    assert cell.kind is ChangeKind.INFRASTRUCTURE
    assert "cannot be compared and may be a regression" in cell.note
    assert changes.counts[ChangeKind.REGRESSION] == 0
    # Not hidden either: a stricter policy holds it against the PR.
    assert not gate(changes, "new-failure").passed


def test_diff__folds_submodules_a_crashed_job_never_reached_under_its_root():
    base = base_report(failing("cnn"))
    head = report(job("cnn", "export", verdict="crash"))  # crashed before any result
    changes = diff_reports(base, head)
    assert root(changes, "cnn").kind is ChangeKind.INFRASTRUCTURE
    below = [c for c in changes.cells.values() if c.path]
    assert below and all(c.kind is ChangeKind.INFRASTRUCTURE and c.folded_under == "" for c in below)
    assert changes.counts[ChangeKind.INFRASTRUCTURE] == 1


def test_diff__does_not_let_an_infrastructure_failure_hide_a_regression_elsewhere():
    base = base_report(ok("cnn"), ok("vit"))
    head = report(job("cnn", "export", sub("", "timeout")), job("vit", "export", sub("", "fail")))
    result = gate(diff_reports(base, head), "regression")
    assert not result.passed
    assert result.failing == (("vit", "export", "cpu", ""),)


# --- submodules, origins, same-as ----------------------------------------------------------------


def test_diff__folds_ancestors_that_fail_only_because_of_an_origin():
    changes = diff_reports(base_report(ok("cnn")), report(failing("cnn", origin_path="blocks.4")))
    origin = changes.cells[("cnn", "export", "cpu", "blocks.4")]
    assert origin.kind is ChangeKind.REGRESSION and origin.origin
    assert [c.path for c in changes.folded(origin)] == ["", "blocks"]
    assert root(changes, "cnn").caused_by == "blocks.4"
    assert changes.counts[ChangeKind.REGRESSION] == 1
    assert len(gate(changes).failing) == 1


def test_diff__treats_unlisted_submodules_under_an_exported_ancestor_as_covered():
    # Base exported at the root, so its sweep never listed blocks.4: that is a regression, not "new".
    changes = diff_reports(base_report(ok("cnn")), report(failing("cnn")))
    cell = changes.cells[("cnn", "export", "cpu", "blocks.4")]
    assert cell.base is Verdict.COVERED
    assert cell.kind is ChangeKind.REGRESSION


def test_diff__reports_a_submodule_regression_while_the_root_still_fails():
    base = base_report(
        job("cnn", "export", sub("", "fail", fp="r"), sub("a", "fail", origin=True), sub("b", "ok"))
    )
    head = report(
        job(
            "cnn",
            "export",
            sub("", "fail", fp="r"),
            sub("a", "fail", origin=True),
            sub("b", "fail", origin=True),
        )
    )
    changes = diff_reports(base, head)
    assert root(changes, "cnn").kind is ChangeKind.STILL_FAILING
    assert changes.cells[("cnn", "export", "cpu", "b")].kind is ChangeKind.REGRESSION
    assert changes.models[0].cells["export"].submodule_kinds[ChangeKind.REGRESSION] == 1
    assert not gate(changes).passed


def test_diff__infers_origins_when_the_report_does_not_mark_them():
    head = report(job("cnn", "export", sub("", "fail"), sub("blocks", "fail"), sub("blocks.1", "fail")))
    changes = diff_reports(base_report(ok("cnn")), head)
    assert changes.cells[("cnn", "export", "cpu", "blocks.1")].origin
    assert changes.counts[ChangeKind.REGRESSION] == 1


def test_diff__follows_same_as_links_and_folds_the_copies():
    head = report(
        job(
            "cnn",
            "export",
            sub("", "fail"),
            sub("blocks.0", "fail", origin=True),
            sub("blocks.1", "same-as", same_as="blocks.0"),
        )
    )
    base = base_report(job("cnn", "export", sub("", "ok")))
    changes = diff_reports(base, head)
    copy = changes.cells[("cnn", "export", "cpu", "blocks.1")]
    assert copy.head is Verdict.FAIL
    assert copy.same_as == "blocks.0"
    assert copy.folded_under == "blocks.0"
    assert changes.counts[ChangeKind.REGRESSION] == 1


def test_diff__keys_cells_by_model_target_device_and_path():
    changes = diff_reports(
        base_report(ok("cnn", device="cpu"), ok("cnn", device="cuda")),
        report(ok("cnn", device="cpu"), job("cnn", "export", sub("", "fail"), device="cuda")),
    )
    assert changes.cells[("cnn", "export", "cuda", "")].kind is ChangeKind.REGRESSION
    assert changes.cells[("cnn", "export", "cpu", "")].kind is ChangeKind.UNCHANGED_OK
    assert changes.devices == ("cpu", "cuda")


def test_diff__gives_one_model_row_per_model_and_device_with_root_verdicts():
    changes = diff_reports(
        base_report(ok("cnn"), ok("cnn", "onnx")), report(failing("cnn"), ok("cnn", "onnx"))
    )
    (row,) = changes.models
    assert set(row.cells) == {"export", "onnx"}
    assert (row.cells["export"].base, row.cells["export"].head) == (Verdict.OK, Verdict.FAIL)
    assert row.worst is ChangeKind.REGRESSION


# --- notes ------------------------------------------------------------------------------------


def test_diff__notes_torch_and_onnx_version_mismatch():
    changes = diff_reports(
        base_report(ok("cnn"), torch="2.5.1", onnx="1.16.0"), report(ok("cnn"), torch="2.6.0", onnx="1.17.0")
    )
    assert [(v.package, v.base, v.head) for v in changes.version_notes] == [
        ("torch", "2.5.1", "2.6.0"),
        ("onnx", "1.16.0", "1.17.0"),
    ]
    assert changes.has_changes


def test_diff__adds_no_version_note_when_versions_match():
    assert diff_reports(base_report(ok("cnn")), report(ok("cnn"))).version_notes == ()


def test_diff__notes_a_partial_head_report():
    changes = diff_reports(base_report(ok("cnn")), report(ok("cnn"), complete=False))
    assert any("head report is partial" in n for n in changes.notes)


def test_diff__has_no_changes_when_everything_is_as_on_base():
    base = base_report(ok("cnn"), failing("vit"))
    changes = diff_reports(base, report(ok("cnn"), failing("vit")))
    assert not changes.has_changes


# --- no base ----------------------------------------------------------------------------------


def test_diff__makes_everything_new_without_a_base():
    changes = diff_reports(None, report(ok("cnn"), failing("vit")))
    assert set(kinds(changes).values()) == {"new"}
    assert not changes.has_base


def test_gate__counts_failures_without_a_base_only_for_failure_policies():
    changes = diff_reports(None, report(ok("cnn"), failing("vit")))
    assert gate(changes, "regression").passed
    assert not gate(changes, "new-failure").passed
    assert not gate(changes, "any-failure").passed
    assert gate(changes, "new-failure").failing == (("vit", "export", "cpu", "blocks.4"),)


# --- gate policies ----------------------------------------------------------------------------


@pytest.fixture
def mixed():
    """One of each: regression (cnn), changed failure (vit), still failing (mlp), new failing (gpt)."""
    base = base_report(
        ok("cnn"),
        job("vit", "export", sub("", "fail", fp="v1")),
        job("mlp", "export", sub("", "fail", fp="m1")),
    )
    head = report(
        job("cnn", "export", sub("", "fail")),
        job("vit", "export", sub("", "fail", fp="v2")),
        job("mlp", "export", sub("", "fail", fp="m1")),
        job("gpt", "export", sub("", "fail")),
    )
    return diff_reports(base, head)


def failing_models(result) -> set[str]:
    return {key[0] for key in result.failing}


def test_gate__regression_policy_fails_only_on_regressions(mixed):
    result = gate(mixed, "regression")
    assert not result.passed and result.exit_code == 1
    assert failing_models(result) == {"cnn"}
    assert result.reasons == ("1 regression: cnn/export/cpu",)


def test_gate__new_failure_policy_also_fails_on_changed_and_new_failures(mixed):
    assert failing_models(gate(mixed, "new-failure")) == {"cnn", "vit", "gpt"}


def test_gate__any_failure_policy_fails_on_every_head_failure(mixed):
    assert failing_models(gate(mixed, "any-failure")) == {"cnn", "vit", "mlp", "gpt"}


def test_gate__never_policy_always_passes(mixed):
    result = gate(mixed, "never")
    assert result.passed and result.exit_code == 0 and result.failing == ()


def test_gate__regression_policy_passes_on_still_failing_and_fixes():
    base = base_report(failing("cnn"), failing("vit"))
    changes = diff_reports(base, report(failing("cnn"), ok("vit")))
    assert gate(changes).passed


def test_gate__any_failure_policy_counts_a_head_crash():
    changes = diff_reports(base_report(ok("cnn")), report(job("cnn", "export", sub("", "oom"))))
    assert not gate(changes, "any-failure").passed
    assert gate(changes, "new-failure").passed


def test_gate__rejects_an_unknown_policy_by_naming_the_choices():
    with pytest.raises(ValueError, match="regression, new-failure, any-failure, never"):
        parse_policy("sometimes")
    assert parse_policy(" New-Failure ") is Policy.NEW_FAILURE


# --- xfail ------------------------------------------------------------------------------------


def test_xfail__a_failing_xfail_submodule_does_not_fail_the_gate():
    head = report(
        job(
            "cnn",
            "export",
            sub("", "fail"),
            sub("blocks.4", "fail", origin=True, xfail="needs torch.cond"),
        )
    )
    changes = diff_reports(base_report(ok("cnn")), head)
    origin = changes.cells[("cnn", "export", "cpu", "blocks.4")]
    assert origin.kind is ChangeKind.REGRESSION and origin.expected
    assert root(changes, "cnn").expected  # the root fails only because of it
    for policy in Policy:
        assert gate(changes, policy).passed, policy
    assert any("expected failure" in n for n in gate(changes).notes)


def test_xfail__a_failing_xfail_model_does_not_fail_the_gate():
    head = report(job("cnn", "export", sub("", "fail"), xfail="upstream bug"))
    changes = diff_reports(base_report(ok("cnn")), head)
    assert root(changes, "cnn").xfail == "upstream bug"
    assert gate(changes, "any-failure").passed


def test_xfail__a_passing_xfail_is_called_out_for_removal():
    base = base_report(job("cnn", "export", sub("", "fail"), xfail="upstream bug"))
    head = report(job("cnn", "export", sub("", "ok"), xfail="upstream bug"))
    changes = diff_reports(base, head)
    assert [c.key for c in changes.xfail_passing] == [("cnn", "export", "cpu", "")]
    result = gate(changes)
    assert result.passed
    assert any("remove" in n for n in result.notes)


def test_xfail__a_covered_xfail_submodule_counts_as_passing():
    base = base_report(job("cnn", "export", sub("", "fail"), sub("blocks.4", "fail", origin=True)))
    head = report(job("cnn", "export", sub("", "ok"), sub("blocks.4", "covered", xfail="flaky guard")))
    changes = diff_reports(base, head)
    assert [c.path for c in changes.xfail_passing] == ["blocks.4"]


def test_xfail__a_model_xfail_is_called_out_once_not_per_submodule():
    head = report(job("cnn", "export", sub("", "ok"), sub("a", "covered"), sub("b", "covered"), xfail="x"))
    changes = diff_reports(base_report(ok("cnn")), head)
    assert [c.path for c in changes.xfail_passing] == [""]


def test_xfail__an_index_from_the_manifest_applies_to_reports_swept_without_it():
    manifest = SimpleNamespace(
        models=[SimpleNamespace(name="cnn", xfail=None, xfail_submodules={"blocks.4": "known"})]
    )
    changes = diff_reports(
        base_report(ok("cnn")), report(failing("cnn")), xfail=XfailIndex.from_manifest(manifest)
    )
    assert changes.cells[("cnn", "export", "cpu", "blocks.4")].xfail == "known"
    assert gate(changes).passed


def test_diff__notes_when_base_and_head_ran_on_different_devices():
    base = report(job("cnn", "export", sub(""), device="cuda"))
    head = report(job("cnn", "export", sub("", "fail"), device="cpu"))
    changes = diff_reports(base, head)
    assert any("different devices for cnn · export (cuda → cpu)" in note for note in changes.notes)


# --- attribution to an upgrade ------------------------------------------------------------------


def _same_code(j: JobResult, files: dict[str, str] | None = None) -> JobResult:
    """A job stamped the way a sweep stamps it: its dependency files and a content hash."""
    return replace(j, dependencies=files or {"models/cnn.py": "aaa"}, content_hash="hash")


def test_diff__upgrade_owns_the_regressions_of_models_whose_code_did_not_change():
    base = base_report(
        _same_code(ok("cnn")), _same_code(ok("vit")), _same_code(failing("rnn")), torch="2.13.0"
    )
    head = report(
        _same_code(failing("cnn")),
        _same_code(failing("vit", origin_path="blocks.1")),
        _same_code(ok("rnn")),
        torch="2.14.1",
    )
    upgrade = diff_reports(base, head).upgrade
    assert upgrade is not None
    assert [(v.package, v.base, v.head) for v in upgrade.versions] == [("torch", "2.13.0", "2.14.1")]
    assert upgrade.regressed_models == ("cnn", "vit")
    assert [k[0] for k in upgrade.fixes] == ["rnn"]
    assert upgrade.summary() == "torch 2.13.0 → 2.14.1: 2 regressions in 2 models, 1 fix"


def test_diff__a_model_whose_code_changed_is_not_blamed_on_the_upgrade():
    base = base_report(_same_code(ok("cnn")), _same_code(ok("vit")), torch="2.13.0")
    head = report(
        _same_code(failing("cnn"), {"models/cnn.py": "bbb"}),  # the PR edited it
        _same_code(failing("vit")),
        torch="2.14.1",
    )
    changes = diff_reports(base, head)
    assert changes.upgrade is not None
    assert changes.upgrade.regressed_models == ("vit",)
    assert changes.code_changed == frozenset({("cnn", "export", "cpu")})
    assert changes.upgrade.summary() == "torch 2.13.0 → 2.14.1: 1 regression in 1 model"


def test_diff__jobs_without_a_content_hash_are_never_attributed():
    base = base_report(ok("cnn"), torch="2.13.0")  # no dependencies recorded: cannot tell
    head = report(failing("cnn"), torch="2.14.1")
    upgrade = diff_reports(base, head).upgrade
    assert upgrade is not None and upgrade.regressions == ()
    assert upgrade.summary() == "torch 2.13.0 → 2.14.1: no change in export status"


def test_diff__no_upgrade_when_versions_match():
    changes = diff_reports(base_report(_same_code(ok("cnn"))), report(_same_code(failing("cnn"))))
    assert changes.upgrade is None


def test_diff__a_model_library_upgrade_is_a_version_note_and_owns_its_regressions():
    base = base_report(_same_code(ok("llama")), torch="2.13.0")
    head = report(_same_code(failing("llama", origin_path="model.layers.0")), torch="2.13.0")
    base.environment.packages = {"transformers": "4.57.0", "timm": "1.0.31"}
    head.environment.packages = {"transformers": "5.24.0", "timm": "1.0.31"}
    changes = diff_reports(base, head)
    assert [(v.package, v.base, v.head) for v in changes.version_notes] == [
        ("transformers", "4.57.0", "5.24.0")
    ]
    assert changes.upgrade is not None
    assert changes.upgrade.summary() == "transformers 4.57.0 → 5.24.0: 1 regression in 1 model"


def test_diff__a_report_without_package_versions_is_not_a_removal():
    base = base_report(ok("llama"))  # an older report: no packages recorded
    head = report(ok("llama"))
    head.environment.packages = {"transformers": "5.24.0"}
    assert diff_reports(base, head).version_notes == ()


# --- moved subtrees and paths that did not exist --------------------------------------------


def _vit_subs(prefix: str, verdict: str = "covered", *, blocks: int = 3) -> list:
    """A ViT-like subtree under ``prefix``: blocks with attention and MLP, and a final norm."""
    out = []
    for i in range(blocks):
        for leaf, kind in (
            ("", "Block"),
            (".attn", "Attention"),
            (".attn.attn_drop", "Dropout"),
            (".mlp", "Mlp"),
        ):
            out.append(sub(f"{prefix}blocks.{i}{leaf}", verdict, module_type=kind))
    out.append(sub(f"{prefix}norm", verdict, module_type="LayerNorm"))
    return out


def _wrapped(*overrides):
    """Base: a ViT that exports; head: the same ViT held as ``backbone`` by a wrapper that fails."""
    base = base_report(job("vit", "export", sub("", "ok", module_type="VisionTransformer"), *_vit_subs("")))
    replaced = {s.path: s for s in overrides}
    head_subs = [
        sub("", "fail", module_type="CalibratedViT", origin=True),
        sub("backbone", "ok", module_type="VisionTransformer"),
        *(replaced.get(s.path, s) for s in _vit_subs("backbone.")),
    ]
    return diff_reports(base, report(job("vit", "export", *head_subs)))


def test_diff__pairs_a_wrapped_models_submodules_under_their_new_prefix_instead_of_removed_and_new():
    changes = _wrapped()

    assert [(m.old_prefix, m.new_prefix, m.count) for m in changes.moves] == [("", "backbone.", 13)]
    assert not [c for c in changes.cells.values() if c.kind is ChangeKind.REMOVED]
    moved = changes.cells[("vit", "export", "cpu", "backbone.blocks.0.attn")]
    assert moved.kind is ChangeKind.UNCHANGED_OK and moved.moved_from == "blocks.0.attn"


def test_diff__reports_a_regression_inside_a_moved_subtree_at_its_new_path():
    changes = _wrapped(sub("backbone.blocks.1.mlp", "fail", module_type="Mlp", fp="fp-mlp", origin=True))

    cell = changes.cells[("vit", "export", "cpu", "backbone.blocks.1.mlp")]
    assert cell.kind is ChangeKind.REGRESSION
    assert cell.base is Verdict.COVERED and cell.moved_from == "blocks.1.mlp"
    assert ("vit", "export", "cpu", "blocks.1.mlp") not in changes.cells


def test_diff__finds_no_move_when_most_removed_paths_do_not_reappear_under_one_prefix():
    base = base_report(job("vit", "export", sub("", "ok"), *_vit_subs("", blocks=4)))
    # Only one block of four comes back under a new prefix: a rewrite, not a move.
    head_subs = [sub("", "ok"), *[s for s in _vit_subs("new.", blocks=1)]]
    changes = diff_reports(base, report(job("vit", "export", *head_subs)))

    assert changes.moves == ()
    assert changes.cells[("vit", "export", "cpu", "blocks.3")].kind is ChangeKind.REMOVED


def test_diff__pairs_a_renamed_child_and_its_subtree():
    base = base_report(
        job(
            "vit",
            "export",
            sub("", "ok"),
            sub("encoder", "covered", module_type="Enc"),
            *_vit_subs("encoder."),
        )
    )
    head = report(
        job("vit", "export", sub("", "ok"), sub("trunk", "covered", module_type="Enc"), *_vit_subs("trunk."))
    )
    changes = diff_reports(base, head)

    assert [(m.old_prefix, m.new_prefix, m.count) for m in changes.moves] == [("encoder.", "trunk.", 14)]
    assert changes.cells[("vit", "export", "cpu", "trunk")].moved_from == "encoder"
    assert {c.kind for c in changes.cells.values()} == {ChangeKind.UNCHANGED_OK}


def test_diff__claims_no_base_verdict_for_a_path_missing_from_a_base_that_listed_its_subtree():
    # Base walked the whole tree (every submodule listed, covered by the root); head adds a
    # module that was never there. It is new, not "was covered on base".
    base = base_report(job("vit", "export", sub("", "ok"), sub("head", "covered", module_type="Linear")))
    head = report(
        job(
            "vit",
            "export",
            sub("", "fail", origin=True),
            sub("head", "ok", module_type="Linear"),
            sub("calib", "not-called", module_type="Dropout"),
        )
    )
    cell = diff_reports(base, head).cells[("vit", "export", "cpu", "calib")]

    assert cell.kind is ChangeKind.NEW
    assert cell.base is None and cell.note is None


def test_diff__still_counts_an_unlisted_path_as_covered_when_the_base_listed_nothing_below_the_root():
    base = base_report(ok("cnn"))  # a sweep that stopped at the root: its children are covered
    head = report(job("cnn", "export", sub("", "fail"), sub("blocks", "fail", origin=True)))

    assert diff_reports(base, head).cells[("cnn", "export", "cpu", "blocks")].kind is ChangeKind.REGRESSION


def test_diff__reads_a_shared_module_listed_under_another_name_as_the_same_result():
    # One module object under two parents is listed once, with its other path as an alias; the
    # two sides may pick a different first name.
    def shared(first: str, other: str) -> JobResult:
        return job(
            "lm",
            "export",
            sub("", "ok"),
            sub("wte", "covered"),
            sub("wte.b", "covered"),
            sub("head", "covered"),
            sub("head.b", "covered"),
            replace(sub(first, "covered"), aliases=[other]),
        )

    changes = diff_reports(base_report(shared("wte.w", "head.w")), report(shared("head.w", "wte.w")))

    assert {c.kind for c in changes.cells.values()} == {ChangeKind.UNCHANGED_OK}


def test_gate__notes_say_one_thing_in_the_singular():
    base = base_report(ok("cnn"), ok("vit"))
    head = report(
        job("cnn", "export", sub("", "timeout")), job("vit", "export", sub("", "fail"), xfail="known")
    )
    notes = gate(diff_reports(base, head), "regression").notes

    assert (
        "1 infrastructure problem (crash / timeout / out of memory) was not gated: rerun to confirm" in notes
    )
    assert "1 expected failure (xfail) did not count" in notes


def test_diff__folds_a_new_wrapper_that_fails_only_because_of_a_regression_moved_inside_it():
    base = base_report(job("vit", "export", sub("", "ok"), *_vit_subs("")))
    head_subs = [
        sub("", "fail", fp="dd"),
        sub("backbone", "fail", fp="dd", module_type="VisionTransformer"),
        *(
            sub(s.path, "fail", fp="dd", origin=True, module_type="Mlp")
            if s.path == "backbone.blocks.1.mlp"
            else s
            for s in _vit_subs("backbone.")
        ),
    ]
    changes = diff_reports(base, report(job("vit", "export", *head_subs)))

    assert [(c.path, c.kind) for c in changes.top_level() if c.head_fails] == [
        ("backbone.blocks.1.mlp", ChangeKind.REGRESSION)
    ]
    assert changes.cells[("vit", "export", "cpu", "backbone")].folded_under == "backbone.blocks.1.mlp"
    for policy in ("regression", "new-failure", "any-failure"):
        assert not gate(changes, policy).passed
