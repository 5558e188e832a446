"""Real failing exports (torch 2.13, in-process) through the diagnosis.

The corpus (``tests/fixtures/corpus/models.py``) is copied into two temporary checkouts: ``a``
as is, ``b`` in another directory with 7 blank lines on top and one more unbacked ``.item()``
in one model (so ``u0`` becomes ``u1``). Each copy is loaded as a module and every case is
exported once per checkout (module-scoped), so the whole file costs one pass per checkout.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from exportwatch.diagnose import (  # noqa: E402  (after the importorskip)
    CATEGORIES,
    HINTS,
    Diagnosis,
    diagnose_exception,
    diagnose_model_error,
)
from exportwatch.report import first_line  # noqa: E402
from exportwatch.worker.quiet import quiet_torch_logs  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "models.py"
MODULE = "ewcorpus_models"  # one name in both checkouts, as the sweep would register it
SHIFT_LINES = 7


@dataclass
class Outcome:
    """One case in one checkout: the live exception's keys and its diagnosis."""

    diagnosis: Diagnosis
    naive_key: str  # sha1(class + message): what a diagnosis without normalisation would key on
    raw_first_line: str


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # strict export needs the model's module registered
    spec.loader.exec_module(module)
    return module


def _export(module: ModuleType, case: Any, model: Any | None = None) -> BaseException | None:
    """Run one case the way its target would; return the exception (None: it exported)."""
    model = model if model is not None else getattr(module, case.model)()
    model.eval()
    args = getattr(module, case.inputs)()
    dynamic = {"x": {0: torch.export.Dim("batch")}} if case.dynamic else None
    try:
        with torch.no_grad():
            if case.mode == "export":
                torch.export.export(model, args, dynamic_shapes=dynamic, strict=False)
            elif case.mode == "export-strict":
                torch.export.export(model, args, dynamic_shapes=dynamic, strict=True)
            elif case.mode == "export-real-tensors":
                from torch._functorch import config

                with config.patch(fake_tensor_propagate_real_tensors=True):
                    torch.export.export(model, args, dynamic_shapes=dynamic, strict=False)
            elif case.mode == "onnx":
                pytest.importorskip("onnxscript")
                torch.onnx.export(model, args, dynamic_shapes=dynamic, dynamo=True, verbose=False)
            elif case.mode == "eager":
                model(*args)
            else:
                raise AssertionError(f"unknown corpus mode {case.mode}")
    except Exception as exc:
        return exc
    return None


def _diagnose(exc: BaseException, case: Any, repo_root: Path) -> Diagnosis:
    if case.mode == "eager":
        return diagnose_model_error(exc, repo_root=repo_root)
    return diagnose_exception(exc, target=case.mode, stage=case.stage, repo_root=repo_root)


def _outcome(exc: BaseException, diagnosis: Diagnosis) -> Outcome:
    naive = hashlib.sha1(f"{type(exc).__qualname__}{exc}".encode()).hexdigest()
    return Outcome(diagnosis=diagnosis, naive_key=naive, raw_first_line=first_line(str(exc)))


def _sweep(checkout: Path) -> dict[str, Outcome]:
    module = _load(checkout / "models.py")
    results: dict[str, Outcome] = {}
    for case in module.CASES:
        with quiet_torch_logs(verbose=False):
            exc = _export(module, case)
        assert exc is not None, f"corpus case {case.name} exported; it must fail"
        results[case.name] = _outcome(exc, _diagnose(exc, case, checkout))
    return results


