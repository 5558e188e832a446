"""The base plan on plain data: one test per rule of where a base result comes from, and why.

No git, no disk, no sweep: :func:`plan_base` is fed facts and its frozen plan is read back.
``tests/integration/test_baseline.py`` runs the same rules end to end in real repositories.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exportwatch import __version__
from exportwatch.baseline.environment import DependencySet
from exportwatch.baseline.plan import (
    BaseFacts,
    BaseModel,
    BasePlan,
    Origin,
    StoredBaseline,
    plan_base,
    settle,
)
from exportwatch.report import Environment, JobResult, Report, ResultSource, Verdict
from exportwatch.report.provenance import ModelFingerprint

MERGE_BASE = "b" * 40
ENV = Environment(python="3.11.9", torch="2.5.0")
OLD_ENV = Environment(python="3.11.9", torch="2.4.0")
DEPS = DependencySet(files={"requirements.txt": "torch==2.5.0"})
OLD_DEPS = DependencySet(files={"requirements.txt": "torch==2.4.0"})


def fingerprint(model: str = "m", **overrides) -> ModelFingerprint:
    fields = dict(model=model, device="cpu", entry=f'{{"name":"{model}"}}', dependencies={f"{model}.py": "1"})
    fields.update(overrides)
    return ModelFingerprint(**fields)


def result(
    fp: ModelFingerprint, env: Environment = ENV, verdict: Verdict = Verdict.OK, **fields
) -> JobResult:
    fields.setdefault("content_hash", fp.content_hash("export", env))
    return JobResult(model=fp.model, target="export", device="cpu", verdict=verdict, **fields)


def facts(
    base: list[ModelFingerprint] | None = None,
    head: list[ModelFingerprint] | None = None,
    **fields,
) -> BaseFacts:
    """Facts after HEAD's sweep: every head model has a result; by default the head has the
    base's models, unchanged (as :func:`fingerprint` makes them)."""
    base = [fingerprint()] if base is None else base
    head = [fingerprint(fp.model) for fp in base] if head is None else head
    fields.setdefault("head_deps", DEPS)
    fields.setdefault("base_deps", DEPS)
    return BaseFacts(
        merge_base=MERGE_BASE,
        manifest_rel="exportwatch.yml",
        env=ENV,
        models=tuple(BaseModel(fingerprint=fp, targets=("export",)) for fp in base),
        head_prints={fp.model: fp for fp in head},
        head_jobs={(fp.model, "export"): result(fp) for fp in head},
        **fields,
    )


def only(plan: BasePlan, model: str = "m"):
    (job,) = [job for job in plan.jobs if job.model == model]
    return job


def stored(*jobs: JobResult, env: Environment = ENV, sha: str = MERGE_BASE, **fields) -> StoredBaseline:
    report = Report(jobs=list(jobs), environment=env, git_sha=sha, tool_version=__version__)
    return StoredBaseline(path=Path("base.json"), report=report, **fields)


def test_plan_base__reuses_the_head_result_when_nothing_the_model_depends_on_changed():
    job = only(plan_base(facts()))
    assert job.origin is Origin.REUSE_HEAD
    assert job.reason == "no dependency changed"
    assert job.result is not None and job.result.source is ResultSource.REUSED


def test_plan_base__sweeps_a_changed_model_in_a_worktree_and_says_which_file_changed():
    plan = plan_base(facts(base=[fingerprint(dependencies={"m.py": "OLD"})]))
    job = only(plan)
    assert job.origin is Origin.SWEEP_WORKTREE and job.result is None
    assert job.reason == "changed: m.py"
    assert plan.swept_models == ("m",)
    assert plan.sweep_message(1) == "sweeping 1 of 1 model(s) on the merge-base: m (changed: m.py)"


def test_plan_base__does_not_reuse_a_head_result_hashed_otherwise():
    same = fingerprint()
    head = dataclasses.replace(
        facts(base=[same]), head_jobs={("m", "export"): result(same, content_hash="x")}
    )
    assert only(plan_base(head)).origin is Origin.SWEEP_WORKTREE


def test_plan_base__takes_a_job_from_the_stored_baseline_under_the_same_content_hash():
    base = fingerprint(dependencies={"m.py": "OLD"})
    plan = plan_base(facts(base=[base], stored=stored(result(base, verdict=Verdict.FAIL))))
    job = only(plan)
    assert job.origin is Origin.STORED_BASELINE and job.reason == "changed: m.py"
    assert job.result is not None and job.result.verdict is Verdict.FAIL
    assert job.result.source is ResultSource.BASELINE
    assert plan.notes == ()


