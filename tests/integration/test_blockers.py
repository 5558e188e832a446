"""Every blocker of an origin (issue 28, item 2): ``draft_export`` on each failing origin of the
``export`` target, read into the report; real exports of ``tests/fixtures/models/blocker_cases.py``
(its line numbers are asserted here)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec, load_manifest
from exportwatch.report import JobResult, Report, Verdict
from exportwatch.report.model import BlockerStatus
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.settings import SweepSettings
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT
from tests.side_by_side import run_side_by_side

SETTINGS = SweepSettings(manifest_root=FIXTURES, repo_root=REPO_ROOT)
CASES = "tests/fixtures/models/blocker_cases.py"


def sweep(factory: str, *, settings: SweepSettings = SETTINGS, **fields: object) -> JobResult:
    spec = ModelSpec(
        name="model",
        factory=f"models.blocker_cases:{factory}",
        inputs=InputsSpec(args=[TensorSpec(shape=[8])]),
        **fields,  # type: ignore[arg-type]
    )
    return sweep_target(prepare_model(spec, device="cpu", settings=settings), "export", settings=settings)


@pytest.fixture(scope="module")
def two_data_dependent() -> JobResult:
    """``TwoDataDependent`` swept once for the module's tests that read it."""
    return sweep("TwoDataDependent")


def test_blockers__two_data_dependent_problems_are_both_found_with_their_lines_and_item_lines(
    two_data_dependent: JobResult,
) -> None:
    job = two_data_dependent
    root = job.root
    assert root is not None and root.verdict == Verdict.FAIL and root.origin
    # export stops at the first problem ...
    assert root.user_frame is not None and root.user_frame.line == 21
    found = root.blockers
    assert found is not None and found.status is BlockerStatus.FOUND
    # ... draft_export finds both, each at its own line of the repository
    assert [(b.kind, b.user_frame.path, b.user_frame.line) for b in found.found if b.user_frame] == [
        ("data-dependent", CASES, 21),
        ("data-dependent", CASES, 23),
    ]
    assert found.total == 2
    peak, count = found.found
    assert peak.expression == "zuf0 < 1.0" and count.expression == "u0 > 2"
    assert peak.occurrences == count.occurrences == 1
    # where each unbacked value was made: the `.item()` one line above the line that used it
    assert [(c.symbol, c.frame.line, c.frame.source) for c in peak.created if c.frame] == [
        ("zuf0", 20, "peak = x.abs().max().item()")
    ]
    assert [(c.symbol, c.frame.line) for c in count.created if c.frame] == [("u0", 22)]
    # the diagnosis of export's own failure is kept beside them
    assert root.category and root.message


def test_blockers__custom_op_without_fake_kernel_is_a_blocker_of_its_own_kind() -> None:
    job = sweep("ThreeBlockers")
    origins = {s.path: s for s in job.submodules if s.origin}
    assert set(origins) == {"norm", "op"}
    op = origins["op"].blockers
    assert op is not None and op.status is BlockerStatus.FOUND
    (blocker,) = op.found
    assert blocker.kind == "missing-fake-kernel"
    assert "exportwatch_blockers.scale" in blocker.message
    frame = blocker.user_frame
    assert frame is not None and (frame.path, frame.line) == (CASES, 28)
    norm = origins["norm"].blockers
    assert norm is not None and [b.kind for b in norm.found] == ["data-dependent", "data-dependent"]
    # only origins are searched: the root fails because of them
    assert job.root is not None and job.root.blockers is None


def test_blockers__draft_export_that_raises_keeps_the_diagnosis_and_says_so() -> None:
    job = sweep("DraftExportRaises")
    root = job.root
    assert root is not None and root.verdict == Verdict.FAIL
    assert root.category == "data-dependent-control-flow"
    assert root.blockers is not None and root.blockers.status is BlockerStatus.FAILED
    assert root.blockers.found == [] and "draft_export raised" in (root.blockers.note or "")
    assert root.category and root.message and root.user_frame is not None  # today's diagnosis


