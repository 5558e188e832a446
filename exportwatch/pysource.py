"""Python source read as data (``ast``), safely: the one way exportwatch parses a file.

``ast.parse`` called deep in a Python stack (a diagnosis runs inside torch's own frames) can hit
the recursion limit while it builds the tree; on CPython 3.11 that leaves the ``ast`` module's
depth counter wrong, and every later parse in the process then fails with ``SystemError: AST
constructor recursion depth mismatch``. So each parse runs on a fresh thread (a shallow stack of
its own), and what a parse cannot read (too deep, too large, a broken interpreter state) is a
``ValueError`` like a null byte is, which every caller already treats as "cannot read this file".
"""

from __future__ import annotations

import ast
import threading


def parse_python(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)`` on a thread of its own; raises ``SyntaxError`` for
    invalid code and ``ValueError`` for anything else that cannot be read."""
    outcome: list[ast.Module | BaseException] = []

    def run() -> None:
        try:
            outcome.append(ast.parse(source, filename=filename))
        except BaseException as exc:  # handed to the caller's thread, below
            outcome.append(exc)

    worker = threading.Thread(target=run, name="exportwatch-parse", daemon=True)
    worker.start()
    worker.join()
    if not outcome:
        raise ValueError(f"{filename}: could not be parsed")
    found = outcome[0]
    if isinstance(found, ast.Module):
        return found
    if isinstance(found, SyntaxError | ValueError):
        raise found
    if isinstance(found, RecursionError | MemoryError | SystemError):
        raise ValueError(f"{filename}: cannot be parsed ({type(found).__name__}: {found})") from found
    raise found
