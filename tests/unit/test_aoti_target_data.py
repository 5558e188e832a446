"""The ``aoti`` target's data without compiling anything: the shapes check on plain data, the
C++ compiler's output read into a missing header / library / compiler, the categories those
errors get, the manifest (opt-in), the order a model's targets run in, the report's
``compile_s`` and the sweep's "compiling…" progress. The compiles themselves are in
``tests/integration/test_targets_aoti.py``."""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.diagnose import HINTS, diagnose_exception
from exportwatch.manifest import KNOWN_TARGETS, load_manifest
from exportwatch.plan import TRACE_READERS, execution_order
from exportwatch.report import JobResult, SubmoduleResult, Verdict, load_report, write_report
from exportwatch.sweep.progress import Progress
from exportwatch.sweep.protocol import Phase, describe_phase
from exportwatch.targets.aoti import (
    AotiRunError,
    AotiShapeError,
    DeclaredDim,
    SpecialisedDimError,
    compile_error,
    compiler_problem,
    package_refusal,
    shape_problem,
)
from exportwatch.targets.base import COMPILE_PHASE
from tests.factories import job, report, sub

# ---------------------------------------------------------------------------------------------
# What the package accepts (plain data: what `_describe` reads from the exported program)

BATCH = {(0, 0): DeclaredDim(label="x.shape[0]", name="batch")}


def test_shape_problem__none_when_every_size_is_taken():
    accepted = [[(1, 64), 8], None]  # a dynamic batch in [1, 64], a static width; a non-tensor
    assert shape_problem(accepted, [(5, 8), None], labels=["x", "n"], declared=BATCH) is None
    assert shape_problem([[(2, None)]], [(10_000,)], labels=["x"], declared={}) is None  # no upper bound


def test_shape_problem__a_declared_dim_compiled_as_a_fixed_size_is_specialised_and_named():
    problem = shape_problem([[4, 8]], [(6, 8)], labels=["x"], declared=BATCH)
    assert isinstance(problem, SpecialisedDimError)
    assert (problem.label, problem.dim_name, problem.fixed, problem.size) == ("x.shape[0]", "batch", 4, 6)
    assert str(problem) == (
        "dynamic dim x.shape[0] (batch) was specialised to 4 in the AOTInductor package; this input set has 6"
    )


def test_shape_problem__a_static_dim_or_a_size_outside_the_range_is_a_shape_error():
    static = shape_problem([[(1, 64), 8]], [(5, 9)], labels=["x"], declared=BATCH)
    assert type(static) is AotiShapeError
    assert str(static) == "x.shape[1] is 9, the package was compiled for 8 (a static dim)"
    outside = shape_problem([[(1, 64), 8]], [(100, 8)], labels=["x"], declared=BATCH)
    assert type(outside) is AotiShapeError
    assert str(outside) == "x.shape[0] (batch) is 100, outside the range [1, 64] the package was compiled for"
    rank = shape_problem([[(1, 64), 8]], [(5, 8, 1)], labels=["x"], declared=BATCH)
    assert str(rank) == "x has 3 dims, the package was compiled for 2"


def test_package_refusal__the_packages_own_check_is_said_with_the_dims_name():
    """The words of a real package (a dynamic batch, ``min: 1``, run on one row: AOTInductor
    compiles a dynamic dim for sizes of 2 or more, where torch.export allowed 1)."""
    message = "input_handles[0]: dim value is too small at 0, expected it to be >= 2, but got: 1"
    refused = package_refusal(message, labels=["x"], declared=BATCH)
    assert type(refused) is AotiShapeError
    assert (refused.label, refused.size) == ("x.shape[0]", 1)
    assert str(refused) == (
        "x.shape[0] (batch): the package refused this input set "
        "(dim value is too small: expected it to be >= 2, but got: 1)"
    )
    found = diagnose_exception(refused, target="aoti", stage="runtime", repo_root=Path("."))
    assert found.category == "runtime-error" and "check_lowerbound" in found.hint
    static = package_refusal(
        "input_handles[1]: unmatched dim value at 2, expected: 8, but got: 9", labels=["x", "y"], declared={}
    )
    assert static is not None and str(static).startswith("y.shape[2]: the package refused")
    assert package_refusal("mat1 and mat2 shapes cannot be multiplied", labels=["x"], declared={}) is None