def test_plan_base__reuse_comes_before_the_stored_baseline():
    fp = fingerprint()
    job = only(plan_base(facts(stored=stored(result(fp, verdict=Verdict.FAIL)))))
    assert job.origin is Origin.REUSE_HEAD


def test_plan_base__refuses_a_stored_baseline_made_with_another_torch_and_says_so():
    base = fingerprint(dependencies={"m.py": "OLD"})
    plan = plan_base(facts(base=[base], stored=stored(result(base), env=OLD_ENV)))
    assert only(plan).origin is Origin.SWEEP_WORKTREE
    assert plan.notes == (
        "stored baseline base.json not used: it was made with torch 2.4.0 and this run uses torch 2.5.0;"
        " sweeping the base instead",
    )


def test_plan_base__an_unreadable_stored_baseline_is_a_note_not_a_failure():
    unreadable = StoredBaseline(path=Path("base.json"), load_error="not JSON")
    plan = plan_base(facts(base=[fingerprint(dependencies={"m.py": "OLD"})], stored=unreadable))
    assert only(plan).origin is Origin.SWEEP_WORKTREE
    assert plan.notes == ("stored baseline not used: not JSON; sweeping the base instead",)


def test_plan_base__takes_a_cache_hit_when_neither_reuse_nor_the_stored_baseline_applies():
    base = fingerprint(dependencies={"m.py": "OLD"})
    hit = dataclasses.replace(result(base), source=ResultSource.CACHE)
    job = only(plan_base(facts(base=[base], cached={("m", "export"): hit})))
    assert job.origin is Origin.CACHE and job.result is not None
    assert job.result.source is ResultSource.CACHE


def test_plan_base__a_changed_dependency_set_forbids_reuse_and_the_cache_and_sweeps_in_the_base_env():
    base = fingerprint()
    plan = plan_base(facts(base=[base], base_deps=OLD_DEPS, cached={("m", "export"): result(base)}))
    job = only(plan)
    assert job.origin is Origin.SWEEP_BASE_ENV
    assert job.reason == "the dependency set changed (requirements.txt)"
    assert plan.deps_changed == ("requirements.txt",)
    assert plan.install.requirement_files == ("requirements.txt",)
    assert plan.env_origin == "built from the merge-base's requirements.txt"
    assert plan.blocked is None
    assert plan.notes == (
        "the dependency set differs between the merge-base and HEAD (requirements.txt):"
        " the base is not swept with HEAD's packages",
    )


def test_plan_base__with_a_changed_dependency_set_matches_a_merge_base_baseline_in_its_own_environment():
    base = fingerprint()
    plan = plan_base(
        facts(base=[base], base_deps=OLD_DEPS, stored=stored(result(base, env=OLD_ENV), env=OLD_ENV))
    )
    job = only(plan)
    assert job.origin is Origin.STORED_BASELINE
    assert job.reason.endswith(
        "; from the stored baseline, made on the merge-base in its own environment (torch 2.4.0)"
    )
    assert plan.stored_environment == OLD_ENV
    assert plan.notes[1].startswith(
        "stored baseline base.json: made on the merge-base in its own environment"
    )


def test_plan_base__with_a_changed_dependency_set_refuses_a_baseline_from_a_commit_with_other_dependencies():
    base = fingerprint()
    elsewhere = stored(result(base, env=OLD_ENV), env=OLD_ENV, sha="c" * 40, commit_deps=DEPS)
    plan = plan_base(facts(base=[base], base_deps=OLD_DEPS, stored=elsewhere))
    assert only(plan).origin is Origin.SWEEP_BASE_ENV
    assert plan.stored_environment is None
    assert plan.notes[1] == (
        "stored baseline base.json not used: it was made on cccccccccccc, whose dependency set"
        " may not be the merge-base's; sweeping the base instead"
    )


def test_plan_base__with_a_changed_dependency_set_accepts_a_baseline_from_a_commit_with_equal_dependencies():
    base = fingerprint()
    same_deps = stored(result(base, env=OLD_ENV), env=OLD_ENV, sha="c" * 40, commit_deps=OLD_DEPS)
    plan = plan_base(facts(base=[base], base_deps=OLD_DEPS, stored=same_deps))
    assert only(plan).origin is Origin.STORED_BASELINE


