"""Fixes for an origin's blockers, proposed from draft_export's facts and the user's source.

Pure: this module never imports torch, nor applies anything. It writes what a user would write
(a ``torch._check(...)`` line after the line that created a value, a ``register_fake`` stub for
a custom op) as text; the worker (``worker/fixes.py``) applies each proposal to a scratch copy
or registers it in the model's process, exports again, and keeps only what that proved: a fix
is never shown unproven.

- **data-dependent** (``cannot decide u0 > 2``): ``torch._check(<what held for the example>)``,
  the expression's symbols written as the local names that hold them (draft_export's frame
  locals: ``n`` → ``u0``), placed after the statement that bound them (the ``.item()``), else
  before the statement that failed. ``torch._check`` asserts at run time: the exported program
  then takes the branch the example took, and an input for which the check is false raises.
  No fix when a symbol has no local name, the expression is not plain arithmetic, or the line
  is not a statement a line can follow (a compound header, a ``;``).
- **missing fake kernel**: a ``@torch.library.register_fake("ns::op")`` stub built from the op's
  schema and its observed calls (input and output shapes, dtypes): each output size written as
  the input size it equalled in every call, else a data-dependent size (``new_dynamic_size``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from exportwatch.diagnose.blockers import Facts
from exportwatch.pysource import parse_python
from exportwatch.report.model import (
    MAX_MESSAGE_CHARS,
    MAX_SNIPPET_CHARS,
    Blocker,
    FixKind,
    SourceEdit,
    UserFrame,
)

# ---------------------------------------------------------------------------------------------
# What a proposal is


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A fix not yet proven: what to show if it is, and what the worker applies to prove it."""

    kind: FixKind
    summary: str
    snippet: str
    language: str = "python"
    edit: SourceEdit | None = None
    blockers: tuple[int, ...] = ()
    op: str | None = None  # FAKE_KERNEL: ``ns::name``, the op ``snippet`` registers a fake kernel for


# ---------------------------------------------------------------------------------------------
# torch._check


_COMPARE_NEGATED: dict[type[ast.cmpop], ast.cmpop] = {
    ast.Lt: ast.GtE(),
    ast.LtE: ast.Gt(),
    ast.Gt: ast.LtE(),
    ast.GtE: ast.Lt(),
    ast.Eq: ast.NotEq(),
    ast.NotEq: ast.Eq(),
}
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)
_SYMPY_RELATIONS = {"Eq": ast.Eq, "Ne": ast.NotEq}


def check_condition(expression: str, result: str | None, names: Mapping[str, str]) -> str | None:
    """The Python condition that held for the example: ``u0 > 2`` traced as ``True`` with
    ``n`` holding ``u0`` is ``n > 2``; ``zuf0 < 1.0`` traced as ``False`` is ``peak >= 1.0``.

    None unless the expression is one comparison of plain arithmetic (``+ - * //``, numbers)
    over symbols that each have a local name, and the example's value is ``True`` or ``False``.
    """
    if result not in ("True", "False"):
        return None
    symbol_to_name = {symbol: name for name, symbol in names.items()}
    try:
        tree = parse_python(expression, "<expression>").body
    except (SyntaxError, ValueError):
        return None
    if len(tree) != 1 or not isinstance(tree[0], ast.Expr):
        return None
    compare = _as_compare(tree[0].value)
    if compare is None:
        return None
    left, op, right = compare
    if not (_plain(left, symbol_to_name) and _plain(right, symbol_to_name)):
        return None
    if result == "False":
        op = _COMPARE_NEGATED[type(op)]
    renamed = _Rename(symbol_to_name).visit(ast.Compare(left=left, ops=[op], comparators=[right]))
    return ast.unparse(renamed)


