"""Fixes proven before they are shown: each proposal (``diagnose/fixes.py``) applied, the module
exported again, in the model's process.

- A source fix (``torch._check``) is applied to a patched copy of the user's file in a scratch
  directory, never the user's tree: the copy is compiled under its own name, and the code of each
  function it changes is swapped onto the live function (``function.__code__``) for the length
  of one re-export, then restored, always.
- A fake-kernel stub is the very text shown, executed and registered in the model's process for
  the length of one re-export, then unregistered (the op's earlier fake kernel, if any, restored).

A proof is one ``draft_export`` with the fix applied (it lists every failure left, and checks a
fake kernel against the real one): the failures the fix addresses must be gone and no new one
appear. When none is left, a real ``torch.export.export`` must succeed (``exports``); otherwise
the fix ``gets past`` its blockers, and the first one left is what comes next. What fails is
dropped and counted. Every fix alone, then all of an origin's together; within the time left.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from exportwatch.diagnose import blockers as draft
from exportwatch.diagnose import fixes as propose
from exportwatch.diagnose.blockers import Facts
from exportwatch.report.model import (
    MAX_FIXES,
    MAX_MESSAGE_CHARS,
    Blockers,
    BlockerStatus,
    Fix,
    FixKind,
    FixProof,
    cap,
    first_line,
)
from exportwatch.targets.base import Call
from exportwatch.targets.verify import clone_tree

log = logging.getLogger(__name__)

Export = Callable[[Any], Any]  # (dynamic_shapes) -> ExportedProgram; the caller sets grad mode


def prove(
    found: Blockers,
    facts: Sequence[Facts],
    *,
    module: nn.Module,
    call: Call,
    shapes: Any,
    repo_root: Path,
    until: float,
    interned: Callable[[], Mapping[str, int]],
) -> Blockers:
    """``found`` with every fix that re-exporting proved (at most ``MAX_FIXES``). Never raises:
    a proof that cannot run drops its fix."""
    if found.status is not BlockerStatus.FOUND or not facts:
        return found
    try:
        proposals = _proposals(found, facts, module=module, call=call, repo_root=repo_root)
    except Exception as exc:  # a fix is a courtesy: never the verdict's cost
        log.warning("proposing fixes failed: %s: %s", type(exc).__name__, exc)
        return found
    prover = _Prover(
        module=module,
        call=call,
        shapes=shapes,
        repo_root=repo_root,
        facts=facts,
        found=found,
        interned=interned,
    )
    shown: list[tuple[propose.Proposal, Fix]] = []
    dropped = 0
    for proposal in proposals[:MAX_FIXES]:
        if time.perf_counter() > until:
            dropped += 1
            continue
        fix = prover.prove([proposal])
        if fix is None:
            dropped += 1
        else:
            shown.append((proposal, fix))
    together = None
    if len(shown) > 1 and time.perf_counter() <= until:
        both = prover.prove([p for p, _ in shown])
        together = both.proof if both is not None else None
    found.fixes = [fix for _, fix in shown]
    found.fixes_together = together
    found.fixes_dropped = dropped + max(0, len(proposals) - MAX_FIXES)
    return found


def _proposals(
    found: Blockers, facts: Sequence[Facts], *, module: nn.Module, call: Call, repo_root: Path
) -> list[propose.Proposal]:
    def read(path: str) -> str | None:
        try:
            return (repo_root / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    proposals = propose.propose_checks(found.found, facts, read_source=read)
    ops = {
        f.op: i
        for i, (b, f) in enumerate(zip(found.found, facts, strict=False))
        if b.kind == "missing-fake-kernel" and f.op
    }
    if ops:
        seen = observe_ops(module, call, set(ops))
        for op, index in ops.items():
            signature = op_signature(op)
            if signature is not None and seen.get(op):
                made = propose.propose_fake_kernel(index, found.found[index], signature, seen[op])
                if made is not None:
                    proposals.append(made)
    return sorted(proposals, key=lambda p: min(p.blockers, default=0))


# ---------------------------------------------------------------------------------------------
# Custom ops: their schema and the calls the eager forward makes


def _overload(op: str) -> Any:
    namespace, name, *rest = op.split(".")
    packet = getattr(getattr(torch.ops, namespace), name)
    return getattr(packet, rest[0] if rest else "default")


def op_signature(op: str) -> propose.OpSignature | None:
    """``ns.name.overload`` → its schema as plain data; None for outputs a stub cannot make."""
    try:
        schema = _overload(op)._schema
    except Exception:
        return None
    returns = schema.returns
    if not returns or not all(str(r.type) == "Tensor" for r in returns):
        return None
    namespace, name, *rest = op.split(".")
    qualified = f"{namespace}::{name}" + (f".{rest[0]}" if rest and rest[0] != "default" else "")
    return propose.OpSignature(
        name=qualified,
        params=tuple(
            propose.OpParam(name=a.name, optional=a.has_default_value(), kwarg_only=a.kwarg_only)
            for a in schema.arguments
        ),
        outputs=len(returns),
        tuple_output=len(returns) > 1,
    )


def _meta(tensor: torch.Tensor) -> propose.TensorMeta:
    return propose.TensorMeta(
        shape=tuple(int(s) for s in tensor.shape), dtype=str(tensor.dtype), device=str(tensor.device)
    )


class _Watch(TorchDispatchMode):
    def __init__(self, wanted: set[str]) -> None:
        super().__init__()
        self.wanted = wanted
        self.calls: dict[str, list[propose.OpCall]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        if name in self.wanted and len(self.calls.get(name, ())) < 8:
            params = [a.name for a in func._schema.arguments]
            bound = dict(zip(params, args, strict=False)) | dict(kwargs)
            outputs = out if isinstance(out, tuple | list) else (out,)
            self.calls.setdefault(name, []).append(
                propose.OpCall(
                    inputs={k: _meta(v) for k, v in bound.items() if isinstance(v, torch.Tensor)},
                    outputs=tuple(_meta(o) for o in outputs if isinstance(o, torch.Tensor)),
                )
            )
        return out


def observe_ops(module: nn.Module, call: Call, ops: set[str]) -> dict[str, list[propose.OpCall]]:
    """The calls of ``ops`` one eager forward on ``call`` makes (their shapes and dtypes)."""
    watch = _Watch(ops)
    try:
        with torch.no_grad(), watch:
            module(*clone_tree(call.args), **clone_tree(call.kwargs))
    except Exception as exc:
        log.warning("observing custom ops failed: %s: %s", type(exc).__name__, exc)
    return watch.calls


# ---------------------------------------------------------------------------------------------
# Applying fixes, for one re-export


class _Patched:
    """Where a scratch copy's lines came from: ``(copy, line)`` → ``(original file, line)``."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, list[int | None]]] = {}

    def where(self, file: str, line: int) -> tuple[str, int] | None:
        if file not in self.files:
            return (file, line)
        original, lines = self.files[file]
        source = lines[line - 1] if 0 < line <= len(lines) else None
        return (original, source) if source is not None else None


