"""Quiet logs: strict mode dumps partial FX graphs and dynamo logs; keep them out of the user's log."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

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
