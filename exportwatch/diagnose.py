"""Exception → category, stable fingerprint, user-code frame and fix hint.

A PR comment is only as good as its diagnosis: two branches failing for the same reason must
share a fingerprint (or every PR reports a fake "changed failure"), and two different reasons
must not. The same root cause surfaces under different classes per mode (strict ``Unsupported``
with a graph-break type, non-strict ``GuardOnDataDependentSymNode``, ONNX ``TorchExportError``
wrapping either), so classification walks the whole ``__cause__``/``__context__`` chain and
reads classes by *qualified name* and attributes (``error_type``, ``gb_type``, ``cond``,
``func``) against one ordered table of rules.

This module never imports torch (the publish half imports ``report``/``diff``/``render``, and
those may import this for :func:`group_failures`): torch objects are inspected by duck typing.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import io
import linecache
import logging
import os
import re
import sys
import sysconfig
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TextIO

from exportwatch.report import (
    BUG_REPORT_URL,
    FAILING,
    MAX_DETAIL_CHARS,
    MAX_MESSAGE_CHARS,
    JobResult,
    SubmoduleResult,
    UserFrame,
    cap,
    first_line,
    origin_paths,
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
    "model-error": "The model's own eager forward raises with the manifest's inputs.",
    "config-error": (
        "The export was given inputs or `dynamic_shapes` that do not fit the model's signature."
    ),
    "crash": "The worker process died (signal, abort or unexpected exit) during the export.",
    "timeout": "The export did not finish within the job's time limit.",
    "oom": "The worker ran out of memory during the export.",
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


# ---------------------------------------------------------------------------------------------
# The result


@dataclass(kw_only=True)
class Diagnosis:
    category: str
    fingerprint: str
    exception_type: str
    root_cause: str | None
    message: str
    detail: str
    user_frame: UserFrame | None
    hint: str | None
    #: What tells two failures of one category apart (op name, guard, graph-break type).
    discriminator: str | None = None
    #: Qualified class of the exception the deciding rule matched (may be a wrapper's cause).
    cause: str | None = None
    #: The rule that decided the category, for debugging the table.
    rule: str | None = None


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------------------------------------
# Normalisation: what may differ between two runs of the same failure.

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"
)
_WIN_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\\\s\"'<>|:]+\\)*([^\\\s\"'<>|:]+)")
_ABS_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+~-]+/)+([\w.@+~-]+)")
_REL_SOURCE_PATH = re.compile(
    r"\b(?:[\w.@+-]+/)+([\w@+-]+\.(?:py|pyi|pyx|cpp|cc|h|cu|onnx|pt2|pt|yml|yaml|json))\b"
)
_FILE_LINE = re.compile(r"(\.[A-Za-z]{1,4}):\d+(?::\d+)?")
_LINE_WORD = re.compile(r"\b(line|lineno|Line)(\s*[= ]\s*)\d+")
_SYMBOL = re.compile(r"\b(zuf|zf|ps|u|s)\d+\b")
_PID = re.compile(r"\b(pid|PID|process)(\s*[=:]?\s*)\d+")
_LONG_INT = re.compile(r"\b\d{5,}\b")
_SPACE = re.compile(r"\s+")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def normalise(text: str) -> str:
    """Rewrite ``text`` so that the same failure reads the same across runs and checkouts.

    Removes ANSI codes, addresses, timestamps, paths (kept as basenames), line numbers,
    symbolic-shape names (``u0``/``s77``/``zuf0`` → ``u?``/``s?``/``zuf?``), process ids and
    long integers (object ids, sizes in bytes), then collapses whitespace.
    """
    text = strip_ansi(text)
    text = _HEX.sub("0x?", text)
    text = _TIMESTAMP.sub("<time>", text)
    text = _WIN_PATH.sub(r"\1", text)
    text = _ABS_PATH.sub(r"\1", text)
    text = _REL_SOURCE_PATH.sub(r"\1", text)
    text = _FILE_LINE.sub(r"\1:?", text)
    text = _LINE_WORD.sub(r"\1\2?", text)
    text = _SYMBOL.sub(r"\1?", text)
    text = _PID.sub(r"\1\2?", text)
    text = _LONG_INT.sub("N", text)
    return _SPACE.sub(" ", text).strip()


def _digits_out(text: str) -> str:
    """For messages whose numbers are measurements (errors, seconds, bytes), not identity."""
    return re.sub(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", "#", text)


def fingerprint(*parts: str | None) -> str:
    """12 hex characters over the parts (None and "" are the same)."""
    key = "\x1f".join(part or "" for part in parts)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# The exception chain, as evidence


@dataclass(frozen=True)
class Link:
    """One exception of the chain, with what the rules read from it."""

    exc: BaseException
    names: frozenset[str]  # qualified names of the class and its bases
    qualname: str
    message: str  # str(exc), ANSI codes removed

    def attr(self, name: str) -> str | None:
        """``str()`` of an attribute, enum members as their name, None when absent."""
        value = getattr(self.exc, name, None)
        if value is None:
            return None
        member = getattr(value, "name", None)
        if isinstance(member, str) and type(value).__module__ != "builtins":
            return member  # an Enum such as UserErrorType.CONSTRAINT_VIOLATION
        try:
            return str(value)
        except Exception:  # a broken __str__ must not break the diagnosis
            return None

    @property
    def first_line(self) -> str:
        return first_line(self.message)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def exception_chain(exc: BaseException) -> list[Link]:
    """Outermost first: follow ``__cause__``, else ``__context__``, guarding against cycles."""
    links: list[Link] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(links) < 32:
        seen.add(id(current))
        cls = type(current)
        names = frozenset(qualified_name(base) for base in cls.__mro__ if base is not object)
        links.append(
            Link(
                exc=current,
                names=names,
                qualname=qualified_name(cls),
                message=strip_ansi(_safe_str(current)),
            )
        )
        current = current.__cause__ if current.__cause__ is not None else current.__context__
    return links


# ---------------------------------------------------------------------------------------------
# The rules table


def _class_matches(link: Link, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith(".*"):
            if any(name.startswith(pattern[:-1]) for name in link.names):
                return True
        elif "." in pattern:
            if pattern in link.names:
                return True
        elif any(name.rsplit(".", 1)[-1] == pattern for name in link.names):
            return True
    return False


Check = Callable[[Link, "Evidence"], bool]
Discriminate = Callable[[Link, "Evidence"], "str | None"]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A category when one exception of the chain matches every condition given.

    ``classes``: qualified names (or bare names, or ``module.*`` prefixes) of the class or a
    base; ``message``: regex searched in ``str(exc)``; ``attrs``: attribute → regex on its
    value; ``stages``: the attempt's stage; ``check``: anything else, over the whole chain.
    """

    name: str
    category: str
    classes: tuple[str, ...] = ()
    message: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()
    stages: frozenset[str] | None = None
    check: Check | None = None
    discriminator: Discriminate | None = None
    hint: Hint | None = None  # more specific than the category's

    def matches(self, link: Link, evidence: Evidence) -> bool:
        if self.stages is not None and evidence.stage not in self.stages:
            return False
        if self.classes and not _class_matches(link, self.classes):
            return False
        if self.message is not None and not re.search(self.message, link.message, re.S):
            return False
        for attr, pattern in self.attrs:
            value = link.attr(attr)
            if value is None or not re.search(pattern, value):
                return False
        return self.check is None or self.check(link, evidence)


