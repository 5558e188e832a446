"""How a sweep runs, as the user chose it: one object for the CLI, ``compare`` and the action,
with one way back to command-line flags (the action runs the CLI in a subprocess)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    targets: tuple[str, ...] = ()  # empty: each model's own targets
    device: str | None = None  # None: each model's own device
    workers: int | None = None  # None: one per core
    timeout_s: float | None = None  # None: each model's own timeout
    max_memory_mb: float | None = None
    artifacts_dir: Path | None = None  # --keep-artifacts
    verbose: bool = False  # the exporters' own output reaches the log
    allow_skip: bool = False  # jobs on a missing device are skipped, not a usage error
    blockers: bool = True  # every blocker of an export origin, from draft_export (a run each)

    def to_argv(self) -> list[str]:
        """The ``sweep`` / ``compare`` flags that reproduce these options (``-v`` is global)."""
        args: list[str] = []
        for target in self.targets:
            args += ["--target", target]
        if self.device:
            args += ["--device", self.device]
        if self.workers:
            args += ["--workers", str(self.workers)]
        if self.timeout_s:
            args += ["--timeout", f"{self.timeout_s:g}"]
        if self.max_memory_mb:
            args += ["--max-memory", f"{self.max_memory_mb:g}"]
        if self.artifacts_dir is not None:
            args += ["--keep-artifacts", str(self.artifacts_dir)]
        if self.allow_skip:
            args.append("--allow-skip")
        if not self.blockers:
            args.append("--no-blockers")
        return args
