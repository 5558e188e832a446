"""Reports that are valid but huge: the stages that read them stay linear (bounded time).

A 64 MB report can hold 100,000 submodules or a plan of a million entries; pairwise loops over
them (the origin rule, the plan comparison of a merge) once took minutes to hours.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exportwatch.report import (
    FAILING,
    JobResult,
    Report,
    SubmoduleResult,
    Verdict,
    failure_identity,
    follow_same_as,
    origin_paths,
)
from exportwatch.report.merge import MergeError, merge_reports
from exportwatch.report.tree import is_descendant


def reference_origin_paths(job: JobResult) -> set[str]:
    """The rule as first written: every failing pair compared (quadratic, but plainly right)."""
    index = {s.path: s for s in job.submodules}
    resolved = {s.path: follow_same_as(s, index.get) for s in job.submodules}
    failing = {p: r for p, r in resolved.items() if r.verdict in FAILING}
    names = {s.path: [s.path, *s.aliases] for s in job.submodules}

    def below(other: str, path: str) -> bool:
        return any(is_descendant(o, p) for o in names[other] for p in names[path])

    computed = {
        path
        for path, result in failing.items()
        if index[path].verdict != Verdict.SAME_AS
        and not any(
            below(other, path) and failure_identity(r) == failure_identity(result)
            for other, r in failing.items()
        )
    }
    copies = {p for p, r in failing.items() if index[p].verdict == Verdict.SAME_AS and r.path in computed}
    return computed | copies


PATHS = st.sampled_from(["", "a", "a.b", "a.b.c", "a.c", "b", "b.a", "ab", "a.bc"])


@st.composite
def jobs(draw: st.DrawFn) -> JobResult:
    subs = []
    for path in draw(st.lists(PATHS, unique=True, max_size=9)):
        verdict = draw(st.sampled_from([Verdict.FAIL, Verdict.OK, Verdict.SAME_AS, Verdict.CRASH]))
        subs.append(
            SubmoduleResult(
                path=path,
                module_type="M",
                verdict=verdict,
                fingerprint=draw(st.sampled_from([None, "f1", "f2"])),
                message=draw(st.sampled_from([None, "m"])),
                same_as=draw(PATHS) if verdict == Verdict.SAME_AS else None,
                aliases=draw(st.lists(PATHS, max_size=2)),
            )
        )
    return JobResult(model="m", target="export", device="cpu", verdict=Verdict.FAIL, submodules=subs)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(jobs())
def test_origin_paths__the_prefix_search_agrees_with_the_pairwise_rule(job):
    assert origin_paths(job) == reference_origin_paths(job)


@pytest.mark.slow
def test_origin_paths__is_fast_for_100_000_failing_submodules():
    """3,000 failing submodules took 9 s with the pairwise rule; 100,000 would take hours."""
    subs = [SubmoduleResult(path="", module_type="M", verdict=Verdict.FAIL, fingerprint="root")]
    subs += [
        SubmoduleResult(path=f"b{i}.c", module_type="M", verdict=Verdict.FAIL, fingerprint=f"f{i % 7}")
        for i in range(100_000)
    ]
    job = JobResult(model="m", target="export", device="cpu", verdict=Verdict.FAIL, submodules=subs)
    started = time.perf_counter()
    assert len(origin_paths(job)) == 100_001
    assert time.perf_counter() - started < 10


def test_merge__compares_two_long_plans_in_linear_time():
    """The plan difference rebuilt a set per entry: two 200,000-entry plans, 4·10¹⁰ steps."""
    plan = [f"model{i}/export" for i in range(200_000)]
    first = Report(tool_version="1", shard="1/2", plan=plan)
    second = Report(tool_version="1", shard="2/2", plan=[*plan[1:], "other/export"])
    started = time.perf_counter()
    try:
        merge_reports([first, second])
    except MergeError as exc:
        assert "different plans" in str(exc) and "model0/export" in str(exc)
    else:
        raise AssertionError("different plans were merged")
    assert time.perf_counter() - started < 10