@dataclass(kw_only=True)
class Evidence:
    """Everything the rules may look at."""

    chain: list[Link]
    stage: str | None

    def any_class(self, *patterns: str) -> bool:
        return any(_class_matches(link, patterns) for link in self.chain)


# -- discriminators -----------------------------------------------------------------------------

_OP_PATTERNS = (
    re.compile(r"op='([\w.:]+)'(?:, overload='(\w+)')?"),  # <OpOverload(op='aten.x', overload='default')>
    re.compile(r"<CustomOpDef\(([\w.:]+)\)>"),
    re.compile(r"\b([A-Za-z_]\w*::\w+)(?:\.\w+)?: attempted to run this operator with Meta"),
    re.compile(r"for func: ([\w.]+)"),
    re.compile(r"output of ([\w.]+) on FakeTensor"),
    re.compile(r"torch\.ops\.([\w.]+) has a fake kernel"),
    re.compile(r"operator '([\w:.]+)'"),
    re.compile(r"unrecognized namespace ([\w:.]+)"),
    re.compile(r"TracedOnnxFunction\(<function (\w+)"),
    re.compile(r"target=torch\.ops\.([\w.]+)"),
)


def _op_name(text: str) -> str | None:
    for pattern in _OP_PATTERNS:
        found = pattern.search(text)
        if found:
            groups = [g for g in found.groups() if g]
            name = groups[0] if len(groups) == 1 or groups[1] == "default" else ".".join(groups)
            return _canonical_op(name)
    return None


def _canonical_op(name: str) -> str:
    """``aten::foo``, ``aten.foo``, ``aten.foo.default`` → ``aten.foo``."""
    name = name.replace("::", ".")
    if name.endswith(".default"):
        name = name[: -len(".default")]
    return name


def _op_discriminator(link: Link, evidence: Evidence) -> str | None:
    func = link.attr("func")
    if func:
        return _canonical_op(func)
    for other in [link, *evidence.chain]:
        found = _op_name(other.message)
        if found:
            return found
    return None


def _guard_expression(link: Link, evidence: Evidence) -> str | None:
    for other in [link, *evidence.chain]:
        cond = other.attr("cond")
        if cond:
            return normalise(cond)
        found = re.search(r"data-dependent expression (.+?) \(unhinted", other.message)
        if found:
            return normalise(found.group(1))
    gb_type = _gb_type(evidence)
    return gb_type


def _gb_type(evidence: Evidence) -> str | None:
    for link in evidence.chain:
        value = link.attr("gb_type")
        if value:
            return value
    return None


def _gb_or_first_line(link: Link, evidence: Evidence) -> str | None:
    return link.attr("gb_type") or _gb_type(evidence) or normalise(link.first_line)


def _error_type(link: Link, evidence: Evidence) -> str | None:
    for other in [link, *evidence.chain]:
        value = other.attr("error_type")
        if value:
            return value
    return None


def _constraint_discriminator(link: Link, evidence: Evidence) -> str | None:
    """The error type, the dims and the violated guards: two violations on one dim differ."""
    found = re.search(r"Constraints violated \(([^)]*)\)", link.message)
    dims = found.group(1) if found else None
    guards = " ; ".join(normalise(b) for b in constraint_details(link.message)[0])
    return "|".join(part for part in (_error_type(link, evidence), dims, guards) if part) or None


_TYPE_PATTERNS = (
    re.compile(r"<class '([\w.]+)'>"),
    re.compile(r"UserDefinedObjectVariable\((\w+)\)"),
    re.compile(r"type `<class '([\w.]+)'>`"),
)


def _type_discriminator(link: Link, evidence: Evidence) -> str | None:
    for pattern in _TYPE_PATTERNS:
        found = pattern.search(link.message)
        if found:
            return found.group(1).rsplit(".", 1)[-1]
    return _error_type(link, evidence)


_UNTRACEABLE_KINDS = (
    ("numpy", r"numpy"),
    ("deepcopy", r"deepcopy"),
    ("data_ptr", r"data pointer|data_ptr"),
    ("tolist", r"tolist"),
    ("storage", r"untyped_storage|\.storage\(\)"),
)


def _untraceable_discriminator(link: Link, evidence: Evidence) -> str | None:
    text = " ".join([link.attr("gb_type") or "", link.first_line])
    for kind, pattern in _UNTRACEABLE_KINDS:
        if re.search(pattern, text, re.I):
            return kind
    return normalise(link.first_line)


# -- checks -------------------------------------------------------------------------------------

_BUILTIN_NAMESPACES = ("aten", "prims", "prim", "quantized", "_quantized", "rngprims")


def _custom_op(link: Link, evidence: Evidence) -> bool:
    """Operator outside PyTorch's own namespaces: the user can register a kernel for it."""
    name = _op_discriminator(link, evidence)
    return name is not None and name.split(".", 1)[0] not in _BUILTIN_NAMESPACES


def _builtin_op(link: Link, evidence: Evidence) -> bool:
    return not _custom_op(link, evidence)


#: Where torch implements operators: a guard raised from here comes from an op's *value* use
#: (a reshape, a size), not from the user's own ``if``.
_OP_IMPLEMENTATION = re.compile(
    r"torch/(?:_refs/|_prims_common/|_prims/|_meta_registrations\.py|_decomp/|_ops\.py|_library/|"
    r"_subclasses/|functional\.py|nn/functional\.py|_higher_order_ops/|_tensor\.py)"
)
_CAUSED_BY = re.compile(r"Caused by:.*\(([\w/.-]+\.py):\d+ in \w+\)")


def _torch_tail(path: str) -> str | None:
    """``.../site-packages/torch/_refs/__init__.py`` → ``torch/_refs/__init__.py``."""
    norm = path.replace("\\", "/")
    root = _torch_root()
    if root is not None and norm.startswith(root + "/"):
        return "torch/" + norm[len(root) + 1 :]
    index = norm.rfind("/torch/")
    return norm[index + 1 :] if index >= 0 else None