@dataclass
class Checkouts:
    a: Path
    b: Path
    module_a: ModuleType
    results_a: dict[str, Outcome]
    results_b: dict[str, Outcome]
    distinct: dict[str, Diagnosis]


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory: pytest.TempPathFactory) -> Checkouts:
    a = tmp_path_factory.mktemp("checkout-a")
    b = tmp_path_factory.mktemp("another-place") / "checkout-b"
    b.mkdir()
    shutil.copy(CORPUS, a / "models.py")
    text = CORPUS.read_text(encoding="utf-8")
    marker = "        # <corpus: extra unbacked symbol goes here>"
    assert marker in text
    shifted = "\n" * SHIFT_LINES + text.replace(
        marker, marker + "\n        _ = x.abs().sum().int().item()  # one more unbacked symbol: u0 -> u1"
    )
    (b / "models.py").write_text(shifted, encoding="utf-8")

    results_b = _sweep(b)
    results_a = _sweep(a)  # loaded last: the distinctness cases use checkout a's module
    module_a = sys.modules[MODULE]
    distinct: dict[str, Diagnosis] = {}
    kinds = sorted({kind for pair in module_a.DISTINCT_PAIRS for kind in pair})
    probe = next(case for case in module_a.CASES if case.mode == "export")
    for kind in kinds:
        with quiet_torch_logs(verbose=False):
            exc = _export(module_a, probe, model=module_a.ManyCausesOneFunction(kind))
        assert exc is not None, f"ManyCausesOneFunction({kind!r}) exported; it must fail"
        distinct[kind] = _diagnose(exc, probe, a)
    return Checkouts(a=a, b=b, module_a=module_a, results_a=results_a, results_b=results_b, distinct=distinct)