def test_blockers__not_searched_behind_a_failure_draft_export_cannot_get_past() -> None:
    job = sweep("NumpyOnly")
    root = job.root
    assert root is not None and root.verdict == Verdict.FAIL and root.category == "untraceable-call"
    assert root.blockers is None


def test_blockers__manifest_blockers_false_skips_the_search(tmp_path: Path) -> None:
    manifest = tmp_path / "exportwatch.yml"
    manifest.write_text(
        textwrap.dedent(
            """\
            version: 1
            models:
              - name: two
                factory: models.blocker_cases:TwoDataDependent
                blockers: false
                inputs: {args: [{shape: [8]}]}
            """
        )
    )
    (spec,) = load_manifest(manifest).models
    assert spec.blockers is False
    job = sweep("TwoDataDependent", blockers=spec.blockers)
    assert job.root is not None and job.root.verdict == Verdict.FAIL and job.root.blockers is None


def test_blockers__a_passing_model_costs_no_draft_export() -> None:
    job = sweep("CustomOpWithoutFake", settings=SETTINGS)
    assert job.root is not None and job.root.blockers is not None  # fails: searched
    ok = sweep_target(
        prepare_model(
            ModelSpec(
                name="ok",
                factory="models.sweep_cases:Fine",
                inputs=InputsSpec(args=[TensorSpec(shape=[2, 4])]),
            ),
            device="cpu",
            settings=SETTINGS,
        ),
        "export",
        settings=SETTINGS,
    )
    assert all(s.blockers is None for s in ok.submodules)


@pytest.mark.slow
def test_blockers__cli_no_blockers_flag_skips_the_search_and_the_report_round_trips(tmp_path: Path) -> None:
    manifest = tmp_path / "exportwatch.yml"
    manifest.write_text(
        textwrap.dedent(
            """\
            version: 1
            models:
              - name: two
                factory: models.blocker_cases:TwoDataDependent
                inputs: {args: [{shape: [8]}]}
            """
        )
    )
    env = {"PYTHONPATH": f"{REPO_ROOT}:{FIXTURES}", "PATH": "/usr/bin:/bin"}
    flags = {"with": [], "without": ["--no-blockers"]}
    command = [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "--workers=1"]
    runs = run_side_by_side(
        {name: [*command, "-o", str(tmp_path / f"{name}.json"), *extra] for name, extra in flags.items()},
        env=env,
    )
    reports = {}
    for name, done in runs.items():
        assert done.returncode in (0, 1), done.stderr[-2000:]
        reports[name] = Report.from_dict(json.loads((tmp_path / f"{name}.json").read_text()))
    with_root = reports["with"].jobs[0].root
    assert with_root is not None and with_root.blockers is not None
    assert len(with_root.blockers.found) == 2
    without_root = reports["without"].jobs[0].root
    assert without_root is not None and without_root.verdict == Verdict.FAIL and without_root.blockers is None
    assert SweepOptions(blockers=False).to_argv() == ["--no-blockers"]


def test_blockers__not_searched_once_the_job_used_half_its_timeout() -> None:
    job = sweep("TwoDataDependent", timeout=0.001)
    root = job.root
    assert root is not None and root.verdict == Verdict.FAIL
    assert root.blockers is not None and root.blockers.status is BlockerStatus.FAILED
    assert root.blockers.found == [] and "half its timeout" in (root.blockers.note or "")


def test_blockers__lines_are_found_when_an_earlier_trace_of_the_process_interned_the_file(
    two_data_dependent: JobResult,
) -> None:
    # torch names a file in a draft report's string table only the first time the process logs it:
    # the fixture's sweep (in this process, before this one) was the first
    for job in (two_data_dependent, sweep("TwoDataDependent")):
        root = job.root
        assert root is not None and root.blockers is not None
        assert [b.user_frame.line for b in root.blockers.found if b.user_frame] == [21, 23]