@contextlib.contextmanager
def applied(proposals: Sequence[propose.Proposal], *, repo_root: Path) -> Iterator[_Patched]:
    """Every proposal in effect (source edits through swapped code, stubs registered); undone on
    exit, whatever happens. Raises ``ValueError`` when one cannot be applied as shown."""
    patched = _Patched()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="exportwatch-fix-") as scratch:
        by_file: dict[str, list[Any]] = {}
        for proposal in proposals:
            if proposal.edit is not None:
                by_file.setdefault(proposal.edit.path, []).append(proposal.edit)
        for number, (path, edits) in enumerate(sorted(by_file.items())):
            stack.enter_context(_patched_file(repo_root / path, edits, Path(scratch) / str(number), patched))
        for proposal in proposals:
            if proposal.kind is FixKind.FAKE_KERNEL:
                stack.enter_context(_registered(proposal.snippet, proposal.op or ""))
        yield patched


@contextlib.contextmanager
def _patched_file(original: Path, edits: Sequence[Any], scratch: Path, patched: _Patched) -> Iterator[None]:
    real = os.path.realpath(original)
    lines = original.read_text(encoding="utf-8").splitlines()
    origin: list[int | None] = list(range(1, len(lines) + 1))
    changed: list[int] = []
    for edit in sorted(edits, key=lambda e: e.line, reverse=True):
        if not 0 < edit.line <= len(lines) or lines[edit.line - 1] != edit.original:
            raise ValueError(f"{edit.path}:{edit.line} is not the line the fix was made for")
        new = edit.replacement.split("\n")
        lines[edit.line - 1 : edit.line] = new
        kept = origin[edit.line - 1]
        origin[edit.line - 1 : edit.line] = [kept if text == edit.original else None for text in new]
        changed.append(edit.line)
    scratch.mkdir(parents=True)
    copy = scratch / original.name
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = compile(copy.read_text(encoding="utf-8"), str(copy), "exec", dont_inherit=True)
    new_lines = [i + 1 for i, o in enumerate(origin) if o is None]
    swaps = []
    for qualname, function_code in _outermost_functions(code):
        covered = {line for _, _, line in function_code.co_lines() if line}
        if covered & set(new_lines):
            live = _live_functions(real, qualname)
            if not live:
                raise ValueError(f"no live function {qualname} in {original}")
            swaps += [(fn, fn.__code__, function_code) for fn in live]
    if not swaps:
        raise ValueError(f"the fix to {original} changes no function")
    patched.files[str(copy)] = (swaps[0][1].co_filename, origin)
    try:
        for fn, _, new_code in swaps:
            fn.__code__ = new_code
        yield
    finally:
        for fn, old_code, _ in swaps:
            fn.__code__ = old_code


