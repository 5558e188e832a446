"""Which line a failure points at (repository, library or interface frame) and tracebacks cut
to the frames that matter. Never imports torch: frames are read from tracebacks and paths."""

from __future__ import annotations

import ast
import contextlib
import inspect
import linecache
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from exportwatch.diagnose.chain import Link
from exportwatch.diagnose.fingerprint import _SPACE
from exportwatch.pysource import parse_python
from exportwatch.report import (
    UserFrame,
    cap,
)

# ---------------------------------------------------------------------------------------------
# The user's frame


@lru_cache(maxsize=1)
def _torch_root() -> str | None:
    """torch's package directory when torch is loaded (never imported from here)."""
    module = sys.modules.get("torch")
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.realpath(path)).replace("\\", "/") if path else None


_OWN_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__))).replace("\\", "/")  # exportwatch/
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
        tree = parse_python(Path(path).read_text(encoding="utf-8"), filename=path)
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
    for loose files outside every package and search path, and for generated code (``<string>``).
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
    if real.startswith(_STDLIB_ROOTS):
        return None
    return _package_of(real)


@lru_cache(maxsize=1024)
def _package_of(real: str) -> tuple[str, str] | None:
    """For code imported through an import hook (an editable install's finder puts no directory
    on ``sys.path``): the outermost directory with an ``__init__.py`` is the package."""
    if not real.endswith(".py") or not _is_file(real):
        return None
    folder = os.path.dirname(real)
    top = None
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        top = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if top is None:
        return None  # a loose module outside every package and search path
    rel = real[len(os.path.dirname(top)) + 1 :]
    return _top_package(rel), rel


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
    found = _library_frames(sources, repo)
    return found[0] if found is not None else None


def _library_frames(
    sources: Sequence[tuple[Link, list[tuple[list[RawFrame], bool]]]], repo: str
) -> tuple[UserFrame, list[RawFrame], bool] | None:
    """The innermost library frame, with the frames it was read from (it is their last
    library frame) and whether they came from text: where :func:`library_call_site` looks."""
    for _link, per_link in sources:
        for index, (frames, from_text) in enumerate(per_link):
            candidates = _called_by_toolchain(frames) if index == 0 else frames  # 0: the traceback
            frame = _innermost_library(candidates, repo, from_text=from_text)
            if frame is not None:
                return frame, candidates, from_text
    return None


#: Functions that are a module's own code: a failure there (or in a helper its file calls) is
#: the module's, whoever called the module.
_MODULE_ENTRY_POINTS = frozenset({"forward", "__call__"})


def library_call_site(chain: Sequence[Link], repo_root: Path) -> UserFrame | None:
    """Where the library helper a failure points at was called from, when that tells two
    failures apart: the nearest frame outside the helper's file (the model code, or the library
    module that called it: torchvision's ``rpn.py:289`` and ``roi_heads.py:728`` both calling
    ``ops/boxes.py``'s NMS).

    None when the failure is not in a library, when it is in a module's own ``forward`` (the
    caller is then whichever ancestor is being exported, and a parent must keep its child's
    fingerprint), or when the helper is reached from a ``forward`` in its own file.
    Toolchain frames (torch's module call machinery, decorators) are stepped over.
    """
    repo = _real(str(repo_root))
    sources = [(link, _frame_sources(link)) for link in reversed(chain)]
    if any(_innermost_user(frames, repo, from_text=text) for _l, per in sources for frames, text in per):
        return None  # the failure's frame is the repository's, not a library's
    found = _library_frames(sources, repo)
    if found is None:
        return None
    _frame, frames, from_text = found
    at = max(
        i for i, (path, _line, _fn) in enumerate(frames) if _is_library_path(path, repo, from_text=from_text)
    )
    failing_path, _line, failing_function = frames[at]
    if failing_function in _MODULE_ENTRY_POINTS:
        return None
    failing_file = _real(failing_path)
    for path, line, function in reversed(frames[:at]):
        kind, shown = _frame_kind(path, repo)
        if kind in ("toolchain", "own"):
            continue
        real = _real(path)
        if real == failing_file:
            if function in _MODULE_ENTRY_POINTS:
                return None
            continue
        library = None if kind == "repo" else _top_package(shown)
        return UserFrame(
            path=shown,
            line=line,
            function=function or _enclosing_function(real, line),
            source=_source_line(path, real, line),
            library=library,
        )
    return None


def interface_frame(module: object, repo_root: Path, *, output: bool = False) -> UserFrame | None:
    """The module's ``forward``: where a failure at its interface (an input or output type that
    export cannot take) is fixed. The ``return`` line for output problems, else the ``def`` line.
    """
    # A module exported through another method (the manifest's ``methods``) names that method.
    forward = getattr(module, "exported_method", None) if hasattr(module, "__dict__") else None
    forward = forward or (vars(module).get("forward") if hasattr(module, "__dict__") else None)
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
    # A torch module (``nn.MultiheadAttention``) is library code like any other here: its own
    # forward is the only line there is; exportwatch's machinery never is.
    if found is None or (found[0] == "exportwatch" and not found[1].startswith("exportwatch/examples/")):
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
        tree = parse_python(Path(path).read_text(encoding="utf-8"), filename=path)
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