def _case_ids() -> list[str]:
    spec = importlib.util.spec_from_file_location("ewcorpus_labels", CORPUS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ewcorpus_labels"] = module
    spec.loader.exec_module(module)
    return [case.name for case in module.CASES]


CASE_IDS = _case_ids()


def test_corpus__has_at_least_fifteen_failing_models_covering_every_in_process_category() -> None:
    module = sys.modules["ewcorpus_labels"]
    models = {case.model for case in module.CASES}
    categories = {case.category for case in module.CASES}
    assert len(models) >= 15
    in_process = (
        set(CATEGORIES)
        - {
            "crash",
            "timeout",
            "oom",
            "unknown",
            "numeric-mismatch",
            "onnx-checker",
            "runtime-error",
            "config-error",
            "internal-error",  # exportwatch's own bugs: tests/integration/test_resilience.py
            "interrupted",  # the sweep stopped, not the model: tests/integration/test_isolation.py
        }
        - {c for c in CATEGORIES if c.startswith("executorch-")}
        - {c for c in CATEGORIES if c.startswith("aoti-")}
    )  # tests/integration/test_targets_executorch.py, test_targets_aoti.py (and its unit tests)
    assert in_process <= categories, in_process - categories


@pytest.mark.parametrize("name", CASE_IDS)
def test_corpus__each_failure_gets_its_labelled_category_user_frame_and_hint(
    checkouts: Checkouts, name: str
) -> None:
    case = next(c for c in checkouts.module_a.CASES if c.name == name)
    found = checkouts.results_a[name].diagnosis
    assert found.category == case.category, (found.rule, found.message, found.detail[:2000])
    assert found.hint is not None and found.hint.startswith(HINTS[case.category].text)
    assert "https://" in found.hint
    assert len(found.fingerprint) == 12
    if case.function is None:
        assert found.user_frame is None or found.user_frame.path == "models.py"
    else:
        frame = found.user_frame
        assert frame is not None, found.detail[:2000]
        assert (frame.path, frame.function) == ("models.py", case.function)
        assert frame.source and frame.source in CORPUS.read_text(encoding="utf-8")
        model_source = checkouts.a.joinpath("models.py").read_text().splitlines()
        assert model_source[frame.line - 1].strip() == frame.source


def test_corpus__an_onnx_failure_names_the_root_cause_under_the_exporters_wrapper(
    checkouts: Checkouts,
) -> None:
    found = checkouts.results_a["tensor-if-onnx"].diagnosis
    assert found.exception_type.endswith("TorchExportError")
    assert found.root_cause == "torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode"
    assert found.message.startswith("Could not guard on data-dependent expression")
    assert checkouts.results_a["eigh-onnx"].diagnosis.discriminator == "aten._linalg_eigh"


def test_fingerprints__are_equal_across_checkouts_shifted_by_lines_and_symbols(
    checkouts: Checkouts,
) -> None:
    names = list(checkouts.results_a)
    a, b = checkouts.results_a, checkouts.results_b
    normalised = sum(a[n].diagnosis.fingerprint == b[n].diagnosis.fingerprint for n in names)
    naive = sum(a[n].naive_key == b[n].naive_key for n in names)
    raw = sum(a[n].raw_first_line == b[n].raw_first_line for n in names)
    print(
        f"\nfingerprint stability over {len(names)} corpus failures in two checkouts: "
        f"normalised {normalised}/{len(names)}, raw first line {raw}/{len(names)}, "
        f"naive sha1(class+message) {naive}/{len(names)}"
    )
    # The shifted checkout really is different: the unbacked symbol was renumbered.
    assert "u1" in b["tensor-if"].raw_first_line and "u0" in a["tensor-if"].raw_first_line
    assert naive < len(names)
    mismatched = [n for n in names if a[n].diagnosis.fingerprint != b[n].diagnosis.fingerprint]
    assert not mismatched, [(n, a[n].diagnosis.message, b[n].diagnosis.message) for n in mismatched]


def test_fingerprints__user_frames_follow_the_shifted_lines(checkouts: Checkouts) -> None:
    for name, outcome in checkouts.results_a.items():
        frame_a, frame_b = outcome.diagnosis.user_frame, checkouts.results_b[name].diagnosis.user_frame
        if frame_a is None:
            assert frame_b is None
            continue
        assert frame_b is not None
        # 7 blank lines on top, plus the inserted .item() line for code below it
        assert frame_b.line - frame_a.line in (SHIFT_LINES, SHIFT_LINES + 1), name
        assert (frame_b.path, frame_b.function, frame_b.source) == (
            frame_a.path,
            frame_a.function,
            frame_a.source,
        )


def test_fingerprints__differ_for_every_pair_of_causes_in_one_function(checkouts: Checkouts) -> None:
    pairs = checkouts.module_a.DISTINCT_PAIRS
    found = checkouts.distinct
    for kind, diagnosis in found.items():
        assert diagnosis.user_frame is not None, kind
        assert (diagnosis.user_frame.path, diagnosis.user_frame.function) == ("models.py", "forward")
    same = [(x, y) for x, y in pairs if found[x].fingerprint == found[y].fingerprint]
    print(f"\ndistinctness: {len(pairs) - len(same)}/{len(pairs)} same-function pairs differ")
    assert not same


def test_fingerprints__differ_across_every_corpus_case(checkouts: Checkouts) -> None:
    prints = [outcome.diagnosis.fingerprint for outcome in checkouts.results_a.values()]
    print(f"\ncorpus: {len(set(prints))} distinct fingerprints for {len(prints)} failures")
    assert len(set(prints)) == len(prints)


def test_quiet_torch_logs__keeps_strict_modes_graph_dump_out_of_stderr(
    checkouts: Checkouts, capfd: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in checkouts.module_a.CASES if c.name == "tensor-if-strict")
    capfd.readouterr()
    with quiet_torch_logs(verbose=False) as captured:
        assert _export(checkouts.module_a, case) is not None
    out, err = capfd.readouterr()
    assert "GraphModule" not in err + out
    assert "def forward" not in err + out
    assert isinstance(captured.text, str)


def test_onnx_checker__an_invalid_model_is_an_onnx_checker_failure(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y", "z"])  # Relu has one output
    graph = helper.make_graph(
        [node],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(Exception) as raised:
        onnx.checker.check_model(model, full_check=True)
    found = diagnose_exception(raised.value, target="onnx", stage="checker", repo_root=tmp_path)
    assert found.category == "onnx-checker"
    assert found.user_frame is None


def test_onnxruntime__a_session_that_cannot_load_is_a_runtime_error(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="ew.unknown")
    graph = helper.make_graph(
        [node],
        "unknown-op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ew.unknown", 1)]
    )
    with pytest.raises(Exception) as raised:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    found = diagnose_exception(raised.value, target="onnx", stage="runtime", repo_root=tmp_path)
    assert found.category == "runtime-error"
