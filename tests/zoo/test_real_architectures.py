"""exportwatch on real architectures: every model of benchmarks/realarch.exportwatch.yml.

One real sweep (a subprocess, 2 workers) against ``torch._export.tools.report_exportability``
on the same models and inputs: no job may end in ``error`` or ``crash``, the root verdicts
must agree, every failure report_exportability finds must be a failure in exportwatch too, and
every failing origin must point at a line of code (a library's, named as such, when the line is
not in this repository).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from exportwatch.manifest import load_manifest
from tests.zoo.conftest import MANIFEST, REPO_ROOT

# Before transformers/timm/torchvision: lets torchvision import when its C++ extension cannot load.
if str(MANIFEST.parent) not in sys.path:
    sys.path.insert(0, str(MANIFEST.parent))
importlib.import_module("realarch_models")
pytest.importorskip("transformers")
pytest.importorskip("timm")
pytest.importorskip("torchvision")

pytestmark = [pytest.mark.zoo, pytest.mark.slow]

MODELS = [spec.name for spec in load_manifest(MANIFEST).models]
FAILING = ("fail", "mismatch")
BROKEN = ("error", "crash", "timeout", "oom")  # exportwatch or its worker failed, not the model


def _job(zoo_jobs: dict[str, dict[str, Any]], model: str) -> dict[str, Any]:
    assert model in zoo_jobs, f"the report has no job for {model}: {sorted(zoo_jobs)}"
    return zoo_jobs[model]


def _by_path(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Submodules by path, and by every alias (report_exportability names a shared module once)."""
    subs: dict[str, dict[str, Any]] = {}
    for sub in job["submodules"]:
        subs.setdefault(sub["path"], sub)
        for alias in sub.get("aliases") or ():
            subs.setdefault(alias, sub)
    return subs


def _effective(subs: dict[str, dict[str, Any]], sub: dict[str, Any]) -> dict[str, Any]:
    """Follow ``same-as`` links to the submodule whose result was computed."""
    seen = set()
    while sub["verdict"] == "same-as" and sub.get("same_as") in subs and sub["path"] not in seen:
        seen.add(sub["path"])
        sub = subs[sub["same_as"]]
    return sub


def _describe(exc: BaseException | None) -> str:
    return "exports" if exc is None else f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"


@pytest.mark.parametrize("model", MODELS)
def test_sweep__no_job_or_submodule_ends_in_error_or_crash(model: str, zoo_jobs) -> None:
    job = _job(zoo_jobs, model)
    broken = [
        f"{sub['path'] or '<root>'}: {sub['verdict']} ({sub.get('message') or sub.get('reason')})"
        for sub in job["submodules"]
        if sub["verdict"] in BROKEN
    ]
    assert job["verdict"] not in BROKEN, f"job verdict {job['verdict']}: {job.get('reason')}\n" + "\n".join(
        broken
    )
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("model", MODELS)
def test_root_verdict__agrees_with_report_exportability(
    model: str, zoo_jobs, report_exportability_of
) -> None:
    job = _job(zoo_jobs, model)
    root = _by_path(job).get("")
    verdict = root["verdict"] if root is not None else job["verdict"]
    theirs = report_exportability_of(model).get("")
    if theirs is None:
        assert verdict == "ok", f"report_exportability: the root exports; exportwatch: {verdict}"
    else:
        assert verdict in FAILING, f"report_exportability: {_describe(theirs)}; exportwatch: {verdict}"


@pytest.mark.parametrize("model", MODELS)
def test_every_failure_report_exportability_finds__fails_in_exportwatch(
    model: str, zoo_jobs, report_exportability_of
) -> None:
    subs = _by_path(_job(zoo_jobs, model))
    problems = []
    for path, exc in sorted(report_exportability_of(model).items()):
        if exc is None:
            continue
        sub = subs.get(path)
        if sub is None:
            problems.append(f"{path or '<root>'}: not in exportwatch's report ({_describe(exc)})")
            continue
        effective = _effective(subs, sub)
        if effective["verdict"] not in FAILING:
            via = f" (same-as {effective['path']})" if effective is not sub else ""
            problems.append(
                f"{path or '<root>'}: exportwatch {effective['verdict']}{via}; theirs {_describe(exc)}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("model", MODELS)
def test_failing_model__has_an_origin(model: str, zoo_jobs) -> None:
    job = _job(zoo_jobs, model)
    if job["verdict"] not in FAILING:
        return
    origins = [sub["path"] for sub in job["submodules"] if sub.get("origin")]
    assert origins, "the root fails but no submodule is marked as the origin of the failure"


@pytest.mark.parametrize("model", MODELS)
def test_failing_origin__points_at_a_source_line(model: str, zoo_jobs) -> None:
    problems = []
    for sub in _job(zoo_jobs, model)["submodules"]:
        if not (sub.get("origin") and sub["verdict"] == "fail"):
            continue
        where = f"{sub['path'] or '<root>'} ({sub.get('exception_type')}: {sub.get('message')})"
        frame = sub.get("user_frame")
        if not frame:
            problems.append(f"{where}: no user_frame")
            continue
        if not (frame.get("source") or "").strip():
            problems.append(f"{where}: user_frame without a source line: {frame}")
        if not (REPO_ROOT / frame["path"]).is_file() and not frame.get("library"):
            problems.append(f"{where}: frame outside the repository with no library named: {frame}")
    assert not problems, "\n".join(problems)
