"""Target ``aoti``: the AOTInductor package a server would load, compiled, loaded and run here.

``torch.export`` succeeding is not what a team that deploys with AOTInductor ships: Inductor
lowers the program, generates C++ (and, for CUDA, Triton kernels), a C++ compiler builds a
shared library, and ``aoti_compile_and_package`` puts it in a ``.pt2`` package that
``aoti_load_package`` loads in a process without the model's Python. Each step is a stage
here: ``compile`` (Inductor and the C++ compiler: a missing header or toolchain is named),
``load``, then the package runs on every input set and is compared with eager.

Before each run the input set's shapes are checked against what the package was compiled for:
a package does not check its inputs unless ``AOTI_RUNTIME_CHECK_INPUTS`` is set, so a size it
was not built for would run on memory it does not own. A dim the manifest declared dynamic that
the package has as a fixed size is :class:`SpecialisedDimError` (its own category, naming the
dim); any other size the package does not take is :class:`AotiShapeError`.

Compiling takes tens of seconds even for a tiny module: the target is opt-in (a manifest lists
it), the compile time is recorded per job (``compile_s``), and the job's timeout covers it.
On ``device: cuda`` the program is on the GPU and the package is compiled for CUDA.

It starts from the ``export`` target's capture of the same module and call where the sweep
kept one (one trace for both), else exports non-strict itself. This module imports torch only
inside the hooks: its error classes and the compiler-output reading are plain Python.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exportwatch.targets.base import (
    COMPILE_PHASE,
    NOISE_WARNINGS,
    Attempt,
    Runner,
    Stage,
    StageFailed,
    Target,
    first_line,
)

if TYPE_CHECKING:
    import torch

#: The extra a compile time is attached under (``Outcome.extras``), summed per job.
COMPILE_EXTRA = "compile_s"


class AotiCompileError(RuntimeError):
    """Inductor or the C++ compiler could not build the package; the message says what was
    missing where the compiler's output names it (a header, a library, the compiler itself)."""


class AotiLoadError(RuntimeError):
    """``aoti_load_package`` could not load the package that was just built."""


class AotiRunError(RuntimeError):
    """The loaded package raised on an input set."""


class AotiShapeError(RuntimeError):
    """An input set has a size the package was not compiled for (a static dim, a range)."""

    def __init__(self, message: str, *, label: str, size: int) -> None:
        super().__init__(message)
        self.label = label
        self.size = size


class SpecialisedDimError(AotiShapeError):
    """A dim declared dynamic is a fixed size in the package, and an input set differs."""

    def __init__(self, *, label: str, dim_name: str, fixed: int, size: int) -> None:
        super().__init__(
            f"dynamic dim {label} ({dim_name}) was specialised to {fixed} in the AOTInductor package; "
            f"this input set has {size}",
            label=label,
            size=size,
        )
        self.dim_name = dim_name
        self.fixed = fixed


# ---------------------------------------------------------------------------------------------
# What the package accepts, and whether an input set fits (plain data: unit-tested without torch)

#: One dim as compiled: a fixed size, or a dynamic size's range (``None``: no upper bound).
Size = int | tuple[int, int | None]


@dataclass(frozen=True, kw_only=True)
class DeclaredDim:
    """A dim the manifest declared dynamic: where it is, as the user writes it, and its name."""

    label: str  # "x.shape[0]"
    name: str  # "batch"


