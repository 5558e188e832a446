"""Pure decisions of the base side: reuse, stored-baseline compatibility, the result cache."""

from __future__ import annotations

import pytest

from exportwatch.baseline.cache import ResultCache
from exportwatch.baseline.execute import load_stored_baseline
from exportwatch.baseline.plan import baseline_incompatibility, decide_reuse
from exportwatch.report import Environment, JobResult, Report, ResultSource, Verdict, write_report
from exportwatch.report.provenance import ModelFingerprint

HASH = "a" * 64


def fingerprint(**overrides) -> ModelFingerprint:
    fields = dict(model="m", device="cpu", entry='{"name":"m"}', dependencies={"m.py": "1", "h.py": "2"})
    fields.update(overrides)
    return ModelFingerprint(**fields)


def test_decide_reuse__reuses_when_every_file_and_the_entry_are_identical():
    decision = decide_reuse(fingerprint(), fingerprint())
    assert decision.reuse and decision.reason == "no dependency changed"


def test_decide_reuse__names_the_changed_added_and_removed_files():
    head = fingerprint(dependencies={"m.py": "1", "h.py": "CHANGED", "new.py": "3"})
    base = fingerprint(dependencies={"m.py": "1", "h.py": "2", "gone.py": "4"})
    decision = decide_reuse(head, base)
    assert not decision.reuse
    assert decision.changed == ("gone.py", "h.py", "new.py")
    assert decision.reason == "changed: gone.py, h.py, new.py"


def test_decide_reuse__does_not_reuse_when_the_manifest_entry_changed():
    decision = decide_reuse(fingerprint(entry='{"name":"m","timeout":5}'), fingerprint())
    assert not decision.reuse and decision.reason == "its manifest entry changed"


def test_decide_reuse__has_no_base_for_a_new_model_and_no_head_for_a_removed_one():
    assert decide_reuse(fingerprint(), None).reason == "new model (not in the base manifest)"
    assert decide_reuse(None, fingerprint()).reason == "removed from the head manifest"


def test_baseline_incompatibility__refuses_another_torch_version_with_both_versions_named():
    stored = Report(tool_version="0.1.0", environment=Environment(torch="2.5.0"))
    why = baseline_incompatibility(stored, tool_version="0.1.3", env=Environment(torch="2.13.0"))
    assert why == "it was made with torch 2.5.0 and this run uses torch 2.13.0"


def test_baseline_incompatibility__refuses_another_major_tool_version_and_accepts_a_minor_one():
    env = Environment(torch="2.13.0")
    assert "major versions differ" in baseline_incompatibility(
        Report(tool_version="1.0.0", environment=env), tool_version="0.9.0", env=env
    )
    minor = Report(tool_version="0.2.0", environment=env)
    assert baseline_incompatibility(minor, tool_version="0.9.1", env=env) is None


def test_load_stored_baseline__explains_an_unreadable_file(tmp_path):
    path = tmp_path / "stored.json"
    path.write_text("{not json")
    report, message = load_stored_baseline(path, env=Environment(torch="2.13.0"))
    assert report is None and "stored baseline not used" in message and "not valid JSON" in message


def test_load_stored_baseline__says_why_it_refuses_another_torch_version(tmp_path):
    path = tmp_path / "stored.json"
    write_report(Report(tool_version="0.1.0", environment=Environment(torch="2.5.0")), path)
    report, message = load_stored_baseline(path, tool_version="0.1.0", env=Environment(torch="2.13.0"))
    assert report is None
    assert message == (
        f"stored baseline {path} not used: it was made with torch 2.5.0 and this run uses "
        "torch 2.13.0; sweeping the base instead"
    )


def job(verdict: Verdict = Verdict.OK, **fields) -> JobResult:
    return JobResult(model="m", target="export", device="cpu", verdict=verdict, content_hash=HASH, **fields)


def test_result_cache__returns_a_stored_result_marked_as_coming_from_the_cache(tmp_path):
    cache = ResultCache(tmp_path)
    assert cache.put(job(duration_s=1.5))
    found = cache.get(HASH, key=("m", "export", "cpu"))
    assert found is not None and found.source is ResultSource.CACHE and found.duration_s == 1.5
    assert cache.get("b" * 64) is None


@pytest.mark.parametrize("verdict", [Verdict.CRASH, Verdict.TIMEOUT, Verdict.OOM, Verdict.SKIPPED])
def test_result_cache__never_stores_results_that_describe_the_machine(tmp_path, verdict):
    cache = ResultCache(tmp_path)
    assert not cache.put(job(verdict))
    assert list(tmp_path.iterdir()) == []


def test_result_cache__ignores_entries_of_another_exportwatch_version_or_job(tmp_path):
    ResultCache(tmp_path, tool_version="0.1.0").put(job())
    assert ResultCache(tmp_path, tool_version="0.2.0").get(HASH) is None
    assert ResultCache(tmp_path, tool_version="0.1.0").get(HASH, key=("other", "export", "cpu")) is None
    assert ResultCache(tmp_path, tool_version="0.1.0").get(HASH, key=("m", "export", "cuda")) is None


def test_result_cache__survives_a_corrupt_entry(tmp_path):
    (tmp_path / f"{HASH}.json").write_text("{")
    assert ResultCache(tmp_path).get(HASH) is None


def test_decide_reuse__refuses_when_the_factory_is_not_a_repository_file():
    """Unknown dependencies must never look unchanged (a src/ layout once slipped through)."""
    decision = decide_reuse(fingerprint(dependencies={}, unresolved=("mypkg.models:M",)),
                            fingerprint(dependencies={}, unresolved=("mypkg.models:M",)))  # fmt: skip
    assert not decision.reuse
    assert "mypkg.models:M is not a file in the repository" in decision.reason


def test_cache__never_answers_an_auto_device_key(tmp_path):
    cache = ResultCache(tmp_path)
    job = JobResult(model="m", target="export", device="cuda", verdict=Verdict.OK, content_hash=HASH)
    assert cache.put(job)
    assert cache.get(HASH, key=("m", "export", "cuda")) is not None
    assert cache.get(HASH, key=("m", "export", "auto")) is None
    assert cache.get(HASH, key=("m", "export", "cpu")) is None


def test_baseline_incompatibility__accepts_another_torch_when_the_dependency_set_changed():
    """The merge-base's own torch is exactly right for the base when the PR bumps it."""
    stored = Report(tool_version="0.1.0", environment=Environment(torch="2.5.0"))
    assert (
        baseline_incompatibility(
            stored, tool_version="0.1.3", env=Environment(torch="2.13.0"), same_torch=False
        )
        is None
    )
    other_major = Report(tool_version="1.0.0", environment=Environment(torch="2.5.0"))
    assert "major versions differ" in baseline_incompatibility(
        other_major, tool_version="0.1.3", env=Environment(torch="2.13.0"), same_torch=False
    )
