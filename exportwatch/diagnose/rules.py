"""The ordered rules table: which category an exception chain belongs to, and why."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exportwatch.diagnose.catalogue import _DOCS, CATEGORIES, Hint
from exportwatch.diagnose.chain import Link
from exportwatch.diagnose.fingerprint import normalise
from exportwatch.diagnose.frames import _tb_frames, _torch_root

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


_EXECUTORCH_OPERATOR = re.compile(
    r"Operator torch\._ops\.([\w.]+) is not in Core ATen|[Mm]issing out variants?: \{'([\w:.]+)'|"
    r"operator '([\w:.]+)' is not registered"
)


def _named_operator(message: str) -> str | None:
    """The operator an ExecuTorch message names (``aten.median.dim``, ``my_ns.op``)."""
    found = _EXECUTORCH_OPERATOR.search(message)
    if found is None:
        return None
    return _canonical_op(next(group for group in found.groups() if group))


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
_AOTI = "exportwatch.targets.aoti"
_CHECKER_STAGES = frozenset({"checker"})

#: Ordered: the first rule that matches any exception of the chain decides. Specific causes
#: (an op without a fake kernel) come before the wrappers that carry them (dynamo's
#: ``Unsupported``, ``UserError(CONSTRAINT_VIOLATION)`` around a data-dependent guard).
RULES: tuple[Rule, ...] = (
    # --- ExecuTorch: its own stages first (only the executorch target has them)
    Rule(
        name="executorch-missing-out-variant",
        category="executorch-missing-out-variant",
        stages=frozenset({"serialisation"}),
        message=r"[Mm]issing out variants?",
        discriminator=lambda link, _evidence: _named_operator(link.message),
    ),
    Rule(
        name="executorch-lowering",
        category="executorch-lowering",
        stages=frozenset({"lowering"}),
        discriminator=lambda link, _evidence: _named_operator(link.message) or normalise(link.first_line),
    ),
    Rule(
        name="executorch-operator-missing",
        category="executorch-operator-missing",
        classes=("exportwatch.targets.executorch.OperatorMissingError",),
        discriminator=lambda link, _evidence: _named_operator(link.message),
    ),
    Rule(
        name="executorch-run-error",
        category="executorch-run-error",
        classes=("exportwatch.targets.executorch.ExecutorchRunError",),
        discriminator=lambda link, _evidence: normalise(link.first_line),
    ),
    # --- AOTInductor: its own errors (only the aoti target raises them)
    Rule(
        name="aoti-missing-toolchain",
        category="aoti-compile-error",
        classes=(f"{_AOTI}.AotiCompileError",),
        message=r"missing (?:header|library|program) |no working C\+\+ compiler",
        discriminator=lambda link, _evidence: normalise(link.first_line),
        hint=Hint(
            "The machine that runs the sweep lacks what the compiler names: install it there (a "
            "C++ compiler such as g++, Python's headers such as `python3-dev`, the CUDA toolkit "
            "for a CUDA package), or point `torch._inductor.config.cpp.cxx` at a working compiler.",
            f"{_DOCS}/torch.compiler_aot_inductor.html",
        ),
    ),
    Rule(
        name="aoti-compile-error",
        category="aoti-compile-error",
        classes=(f"{_AOTI}.AotiCompileError",),
        discriminator=lambda link, _evidence: normalise(link.first_line),
    ),
    Rule(
        name="aoti-specialised-dim",
        category="aoti-specialised-dim",
        classes=(f"{_AOTI}.SpecialisedDimError",),
        discriminator=lambda link, _evidence: "|".join(
            part for part in (link.attr("label"), link.attr("dim_name"), link.attr("fixed")) if part
        ),
    ),
    Rule(
        name="aoti-size-one",
        category="runtime-error",
        classes=(f"{_AOTI}.AotiShapeError",),
        message=r"dim value is too small\b.*>= 2\b",
        discriminator=lambda link, _evidence: link.attr("label"),
        hint=Hint(
            "AOTInductor compiles a dynamic dim for sizes of 2 or more, so the package refuses a "
            "size of 1 that torch.export allows: give that size an input set of its own with the "
            "dim static, or compile with "
            "`torch._inductor.config.aot_inductor.check_lowerbound = False` if the model is "
            "correct at size 1.",
            f"{_DOCS}/torch.compiler_aot_inductor.html",
        ),
    ),
    Rule(
        name="aoti-input-shape",
        category="runtime-error",
        classes=(f"{_AOTI}.AotiShapeError",),
        discriminator=lambda link, _evidence: link.attr("label"),
        hint=Hint(
            "The AOTInductor package takes only the shapes it was compiled for, and this input set "
            "is outside them: mark the dim dynamic (`dims`, `dynamic_shapes`), widen its "
            "`Dim(min=..., max=...)` range, or drop the input set.",
            f"{_DOCS}/export.html#expressing-dynamism",
        ),
    ),
    Rule(
        name="aoti-load-error",
        category="aoti-load-error",
        classes=(f"{_AOTI}.AotiLoadError",),
        discriminator=lambda link, _evidence: normalise(link.first_line),
    ),
    Rule(
        name="aoti-run-error",
        category="aoti-run-error",
        classes=(f"{_AOTI}.AotiRunError",),
        discriminator=lambda link, _evidence: normalise(link.first_line),
    ),
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
        stages=frozenset({"runtime", "load"}),
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


_CONSTRAINT_BULLET = re.compile(r"^\s*-\s+(.+)$", re.M)
_SUGGESTED_FIX = re.compile(r"Suggested fixes:\s*\n((?:[ \t]+\S.*\n?)+)")


def constraint_details(message: str) -> tuple[list[str], list[str]]:
    """The violated guards (the message's ``- ...`` bullets) and torch's suggested fixes."""
    bullets = [b.strip() for b in _CONSTRAINT_BULLET.findall(message)]
    found = _SUGGESTED_FIX.search(message)
    fixes = [line.strip() for line in found.group(1).splitlines() if line.strip()] if found else []
    return bullets, fixes