def _as_compare(node: ast.expr) -> tuple[ast.expr, ast.cmpop, ast.expr] | None:
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_NEGATED:
        return node.left, node.ops[0], node.comparators[0]
    if (  # sympy writes equality as Eq(a, b), Ne(a, b)
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _SYMPY_RELATIONS
        and len(node.args) == 2
        and not node.keywords
    ):
        return node.args[0], _SYMPY_RELATIONS[node.func.id](), node.args[1]
    return None


def _plain(node: ast.expr, symbols: Mapping[str, str]) -> bool:
    """Numbers, named symbols and ``+ - * //`` of them, nothing else."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.Name):
        return node.id in symbols
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub) and _plain(node.operand, symbols)
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, _ARITHMETIC) and _plain(node.left, symbols) and _plain(node.right, symbols)
    return False


class _Rename(ast.NodeTransformer):
    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(id=self.names[node.id], ctx=ast.Load())


@dataclass
class _Source:
    """One repository file, parsed once: its lines and its statements."""

    lines: list[str]
    statements: list[ast.stmt]
    binds_torch: bool


def _read(text: str) -> _Source | None:
    try:
        tree = parse_python(text)
    except (SyntaxError, ValueError):
        return None
    statements = [
        node
        for parent in ast.walk(tree)
        for name in ("body", "orelse", "finalbody")
        for node in _statement_list(getattr(parent, name, None))
        if isinstance(node, ast.stmt)
    ]
    binds_torch = any(
        isinstance(node, ast.Import)
        and any(a.name.split(".")[0] == "torch" and a.asname is None for a in node.names)
        for node in tree.body
    )
    return _Source(lines=text.splitlines(), statements=statements, binds_torch=binds_torch)


def _statement_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _innermost(source: _Source, line: int) -> ast.stmt | None:
    holding = [s for s in source.statements if s.lineno <= line <= (s.end_lineno or s.lineno)]
    return min(holding, key=lambda s: (s.end_lineno or s.lineno) - s.lineno, default=None)


def _indent(source: _Source, statement: ast.stmt) -> str | None:
    """The statement's indentation, if it starts its line (no ``a = 1; b = 2``)."""
    line = source.lines[statement.lineno - 1]
    indent = line[: len(line) - len(line.lstrip())]
    return indent if len(indent.encode()) == statement.col_offset else None


def _ends_its_line(source: _Source, statement: ast.stmt) -> bool:
    end = statement.end_lineno or statement.lineno
    rest = source.lines[end - 1].encode()[statement.end_col_offset or 0 :].decode(errors="replace").strip()
    return not rest or rest.startswith("#")


def _binds(statement: ast.stmt, name: str) -> bool:
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
        targets = [statement.target]
    return any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t))


_COMPOUND = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.ClassDef, ast.AsyncFor)


def _after_creation(
    source: _Source, blocker: Blocker, frame: UserFrame, used: Sequence[str], names: Mapping[str, str]
) -> SourceEdit | None:
    """After the last statement that bound one of ``used``, in the failing frame's function."""
    made = {c.symbol: c.frame for c in blocker.created}
    places = []
    for name in used:
        site = made.get(names[name])
        if (
            site is None
            or not site.in_repository
            or (site.path, site.function) != (frame.path, frame.function)
        ):
            return None
        statement = _innermost(source, site.line)
        if statement is None or not _binds(statement, name) or site.line > frame.line:
            return None
        places.append(statement)
    last = max(places, key=lambda s: s.end_lineno or s.lineno)
    indent = _indent(source, last)
    if indent is None or not _ends_its_line(source, last):
        return None
    end = last.end_lineno or last.lineno
    original = source.lines[end - 1]
    return SourceEdit(path=frame.path, line=end, original=original, replacement=original)


def _before_failure(source: _Source, frame: UserFrame) -> SourceEdit | None:
    """Before the statement that failed (a name bound in another function, a parameter)."""
    statement = _innermost(source, frame.line)
    if statement is None:
        return None
    indent = _indent(source, statement)
    original = source.lines[statement.lineno - 1]
    if indent is None or original.lstrip().startswith(("elif", "else", "except", "finally", "@")):
        return None
    return SourceEdit(path=frame.path, line=statement.lineno, original=original, replacement=original)