def _value_guard(link: Link, evidence: Evidence) -> bool:
    """A data-dependent guard from an operator or an ``int()``, rather than a Python branch."""
    if any(
        re.search(r"extract specialized (integer|float)|specialize.*unbacked", other.message)
        for other in evidence.chain
    ):
        return True
    for other in evidence.chain:
        frames = _tb_frames(other.exc)
        innermost_outside = max(
            (i for i, frame in enumerate(frames) if _torch_tail(frame[0]) is None), default=-1
        )
        for path, _line, _function in frames[innermost_outside + 1 :]:
            tail = _torch_tail(path)
            if tail and _OP_IMPLEMENTATION.search(tail):
                return True
        for found in _CAUSED_BY.finditer(other.message):
            if _OP_IMPLEMENTATION.search("torch/" + found.group(1)):
                return True
    return False


def _inside_onnx_translation(link: Link, evidence: Evidence) -> bool:
    """A translation function that exists but refuses these arguments (``histc`` min == max)."""
    return evidence.any_class(f"{_ONNX_ERRORS}.GraphConstructionError", f"{_ONNX_ERRORS}.ConversionError")


def _not_fake_call_failure(link: Link, evidence: Evidence) -> bool:
    """Dynamo's "X when making fake tensor call" is an op failing on fake tensors, not Python."""
    return not re.search(r"when making fake tensor call|fake tensor", link.attr("gb_type") or "", re.I)


_GUARD_CLASSES = ("torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode",)
_GUARD_MESSAGE = (
    r"Could not guard on data-dependent expression|extract specialized (integer|float) from data-dependent"
)
_USER_ERROR = ("torch._dynamo.exc.UserError",)
_UNSUPPORTED = ("torch._dynamo.exc.Unsupported",)
_ONNX_ERRORS = "torch.onnx._internal.exporter._errors"
_CHECKER_STAGES = frozenset({"checker"})

#: Ordered: the first rule that matches any exception of the chain decides. Specific causes
#: (an op without a fake kernel) come before the wrappers that carry them (dynamo's
#: ``Unsupported``, ``UserError(CONSTRAINT_VIOLATION)`` around a data-dependent guard).
RULES: tuple[Rule, ...] = (
    # --- the exported program refusing an input set at run time (a range or shape learned at
    #     export time): not a numeric problem, whatever the verification step called it
    Rule(
        name="runtime-assert",
        category="runtime-error",
        stages=frozenset({"runtime"}),
        message=r"Guard failed|[Rr]untime assertion failed|Expected input at .* to be",
        discriminator=lambda link, _evidence: normalise(link.first_line),
        hint=Hint(
            "The exported program checks, at run time, the shapes and ranges it was exported for, "
            "and this input set is outside them: widen the dim's range in `dims` "
            "(`Dim(min=..., max=...)`), mark the dim dynamic, or make the model stop specialising it.",
            f"{_DOCS}/export.html#expressing-dynamism",
        ),
    ),
    # --- custom operators and kernels
    Rule(
        name="no-fake-impl-message",
        category="missing-fake-kernel",
        message=r"no fake impl registered|no fake impl or Meta kernel registered|"
        r"There was no fake impl|does not have a fake kernel|no abstract impl",
        discriminator=_op_discriminator,
    ),
    Rule(
        name="unsupported-custom-operator",
        category="missing-fake-kernel",
        classes=("torch._subclasses.fake_tensor.UnsupportedOperatorException",),
        check=_custom_op,
        discriminator=_op_discriminator,
    ),
    Rule(
        name="fake-real-metadata-mismatch",
        category="fake-kernel-mismatch",
        classes=("torch._subclasses.fake_tensor.MetadataMismatchError",),
        discriminator=_op_discriminator,
    ),
    Rule(
        name="fake-kernel-mismatch-message",
        category="fake-kernel-mismatch",
        message=r"has a fake kernel implementation, but it has incorrect behavior|"
        r"Real tensor propagation found .*mismatch|mismatch between fake value",
        discriminator=_op_discriminator,
    ),
    Rule(
        name="unsupported-builtin-operator",
        category="unsupported-operator",
        classes=(
            "torch._subclasses.fake_tensor.UnsupportedOperatorException",
            "torch._subclasses.fake_tensor.DynamicOutputShapeException",
        ),
        check=_builtin_op,
        discriminator=_op_discriminator,
    ),
    # --- data-dependence (before constraint violations: strict mode wraps some guards in
    #     UserError(CONSTRAINT_VIOLATION))
    Rule(
        name="guard-from-operator-or-int",
        category="data-dependent-value",
        classes=_GUARD_CLASSES,
        check=_value_guard,
        discriminator=_guard_expression,
    ),
    Rule(
        name="guard-message-from-operator-or-int",
        category="data-dependent-value",
        message=_GUARD_MESSAGE,
        check=_value_guard,
        discriminator=_guard_expression,
    ),
    Rule(
        name="guard-on-branch",
        category="data-dependent-control-flow",
        classes=_GUARD_CLASSES,
        discriminator=_guard_expression,
    ),
    Rule(
        name="guard-message-on-branch",
        category="data-dependent-control-flow",
        message=_GUARD_MESSAGE,
        discriminator=_guard_expression,
    ),
    Rule(
        name="dynamo-data-dependent-branch",
        category="data-dependent-control-flow",
        classes=_UNSUPPORTED,
        attrs=(("gb_type", r"(?i)data-dependent (branching|jump|control)"),),
        discriminator=_gb_or_first_line,
    ),
    Rule(
        name="user-error-dynamic-control-flow",
        category="data-dependent-control-flow",
        classes=_USER_ERROR,
        attrs=(("error_type", r"DYNAMIC_CONTROL_FLOW"),),
        discriminator=_error_type,
    ),
    Rule(
        name="data-dependent-output",
        category="data-dependent-value",
        classes=("torch._subclasses.fake_tensor.DataDependentOutputException",),
        discriminator=_op_discriminator,
    ),
    Rule(
        name="dynamo-item-or-dynamic-shape",
        category="data-dependent-value",
        classes=_UNSUPPORTED,
        attrs=(("gb_type", r"(?i)item\(\)|capture_scalar_outputs|dynamic output shape|unbacked"),),
        discriminator=_gb_or_first_line,
    ),
    # --- dynamic shapes and inputs
    Rule(
        name="constraint-violation-error",
        category="constraint-violation",
        classes=("torch.fx.experimental.symbolic_shapes.ConstraintViolationError",),
        discriminator=_constraint_discriminator,
    ),
    Rule(
        name="user-error-constraint",
        category="constraint-violation",
        classes=_USER_ERROR,
        attrs=(("error_type", r"CONSTRAINT_VIOLATION|DYNAMIC_DIM"),),
        discriminator=_constraint_discriminator,
    ),
    Rule(
        name="unsupported-type-message",
        category="unsupported-type",
        message=r"which is not a known type|register a pytree|Encountered unrecognized type|"
        r"Unsupported input type|not supported or pytree-flattenable|is not a pytree|"
        r"Only tuples, lists and Variables are supported as JIT inputs/outputs|"
        r"the TorchScript exporter cannot take it as an input",
        discriminator=_type_discriminator,
    ),
    Rule(
        name="user-error-invalid-output",
        category="unsupported-type",
        classes=_USER_ERROR,
        attrs=(("error_type", r"INVALID_OUTPUT"),),
        discriminator=_type_discriminator,
    ),
    Rule(
        name="user-error-invalid-input",
        category="config-error",
        classes=_USER_ERROR,
        attrs=(("error_type", r"INVALID_INPUT"),),
        discriminator=_error_type,
    ),
    # --- leaving torch
    Rule(
        name="untraceable-call-message",
        category="untraceable-call",
        message=r"\.numpy\(\) is not supported|Cannot access data pointer of Tensor|"
        r"Attempted to copy\.deepcopy|Tensor\.tolist\(\) with non-integer|"
        r"Cannot access storage of|can't convert .*FakeTensor to numpy",
        discriminator=_untraceable_discriminator,
    ),
    Rule(
        name="dynamo-untraceable-call",
        category="untraceable-call",
        classes=_UNSUPPORTED,
        attrs=(("gb_type", r"(?i)numpy|deepcopy|data_ptr|tolist"),),
        discriminator=_untraceable_discriminator,
    ),
    # --- strict tracing
    Rule(
        name="dynamo-unsupported",
        category="unsupported-python",
        classes=_UNSUPPORTED,
        check=_not_fake_call_failure,
        discriminator=_gb_or_first_line,
    ),
    Rule(
        name="user-error-python",
        category="unsupported-python",
        classes=_USER_ERROR,
        attrs=(("error_type", r"STANDARD_LIBRARY|ANTI_PATTERN|UNSUPPORTED_ALIASED_MUTATED"),),
        discriminator=_error_type,
    ),
    Rule(
        name="dynamo-uncaptured-higher-order-op",
        category="unsupported-python",
        classes=("torch._dynamo.exc.UncapturedHigherOrderOpError",),
        discriminator=_gb_or_first_line,
    ),
    # --- ONNX
    Rule(
        name="onnx-dispatch",
        category="onnx-translation-missing",
        classes=(f"{_ONNX_ERRORS}.DispatchError",),
        discriminator=_op_discriminator,
    ),
    Rule(
        name="onnx-translation-not-implemented",
        category="onnx-translation-missing",
        classes=("builtins.NotImplementedError",),
        check=_inside_onnx_translation,
        discriminator=_op_discriminator,
    ),
    Rule(
        name="onnx-legacy-unsupported-operator",
        category="onnx-translation-missing",
        classes=("torch.onnx.errors.UnsupportedOperatorError",),
        discriminator=_op_discriminator,
    ),
    Rule(
        name="onnx-checker-error",
        category="onnx-checker",
        classes=(
            "onnx.onnx_cpp2py_export.checker.ValidationError",
            "onnx.onnx_cpp2py_export.shape_inference.InferenceError",
            "onnx.checker.ValidationError",
        ),
        discriminator=lambda link, _evidence: normalise(link.first_line),
    ),
    Rule(
        name="checker-stage",
        category="onnx-checker",
        stages=_CHECKER_STAGES,
        discriminator=lambda link, _evidence: normalise(link.first_line),
    ),
    # --- running what was exported
    Rule(
        name="onnxruntime-error",
        category="runtime-error",
        classes=("onnxruntime.*",),
        discriminator=lambda link, _evidence: link.qualname.rsplit(".", 1)[-1],
    ),
    Rule(
        name="accuracy-stage",
        category="numeric-mismatch",
        stages=frozenset({"accuracy"}),
    ),
    Rule(
        name="runtime-stage",
        category="runtime-error",
        stages=frozenset({"runtime"}),
    ),
)