def shape_problem(
    accepted: Sequence[Sequence[Size] | None],
    shapes: Sequence[Sequence[int] | None],
    *,
    labels: Sequence[str],
    declared: Mapping[tuple[int, int], DeclaredDim],
) -> AotiShapeError | None:
    """The first size of ``shapes`` (one per flat user input; None: not a tensor) that
    ``accepted`` (the same, as compiled) does not take; None when the package takes them all.

    ``declared`` maps (input, dim) to the dims the manifest made dynamic: a fixed size there is
    a specialised dim, named; elsewhere a fixed size or a range the input is outside of is an
    :class:`AotiShapeError`.
    """
    for leaf, (compiled, shape) in enumerate(zip(accepted, shapes, strict=False)):
        if compiled is None or shape is None:
            continue
        name = labels[leaf] if leaf < len(labels) else f"input {leaf}"
        if len(compiled) != len(shape):
            return AotiShapeError(
                f"{name} has {len(shape)} dims, the package was compiled for {len(compiled)}",
                label=name,
                size=len(shape),
            )
        for dim, (size, got) in enumerate(zip(compiled, shape, strict=True)):
            where = declared.get((leaf, dim))
            label = where.label if where is not None else f"{name}.shape[{dim}]"
            if isinstance(size, int):
                if got == size:
                    continue
                if where is not None:
                    return SpecialisedDimError(label=label, dim_name=where.name, fixed=size, size=got)
                return AotiShapeError(
                    f"{label} is {got}, the package was compiled for {size} (a static dim)",
                    label=label,
                    size=got,
                )
            low, high = size
            if got < low or (high is not None and got > high):
                named = f" ({where.name})" if where is not None else ""
                bounds = f"[{low}, {high if high is not None else 'inf'}]"
                return AotiShapeError(
                    f"{label}{named} is {got}, outside the range {bounds} the package was compiled for",
                    label=label,
                    size=got,
                )
    return None


#: The package's own input check (``AOTI_RUNTIME_CHECK_INPUTS``), as its error reads:
#: ``input_handles[0]: dim value is too small at 0, expected it to be >= 2, but got: 1``.
_PACKAGE_CHECK = re.compile(
    r"input_handles\[(\d+)\]: (dim value is too (?:small|large)|unmatched dim value) at (\d+), (.+)"
)


def package_refusal(
    message: str, *, labels: Sequence[str], declared: Mapping[tuple[int, int], DeclaredDim]
) -> AotiShapeError | None:
    """The package's own input check refusing a size, read from its error ``message`` and said
    with the input's name (and the dim's, where the manifest declared it); None for any other
    error. AOTInductor compiles a dynamic dim for sizes of 2 or more: a size of 1 that
    torch.export's range allows is refused here."""
    found = _PACKAGE_CHECK.search(message)
    if found is None:
        return None
    leaf, what, dim, rest = int(found.group(1)), found.group(2), int(found.group(3)), found.group(4)
    where = declared.get((leaf, dim))
    name = labels[leaf] if leaf < len(labels) else f"input {leaf}"
    label = where.label if where is not None else f"{name}.shape[{dim}]"
    named = f" ({where.name})" if where is not None else ""
    got = re.search(r"got:? (\d+)", rest)
    return AotiShapeError(
        f"{label}{named}: the package refused this input set ({what}: {rest.strip()})",
        label=label,
        size=int(got.group(1)) if got else -1,
    )


# ---------------------------------------------------------------------------------------------
# The compiler's output: what was missing


_MISSING_HEADER = re.compile(
    r"fatal error: ([\w./+-]+): No such file or directory|fatal error: '([^']+)' file not found"
)
_MISSING_LIBRARY = re.compile(r"cannot find -l([\w.+-]+)")
_MISSING_PROGRAM = re.compile(
    r"No such file or directory: '([^']+)'|(?:^|\s)([\w.+-]+): (?:command )?not found", re.M
)
_ERROR_LINE = re.compile(r"^(?:.*?:\d+:\d+: )?(?:fatal )?error: (.+)$", re.M)


def compiler_problem(output: str) -> str:
    """What the C++ compiler's ``output`` says was wrong, in one line without paths: the
    missing header, library or program where it names one, else its first error."""
    found = _MISSING_HEADER.search(output)
    if found:
        return f"missing header {next(g for g in found.groups() if g)!r}"
    found = _MISSING_LIBRARY.search(output)
    if found:
        return f"missing library 'lib{found.group(1)}' (the linker cannot find -l{found.group(1)})"
    found = _MISSING_PROGRAM.search(output)
    if found:
        return f"missing program {Path(next(g for g in found.groups() if g)).name!r}"
    found = _ERROR_LINE.search(output)
    if found:
        return found.group(1).strip()[:300]
    return first_line(output) or "the C++ compiler failed"