def propose_checks(
    found: Sequence[Blocker], facts: Sequence[Facts], *, read_source: Callable[[str], str | None]
) -> list[Proposal]:
    """A ``torch._check`` for each data-dependent blocker that can have one; checks that go on
    the same line are one proposal (one suggested change per line)."""
    sources: dict[str, _Source | None] = {}
    by_line: dict[tuple[str, int], tuple[SourceEdit, bool, list[str], list[int]]] = {}
    for index, (blocker, fact) in enumerate(zip(found, facts, strict=False)):
        frame = blocker.user_frame
        if (
            blocker.kind != "data-dependent"
            or frame is None
            or not frame.in_repository
            or not fact.expression
        ):
            continue
        condition = check_condition(fact.expression, fact.result, fact.names)
        if condition is None:
            continue
        if frame.path not in sources:
            text = read_source(frame.path)
            sources[frame.path] = _read(text) if text is not None else None
        source = sources[frame.path]
        if source is None or not source.binds_torch or frame.line > len(source.lines):
            continue
        used = [n for n in fact.names if re.search(rf"\b{re.escape(n)}\b", condition)]
        edit = _after_creation(source, blocker, frame, used, fact.names)
        after = edit is not None
        edit = edit or _before_failure(source, frame)
        if edit is None:
            continue
        check = f"torch._check({condition})"
        _, _, checks, indices = by_line.setdefault((edit.path, edit.line), (edit, after, [], []))
        if check not in checks:
            checks.append(check)
        indices.append(index)
    proposals = []
    for (path, line), (edit, after, checks, indices) in by_line.items():
        original = edit.original
        indent = original[: len(original) - len(original.lstrip())]
        added = [indent + check for check in checks]
        replacement = "\n".join([original, *added] if after else [*added, original])
        where = f"after line {line}" if after else f"before line {line}"
        shown = "`, `".join(checks)
        proposals.append(
            Proposal(
                kind=FixKind.CHECK,
                summary=_short(
                    f"add `{shown}` {where} of {path} (asserts at run time what held for the example)"
                ),
                snippet=_dedent(replacement)[:MAX_SNIPPET_CHARS],
                edit=SourceEdit(path=path, line=line, original=original, replacement=replacement),
                blockers=tuple(indices),
            )
        )
    return proposals


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _dedent(text: str) -> str:
    lines = text.split("\n")
    cut = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[cut:] for line in lines)


# ---------------------------------------------------------------------------------------------
# Fake kernels


