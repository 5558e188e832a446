"""The diagnosis without torch: rules over look-alike exception classes, normalisation,
user frames from messages, infrastructure and mismatch fingerprints, grouping and origins,
and quiet logs. The real torch exceptions are in ``tests/integration/test_diagnosis_corpus.py``.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from exportwatch import diagnose
from exportwatch.diagnose import (
    CATEGORIES,
    HINTS,
    RULES,
    diagnose_exception,
    diagnose_infrastructure,
    diagnose_mismatch,
    normalise,
)
from exportwatch.report import JobResult, SubmoduleResult, UserFrame, Verdict, origin_paths
from exportwatch.report.tree import group_failures, mark_origins
from exportwatch.worker.quiet import quiet_torch_logs

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# A tiny DSL: exceptions that look like torch's by qualified name and attributes.


def exc_class(qualified: str, base: type[BaseException] = RuntimeError) -> type[BaseException]:
    module, _, name = qualified.rpartition(".")
    return type(name, (base,), {"__module__": module, "__qualname__": name})


class UserErrorType(Enum):
    DYNAMIC_CONTROL_FLOW = 1
    ANTI_PATTERN = 2
    STANDARD_LIBRARY = 3
    CONSTRAINT_VIOLATION = 4
    DYNAMIC_DIM = 5
    INVALID_INPUT = 6
    INVALID_OUTPUT = 7


def make(
    qualified: str, message: str = "", cause: BaseException | None = None, **attrs: Any
) -> BaseException:
    base = NotImplementedError if qualified == "builtins.NotImplementedError" else RuntimeError
    cls = base if qualified.startswith("builtins.") else exc_class(qualified, base)
    exc = cls(message)
    for name, value in attrs.items():
        setattr(exc, name, value)
    exc.__cause__ = cause
    return exc


GUARD = "torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode"
UNSUPPORTED = "torch._dynamo.exc.Unsupported"
USER_ERROR = "torch._dynamo.exc.UserError"
FAKE = "torch._subclasses.fake_tensor"
ONNX = "torch.onnx._internal.exporter._errors"


def guard(cond: str = "u0 > 3", where: str = "") -> BaseException:
    text = f"Could not guard on data-dependent expression {cond} (unhinted: {cond}).\n{where}"
    return make(GUARD, text, cond=cond)


CLASSIFY_TABLE: list[tuple[str, BaseException, str | None, str]] = [
    # (case, exception, stage, expected category)
    (
        "guard from a python if",
        guard("u0 > 3", "Caused by: (models.py:12 in forward)"),
        "capture",
        "data-dependent-control-flow",
    ),
    (
        "guard from inside reshape",
        guard("Eq(u0, 4)", "Caused by: (_prims_common/__init__.py:318 in eval_eager)"),
        "capture",
        "data-dependent-value",
    ),
    (
        "int() of an unbacked value",
        make(GUARD, "Could not extract specialized integer from data-dependent expression u0 (unhinted: u0)"),
        "capture",
        "data-dependent-value",
    ),
    (
        "strict graph break on branching",
        make(UNSUPPORTED, "Data-dependent branching\n  Explanation: ...", gb_type="Data-dependent branching"),
        "capture",
        "data-dependent-control-flow",
    ),
    (
        "strict anti-pattern wrapping a guard",
        make(
            USER_ERROR,
            "Consider annotating your code using torch._check*()",
            error_type=UserErrorType.ANTI_PATTERN,
            cause=guard(),
        ),
        "capture",
        "data-dependent-control-flow",
    ),
    (
        "constraint-violation user error wrapping an op guard",
        make(
            USER_ERROR,
            "Could not guard",
            error_type=UserErrorType.CONSTRAINT_VIOLATION,
            cause=guard("2*u0 < 2", "Caused by: x  # m.py:3 in forward (_refs/__init__.py:1 in view)"),
        ),
        "capture",
        "data-dependent-value",
    ),
    (
        "constraint violation",
        make(
            USER_ERROR,
            "Constraints violated (batch)! For more information",
            error_type=UserErrorType.CONSTRAINT_VIOLATION,
        ),
        "capture",
        "constraint-violation",
    ),
    (
        "custom op without fake impl",
        make("builtins.RuntimeError", "There was no fake impl registered for <CustomOpDef(my::op)>."),
        "capture",
        "missing-fake-kernel",
    ),
    (
        "custom op without meta kernel",
        make(f"{FAKE}.UnsupportedOperatorException", "my.op.default", func="my.op.default"),
        "capture",
        "missing-fake-kernel",
    ),
    (
        "aten op without meta kernel",
        make(f"{FAKE}.UnsupportedOperatorException", "aten.foo.default", func="aten.foo.default"),
        "capture",
        "unsupported-operator",
    ),
    (
        "aten op with dynamic output",
        make(
            f"{FAKE}.DynamicOutputShapeException",
            "aten.linalg_lstsq.default",
            func="aten.linalg_lstsq.default",
        ),
        "capture",
        "unsupported-operator",
    ),
    (
        "fake and real disagree",
        make(
            f"{FAKE}.MetadataMismatchError",
            "Real tensor propagation found an output size mismatch, for func: my.op.default",
        ),
        "capture",
        "fake-kernel-mismatch",
    ),
    (
        "output type",
        make("builtins.RuntimeError", "Found <class 'm.Pair'> in output, which is not a known type."),
        "capture",
        "unsupported-type",
    ),
    (
        "numpy on fake tensors",
        make("builtins.RuntimeError", ".numpy() is not supported for tensor subclasses."),
        "capture",
        "untraceable-call",
    ),
    (
        "strict deepcopy",
        make(
            UNSUPPORTED, "Attempted to copy.deepcopy a tensor", gb_type="Attempted to copy.deepcopy a tensor"
        ),
        "capture",
        "untraceable-call",
    ),
    (
        "strict skipped function",
        make(
            UNSUPPORTED,
            "Attempted to call function marked as skipped",
            gb_type="Attempted to call function marked as skipped",
        ),
        "capture",
        "unsupported-python",
    ),
    (
        "strict op failing on fake tensors is not a python feature",
        make(
            UNSUPPORTED,
            "RuntimeError when making fake tensor call",
            gb_type="RuntimeError when making fake tensor call",
        ),
        "capture",
        "unknown",
    ),
    (
        "invalid input spec",
        make(USER_ERROR, "dynamic_shapes keys must be arg names", error_type=UserErrorType.INVALID_INPUT),
        "capture",
        "config-error",
    ),
    (
        "onnx dispatch",
        make(
            f"{ONNX}.ConversionError",
            "Failed to convert",
            cause=make(
                f"{ONNX}.DispatchError",
                "No ONNX function found for <OpOverload(op='aten._linalg_eigh', overload='default')>",
            ),
        ),
        "translation",
        "onnx-translation-missing",
    ),
    (
        "onnx translation refusing arguments",
        make(
            f"{ONNX}.ConversionError",
            "Error when translating node",
            cause=make(
                f"{ONNX}.GraphConstructionError",
                "Error when calling function",
                cause=make("builtins.NotImplementedError", "aten_histc with min == max"),
            ),
        ),
        "translation",
        "onnx-translation-missing",
    ),
    (
        "onnx export wrapping a guard",
        make(f"{ONNX}.TorchExportError", "Failed to export the model", cause=guard()),
        "capture",
        "data-dependent-control-flow",
    ),
    (
        "legacy exporter operator",
        make(
            "torch.onnx.errors.UnsupportedOperatorError",
            "Exporting the operator 'aten::linalg_eigh' to ONNX opset version 20 is not supported",
        ),
        "translation",
        "onnx-translation-missing",
    ),
    (
        "checker",
        make("onnx.onnx_cpp2py_export.checker.ValidationError", "Field 'type' of 'value_info'"),
        "checker",
        "onnx-checker",
    ),
    (
        "onnxruntime failure",
        make("onnxruntime.capi.onnxruntime_pybind11_state.Fail", "[ONNXRuntimeError]"),
        "runtime",
        "runtime-error",
    ),
    (
        "any failure at the runtime stage",
        make("builtins.RuntimeError", "assert failed"),
        "runtime",
        "runtime-error",
    ),
    ("an unrelated error", make("builtins.RuntimeError", "something else entirely"), "capture", "unknown"),
]


@pytest.mark.parametrize(
    ("exc", "stage", "category"),
    [row[1:] for row in CLASSIFY_TABLE],
    ids=[row[0] for row in CLASSIFY_TABLE],
)
def test_diagnose_exception__classifies_by_class_attributes_cause_and_message(
    exc: BaseException, stage: str | None, category: str, tmp_path: Path
) -> None:
    found = diagnose_exception(exc, target="export", stage=stage, repo_root=tmp_path)
    assert found.category == category, found.rule
    assert found.hint == str(HINTS[category])


def test_diagnose_exception__records_outer_class_root_cause_and_the_deciding_message(tmp_path: Path) -> None:
    exc = make(f"{ONNX}.TorchExportError", "\x1b[96mFailed\x1b[0m to export", cause=guard("Eq(u3, 1)"))
    found = diagnose_exception(exc, target="onnx", stage="capture", repo_root=tmp_path)
    assert found.exception_type == f"{ONNX}.TorchExportError"
    assert found.root_cause == GUARD
    assert found.message.startswith("Could not guard on data-dependent expression Eq(u3, 1)")
    assert found.discriminator == "Eq(u?, 1)"
    assert "caused by " + GUARD in found.detail


def test_diagnose_exception__names_the_operator_as_discriminator(tmp_path: Path) -> None:
    exc = make(f"{FAKE}.UnsupportedOperatorException", "my.op.default", func="my.op.default")
    found = diagnose_exception(exc, target="export", stage="capture", repo_root=tmp_path)
    assert found.discriminator == "my.op"
    assert found.message == "UnsupportedOperatorException: my.op.default"


def test_diagnose_exception__survives_cycles_and_unprintable_exceptions(tmp_path: Path) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    first, second = RuntimeError("a"), Unprintable()
    first.__cause__, second.__cause__ = second, first
    found = diagnose_exception(first, target="export", stage=None, repo_root=tmp_path)
    assert found.category == "unknown"


def test_rules__every_rule_names_a_defined_category_and_every_category_has_a_linked_hint() -> None:
    assert {rule.category for rule in RULES} <= set(CATEGORIES)
    assert set(HINTS) == set(CATEGORIES)
    for category, hint in HINTS.items():
        assert hint.url.startswith("https://"), category
        assert hint.text.endswith("."), category
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))


def test_categories__the_documented_table_lists_every_category() -> None:
    doc = (REPO / "docs" / "categories.md").read_text(encoding="utf-8")
    table = doc.split("\n## ", 1)[0]  # the categories' table opens the page; later tables are others'
    documented = re.findall(r"^\| `([a-z-]+)` \|", table, re.M)
    assert documented == list(CATEGORIES)


# ---------------------------------------------------------------------------------------------
# Normalisation


NORMALISE_TABLE = [
    ("ansi codes", "\x1b[96mThis is step 1/3\x1b[0m", "This is step 1/3"),
    ("addresses", "<function f at 0x7f9e59147b00>", "<function f at 0x?>"),
    (
        "absolute paths become basenames",
        'File "/tmp/pytest-3/checkout-a/models.py", line 20',
        'File "models.py", line ?',
    ),
    ("windows paths", r"C:\Users\me\repo\models.py:12", "models.py:?"),
    (
        "truncated relative paths",
        "Caused by: (mp/ewinv/dd.py:12 in forward)",
        "Caused by: (dd.py:? in forward)",
    ),
    ("unbacked and backed symbols", "Eq(u12, 1) and s77 + zuf0 > ps3", "Eq(u?, 1) and s? + zuf? > ps?"),
    ("dtypes and words stay", "f32[4, 3] is fine for users", "f32[4, 3] is fine for users"),
    ("long integers", "object id 140234556677 of size 12", "object id N of size 12"),
    ("timestamps", "at 2025-11-26T08:42:25.384Z and 08:42:25", "at <time> and <time>"),
    ("process ids", "worker pid 4223 died", "worker pid ? died"),
    ("whitespace", "  a\n\n  b\t c ", "a b c"),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [row[1:] for row in NORMALISE_TABLE], ids=[row[0] for row in NORMALISE_TABLE]
)
def test_normalise__removes_what_differs_between_runs(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_fingerprint__ignores_line_shifts_paths_and_symbol_numbers_but_not_the_cause(tmp_path: Path) -> None:
    def diagnosed(cond: str, where: str, target: str = "export") -> str:
        exc = guard(cond, f"Caused by: ({where} in forward)")
        return diagnose_exception(exc, target=target, stage="capture", repo_root=tmp_path).fingerprint

    base = diagnosed("u0 > 3", "/tmp/a/models.py:12")
    assert diagnosed("u1 > 3", "/var/b/models.py:19") == base
    assert diagnosed("u0 > 4", "/tmp/a/models.py:12") != base
    assert diagnosed("u0 > 3", "/tmp/a/models.py:12", target="export-strict") != base


# ---------------------------------------------------------------------------------------------
# User frames


def _repo_with_model(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "model.py").write_text(
        "import torch\n\nclass M:\n    def forward(self, x):\n        y = helper(x)\n"
        "        return y\n\ndef helper(x):\n    if x.sum() > 0:\n        return x\n",
        encoding="utf-8",
    )
    return repo


def test_user_frame__is_the_innermost_repo_frame_named_in_the_message(tmp_path: Path) -> None:
    repo = _repo_with_model(tmp_path)
    model = repo / "pkg" / "model.py"
    message = (
        "Could not guard on data-dependent expression u0 > 3\n"
        "User Stack (most recent call last):\n"
        f'  File "{model}", line 5, in forward\n    y = helper(x)\n'
        f'  File "{model}", line 9, in helper\n    if x.sum() > 0:\n'
        '  File "/usr/lib/python3.11/site-packages/torch/__init__.py", line 700, in __bool__\n'
    )
    found = diagnose_exception(
        make(GUARD, message, cond="u0 > 3"), target="export", stage="capture", repo_root=repo
    )
    assert found.user_frame == UserFrame(
        path="pkg/model.py", line=9, function="helper", source="if x.sum() > 0:"
    )


def test_user_frame__skips_site_packages_inside_the_repository(tmp_path: Path) -> None:
    repo = _repo_with_model(tmp_path)
    vendored = repo / ".venv" / "lib" / "site-packages" / "lib.py"
    vendored.parent.mkdir(parents=True)
    vendored.write_text("def f():\n    pass\n", encoding="utf-8")
    message = f'File "{repo / "pkg" / "model.py"}", line 5, in forward\nFile "{vendored}", line 2, in f\n'
    found = diagnose_exception(
        make("builtins.RuntimeError", message), target="export", stage=None, repo_root=repo
    )
    assert found.user_frame is not None and found.user_frame.function == "forward"


def test_user_frame__comes_from_the_traceback_of_a_raised_exception(tmp_path: Path) -> None:
    source = "def forward(x):\n    raise ValueError('boom ' + str(x))\n"
    path = tmp_path / "model.py"
    path.write_text(source, encoding="utf-8")
    namespace: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), namespace)
    with pytest.raises(ValueError) as raised:
        namespace["forward"](1)
    found = diagnose.diagnose_model_error(raised.value, repo_root=tmp_path)
    assert found.category == "model-error"
    assert found.user_frame == UserFrame(
        path="model.py", line=2, function="forward", source="raise ValueError('boom ' + str(x))"
    )


def test_user_frame__finds_the_function_for_torchscript_style_path_line_comments(tmp_path: Path) -> None:
    repo = _repo_with_model(tmp_path)
    message = f"graph(%0):\n  %1 = aten::linalg_eigh(%0) # {repo / 'pkg' / 'model.py'}:9:0\n"
    exc = make("torch.onnx.errors.UnsupportedOperatorError", message)
    found = diagnose_exception(exc, target="onnx-legacy", stage="translation", repo_root=repo)
    assert found.user_frame is not None
    assert (found.user_frame.function, found.user_frame.line) == ("helper", 9)


def test_user_frame__is_none_when_nothing_points_into_the_repository(tmp_path: Path) -> None:
    found = diagnose_exception(
        make("builtins.RuntimeError", 'File "/elsewhere/x.py", line 3, in f'),
        target="export",
        stage=None,
        repo_root=tmp_path,
    )
    assert found.user_frame is None


def test_user_frame__ignores_shortened_or_missing_paths_in_messages(tmp_path: Path, monkeypatch: Any) -> None:
    repo = _repo_with_model(tmp_path)
    monkeypatch.chdir(repo)
    (repo / "ork").mkdir()
    message = (
        "Caused by: y = helper(x)  # ork/pkg/model.py:5 in forward (_refs/__init__.py:1 in view)\n"
        f'File "{repo / "pkg" / "gone.py"}", line 3, in vanished\n'
    )
    found = diagnose_exception(make(GUARD, message), target="export", stage="capture", repo_root=repo)
    assert found.user_frame is None


# ---------------------------------------------------------------------------------------------
# Infrastructure and mismatches


@pytest.mark.parametrize("kind", ["crash", "timeout", "oom"])
def test_diagnose_infrastructure__gives_each_kind_its_category_and_hint(kind: str) -> None:
    found = diagnose_infrastructure(kind, target="export", message=f"worker {kind} (pid 1234)")
    assert found.category == kind
    assert found.hint == str(HINTS[kind])
    assert found.user_frame is None


def test_diagnose_infrastructure__keeps_signals_apart_but_ignores_measurements() -> None:
    def key(kind: str, message: str) -> str:
        return diagnose_infrastructure(kind, target="export", message=message).fingerprint

    assert key("crash", "worker died: signal SIGSEGV") != key("crash", "worker died: signal SIGABRT")
    assert key("timeout", "no result after 30.0 s") == key("timeout", "no result after 31.5 s")
    assert key("oom", "RSS 2048 MB over a 1024 MB limit") == key("oom", "RSS 4096 MB over a 1024 MB limit")
    assert diagnose_infrastructure("segfault", target="export", message="?").category == "unknown"


def test_diagnose_mismatch__keys_on_output_not_on_the_measured_error() -> None:
    def found(output: str, error: float) -> Any:
        return diagnose_mismatch(
            target="onnx",
            stage="accuracy",
            output=output,
            message=f"max abs error {error} > atol 1e-05 on output {output}",
        )

    assert found("0", 0.62).fingerprint == found("0", 0.71).fingerprint
    assert found("0", 0.62).fingerprint != found("1", 0.62).fingerprint
    assert found("0", 0.62).category == "numeric-mismatch"


# ---------------------------------------------------------------------------------------------
# Origins and grouping


def sub(
    path: str, verdict: Verdict = Verdict.FAIL, fingerprint: str | None = "f-leaf", same_as: str | None = None
) -> SubmoduleResult:
    return SubmoduleResult(
        path=path,
        module_type="M",
        verdict=verdict,
        fingerprint=fingerprint,
        category="data-dependent-control-flow" if verdict == Verdict.FAIL else None,
        message="Could not guard",
        same_as=same_as,
    )


def nested_job() -> JobResult:
    """root ⊃ encoder ⊃ layers.{0..3}; layers.1 fails, layers.3 is the same as layers.1."""
    return JobResult(
        model="m",
        target="export",
        device="cpu",
        verdict=Verdict.FAIL,
        submodules=[
            sub("", fingerprint="f-leaf"),  # re-raises its children's failure
            sub("encoder", fingerprint="f-leaf"),
            sub("encoder.layers.0", Verdict.OK, None),
            sub("encoder.layers.1"),
            sub("encoder.layers.2", Verdict.OK, None),
            sub("encoder.layers.3", Verdict.SAME_AS, None, same_as="encoder.layers.1"),
            sub("head", Verdict.OK, None),
            sub("decoder", fingerprint="f-leaf"),
            sub("decoder.proj", Verdict.COVERED, None),
        ],
    )


def test_mark_origins__marks_deepest_failures_and_not_the_ancestors_that_contain_them() -> None:
    job = nested_job()
    job.submodules[0].origin = True  # stale flags are reset
    job = mark_origins(job)
    origins = [s.path for s in job.submodules if s.origin]
    assert origins == ["encoder.layers.1", "encoder.layers.3", "decoder"]
    assert not job.submodule("").origin and not job.submodule("encoder").origin


def test_mark_origins__a_parent_failing_for_its_own_reason_is_an_origin_too() -> None:
    """llama: the root fails on a cache in its output, its attention layers on a cache input."""
    job = JobResult(
        model="llama",
        target="export",
        device="cpu",
        verdict=Verdict.FAIL,
        submodules=[
            sub("", fingerprint="f-output"),
            sub("model", fingerprint="f-output"),
            sub("model.layers.0", fingerprint="f-input"),
            sub("model.layers.0.self_attn", fingerprint="f-input"),
            sub("model.layers.0.mlp", Verdict.OK, None),
            sub("model.layers.1", Verdict.SAME_AS, None, same_as="model.layers.0"),
            sub("model.layers.1.self_attn", Verdict.SAME_AS, None, same_as="model.layers.0.self_attn"),
        ],
    )
    job = mark_origins(job)
    origins = [s.path for s in job.submodules if s.origin]
    # "model" fails on its own output, which no child explains; the root re-raises model's failure.
    assert origins == ["model", "model.layers.0.self_attn", "model.layers.1.self_attn"]


def test_origin_paths__a_module_shared_under_two_parents_is_one_origin() -> None:
    shared = sub("a", fingerprint="f-x")
    shared.aliases = ["b.inner"]
    job = JobResult(
        model="m",
        target="export",
        device="cpu",
        verdict=Verdict.FAIL,
        submodules=[sub("", fingerprint="f-x"), shared, sub("b", fingerprint="f-x")],
    )
    assert origin_paths(job) == {"a"}


def test_origin_paths__every_failing_job_has_one_and_the_root_is_always_explained() -> None:
    fingerprints = ["a", "b", "c"]
    for root_fp in fingerprints:
        for child_fp in fingerprints:
            for leaf_fp in fingerprints:
                job = JobResult(
                    model="m",
                    target="export",
                    device="cpu",
                    verdict=Verdict.FAIL,
                    submodules=[
                        sub("", fingerprint=root_fp),
                        sub("x", fingerprint=child_fp),
                        sub("x.y", fingerprint=leaf_fp),
                    ],
                )
                origins = origin_paths(job)
                assert "x.y" in origins
                by_path = {s.path: s for s in job.submodules}
                assert any(by_path[o].fingerprint == root_fp for o in origins)


def test_group_failures__groups_submodules_that_share_a_fingerprint() -> None:
    job = nested_job()
    job = mark_origins(job)
    groups = group_failures(job)
    assert [(g.fingerprint, g.paths) for g in groups] == [
        ("f-leaf", ["", "encoder", "encoder.layers.1", "encoder.layers.3", "decoder"]),
    ]
    assert groups[0].count == 5
    assert groups[0].origins == ["encoder.layers.1", "encoder.layers.3", "decoder"]
    assert groups[0].category == "data-dependent-control-flow"


def test_group_failures__is_empty_for_a_job_that_passes() -> None:
    job = JobResult(
        model="m",
        target="export",
        device="cpu",
        verdict=Verdict.OK,
        submodules=[sub("", Verdict.OK, None), sub("a", Verdict.COVERED, None)],
    )
    job = mark_origins(job)
    assert group_failures(job) == []
    assert not any(s.origin for s in job.submodules)


# ---------------------------------------------------------------------------------------------
# Quiet logs


def test_quiet_torch_logs__drops_torch_records_prints_and_warnings_but_keeps_others() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    torch_logger, own_logger = logging.getLogger("torch._dynamo.ewtest"), logging.getLogger("ewtest.own")
    for logger in (torch_logger, own_logger):
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with quiet_torch_logs(verbose=False) as captured:
            torch_logger.error("partial graph dump")
            own_logger.error("our own message")
            print("class GraphModule(torch.nn.Module):")
            print("to stderr", file=sys.stderr)
            warnings.warn("a torch warning", UserWarning, stacklevel=1)
        torch_logger.error("after the context")
    finally:
        for logger in (torch_logger, own_logger):
            logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "partial graph dump" not in logged
    assert "our own message" in logged and "after the context" in logged
    assert "GraphModule" in captured.text and "to stderr" in captured.text
    assert "partial graph dump" in captured.text


def test_quiet_torch_logs__lets_an_inner_recorder_still_see_warnings() -> None:
    with quiet_torch_logs(verbose=False), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("TracerWarning: converting a tensor to a Python boolean", UserWarning, stacklevel=1)
    assert len(seen) == 1


def test_quiet_torch_logs__changes_nothing_when_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    with quiet_torch_logs(verbose=True) as captured:
        print("visible")
    assert "visible" in capsys.readouterr().out
    assert captured.text == ""


def test_mark_origins__a_copy_of_an_ancestor_only_failure_is_not_an_origin() -> None:
    job = JobResult(
        model="m",
        target="export",
        device="cpu",
        verdict=Verdict.FAIL,
        submodules=[
            sub("", fingerprint="f-leaf"),
            sub("blocks.0", fingerprint="f-leaf"),
            sub("blocks.0.attn"),
            sub("blocks.1", Verdict.SAME_AS, None, same_as="blocks.0"),
        ],
    )
    job = mark_origins(job)
    assert [s.path for s in job.submodules if s.origin] == ["blocks.0.attn"]
    groups = group_failures(job)
    assert [(g.fingerprint, g.paths) for g in groups] == [
        ("f-leaf", ["", "blocks.0", "blocks.0.attn", "blocks.1"]),
    ]