def _links(error: BaseException) -> list[BaseException]:
    """``error``, its causes and contexts, and what an ``InductorError`` wraps."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [getattr(current, "inner_exception", None), current.__cause__, current.__context__]
    return seen


def compile_error(error: BaseException) -> AotiCompileError:
    """The compile failure ``error`` as an :class:`AotiCompileError` that says what was
    missing, raised from it (its chain and traceback stay the evidence)."""
    summary = None
    for link in _links(error):
        kind = type(link).__name__
        if kind == "CppCompileError":
            output = getattr(link, "output", None)
            summary = (
                f"C++ compile error: {compiler_problem(output if isinstance(output, str) else str(link))}"
            )
        elif kind == "InvalidCxxCompiler":
            summary = f"no working C++ compiler: {first_line(link)}"
        elif isinstance(link, FileNotFoundError) and link.filename:
            summary = f"C++ compile error: missing program {Path(str(link.filename)).name!r}"
        if summary is not None:
            break
    wrapped = AotiCompileError(summary or f"{type(error).__name__}: {first_line(error)}")
    wrapped.__cause__ = error
    return wrapped


# ---------------------------------------------------------------------------------------------
# The target


@dataclass(frozen=True, kw_only=True)
class _Compiled:
    package: Path
    accepted: list[list[Size] | None] | None  # None: the program's inputs could not be read
    labels: list[str]
    declared: dict[tuple[int, int], DeclaredDim]
    kwarg_order: list[str] | None
    device_index: int


class AotInductor(Target[_Compiled]):
    """export → ``aoti_compile_and_package`` → ``aoti_load_package`` → the package on every
    input set (each checked first against the shapes it was compiled for)."""

    name = "aoti"
    runner_name = "the AOTInductor package"

    def prepare(self) -> None:
        """Imports and one tiny export, not a compile: a throwaway compile would cost every
        worker tens of seconds before its first job."""
        import torch
        import torch._inductor

        torch.export.export(torch.nn.Linear(2, 2).eval(), (torch.ones(1, 2),), strict=False)

    def capture(self, job: Attempt) -> _Compiled:
        import torch._inductor

        from exportwatch.targets.torch_export import export_program

        program = export_program(job)
        job.options.report_phase(COMPILE_PHASE)
        package = job.scratch() / f"{_safe_stem(job.options.artifact_name)}.pt2"
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NOISE_WARNINGS)
                built = torch._inductor.aoti_compile_and_package(program, package_path=str(package))
        except Exception as exc:
            raise StageFailed(Stage.COMPILE, compile_error(exc)) from None
        finally:
            job.attach(COMPILE_EXTRA, round(time.perf_counter() - started, 3))
        job.options.report_phase("verification")
        job.artifact = Path(built)  # what `keep` copies if loading or running fails
        return _describe(program, Path(built), job)

    def load(self, job: Attempt, exported: _Compiled) -> Runner:
        import torch._inductor

        from exportwatch.targets.verify import clone_tree

        # The package's own check of every input (off by default), read once per process: a
        # size the check below missed is then refused instead of run on memory it does not own.
        os.environ.setdefault("AOTI_RUNTIME_CHECK_INPUTS", "1")
        try:
            package = torch._inductor.aoti_load_package(
                str(exported.package), device_index=exported.device_index
            )
        except Exception as exc:
            error = AotiLoadError(f"aoti_load_package failed: {type(exc).__name__}: {first_line(exc)}")
            error.__cause__ = exc
            raise StageFailed(Stage.LOAD, error) from None

        def run(call: Any) -> Any:
            args, kwargs = tuple(clone_tree(call.args)), clone_tree(call.kwargs)
            if exported.kwarg_order is not None:
                kwargs = {k: kwargs[k] for k in exported.kwarg_order if k in kwargs}
            if exported.accepted is not None:
                problem = shape_problem(
                    exported.accepted,
                    _shapes(args, kwargs),
                    labels=exported.labels,
                    declared=exported.declared,
                )
                if problem is not None:
                    raise problem
            try:
                return package(*args, **kwargs)
            except Exception as exc:
                refused = package_refusal(str(exc), labels=exported.labels, declared=exported.declared)
                if refused is not None:
                    raise refused from exc
                raise AotiRunError(f"the package raised {type(exc).__name__}: {first_line(exc)}") from exc

        return run

    def keep(self, job: Attempt, directory: Path) -> None:
        """The ``.pt2`` package where compiling got that far (failed load, run or compare)."""
        if isinstance(job.artifact, Path) and job.artifact.is_file():
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.artifact, directory / f"{job.options.artifact_name}.pt2")


def _safe_stem(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)[:100] or "model"


def _describe(program: torch.export.ExportedProgram, package: Path, job: Attempt) -> _Compiled:
    """What the run needs to know about the compiled program: the shapes it takes, per flat
    user input, and which of its dims the manifest declared dynamic."""
    from exportwatch.targets.torch_export import user_input_values
    from exportwatch.targets.verify import requested_dynamic_dims, slot_tree

    accepted: list[list[Size] | None] | None = None
    labels: list[str] = []
    declared: dict[tuple[int, int], DeclaredDim] = {}
    kwarg_order: list[str] | None = None
    try:
        values = user_input_values(program)
        if values is not None:
            accepted = [_accepted(value, program.range_constraints) for value in values]
            labels = _input_labels(program, len(values))
            args, kwargs = slot_tree(program.call_spec.in_spec)
            kwarg_order = list(kwargs)
            forward = getattr(job.module, "forward", job.module)
            for dim in requested_dynamic_dims(forward, args, kwargs, job.options.dynamic_shapes, len(values)):
                declared[(dim.leaf, dim.dim)] = DeclaredDim(label=dim.label, name=dim.name)
    except Exception:  # reading the program is a courtesy: the package's own check remains
        accepted = None
    return _Compiled(
        package=package,
        accepted=accepted,
        labels=labels,
        declared=declared,
        kwarg_order=kwarg_order,
        device_index=_device_index(job.example),
    )


def _accepted(value: Any, ranges: Mapping[Any, Any]) -> list[Size] | None:
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    sizes: list[Size] = []
    for size in shape:
        if is_concrete_int(size):
            sizes.append(int(size))
            continue
        bounds = ranges.get(getattr(getattr(size, "node", None), "expr", None))
        low = _finite(getattr(bounds, "lower", None))
        high = _finite(getattr(bounds, "upper", None))
        sizes.append((low if low is not None else 0, high))
    return sizes


def _finite(bound: Any) -> int | None:
    try:
        return int(bound) if bound is not None and bound.is_finite else None
    except (AttributeError, TypeError, ValueError):
        return None


def _input_labels(program: torch.export.ExportedProgram, count: int) -> list[str]:
    from torch.export.graph_signature import InputKind

    names = [
        getattr(spec.arg, "name", None) or f"input {i}"
        for i, spec in enumerate(
            s for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT
        )
    ]
    return names if len(names) == count else [f"input {i}" for i in range(count)]


def _shapes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[int, ...] | None]:
    import torch

    leaves = torch.utils._pytree.tree_leaves((args, kwargs))
    return [tuple(int(s) for s in leaf.shape) if isinstance(leaf, torch.Tensor) else None for leaf in leaves]


def _device_index(call: Any) -> int:
    """The CUDA device the inputs are on (the package loads there), or -1 on the CPU."""
    import torch

    for leaf in torch.utils._pytree.tree_leaves((call.args, call.kwargs)):
        if isinstance(leaf, torch.Tensor) and leaf.device.type == "cuda":
            return leaf.device.index if leaf.device.index is not None else torch.cuda.current_device()
    return -1