def _outermost_functions(code: types.CodeType, prefix: str = "") -> Iterator[tuple[str, types.CodeType]]:
    """(qualified name, code) of each function not nested in another function (methods of
    classes included): the qualified name a live function's ``__qualname__`` carries."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            name = f"{prefix}{const.co_name}"
            if const.co_flags & inspect.CO_OPTIMIZED:
                yield name, const
            else:  # a class body
                yield from _outermost_functions(const, f"{name}.")


def _live_functions(real: str, qualname: str) -> list[types.FunctionType]:
    """The loaded functions of the module at ``real`` whose code has ``qualname``."""
    found: list[types.FunctionType] = []
    seen: set[int] = set()

    def visit(value: Any, depth: int) -> None:
        if id(value) in seen or depth > 6:
            return
        seen.add(id(value))
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            for part in (value.fget, value.fset, value.fdel):
                if part is not None:
                    visit(part, depth + 1)
            return
        if isinstance(value, types.FunctionType):
            if value.__qualname__ == qualname and os.path.realpath(value.__code__.co_filename) == real:
                found.append(value)
            wrapped = getattr(value, "__wrapped__", None)
            if wrapped is not None:
                visit(wrapped, depth + 1)
        elif isinstance(value, type):
            for item in vars(value).values():
                visit(item, depth + 1)

    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.realpath(file) == real:
            for value in list(vars(module).values()):
                visit(value, 0)
    return found


@contextlib.contextmanager
def _registered(stub: str, op: str) -> Iterator[None]:
    """The stub's text run as the user would paste it; the op's fake kernel restored after."""
    from torch._library.custom_ops import _maybe_get_opdef

    name = op.split(".")[0]
    opdef = _maybe_get_opdef(name)
    earlier = opdef._abstract_fn if opdef is not None else None
    keep_alive = torch.library._keep_alive
    before = len(keep_alive)
    try:
        exec(compile(stub, "<exportwatch fake kernel>", "exec"), {"torch": torch})
        yield
    finally:
        if opdef is not None:
            opdef._abstract_fn = earlier
        for lib in keep_alive[before:]:
            lib._destroy()
        del keep_alive[before:]


# ---------------------------------------------------------------------------------------------
# Proving


class _Prover:
    def __init__(
        self,
        *,
        module: nn.Module,
        call: Call,
        shapes: Any,
        repo_root: Path,
        facts: Sequence[Facts],
        found: Blockers,
        interned: Callable[[], Mapping[str, int]],
    ) -> None:
        self.module = module
        self.call = call
        self.shapes = shapes
        self.repo_root = repo_root
        self.facts = list(facts)
        self.found = found
        self.interned = interned
        self.known = {f.key(): i for i, f in enumerate(self.facts)}

    def prove(self, proposals: Sequence[propose.Proposal]) -> Fix | None:
        """The fix the proposals make together, with what a re-export proved; None if nothing."""
        addressed = {self.facts[i].key() for p in proposals for i in p.blockers}
        try:
            with applied(proposals, repo_root=self.repo_root) as patched:
                program = torch.export.draft_export(
                    self.module,
                    clone_tree(self.call.args),
                    clone_tree(self.call.kwargs),
                    dynamic_shapes=self.shapes,
                )
                left = [
                    f.key(where=patched.where) for f in draft.read_facts(program, interned=self.interned())
                ]
                if any(key in addressed or key not in self.known for key in left):
                    return None
                proof, next_blocker = FixProof.PAST_BLOCKER, None
                if left:
                    blocker = self.found.found[self.known[left[0]]]
                    frame = blocker.user_frame
                    where = f" at {frame.path}:{frame.line}" if frame is not None else ""
                    next_blocker = cap(first_line(f"{blocker.message}{where}"), MAX_MESSAGE_CHARS)
                else:
                    torch.export.export(
                        self.module,
                        clone_tree(self.call.args),
                        clone_tree(self.call.kwargs),
                        dynamic_shapes=self.shapes,
                        strict=False,
                    )
                    proof = FixProof.EXPORTS
        except Exception as exc:  # the fix did not hold (or could not be applied): not shown
            log.info("a fix did not hold: %s: %s", type(exc).__name__, first_line(str(exc)))
            return None
        first = proposals[0]
        return Fix(
            kind=first.kind,
            summary=first.summary,
            snippet=first.snippet,
            language=first.language,
            edit=first.edit,
            blockers=sorted({i for p in proposals for i in p.blockers}),
            proof=proof,
            next_blocker=next_blocker,
        )
