"""The ``aoti`` target (AOTInductor) for real: compiled with the C++ compiler here, loaded, run
on every input set and compared with eager. A compile costs tens of seconds even for these
tiny models on a CI runner, so this module compiles twice on the CPU: once for a sweep with a
dynamic batch (module fixture), once for a dim torch.export specialised silently. The compile
failure and the reuse of ``export``'s capture need no compiler run (a real ``CppCompileError``
is raised in its place)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.export import Dim

from exportwatch.diagnose import diagnose_exception
from exportwatch.manifest import InputsSpec, ModelSpec, TensorSpec, load_manifest
from exportwatch.report import JobResult, Verdict
from exportwatch.targets import Call, Stage, TargetOptions, get_target
from exportwatch.targets.aoti import AotInductor, SpecialisedDimError
from exportwatch.worker.walk import prepare_model, sweep_target
from tests.conftest import FIXTURES, REPO_ROOT
from tests.integration.test_sweep import SETTINGS

pytestmark = pytest.mark.slow
#: The tests that run the compiler: a CI leg of their own (``python -m pytest -m aoti``); the
#: others raise a real ``CppCompileError`` in its place and stay in the plain run.
compiles = pytest.mark.aoti

CASES = "models/aoti_cases.py"


@pytest.fixture(scope="module")
def dynamic_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[JobResult, JobResult, list[str]]:
    """``export`` and ``aoti`` swept over a tiny MLP with a dynamic batch and two more input
    sets; which input sets the ``aoti`` target compared with eager. The batch's ``min`` is 2:
    the package refuses a batch of 1 (AOTInductor compiles a dynamic dim for sizes of 2 or
    more; see ``tests/unit/test_aoti_target_data.py``), where ``export`` takes it."""
    manifest = tmp_path_factory.mktemp("aoti") / "exportwatch.yml"
    manifest.write_text(
        "version: 1\n"
        "models:\n"
        "  - name: tiny\n"
        f"    factory: {FIXTURES / CASES}:TinyMLP\n"
        "    inputs: {args: [{shape: [3, 8]}]}\n"
        "    input_sets: {five-rows: {args: [{shape: [5, 8]}]}, two-rows: {args: [{shape: [2, 8]}]}}\n"
        "    dims: {batch: {min: 2, max: 64}}\n"
        "    dynamic_shapes: [{0: batch}]\n"
        "    targets: [export, aoti]\n",
        encoding="utf-8",
    )
    (spec,) = load_manifest(manifest).models
    compared: list[str] = []
    real_compare = AotInductor.compare

    def spying(self: AotInductor, expected: Any, actual: Any, *, input_set: str, tolerance: Any) -> Any:
        compared.append(input_set)
        return real_compare(self, expected, actual, input_set=input_set, tolerance=tolerance)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AotInductor, "compare", spying)
        prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
        exported = sweep_target(prepared, "export", settings=SETTINGS)
        compiled = sweep_target(prepared, "aoti", settings=SETTINGS)
    return exported, compiled, compared


@compiles
def test_aoti__compiles_a_dynamic_batch_and_matches_eager_on_every_input_set(dynamic_sweep):
    exported, compiled, compared = dynamic_sweep
    assert exported.verdict == Verdict.OK
    root = compiled.root
    assert root is not None and root.verdict == Verdict.OK, (root.message, root.detail)
    assert compiled.submodule("proj").verdict == Verdict.COVERED  # one compile, for the root
    assert sorted(compared) == ["example", "five-rows", "two-rows"]  # one package, three batch sizes


@compiles
def test_aoti__records_the_compile_time_per_job_within_its_duration(dynamic_sweep):
    exported, compiled, _ = dynamic_sweep
    assert compiled.compile_s is not None and compiled.compile_s > 1.0
    assert compiled.compile_s < compiled.duration_s
    assert exported.compile_s is None  # a target that compiles nothing records nothing


@compiles
def test_aoti__a_dim_export_specialised_silently_is_refused_with_its_name(tmp_path: Path):
    """``Dim.AUTO`` lets torch.export fix the batch at 4 with only a warning (a model that
    branches on ``batch == 4``); the package is then built for 4 rows, and 6 rows, which eager
    takes, are refused before the package runs, naming the dim. The manifest's dims are named
    ``Dim``s, for which torch.export itself raises (``constraint-violation``); ``Dim.AUTO`` comes
    from code that builds ``TargetOptions``."""
    from tests.fixtures.models.aoti_cases import BranchOnBatchOfFour

    outcome = get_target("aoti").attempt(
        BranchOnBatchOfFour(),
        Call(args=(torch.randn(4, 3),)),
        checks=[("six-rows", Call(args=(torch.randn(6, 3),)))],
        options=TargetOptions(dynamic_shapes={"x": {0: Dim.AUTO}}, artifacts_dir=tmp_path, artifact_name="m"),
    )
    assert (outcome.verdict, outcome.stage) == (Verdict.MISMATCH, Stage.RUNTIME)
    assert isinstance(outcome.error, SpecialisedDimError)
    assert (outcome.error.label, outcome.error.dim_name, outcome.error.fixed) == ("x.shape[0]", "AUTO", 4)
    assert outcome.mismatch is not None and outcome.mismatch.input_set == "six-rows"
    found = diagnose_exception(outcome.error, target="aoti", stage="runtime", repo_root=REPO_ROOT)
    assert found.category == "aoti-specialised-dim"
    assert "x.shape[0] (AUTO) was specialised to 4" in found.message
    assert outcome.extras["compile_s"] > 0
    assert (tmp_path / "m.pt2").stat().st_size > 0  # the package of a failed job is kept


def test_aoti__a_compiler_error_names_the_missing_header_and_reuses_exports_capture(monkeypatch):
    """No compiler run: ``aoti_compile_and_package`` raises torch's own ``CppCompileError``
    with gcc's words for a missing header. The sweep of ``export`` then ``aoti`` traces once."""
    from torch._inductor.exc import CppCompileError

    output = "cabc.cpp:1:10: fatal error: Python.h: No such file or directory\ncompilation terminated.\n"

    def no_headers(program: Any, **kwargs: Any) -> str:
        raise CppCompileError(["g++", "cabc.cpp", "-o", "cabc.so"], output)

    captures: list[str] = []
    real_export = torch.export.export

    def counting(module: Any, *args: Any, **kwargs: Any) -> Any:
        captures.append(type(module).__name__)
        return real_export(module, *args, **kwargs)

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_headers)
    monkeypatch.setattr(torch.export, "export", counting)
    spec = ModelSpec(
        name="tiny", factory=f"{CASES}:TinyMLP", inputs=InputsSpec(args=[TensorSpec(shape=[2, 8])])
    )
    prepared = prepare_model(spec, device="cpu", settings=SETTINGS)
    sweep_target(prepared, "export", settings=SETTINGS)
    exported = list(captures)
    job = sweep_target(prepared, "aoti", settings=SETTINGS)
    assert "TinyMLP" in exported
    assert captures.count("TinyMLP") == exported.count("TinyMLP")  # the root: export's program
    root = job.root
    assert root is not None
    assert (root.verdict, root.stage, root.category) == (Verdict.FAIL, "compile", "aoti-compile-error")
    assert root.message == "C++ compile error: missing header 'Python.h'"
    assert root.hint is not None and "python3-dev" in root.hint
    assert job.compile_s is not None  # the time until the compiler failed is the job's too
    proj = job.submodule("proj")  # below the failing root, compiled on its own: time allows
    assert proj is not None and (proj.verdict, proj.stage) == (Verdict.FAIL, "compile")