# ---------------------------------------------------------------------------------------------
# The compiler's output

GCC_MISSING_HEADER = textwrap.dedent(
    """\
    In file included from /tmp/torchinductor_root/ab/cabc.cpp:2:
    /tmp/torchinductor_root/ab/cabc.cpp:1:10: fatal error: Python.h: No such file or directory
        1 | #include <Python.h>
          |          ^~~~~~~~~~
    compilation terminated.
    """
)


@pytest.mark.parametrize(
    ("output", "said"),
    [
        (GCC_MISSING_HEADER, "missing header 'Python.h'"),
        (
            "x.cpp:3:10: fatal error: 'cuda_runtime_api.h' file not found\n",
            "missing header 'cuda_runtime_api.h'",
        ),
        ("/usr/bin/ld: cannot find -lgomp: No such file or directory\n", "missing library 'libgomp'"),
        ("[Errno 2] No such file or directory: '/usr/bin/g++'", "missing program 'g++'"),
        ("sh: 1: nvcc: not found\n", "missing program 'nvcc'"),
        ("x.cpp:7:3: error: 'foo' was not declared in this scope\n", "'foo' was not declared in this scope"),
    ],
    ids=["gcc-header", "clang-header", "linker-library", "compiler", "nvcc", "other-error"],
)
def test_compiler_problem__names_what_was_missing(output, said):
    assert compiler_problem(output).startswith(said)


def _look_alike(qualified: str, base: type[BaseException] = RuntimeError) -> type[BaseException]:
    module, _, name = qualified.rpartition(".")
    return type(name, (base,), {"__module__": module, "__qualname__": name})


def test_compile_error__a_cpp_compile_error_is_categorised_with_the_missing_header_named(tmp_path: Path):
    """torch's ``CppCompileError(cmd, output)``, as Inductor wraps it in an ``InductorError``."""
    cpp_error = _look_alike("torch._inductor.exc.CppCompileError")(
        "C++ compile error\n\nCommand:\ng++ cabc.cpp\n\nOutput:\n" + GCC_MISSING_HEADER
    )
    cpp_error.output = GCC_MISSING_HEADER  # type: ignore[attr-defined]
    inductor_error = _look_alike("torch._inductor.exc.InductorError")("CppCompileError: C++ compile error")
    inductor_error.inner_exception = cpp_error  # type: ignore[attr-defined]

    error = compile_error(inductor_error)
    assert str(error) == "C++ compile error: missing header 'Python.h'"
    assert error.__cause__ is inductor_error  # the chain stays the evidence
    found = diagnose_exception(error, target="aoti", stage="compile", repo_root=tmp_path)
    assert found.category == "aoti-compile-error"
    assert found.message == "C++ compile error: missing header 'Python.h'"
    assert "python3-dev" in found.hint and found.hint != str(HINTS["aoti-compile-error"])

    other = diagnose_exception(
        compile_error(_look_alike("torch._inductor.exc.LoweringException")("no lowering for aten.foo")),
        target="aoti",
        stage="compile",
        repo_root=tmp_path,
    )
    assert other.category == "aoti-compile-error"
    assert other.hint == str(HINTS["aoti-compile-error"])  # nothing missing: the category's hint
    assert other.fingerprint != found.fingerprint


def test_diagnosis__shape_run_and_load_errors_get_their_categories(tmp_path: Path):
    def category(error: BaseException, stage: str = "runtime") -> str:
        return diagnose_exception(error, target="aoti", stage=stage, repo_root=tmp_path).category

    specialised = SpecialisedDimError(label="x.shape[0]", dim_name="batch", fixed=4, size=6)
    assert category(specialised) == "aoti-specialised-dim"
    assert category(AotiShapeError("x.shape[1] is 9", label="x.shape[1]", size=9)) == "runtime-error"
    assert category(AotiRunError("the package raised RuntimeError: boom")) == "aoti-run-error"
    from exportwatch.targets.aoti import AotiLoadError

    assert category(AotiLoadError("aoti_load_package failed"), "load") == "aoti-load-error"


