"""Progress output for long sweeps: a live line on a terminal, one line per job in CI logs.

Model names, module paths, reasons and messages come from the manifest and from the user's
code (on a pull request, a stranger's): they go through the terminal helpers of
:mod:`exportwatch.render.escape`, so the terminal receives no control character but the ones
this module writes itself (``\\r`` and erase-line, for the live line on a terminal only) and
no line printed is a GitHub Actions workflow command.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from exportwatch.render.escape import no_workflow_commands, term_block, term_text, term_width
from exportwatch.report import FAILING, JobResult, Report, Verdict

_SYMBOLS = {
    Verdict.OK: "ok",
    Verdict.FAIL: "FAIL",
    Verdict.MISMATCH: "MISMATCH",
    Verdict.SKIPPED: "skipped",
    Verdict.CRASH: "CRASH",
    Verdict.TIMEOUT: "TIMEOUT",
    Verdict.OOM: "OOM",
    Verdict.ERROR: "ERROR (exportwatch bug)",
    Verdict.INTERRUPTED: "INTERRUPTED",
}


#: What the live line says a running job is doing, by phase (``protocol.Phase`` names); a
#: phase not listed here is not shown (building, capturing: before any target runs).
PHASE_WORDS = {
    "export": "exporting",
    "compile": "compiling",  # the aoti target (targets.base.COMPILE_PHASE): tens of seconds a module
    "lowering": "lowering",  # the executorch target: to_edge_transform_and_lower, the partitioner
    "serialisation": "serialising",
    "verification": "verifying",
    "draft_export": "finding every blocker",
}


class Progress:
    """Prints job starts and results; quiet=True prints nothing.

    On a terminal, a live line names the running jobs, their time and what each is doing now
    (``lowering…`` while the ``executorch`` target lowers); a log (CI) gets one line per job.
    """

    def __init__(self, *, total: int, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = self.stream.isatty() and not quiet
        self.started = time.monotonic()
        self._running: dict[tuple[str, str], float] = {}
        self._doing: dict[tuple[str, str], str] = {}  # running job -> its phase's word
        self._said_compiling: set[tuple[str, str]] = set()  # jobs whose log line said so
        self._warnings: list[str] = []

    def start(self, model: str, target: str) -> None:
        self._running[(model, target)] = time.monotonic()
        self._doing.pop((model, target), None)
        self._live_line()

    def phase(self, model: str, target: str, name: str) -> None:
        """A running job moved on to phase ``name``: the live line says so (``lowering…``)."""
        key = (model, target)
        word = PHASE_WORDS.get(name)
        if key not in self._running or word is None or self._doing.get(key) == word:
            return
        self._doing[key] = word
        self._live_line()
        if name == "compile" and not self.live and not self.quiet and key not in self._said_compiling:
            # A log (CI) has no live line: one line, so a long silence reads as a compile, not a hang.
            self._said_compiling.add(key)
            self._print(f"  {_name(*key)}: compiling… (AOTInductor: tens of seconds per module)")

    def doing(self, model: str, target: str) -> str | None:
        """What the live line says job ``(model, target)`` is doing (``lowering…``), if anything."""
        word = self._doing.get((model, target))
        return f"{word}…" if word is not None else None

    def result(self, job: JobResult, *, reason: str | None = None) -> None:
        """One line for a finished job; ``reason`` replaces the job's own where that is said
        elsewhere (a configuration error, printed once after the sweep)."""
        self.done += 1
        self._running.pop((job.model, job.target), None)
        self._doing.pop((job.model, job.target), None)
        self._said_compiling.discard((job.model, job.target))
        if self.quiet:
            return
        failing = sum(
            1 for s in job.submodules if s.verdict in FAILING and s.verdict is not Verdict.INTERRUPTED
        )
        verdict = _SYMBOLS.get(job.verdict, job.verdict.value)
        extra = f", {failing} failing submodule{'s' * (failing != 1)}" if failing else ""
        reason = reason or job.reason
        if reason and job.verdict not in FAILING:
            extra += f" ({term_text(reason)})"
        line = (
            f"[{self.done}/{self.total}] {_name(job.model, job.target)} · {term_text(job.device, limit=40)}: "
            f"{verdict}{extra} in {job.duration_s:.1f}s"
        )
        self._print(line)

    def warning(self, text: str) -> None:
        """A warning about the manifest: kept, and printed once when the sweep ends, where the
        job lines no longer bury it."""
        if text not in self._warnings:
            self._warnings.append(text)

    def message(self, text: str) -> None:
        """A note or error for the log; its lines are kept, each one made safe."""
        if self.quiet:
            return
        self._print(term_block(text))

    def _print(self, text: str) -> None:
        self._clear()
        print(no_workflow_commands(text), file=self.stream, flush=True)
        self._live_line()

    def _live_line(self) -> None:
        if not self.live or not self._running:
            return
        now = time.monotonic()

        def shown(key: tuple[str, str], started: float) -> str:
            doing = self.doing(*key)
            return f"{_name(*key)} ({now - started:.0f}s{', ' + doing if doing else ''})"

        running = ", ".join(shown(key, t) for key, t in list(self._running.items())[:3])
        text = no_workflow_commands(f"  … {self.done}/{self.total} done; running {running}"[:160])
        print(f"\r\x1b[2K{text}", end="", file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live:
            print("\r\x1b[2K", end="", file=self.stream, flush=True)

    def close(self) -> None:
        self._running.clear()  # nothing runs any more: no live line comes back
        self._doing.clear()
        self._clear()
        warnings, self._warnings = self._warnings, []
        for text in warnings:
            self.message(f"warning: {text}")
        self._clear()


def _name(model: str, target: str) -> str:
    return f"{term_text(model, limit=60)} · {term_text(target, limit=40)}"


def sweep_table(report: Report) -> str:
    """The final table of a sweep: model, target, device, verdict, failing submodules, time."""
    rows = [("model", "target", "device", "verdict", "failing submodules", "time")]
    for job in report.jobs:
        failing = [s for s in job.submodules if s.verdict in FAILING and s.path]
        origins = [s.path for s in failing if s.origin] or [s.path for s in failing]
        shown = ", ".join(term_text(p, limit=80) for p in origins[:3])
        shown += f" (+{len(origins) - 3})" if len(origins) > 3 else ""
        if not shown and job.verdict in FAILING:
            shown = "(root)"  # the whole model fails while every child exports on its own
        verdict = job.verdict.value + (" (xfail)" if job.xfail and job.verdict in FAILING else "")
        names = (
            term_text(job.model, limit=60),
            term_text(job.target, limit=40),
            term_text(job.device, limit=40),
        )
        rows.append((*names, verdict, shown or "-", f"{job.duration_s:.1f}s"))
    widths = [max(term_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(_pad(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return no_workflow_commands("\n".join(lines))


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - term_width(text), 0)
