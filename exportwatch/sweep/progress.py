"""Progress output for long sweeps: a live line on a terminal, one line per job in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

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
}


class Progress:
    """Prints job starts and results; quiet=True prints nothing."""

    def __init__(self, *, total: int, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = self.stream.isatty() and not quiet
        self.started = time.monotonic()
        self._running: dict[str, float] = {}

    def start(self, model: str, target: str) -> None:
        self._running[f"{model} · {target}"] = time.monotonic()
        self._live_line()

    def result(self, job: JobResult) -> None:
        self.done += 1
        self._running.pop(f"{job.model} · {job.target}", None)
        if self.quiet:
            return
        failing = sum(1 for s in job.submodules if s.verdict in FAILING)
        verdict = _SYMBOLS.get(job.verdict, job.verdict.value)
        extra = f", {failing} failing submodule{'s' * (failing != 1)}" if failing else ""
        if job.reason and job.verdict not in FAILING:
            extra += f" ({job.reason})"
        line = (
            f"[{self.done}/{self.total}] {job.model} · {job.target} · {job.device}: "
            f"{verdict}{extra} in {job.duration_s:.1f}s"
        )
        self._clear()
        print(line, file=self.stream, flush=True)
        self._live_line()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        self._clear()
        print(text, file=self.stream, flush=True)
        self._live_line()

    def _live_line(self) -> None:
        if not self.live or not self._running:
            return
        now = time.monotonic()
        running = ", ".join(f"{name} ({now - t:.0f}s)" for name, t in list(self._running.items())[:3])
        text = f"  … {self.done}/{self.total} done; running {running}"
        print(f"\r\x1b[2K{text[:160]}", end="", file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live:
            print("\r\x1b[2K", end="", file=self.stream, flush=True)

    def close(self) -> None:
        self._clear()


def sweep_table(report: Report) -> str:
    """The final table of a sweep: model, target, device, verdict, failing submodules, time."""
    rows = [("model", "target", "device", "verdict", "failing submodules", "time")]
    for job in report.jobs:
        failing = [s for s in job.submodules if s.verdict in FAILING and s.path]
        origins = [s.path for s in failing if s.origin] or [s.path for s in failing]
        shown = ", ".join(origins[:3]) + (f" (+{len(origins) - 3})" if len(origins) > 3 else "")
        if not shown and job.verdict in FAILING:
            shown = "(root)"  # the whole model fails while every child exports on its own
        verdict = job.verdict.value + (" (xfail)" if job.xfail and job.verdict in FAILING else "")
        rows.append((job.model, job.target, job.device, verdict, shown or "-", f"{job.duration_s:.1f}s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
