"""Categories and hints: a small closed set, each with a definition and one actionable sentence."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exportwatch.diagnose.chain import Link
    from exportwatch.diagnose.rules import Rule

import re
from collections.abc import Sequence
from dataclasses import dataclass

from exportwatch.report import (
    BUG_REPORT_URL,
)

# ---------------------------------------------------------------------------------------------
# Categories and hints: a small closed set, each with a definition and one actionable sentence.

#: Category id → one-line definition (also rendered in ``docs/categories.md``).
CATEGORIES: dict[str, str] = {
    "data-dependent-control-flow": (
        "Python control flow (`if`, `while`, `bool()`) branches on a value computed from tensor data."
    ),
    "data-dependent-value": (
        "A value read from tensor data (`.item()`, `nonzero`, `tolist`) is used as a Python number or "
        "as a size that the tracer would have to specialise."
    ),
    "missing-fake-kernel": (
        "A custom operator has no fake (meta) kernel, so the tracer cannot infer its output shapes."
    ),
    "fake-kernel-mismatch": (
        "A custom operator's fake kernel disagrees with its real kernel (shape, dtype or value)."
    ),
    "unsupported-operator": (
        "A built-in ATen operator cannot be traced: it has no meta kernel, or its output shape "
        "depends on data in a way the tracer cannot represent."
    ),
    "constraint-violation": (
        "A dimension declared dynamic in `dynamic_shapes` is specialised or constrained by the model."
    ),
    "unsupported-python": (
        "Strict tracing (TorchDynamo) does not support a Python feature that the model uses."
    ),
    "unsupported-type": ("An input or output is neither a tensor nor a container registered with pytree."),
    "untraceable-call": (
        "The model leaves PyTorch (numpy, `copy.deepcopy`, `data_ptr`, `tolist`) where the tracer "
        "cannot follow."
    ),
    "onnx-translation-missing": (
        "An operator in the exported graph has no ONNX translation for these arguments."
    ),
    "onnx-checker": "The produced ONNX model fails `onnx.checker.check_model(full_check=True)`.",
    "runtime-error": (
        "The export produced a program, but running it failed (ONNX Runtime session or run, or a "
        "runtime assert of the exported program)."
    ),
    "numeric-mismatch": (
        "The exported program runs, but its outputs disagree with eager PyTorch beyond tolerance."
    ),
    "executorch-lowering": (
        "ExecuTorch could not lower the exported program to its edge dialect or a backend: an "
        "operator outside the core ATen opset, a dtype or shape the edge verifier rejects."
    ),
    "executorch-missing-out-variant": (
        "An operator in the lowered program has no out variant, so `to_executorch` cannot plan "
        "its memory (typical of a custom operator registered without a `.out` overload)."
    ),
    "executorch-operator-missing": (
        "The `.pte` was built but the ExecuTorch runtime cannot load it: an operator it calls has "
        "no kernel registered in the runtime."
    ),
    "executorch-run-error": "The `.pte` loaded, but the ExecuTorch runtime failed while running it.",
    "aoti-compile-error": (
        "AOTInductor could not compile the exported program into a package: Inductor's lowering "
        "or code generation failed, or the C++ compiler or linker did (a missing header, library "
        "or compiler is named)."
    ),
    "aoti-specialised-dim": (
        "A dimension declared dynamic is a fixed size in the AOTInductor package, so the package "
        "does not take an input set whose size differs (the dim is named)."
    ),
    "aoti-load-error": "The AOTInductor package was built, but `aoti_load_package` could not load it.",
    "aoti-run-error": "The AOTInductor package loaded, but running it on an input set failed.",
    "model-error": "The model's own eager forward raises with the manifest's inputs.",
    "config-error": (
        "The export was given inputs or `dynamic_shapes` that do not fit the model's signature."
    ),
    "crash": "The worker process died (signal, abort or unexpected exit) during the export.",
    "timeout": "The export did not finish within the job's time limit.",
    "oom": "The worker ran out of memory during the export.",
    "interrupted": "The sweep was stopped (Ctrl-C or SIGTERM) while this export ran: it was not checked.",
    "internal-error": (
        "exportwatch itself failed while checking this (a bug in exportwatch, not in the model): "
        "the export was not checked."
    ),
    "unknown": "No rule matched this failure; read the detail and the user frame.",
}


@dataclass(frozen=True)
class Hint:
    """One actionable sentence and the page that explains it."""

    text: str
    url: str

    def __str__(self) -> str:
        return f"{self.text} See {self.url}"


_DOCS = "https://docs.pytorch.org/docs/stable"
_AOTI_DOCS = f"{_DOCS}/torch.compiler_aot_inductor.html"

#: Category id → what to do about it.
HINTS: dict[str, Hint] = {
    "data-dependent-control-flow": Hint(
        "Replace the data-dependent branch with `torch.cond` (or `torch.where`), or tell the tracer "
        "which way it goes with `torch._check(...)`.",
        f"{_DOCS}/cond.html",
    ),
    "data-dependent-value": (
        Hint(
            "Keep the value symbolic: state what you know with `torch._check(...)` (e.g. "
            "`torch._check(n >= 0)`) instead of converting it with `int()`, or avoid `.item()`.",
            f"{_DOCS}/compile/dynamic_shapes_troubleshooting_guardon_errors.html",
        )
    ),
    "missing-fake-kernel": Hint(
        "Register a fake kernel for the custom operator with `@torch.library.register_fake` "
        "(or `@op.register_fake`) that computes output shapes and dtypes without data.",
        f"{_DOCS}/library.html#torch.library.register_fake",
    ),
    "fake-kernel-mismatch": Hint(
        "Fix the operator's fake kernel so its output shape and dtype match the real kernel; "
        "`torch.library.opcheck` reproduces the mismatch.",
        f"{_DOCS}/library.html#torch.library.opcheck",
    ),
    "unsupported-operator": Hint(
        "Wrap the call in a `torch.library.custom_op` with a fake kernel, or replace the operator "
        "with one that has a meta implementation.",
        f"{_DOCS}/library.html#torch.library.custom_op",
    ),
    "constraint-violation": Hint(
        "Make the dimension static, narrow its `Dim(min=..., max=...)` range as the message "
        "suggests, or use `Dim.AUTO` to let export infer it.",
        f"{_DOCS}/export.html",
    ),
    "unsupported-python": Hint(
        "Move the unsupported Python out of `forward` (or behind `torch.compiler.is_compiling()`), "
        "or use non-strict export (`strict=False`).",
        f"{_DOCS}/compile/programming_model.common_graph_breaks.html",
    ),
    "unsupported-type": Hint(
        "Return or accept tensors and plain containers, or register the class as a pytree node "
        "(`torch.export.register_dataclass` or `torch.utils._pytree.register_pytree_node`).",
        f"{_DOCS}/export.html#torch.export.register_dataclass",
    ),
    "untraceable-call": Hint(
        "Replace the numpy/copy/pointer call with torch operations, or hide it inside a "
        "`torch.library.custom_op` with a fake kernel.",
        f"{_DOCS}/library.html#torch.library.custom_op",
    ),
    "onnx-translation-missing": Hint(
        "Give the operator an ONNX implementation via `custom_translation_table=` in "
        "`torch.onnx.export`, or rewrite the call with operators that ONNX supports.",
        "https://docs.pytorch.org/tutorials/beginner/onnx/onnx_registry_tutorial.html",
    ),
    "onnx-checker": Hint(
        "Inspect the model with `onnx.checker.check_model(model, full_check=True)`; a custom "
        "translation that emits wrong types or shapes is the usual cause.",
        "https://onnx.ai/onnx/api/checker.html",
    ),
    "runtime-error": Hint(
        "Run the exported artifact on the failing input set locally; a runtime assert means the "
        "export specialised on the example input, a session error means an operator the runtime lacks.",
        f"{_DOCS}/export.programming_model.html",
    ),
    "numeric-mismatch": Hint(
        "Look for values baked in as constants (random numbers, `.item()`, a specialised branch) or "
        "a wrong custom translation; compare outputs on the failing input set.",
        f"{_DOCS}/export.programming_model.html",
    ),
    "executorch-lowering": Hint(
        "Replace the operator with core ATen ones (or give it a decomposition), or wrap it in a "
        "`torch.library.custom_op` with an out variant and an ExecuTorch kernel.",
        "https://docs.pytorch.org/executorch/stable/ir-ops-set-definition.html",
    ),
    "executorch-missing-out-variant": Hint(
        "Define the custom operator's out variant (`my_op.out(..., *, Tensor(a!) out)`) with "
        "`torch.library`, and register its ExecuTorch kernel.",
        "https://docs.pytorch.org/executorch/stable/kernel-library-custom-aten-kernel.html",
    ),
    "executorch-operator-missing": Hint(
        "Link a kernel for the named operator into the runtime (a custom kernel library or the "
        "optimized kernels), or rewrite the call with operators the portable library has.",
        "https://docs.pytorch.org/executorch/stable/kernel-library-selective-build.html",
    ),
    "executorch-run-error": Hint(
        "Run the kept `.pte` on the failing input set with the ExecuTorch runtime; a shape "
        "outside what was exported, or a kernel's own check, is the usual cause.",
        "https://docs.pytorch.org/executorch/stable/using-executorch-troubleshooting.html",
    ),
    "aoti-compile-error": Hint(
        "Read the compiler's output in the detail: install what it names on the machine that runs "
        "the sweep (a C++ compiler, Python's headers, the CUDA toolkit for a CUDA package), or "
        "rewrite the operator Inductor could not lower.",
        _AOTI_DOCS,
    ),
    "aoti-specialised-dim": Hint(
        "Find what fixes the dim's size (a reshape to a literal, a branch on the size, a size read "
        "as a Python int) and keep it symbolic, or declare the dim static; the `export` target's "
        "warnings name the dims torch.export specialised.",
        f"{_DOCS}/export.html#expressing-dynamism",
    ),
    "aoti-load-error": Hint(
        "Load the kept `.pt2` with `torch._inductor.aoti_load_package` in the same environment; a "
        "package built for another device, torch or C++ runtime does not load.",
        _AOTI_DOCS,
    ),
    "aoti-run-error": Hint(
        "Run the kept `.pt2` on the failing input set with `torch._inductor.aoti_load_package`, "
        "with `AOTI_RUNTIME_CHECK_INPUTS=1` so the package checks the shapes it takes.",
        _AOTI_DOCS,
    ),
    "model-error": Hint(
        "Make the eager forward run with the manifest's inputs first (shapes, dtypes, kwargs); "
        "nothing can be exported until it does.",
        f"{_DOCS}/export.html",
    ),
    "config-error": Hint(
        "Make the manifest's inputs and `dynamic_shapes` match the forward signature (names, "
        "nesting and number of arguments).",
        f"{_DOCS}/export.html",
    ),
    "crash": Hint(
        "Reproduce the job locally with `python -X faulthandler` to see the native stack; a crash "
        "usually points at a native kernel or an abort in the model.",
        "https://docs.python.org/3/library/faulthandler.html",
    ),
    "timeout": Hint(
        "Raise the model's `timeout` in the manifest, or shrink what is traced (fewer layers, "
        "no long Python loops, which tracing unrolls).",
        f"{_DOCS}/export.programming_model.html",
    ),
    "oom": Hint(
        "Use smaller example inputs or fewer layers for the export check, or raise `--max-memory`.",
        f"{_DOCS}/notes/faq.html",
    ),
    "interrupted": Hint(
        "Nothing went wrong with the model: rerun the sweep (or this model with `--model`) to check "
        "it; the report it belongs to is partial.",
        "https://github.com/exportwatch/exportwatch/blob/main/docs/categories.md",
    ),
    "internal-error": Hint(
        "This is a bug in exportwatch, not in your model, and rerunning will not help: please "
        "report it with the detail below. Until it is fixed this result counts as not checked.",
        BUG_REPORT_URL,
    ),
    "unknown": Hint(
        "Run `torch.export.draft_export` on the module for a report of every issue it hits.",
        f"{_DOCS}/draft_export.html",
    ),
}


def hint_for(category: str) -> str:
    """The hint sentence plus its link, as stored in the report."""
    return str(HINTS.get(category, HINTS["unknown"]))


@dataclass(frozen=True, kw_only=True)
class LibraryHint:
    """What a model library itself offers for a failure its own objects cause.

    Matched on the exception chain's messages; more specific than the category's hint, so it
    replaces it. Each one is proven by a test in which applying it makes the export pass.
    """

    library: str
    category: str
    pattern: str  # regex searched in every message of the chain
    hint: Hint


_HF_EXPORT_DOCS = "https://huggingface.co/docs/transformers/main/en/serialization"

LIBRARY_HINTS: tuple[LibraryHint, ...] = (
    LibraryHint(
        library="transformers",
        category="unsupported-type",
        pattern=r"<class 'transformers\.[\w.]*Cache'>|UserDefinedObjectVariable\(\w*Cache\)|"
        r"transformers\.cache_utils\.\w+",
        hint=Hint(
            "A transformers cache object (`DynamicCache`, `EncoderDecoderCache`) is not a pytree node "
            "by default. If the deployed model runs without the cache, pass `use_cache=False` (a "
            "forward kwarg in the manifest's inputs, or `config.use_cache = False` in the factory); "
            "to export with the cache, register transformers' cache classes first: "
            "`from transformers.exporters.exporter_dynamo import register_cache_pytrees_for_model; "
            "register_cache_pytrees_for_model(model)` (transformers 5).",
            _HF_EXPORT_DOCS,
        ),
    ),
)


def hint_for_failure(category: str, rule: Rule | None, chain: Sequence[Link]) -> Hint:
    """The most specific hint: a library's own remedy, else the rule's, else the category's."""
    for entry in LIBRARY_HINTS:
        if entry.category == category and any(re.search(entry.pattern, link.message) for link in chain):
            return entry.hint
    if rule is not None and rule.hint is not None:
        return rule.hint
    return HINTS.get(category, HINTS["unknown"])