@dataclass(frozen=True, kw_only=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: str  # ``torch.float32``
    device: str


@dataclass(frozen=True, kw_only=True)
class OpParam:
    name: str
    optional: bool = False  # has a default in the schema
    kwarg_only: bool = False


@dataclass(frozen=True, kw_only=True)
class OpSignature:
    """A custom op's schema, as plain data: ``ns::name``, its parameters, its tensor outputs
    (``outputs``: how many; ``tuple_output``: whether they come as a tuple)."""

    name: str
    params: tuple[OpParam, ...]
    outputs: int
    tuple_output: bool = False


@dataclass(frozen=True, kw_only=True)
class OpCall:
    """One observed call: each tensor argument's metadata by parameter name, each output's."""

    inputs: Mapping[str, TensorMeta] = field(default_factory=dict)
    outputs: tuple[TensorMeta, ...] = ()


def fake_kernel_stub(signature: OpSignature, calls: Sequence[OpCall]) -> str | None:
    """``@torch.library.register_fake("ns::op")`` and a function that makes empty outputs of the
    observed dtypes, each size the input size it equalled in every observed call (else a
    data-dependent size). None without a call, or when an output cannot be placed on the device
    of a tensor argument."""
    if not calls or any(len(c.outputs) != signature.outputs for c in calls) or signature.outputs < 1:
        return None
    names = [p.name for p in signature.params]
    if not all(n.isidentifier() for n in names) or not re.fullmatch(r"\w+::\w+", signature.name):
        return None
    body: list[str] = []
    outputs = []
    dynamic = False
    for index in range(signature.outputs):
        made = _empty_output(signature, calls, index)
        if made is None:
            return None
        text, needs_ctx = made
        dynamic = dynamic or needs_ctx
        outputs.append(text)
    if dynamic:
        body.append("ctx = torch.library.get_ctx()")
    result = ", ".join(outputs) + ("," if signature.tuple_output and len(outputs) == 1 else "")
    body.append(f"return {result}" if not signature.tuple_output else f"return ({result})")
    positional = [p.name + ("=None" if p.optional else "") for p in signature.params if not p.kwarg_only]
    keyword = [p.name + ("=None" if p.optional else "") for p in signature.params if p.kwarg_only]
    params = ", ".join(positional + (["*", *keyword] if keyword else []))
    function = "_" + signature.name.split("::")[1] + "_fake"
    lines = [f'@torch.library.register_fake("{signature.name}")', f"def {function}({params}):"]
    lines += ["    " + line for line in body]
    return "\n".join(lines)


def _empty_output(signature: OpSignature, calls: Sequence[OpCall], index: int) -> tuple[str, bool] | None:
    """``torch.empty_like(x)`` / ``x.new_empty((x.shape[0], ctx.new_dynamic_size()), dtype=…)``."""
    first = calls[0]
    out = first.outputs[index]
    if any(
        c.outputs[index].dtype != out.dtype or len(c.outputs[index].shape) != len(out.shape) for c in calls
    ):
        return None
    tensors = [p.name for p in signature.params if p.name in first.inputs]
    # the tensor argument on the output's device in every call (its new_empty keeps the device)
    reference = next(
        (
            n
            for n in tensors
            if all(n in c.inputs and c.inputs[n].device == c.outputs[index].device for c in calls)
        ),
        None,
    )
    if reference is None:
        return None
    same = all(
        c.inputs[reference].shape == c.outputs[index].shape
        and c.inputs[reference].dtype == c.outputs[index].dtype
        for c in calls
    )
    if same:
        return f"torch.empty_like({reference})", False
    sizes = []
    dynamic = False
    for dim in range(len(out.shape)):
        size = _size_source(calls, tensors, index, dim)
        if size is None:
            dynamic = True
            sizes.append("ctx.new_dynamic_size()")
        else:
            sizes.append(size)
    shape = "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"
    ref_dtype = first.inputs[reference].dtype
    dtype = (
        ""
        if all(c.inputs[reference].dtype == out.dtype for c in calls) and ref_dtype == out.dtype
        else f", dtype={out.dtype}"
    )
    return f"{reference}.new_empty({shape}{dtype})", dynamic


def _size_source(calls: Sequence[OpCall], tensors: Sequence[str], index: int, dim: int) -> str | None:
    """``x.shape[1]``: the input size that equalled this output size in every call (same
    position of an argument first)."""
    candidates = [(n, dim) for n in tensors] + [(n, d) for n in tensors for d in range(8) if d != dim]
    for name, d in candidates:
        if all(
            name in c.inputs
            and d < len(c.inputs[name].shape)
            and c.inputs[name].shape[d] == c.outputs[index].shape[dim]
            for c in calls
        ):
            return f"{name}.shape[{d}]"
    return None


def propose_fake_kernel(
    index: int, blocker: Blocker, signature: OpSignature, calls: Sequence[OpCall]
) -> Proposal | None:
    stub = fake_kernel_stub(signature, calls)
    if stub is None or len(stub) > MAX_SNIPPET_CHARS:
        return None
    return Proposal(
        kind=FixKind.FAKE_KERNEL,
        summary=f"register a fake kernel for `{signature.name}` (made from its observed shapes and dtypes)",
        snippet=stub,
        blockers=(index,),
        op=signature.name,
    )