def test_aoti__stops_compiling_submodules_when_another_compile_would_pass_the_timeout(monkeypatch):
    """Below a failing root each submodule is a compile of its own: once another compile as long
    as the last would not fit in the job's timeout, the rest are skipped, saying why, and the
    job keeps the verdicts it has instead of ending as a timeout."""
    import time

    from torch._inductor.exc import CppCompileError

    def slow_failure(program: Any, **kwargs: Any) -> str:
        time.sleep(0.5)
        raise CppCompileError(["g++"], "x.cpp:1:1: error: 'nope' was not declared in this scope\n")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", slow_failure)
    spec = ModelSpec(
        name="tiny",
        factory=f"{CASES}:TinyMLP",
        inputs=InputsSpec(args=[TensorSpec(shape=[2, 8])]),
        timeout=1.0,
    )
    job = sweep_target(prepare_model(spec, device="cpu", settings=SETTINGS), "aoti", settings=SETTINGS)
    assert job.root is not None and (job.root.verdict, job.root.stage) == (Verdict.FAIL, "compile")
    assert job.root.message == "C++ compile error: 'nope' was not declared in this scope"
    proj = job.submodule("proj")
    assert proj is not None and proj.verdict == Verdict.SKIPPED
    assert proj.reason is not None and proj.reason.startswith("not compiled: ")
    assert "timeout" in proj.reason


@compiles
@pytest.mark.cuda
def test_aoti__compiles_for_cuda_on_a_cuda_device():
    spec = ModelSpec(
        name="tiny",
        factory=f"{CASES}:TinyMLP",
        inputs=InputsSpec(args=[TensorSpec(shape=[3, 8])]),
        input_sets={"seed-7": InputsSpec(args=[TensorSpec(shape=[3, 8])], seed=7)},
        device="cuda",
    )
    prepared = prepare_model(spec, device="cuda", settings=SETTINGS)
    job = sweep_target(prepared, "aoti", settings=SETTINGS)
    assert job.device == "cuda"
    assert job.verdict == Verdict.OK, job.root.message if job.root else None
    assert job.compile_s is not None and job.compile_s > 0