# Every rule names a known category (checked at import: a typo is a bug, not a silent unknown).
assert all(rule.category in CATEGORIES for rule in RULES), "a rule names an unknown category"


def classify(chain: list[Link], stage: str | None) -> tuple[Rule | None, Link | None, str | None]:
    """The first rule that matches some link of the chain (innermost link first per rule)."""
    evidence = Evidence(chain=chain, stage=stage)
    for rule in RULES:
        for link in reversed(chain):
            if rule.matches(link, evidence):
                disc = rule.discriminator(link, evidence) if rule.discriminator else None
                return rule, link, disc
    return None, None, None


# ---------------------------------------------------------------------------------------------
# The user's frame


@lru_cache(maxsize=1)
def _torch_root() -> str | None:
    """torch's package directory when torch is loaded (never imported from here)."""
    module = sys.modules.get("torch")
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.realpath(path)).replace("\\", "/") if path else None


_OWN_ROOT = os.path.dirname(os.path.realpath(__file__)).replace("\\", "/")
_OWN_EXAMPLES = _OWN_ROOT + "/examples/"
#: The standard library never holds the user's code, even when the repository root is wide.
_STDLIB_ROOTS = tuple(
    os.path.realpath(path).replace("\\", "/") + "/"
    for path in {sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")}
    if path
)

RawFrame = tuple[str, int, str]  # (path, line, function)


def _tb_frames(exc: BaseException) -> list[RawFrame]:
    frames: list[RawFrame] = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def _fx_node_frames(exc: BaseException) -> list[RawFrame]:
    """The FX node a graph interpreter was handling (ONNX translation, ``ep.module()`` runs).

    Its ``meta["stack_trace"]`` holds the user's lines, where the traceback only has torch's.
    """
    found: list[RawFrame] = []
    tb = exc.__traceback__
    while tb is not None:
        try:
            node = tb.tb_frame.f_locals.get("node")
        except Exception:
            node = None
        meta = getattr(node, "meta", None)
        stack = meta.get("stack_trace") if isinstance(meta, dict) else None
        if isinstance(stack, str):
            found = _message_frames(stack)
        tb = tb.tb_next
    return found


def _stack_attr_frames(exc: BaseException) -> list[RawFrame]:
    """Dynamo's recorded user stack (``real_stack``/``user_stack``: lists of FrameSummary)."""
    frames: list[RawFrame] = []
    for attr in ("real_stack", "user_stack"):
        stack = getattr(exc, attr, None)
        if not stack:
            continue
        try:
            for entry in stack:
                path, line, name = (
                    getattr(entry, "filename", None),
                    getattr(entry, "lineno", None),
                    getattr(entry, "name", None),
                )
                if isinstance(path, str) and isinstance(line, int):
                    frames.append((path, line, str(name or "")))
        except TypeError:
            continue
    return frames


_MESSAGE_FRAME_PATTERNS = (
    re.compile(r'File "([^"]+)", line (\d+), in ([\w<>.]+)'),
    re.compile(r"# File: (\S+?):(\d+) in ([\w<>.]+)"),
    re.compile(r"# (\S+\.py):(\d+)(?::\d+)?()(?=\s|$)"),
)


def _message_frames(text: str) -> list[RawFrame]:
    """``File "...", line N, in fn`` lines (and FX/TorchScript ``# path:N`` comments), in order."""
    found: list[tuple[int, RawFrame]] = []
    for pattern in _MESSAGE_FRAME_PATTERNS:
        for match in pattern.finditer(text):
            found.append((match.start(), (match.group(1), int(match.group(2)), match.group(3))))
    return [frame for _, frame in sorted(found)]


@lru_cache(maxsize=4096)
def _real(path: str) -> str:
    return os.path.realpath(path).replace("\\", "/")


@lru_cache(maxsize=4096)
def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def _is_user_path(path: str, repo: str, *, from_text: bool = False) -> bool:
    """Inside the repository, outside site-packages, torch, the stdlib and exportwatch's machinery.

    Paths read from text (messages, FX stack traces) must be absolute and exist: torch shortens
    some (``Caused by: ... # ork/main/models.py:98``) and those would resolve against the cwd.
    """
    if not path or path.startswith("<"):
        return False
    if from_text and not (os.path.isabs(path) or re.match(r"[A-Za-z]:[\\/]", path)):
        return False
    real = _real(path)
    if not real.startswith(repo + "/"):
        return False
    if from_text and not _is_file(real):
        return False
    parts = real.split("/")
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    torch_root = _torch_root()
    if torch_root and (real.startswith(torch_root + "/")):
        return False
    if real.startswith(_OWN_ROOT + "/") and not real.startswith(_OWN_EXAMPLES):
        return False  # exportwatch's own machinery; its shipped example models are user code
    return not real.startswith(_STDLIB_ROOTS)


@lru_cache(maxsize=256)
def _function_spans(path: str) -> tuple[tuple[int, int, str], ...]:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ()
    spans = [
        (node.lineno, node.end_lineno or node.lineno, node.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    return tuple(spans)


def _enclosing_function(path: str, line: int) -> str:
    """For ``path:line`` references that do not name the function (TorchScript comments)."""
    spans = [span for span in _function_spans(path) if span[0] <= line <= span[1]]
    return min(spans, key=lambda span: span[1] - span[0])[2] if spans else "<module>"


def _source_line(path: str, real: str, line: int) -> str:
    return linecache.getline(path, line).strip() or linecache.getline(real, line).strip()


def _innermost(frames: Iterable[RawFrame], accept: Callable[[str], bool]) -> RawFrame | None:
    chosen: RawFrame | None = None
    for frame in frames:
        if accept(frame[0]):
            chosen = frame
    return chosen


def _innermost_user(frames: Iterable[RawFrame], repo: str, *, from_text: bool = False) -> UserFrame | None:
    chosen = _innermost(frames, lambda path: _is_user_path(path, repo, from_text=from_text))
    if chosen is None:
        return None
    path, line, function = chosen
    real = _real(path)
    return UserFrame(
        path=real[len(repo) + 1 :],
        line=line,
        function=function or _enclosing_function(real, line),
        source=_source_line(path, real, line),
    )


#: The export toolchain itself: a failure's frame is never taken from these packages, whose
#: frames are where every failure surfaces rather than where it comes from.
TOOLCHAIN_PACKAGES = frozenset(
    {
        "torch",
        "torchgen",
        "functorch",
        "onnx",
        "onnxscript",
        "onnx_ir",
        "onnxruntime",
        "sympy",
        "mpmath",
        "numpy",
        "triton",
        "optree",
        "typing_extensions",
        "exportwatch",
        "_pytest",
        "pluggy",
    }
)


@lru_cache(maxsize=8)
def _import_roots(search_path: tuple[str, ...]) -> tuple[str, ...]:
    """Directories code is imported from (``sys.path``), longest first."""
    roots = {_real(entry) for entry in search_path if entry and os.path.isdir(entry)}
    return tuple(sorted(roots, key=len, reverse=True))


def library_location(path: str) -> tuple[str, str] | None:
    """(top-level package, path relative to the directory that holds it) for installed code.

    ``.../site-packages/transformers/models/llama/modeling_llama.py`` →
    ``("transformers", "transformers/models/llama/modeling_llama.py")``. None for the stdlib,
    for files that are not on ``sys.path`` and for generated code (``<string>``).
    """
    if not path or path.startswith("<"):
        return None
    real = _real(path)
    parts = real.split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            rel = "/".join(parts[index + 1 :])
            return (_top_package(rel), rel) if rel else None
    for root in _import_roots(tuple(sys.path)):
        if real.startswith(root + "/"):
            if root + "/" in _STDLIB_ROOTS:
                return None
            rel = real[len(root) + 1 :]
            return _top_package(rel), rel
    return None


def _top_package(rel: str) -> str:
    top = rel.split("/", 1)[0]
    return top[:-3] if top.endswith(".py") else top


def _is_library_path(path: str, repo: str, *, from_text: bool = False) -> bool:
    """Installed code that is not the toolchain (transformers, timm, the user's own package)."""
    if from_text and not os.path.isabs(path):
        return False
    if from_text and not _is_file(_real(path)):
        return False
    found = library_location(path)
    if found is None:
        return False
    top, rel = found
    if top == "exportwatch":
        return rel.startswith("exportwatch/examples/")  # shipped example models are model code
    # A virtualenv inside the repository (uv's ``.venv``) holds libraries, not the user's code.
    return top not in TOOLCHAIN_PACKAGES and not _is_user_path(path, repo)


def _called_by_toolchain(frames: list[RawFrame]) -> list[RawFrame]:
    """The frames a traceback has below its first toolchain frame: code torch called (the model),
    not the code that called torch (exportwatch's worker, a test harness, the user's script)."""
    for index, (path, _line, _function) in enumerate(frames):
        found = library_location(path)
        if found is not None and found[0] in TOOLCHAIN_PACKAGES and found[0] != "exportwatch":
            return frames[index + 1 :]
    return frames


def _innermost_library(frames: Iterable[RawFrame], repo: str, *, from_text: bool = False) -> UserFrame | None:
    chosen = _innermost(frames, lambda path: _is_library_path(path, repo, from_text=from_text))
    if chosen is None:
        return None
    path, line, function = chosen
    found = library_location(path)
    assert found is not None
    library, rel = found
    real = _real(path)
    return UserFrame(
        path=rel,
        line=line,
        function=function or _enclosing_function(real, line),
        source=_source_line(path, real, line),
        library=library,
    )


def _frame_sources(link: Link) -> list[tuple[list[RawFrame], bool]]:
    """Where one exception says it came from: traceback, FX node, dynamo's stack, message text."""
    return [
        (_tb_frames(link.exc), False),
        (_fx_node_frames(link.exc), True),
        (_stack_attr_frames(link.exc), False),
        (_message_frames(link.message), True),
    ]


def find_user_frame(chain: Sequence[Link], repo_root: Path) -> UserFrame | None:
    """The innermost frame in the user's repository that led to the failure, else a library's.

    Innermost exception first; per exception: its traceback, the FX node being handled,
    dynamo's recorded user stack, then ``File "..."`` lines in the message. When no frame of
    the repository took part (a failure inside transformers' modeling code), the innermost
    frame of an installed library other than the toolchain, marked with ``library``.
    """
    repo = _real(str(repo_root))
    sources = [(link, _frame_sources(link)) for link in reversed(chain)]
    for _link, per_link in sources:
        for frames, from_text in per_link:
            frame = _innermost_user(frames, repo, from_text=from_text)
            if frame is not None:
                return frame
    for _link, per_link in sources:
        for index, (frames, from_text) in enumerate(per_link):
            candidates = _called_by_toolchain(frames) if index == 0 else frames  # 0: the traceback
            frame = _innermost_library(candidates, repo, from_text=from_text)
            if frame is not None:
                return frame
    return None


def interface_frame(module: object, repo_root: Path, *, output: bool = False) -> UserFrame | None:
    """The module's ``forward``: where a failure at its interface (an input or output type that
    export cannot take) is fixed. The ``return`` line for output problems, else the ``def`` line.
    """
    forward = vars(module).get("forward") if hasattr(module, "__dict__") else None
    forward = forward or getattr(type(module), "forward", None)
    forward = getattr(forward, "__func__", forward)
    with contextlib.suppress(ValueError):  # a __wrapped__ cycle
        forward = inspect.unwrap(forward)  # type: ignore[arg-type]
    code = getattr(forward, "__code__", None)
    if code is None:
        return None
    path = code.co_filename
    real = _real(path)
    line = _def_line(real, code.co_firstlineno, code.co_name)
    if output:
        line = _last_return(real, line) or line
    repo = _real(str(repo_root))
    if _is_user_path(path, repo):
        return UserFrame(
            path=real[len(repo) + 1 :],
            line=line,
            function=code.co_name,
            source=_source_line(path, real, line),
        )
    found = library_location(path)
    if found is None or found[0] in TOOLCHAIN_PACKAGES:
        return None
    return UserFrame(
        path=found[1],
        line=line,
        function=code.co_name,
        source=_source_line(path, real, line),
        library=found[0],
    )


def _def_line(path: str, first: int, name: str) -> int:
    """Skip decorators: ``co_firstlineno`` points at the first one."""
    for line in range(first, first + 40):
        if linecache.getline(path, line).lstrip().startswith((f"def {name}", f"async def {name}")):
            return line
    return first


def _last_return(path: str, def_line: int) -> int | None:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.lineno == def_line:
            returns = [n.lineno for n in ast.walk(node) if isinstance(n, ast.Return)]
            return max(returns) if returns else None
    return None


def _frame_key(frame: UserFrame | None) -> str:
    """``relpath::function`` plus the failing line's text, never its number.

    The text tells apart two failures of one kind in one function (two data-dependent ``if``s)
    and survives lines inserted above; editing the failing line itself reads as a new failure.
    """
    if frame is None:
        return ""
    return f"{frame.path}::{frame.function}::{_SPACE.sub(' ', frame.source).strip()}"


# ---------------------------------------------------------------------------------------------
# Detail: a readable, capped account of the chain


_MESSAGE_PATH = re.compile(r"(?<![\w.])(/(?:[^\s\"'<>|:(),]+/)+[^\s\"'<>|:(),]+\.py)\b")


def relative_paths(text: str, repo_root: Path | None) -> str:
    """Absolute source paths in a message, shown as a traceback shows them: repository-relative,
    package-relative, or the standard library's module path. No runner's directories leak."""
    repo = _real(str(repo_root)) if repo_root is not None else ""
    return _MESSAGE_PATH.sub(lambda found: _frame_kind(found.group(1), repo)[1], text)


def _detail(chain: Sequence[Link], repo_root: Path | None) -> str:
    """Each exception's class and message (outermost first), then the innermost traceback."""
    parts: list[str] = []
    for depth, link in enumerate(chain):
        arrow = "caused by " if depth else ""
        message = relative_paths(link.message.strip(), repo_root)
        parts.append(f"{arrow}{link.qualname}: {cap(message, 2_000)}")
    innermost = next((link for link in reversed(chain) if link.exc.__traceback__), None)
    if innermost is not None:
        parts.append(format_traceback(innermost.exc, repo_root))
    return "\n\n".join(parts)


def _frame_kind(path: str, repo: str) -> tuple[str, str]:
    """(kind, path as shown): ``repo`` / ``library`` / ``own`` / ``toolchain``, never absolute."""
    if repo and _is_user_path(path, repo):
        return "repo", _real(path)[len(repo) + 1 :]
    real = _real(path)
    if real.startswith(_OWN_ROOT + "/") and not real.startswith(_OWN_EXAMPLES):
        return "own", real
    found = library_location(path)
    if found is not None:
        top, rel = found
        if top == "exportwatch":
            return ("library" if rel.startswith("exportwatch/examples/") else "own"), rel
        return ("toolchain" if top in TOOLCHAIN_PACKAGES else "library"), rel
    if path.startswith("<"):
        return "toolchain", "generated code"  # by the tracer (``<eval_with_key>.3``, ``<string>``)
    for root in _STDLIB_ROOTS:
        if real.startswith(root):
            return "toolchain", real[len(root) :]  # ``json/decoder.py``
    return "toolchain", os.path.basename(path)


def format_traceback(exc: BaseException, repo_root: Path | None) -> str:
    """The frames that matter: repository and library frames and the frame that raised.

    exportwatch's own frames are dropped; runs of toolchain frames (torch, onnxscript, the
    stdlib) are folded into a count; paths are relative to the repository or the package root.
    """
    repo = _real(str(repo_root)) if repo_root is not None else ""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = ["Traceback (most recent call last):"]
    folded: list[str] = []

    def flush() -> None:
        if folded:
            names = sorted({name.split("/", 1)[0].removesuffix(".py") for name in folded})
            lines.append(
                f"  ... {len(folded)} frame{'s' if len(folded) != 1 else ''} of {', '.join(names)} ..."
            )
            folded.clear()

    for index, frame in enumerate(frames):
        kind, shown = _frame_kind(frame.filename, repo)
        if kind == "own":
            continue
        if kind == "toolchain" and index != len(frames) - 1:
            folded.append(shown)
            continue
        flush()
        lines.append(f"  {shown}:{frame.lineno} in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    flush()
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Public entry points


_CONSTRAINT_BULLET = re.compile(r"^\s*-\s+(.+)$", re.M)
_SUGGESTED_FIX = re.compile(r"Suggested fixes:\s*\n((?:[ \t]+\S.*\n?)+)")


def constraint_details(message: str) -> tuple[list[str], list[str]]:
    """The violated guards (the message's ``- ...`` bullets) and torch's suggested fixes."""
    bullets = [b.strip() for b in _CONSTRAINT_BULLET.findall(message)]
    found = _SUGGESTED_FIX.search(message)
    fixes = [line.strip() for line in found.group(1).splitlines() if line.strip()] if found else []
    return bullets, fixes


def _headline(link: Link, category: str | None = None) -> str:
    """The deciding exception's first line; a bare token (an op name) gets its class name.

    A constraint violation's first line names only the dims ("Constraints violated (b)!");
    the guard that was violated and torch's suggested fix follow it.
    """
    line = link.first_line
    if category == "constraint-violation":
        bullets, fixes = constraint_details(link.message)
        if bullets:
            guard = re.split(r"(?<=[.!])\s+(?=If you|For more|Please)", bullets[0], maxsplit=1)[0]
            line = f"{line.split(' For more information')[0].rstrip('!')}: {guard}"
            if len(bullets) > 1:
                line += f" (and {len(bullets) - 1} more)"
            if fixes:
                line += f"; suggested fix: {'; '.join(fixes[:3])}"
        return line
    if line and " " not in line:
        return f"{link.qualname.rsplit('.', 1)[-1]}: {line}"
    return line


#: Failures at a module's boundary: the same cause (a cache object crossing it, a dim constraint)
#: reads the same in a parent and a child, whatever their types.
INTERFACE_CATEGORIES = frozenset({"unsupported-type", "constraint-violation", "config-error"})


def _is_output_problem(chain: Sequence[Link]) -> bool:
    return any(re.search(r"\bin output\b|INVALID_OUTPUT|output of type", link.message) for link in chain)


def diagnose_exception(
    exc: BaseException,
    *,
    target: str,
    stage: str | None,
    repo_root: Path,
    module: object | None = None,
) -> Diagnosis:
    """Category, fingerprint, user frame and hint for a failed export attempt.

    ``module`` (the submodule whose export failed) supplies a frame when none of the exception's
    frames is the user's or a library's: a failure at the module's interface (an input or output
    type) is fixed in its ``forward``. That frame is shown but kept out of the fingerprint, so the
    same failure in a parent and a child still reads as one.
    """
    chain = exception_chain(exc)
    rule, link, disc = classify(chain, stage)
    category = rule.category if rule else "unknown"
    deciding = link or chain[-1]
    frame = find_user_frame(chain, repo_root)
    message = _headline(deciding, category) or chain[0].first_line or type(exc).__name__
    shown_frame = frame
    if shown_frame is None and module is not None:
        try:
            shown_frame = interface_frame(module, repo_root, output=_is_output_problem(chain))
        except Exception:  # a frame is a courtesy; never let finding one cost the diagnosis
            shown_frame = None
    where = _frame_key(frame)
    if frame is None and module is not None and category not in INTERFACE_CATEGORIES:
        # No line tells this failure apart from any other of its kind: the module's type must,
        # or every frameless guard on ``Eq(u0, 1)`` anywhere would be one failure.
        where = f"{type(module).__module__}.{type(module).__qualname__}"
    return Diagnosis(
        category=category,
        fingerprint=fingerprint(target, stage, category, deciding.qualname, disc, normalise(message), where),
        exception_type=chain[0].qualname,
        root_cause=chain[-1].qualname,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(_detail(chain, repo_root), MAX_DETAIL_CHARS) or "",
        user_frame=shown_frame,
        hint=str(hint_for_failure(category, rule, chain)),
        discriminator=disc,
        cause=deciding.qualname,
        rule=rule.name if rule else None,
    )


def fallback_diagnosis(
    exc: BaseException, *, target: str, stage: str | None, error: BaseException
) -> Diagnosis:
    """The raw exception, when diagnosing it raised: the result stays, less well explained."""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    text = strip_ansi(_safe_str(exc))
    message = first_line(text) or type(exc).__name__
    formatted = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Diagnosis(
        category="unknown",
        fingerprint=fingerprint(target, stage, "unknown", name, None, normalise(message)),
        exception_type=name,
        root_cause=None,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(
            f"{name}: {cap(text, 2_000)}\n\n(exportwatch could not diagnose this failure: "
            f"{type(error).__name__}: {_safe_str(error)})\n\n{formatted}",
            MAX_DETAIL_CHARS,
        )
        or "",
        user_frame=None,
        hint=hint_for("unknown"),
    )


def diagnose_model_error(exc: BaseException, *, repo_root: Path) -> Diagnosis:
    """The eager forward itself raised: not an export problem, whatever the class."""
    chain = exception_chain(exc)
    frame = find_user_frame(chain, repo_root)
    root = chain[-1]
    message = chain[0].first_line or type(exc).__name__
    return Diagnosis(
        category="model-error",
        fingerprint=fingerprint(
            "eager",
            None,
            "model-error",
            root.qualname,
            None,
            normalise(root.first_line),
            _frame_key(frame),
        ),
        exception_type=chain[0].qualname,
        root_cause=root.qualname,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(_detail(chain, repo_root), MAX_DETAIL_CHARS) or "",
        user_frame=frame,
        hint=hint_for("model-error"),
        cause=root.qualname,
    )


def diagnose_mismatch(*, target: str, stage: str | None, message: str, output: str) -> Diagnosis:
    """An exported program that runs but disagrees with eager (numbers are not identity)."""
    line = first_line(strip_ansi(message)) or "exported program disagrees with eager"
    return Diagnosis(
        category="numeric-mismatch",
        fingerprint=fingerprint(
            target, stage, "numeric-mismatch", "mismatch", output, _digits_out(normalise(line))
        ),
        exception_type="mismatch",
        root_cause=None,
        message=cap(line, MAX_MESSAGE_CHARS) or "",
        detail=cap(strip_ansi(message), MAX_DETAIL_CHARS) or "",
        user_frame=None,
        hint=hint_for("numeric-mismatch"),
        discriminator=output or None,
    )


def internal_error_diagnosis(exc: BaseException, *, target: str) -> Diagnosis:
    """exportwatch's own code raised while checking a module: the ``error`` verdict's account.

    The fingerprint keys on where in exportwatch it raised, so the same bug reads the same.
    """
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename.replace("\\", "/").startswith(_OWN_ROOT + "/")]
    where = f"{os.path.basename(own[-1].filename)}:{own[-1].name}" if own else ""
    message = f"exportwatch internal error: {type(exc).__name__}: {first_line(_safe_str(exc))}"
    formatted = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Diagnosis(
        category="internal-error",
        fingerprint=fingerprint(target, None, "internal-error", name, where, None),
        exception_type=name,
        root_cause=None,
        message=cap(message, MAX_MESSAGE_CHARS) or "",
        detail=cap(formatted, MAX_DETAIL_CHARS) or "",
        user_frame=None,
        hint=hint_for("internal-error"),
    )


INFRASTRUCTURE_KINDS = ("crash", "timeout", "oom")


def diagnose_infrastructure(kind: str, *, target: str, message: str) -> Diagnosis:
    """crash / timeout / oom: no exception object, only what the parent process saw.

    A crash keeps its signal or exit code in the fingerprint; for timeouts and OOMs the
    numbers are limits and measurements, so they are left out.
    """
    category = kind if kind in INFRASTRUCTURE_KINDS else "unknown"
    text = normalise(message)
    if category in ("timeout", "oom"):
        text = _digits_out(text)
    return Diagnosis(
        category=category,
        fingerprint=fingerprint(target, None, category, kind, None, text),
        exception_type=kind,
        root_cause=None,
        message=cap(first_line(message) or kind, MAX_MESSAGE_CHARS) or "",
        detail=cap(message, MAX_DETAIL_CHARS) or "",
        user_frame=None,
        hint=hint_for(category),
    )


# ---------------------------------------------------------------------------------------------
# Grouping and origins: pure functions over the report


@dataclass(kw_only=True)
class FailureGroup:
    """Submodules of one job that fail for the same reason (one fingerprint)."""

    fingerprint: str
    category: str | None
    message: str | None
    hint: str | None
    user_frame: UserFrame | None
    paths: list[str] = field(default_factory=list)  # every failing submodule, report order
    origins: list[str] = field(default_factory=list)  # those marked origin

    @property
    def count(self) -> int:
        return len(self.paths)


def _failing(job: JobResult, sub: SubmoduleResult) -> SubmoduleResult | None:
    """The computed result behind ``sub`` when it fails (``same-as`` links followed)."""
    effective = job.effective(sub)
    return effective if effective.verdict in FAILING else None


def mark_origins(job: JobResult) -> None:
    """Set ``origin`` on the failing submodules whose failure is their own (``origin_paths``)."""
    origins = origin_paths(job)
    for sub in job.submodules:
        sub.origin = sub.path in origins


def group_failures(job: JobResult) -> list[FailureGroup]:
    """Failing submodules grouped by fingerprint, largest group first, then report order."""
    groups: dict[str, FailureGroup] = {}
    for sub in job.submodules:
        result = _failing(job, sub)
        if result is None:
            continue
        key = result.fingerprint or fingerprint(result.category, normalise(result.message or ""))
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(
                fingerprint=key,
                category=result.category,
                message=result.message,
                hint=result.hint,
                user_frame=result.user_frame,
            )
        group.paths.append(sub.path)
        if sub.origin:
            group.origins.append(sub.path)
    order = {key: index for index, key in enumerate(groups)}
    return sorted(groups.values(), key=lambda g: (-g.count, order[g.fingerprint]))


# ---------------------------------------------------------------------------------------------
# Quiet logs: strict mode dumps partial FX graphs and dynamo logs; keep them out of the user's log


#: Loggers whose records are dropped while quiet (prefix match on the record's logger name).
NOISY_LOGGERS = ("torch", "onnxscript", "onnx_ir", "onnx", "onnxruntime")
_QUIET_CAP = 200_000


@dataclass
class QuietCapture:
    """What was kept out of the log: Python-level prints and dropped log records (capped)."""

    buffer: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def write(self, text: str) -> int:
        if self.buffer.tell() < _QUIET_CAP:
            self.buffer.write(text[: _QUIET_CAP - self.buffer.tell()])
        return len(text)


class _DropNoisy(logging.Filter):
    def __init__(self, capture: QuietCapture) -> None:
        super().__init__()
        self.capture = capture

    def filter(self, record: logging.LogRecord) -> bool:
        root = record.name.split(".", 1)[0]
        if root not in NOISY_LOGGERS:
            return True
        with contextlib.suppress(Exception):
            self.capture.write(f"{record.levelname} {record.name}: {record.getMessage()}\n")
        return False


class _Tee(io.TextIOBase):
    """A stand-in for sys.stdout/sys.stderr that captures instead of printing."""

    def __init__(self, capture: QuietCapture, original: TextIO | None) -> None:
        self.capture = capture
        self.original = original

    def write(self, text: str) -> int:
        return self.capture.write(text)

    def fileno(self) -> int:  # code that asks for a real descriptor gets the original one
        if self.original is None:
            raise io.UnsupportedOperation("fileno")
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8") or "utf-8"


def _all_handlers() -> list[logging.Handler]:
    handlers: list[logging.Handler] = list(logging.root.handlers)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    unique: dict[int, logging.Handler] = {id(h): h for h in handlers}
    return list(unique.values())


@contextlib.contextmanager
def quiet_torch_logs(verbose: bool = False) -> Iterator[QuietCapture]:
    """Keep torch/ONNX log records, warnings and prints out of the log unless ``verbose``.

    Strict export prints partial FX graphs and dynamo logs to stderr, the ONNX exporter prints
    progress to stdout. While quiet, log records from ``NOISY_LOGGERS`` are dropped at every
    handler, warnings are ignored (an inner ``warnings.catch_warnings(record=True)`` still
    records them) and Python-level stdout/stderr are captured; the captured text is on the
    yielded object. Descriptor-level output from C++ is not touched (the worker redirects it).
    """
    capture = QuietCapture()
    if verbose:
        yield capture
        return
    dropper = _DropNoisy(capture)
    handlers = _all_handlers()
    for handler in handlers:
        handler.addFilter(dropper)
    out, err = _Tee(capture, sys.stdout), _Tee(capture, sys.stderr)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            yield capture
    finally:
        for handler in handlers:
            handler.removeFilter(dropper)


__all__ = [
    "CATEGORIES",
    "HINTS",
    "NOISY_LOGGERS",
    "RULES",
    "Diagnosis",
    "FailureGroup",
    "Hint",
    "QuietCapture",
    "Rule",
    "diagnose_exception",
    "diagnose_infrastructure",
    "diagnose_mismatch",
    "diagnose_model_error",
    "exception_chain",
    "find_user_frame",
    "fingerprint",
    "group_failures",
    "hint_for",
    "mark_origins",
    "normalise",
    "qualified_name",
    "quiet_torch_logs",
]