# ---------------------------------------------------------------------------------------------
# Opt-in, order, report, progress


def test_manifest__aoti_is_a_known_target_that_runs_only_where_listed(tmp_path: Path):
    assert "aoti" in KNOWN_TARGETS
    path = tmp_path / "exportwatch.yml"
    path.write_text(
        "version: 1\n"
        "models:\n"
        "  - {name: a, factory: 'models.py:Net', inputs: {args: [{shape: [2, 8]}]}}\n"
        "  - {name: b, factory: 'models.py:Net', inputs: {args: [{shape: [2, 8]}]},\n"
        "     targets: [export, aoti]}\n",
        encoding="utf-8",
    )
    a, b = load_manifest(path).models
    assert a.targets == ["export"]  # the default never compiles
    assert b.targets == ["export", "aoti"]


def test_execution_order__aoti_after_export_whose_capture_it_takes_and_before_executorch():
    assert "aoti" in TRACE_READERS
    assert execution_order(["aoti", "export"]) == ["export", "aoti"]
    assert execution_order(["executorch", "aoti", "export"]) == ["export", "aoti", "executorch"]


def test_report__compile_s_round_trips_and_a_report_without_it_loads(tmp_path: Path):
    compiled = replace(job("m", "aoti", sub("")), compile_s=42.5)
    write_report(report(compiled), tmp_path / "new.json")
    assert load_report(tmp_path / "new.json").jobs[0].compile_s == 42.5
    data = json.loads((tmp_path / "new.json").read_text(encoding="utf-8"))
    data["jobs"][0].pop("compile_s")
    (tmp_path / "old.json").write_text(json.dumps(data), encoding="utf-8")
    assert load_report(tmp_path / "old.json").jobs[0].compile_s is None


def _finished(model: str) -> JobResult:
    root = SubmoduleResult(path="", module_type="M", verdict=Verdict.OK)
    return JobResult(
        model=model, target="aoti", device="cpu", verdict=Verdict.OK, duration_s=61.0, submodules=[root]
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress__a_log_says_compiling_once_per_job():
    stream = io.StringIO()
    progress = Progress(total=1, stream=stream)
    progress.start("enc", "aoti")
    progress.phase("enc", "aoti", COMPILE_PHASE)
    progress.phase("enc", "aoti", "verification")
    progress.phase("enc", "aoti", COMPILE_PHASE)  # a submodule compiling after a failed root: said once
    progress.result(_finished("enc"))
    assert stream.getvalue().splitlines() == [
        "  enc · aoti: compiling… (AOTInductor: tens of seconds per module)",
        "[1/1] enc · aoti · cpu: ok in 61.0s",
    ]


def test_progress__the_live_line_says_compiling_while_it_compiles():
    stream = _Terminal()
    progress = Progress(total=1, stream=stream)
    progress.start("enc", "aoti")
    progress.phase("enc", "aoti", COMPILE_PHASE)
    assert stream.getvalue().rsplit("\r\x1b[2K", 1)[-1].endswith("running enc · aoti (0s, compiling…)")
    progress.phase("enc", "aoti", "verification")
    assert stream.getvalue().rsplit("\r\x1b[2K", 1)[-1].endswith("running enc · aoti (0s, verifying…)")


def test_describe_phase__a_timeout_while_compiling_says_so():
    assert (
        describe_phase(Phase(name=COMPILE_PHASE, path=""))
        == "while compiling the root module with AOTInductor"
    )
    assert (
        describe_phase(Phase(name=COMPILE_PHASE, path="blocks.0"))
        == "while compiling `blocks.0` with AOTInductor"
    )