def test_plan_base__base_env_never_blocks_the_base_environment():
    plan = plan_base(facts(base_deps=OLD_DEPS, base_env_mode="never"))
    assert only(plan).origin is Origin.SWEEP_BASE_ENV
    assert plan.blocked == "--base-env never"


def test_plan_base__a_changed_lock_file_blocks_the_base_environment():
    plan = plan_base(
        facts(
            head_deps=DependencySet(files={"uv.lock": "1"}), base_deps=DependencySet(files={"uv.lock": "2"})
        )
    )
    assert plan.blocked == "pip cannot install from uv.lock"


def test_plan_base__base_env_venv_sweeps_changed_models_in_the_base_env_but_still_reuses():
    changed = fingerprint("a", dependencies={"a.py": "OLD"})
    plan = plan_base(
        facts(
            base=[changed, fingerprint("b")], head=[fingerprint("a"), fingerprint("b")], base_env_mode="venv"
        )
    )
    assert only(plan, "a").origin is Origin.SWEEP_BASE_ENV
    assert only(plan, "b").origin is Origin.REUSE_HEAD


def test_plan_base__base_env_head_ignores_the_dependency_set():
    plan = plan_base(facts(base_deps=OLD_DEPS, base_env_mode="head"))
    assert only(plan).origin is Origin.REUSE_HEAD
    assert plan.deps_changed == () and plan.notes == ()


def test_plan_base__a_model_only_in_the_head_manifest_has_no_base_result():
    plan = plan_base(facts(base=[fingerprint("old")], head=[fingerprint("old"), fingerprint("new")]))
    job = only(plan, "new")
    assert job.origin is Origin.NONE and job.origin.source is None
    assert job.reason == "new model (not in the base manifest)"


@pytest.mark.parametrize(
    ("problem", "note"),
    [
        (None, f"the merge-base {MERGE_BASE[:12]} has no exportwatch.yml: every model is new"),
        ("bad yaml", "the manifest at the merge-base is invalid (bad yaml); every model is compared as new"),
    ],
)
def test_plan_base__without_a_manifest_on_the_merge_base_every_model_is_new(problem, note):
    plan = plan_base(dataclasses.replace(facts(), models=None, manifest_problem=problem))
    assert not plan.has_manifest
    assert [(j.origin, j.reason) for j in plan.jobs] == [(Origin.NONE, "no manifest on the merge-base")]
    assert plan.notes == (note,)


def test_settle__a_job_swept_in_the_base_env_says_what_the_env_was_built_from():
    plan = plan_base(facts(base_deps=OLD_DEPS))
    done = settle(plan, swept=[("m", "export")], failure=None)
    (decision,) = done.decisions
    assert decision.source is ResultSource.SWEPT
    assert decision.reason == (
        "the dependency set changed (requirements.txt); swept in the base environment"
        " (built from the merge-base's requirements.txt)"
    )
    assert done.complete and done.note is None


def test_settle__a_failed_base_env_leaves_jobs_without_a_result_and_the_report_incomplete():
    plan = plan_base(facts(base_deps=OLD_DEPS, base_env_mode="never"))
    done = settle(plan, swept=[], failure=plan.blocked)
    (decision,) = done.decisions
    assert decision.source is None
    assert decision.reason.endswith("; not reproduced in the base's own environment: --base-env never")
    assert done.missing == (("m", "export"),)
    assert not done.complete
    assert done.note is not None and done.note.endswith(
        "1 model(s) have no base result and are compared as new"
        " rather than against results of HEAD's packages: m"
    )


def test_settle__a_job_the_sweep_left_out_says_so_without_failing_the_report():
    plan = plan_base(facts(base=[fingerprint(dependencies={"m.py": "OLD"})]))
    done = settle(plan, swept=[], failure=None)
    assert [d.reason for d in done.decisions] == ["changed: m.py; the base sweep gave no result"]
    assert done.complete


def test_settle__keeps_decisions_in_order_known_then_swept_then_new():
    base = [fingerprint("a", dependencies={"a.py": "OLD"}), fingerprint("b")]
    head = [fingerprint("a"), fingerprint("b"), fingerprint("c")]
    done = settle(plan_base(facts(base=base, head=head)), swept=[("a", "export")], failure=None)
    assert [(d.model, d.source) for d in done.decisions] == [
        ("b", ResultSource.REUSED),
        ("a", ResultSource.SWEPT),
        ("c", None),
    ]
