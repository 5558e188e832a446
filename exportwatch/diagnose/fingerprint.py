"""Normalisation and fingerprints: what may differ between two runs of the same failure."""

from __future__ import annotations

import hashlib
import re

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
