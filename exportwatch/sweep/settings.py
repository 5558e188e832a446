"""What a sweep's workers need besides the model spec: the user's options and the few facts the
parent adds (where the tree is, its import path, threads per worker). One frozen settings object,
plain data so it crosses processes (the parent builds it without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exportwatch.sweep.options import SweepOptions


@dataclass(frozen=True, kw_only=True)
class SweepSettings:
    manifest_root: Path  # relative factory and input paths resolve here
    repo_root: Path  # frames and dependency hashes are relative to it
    #: How the user asked the sweep to run (``artifacts_dir``, ``verbose`` are read by workers).
    options: SweepOptions = field(default_factory=SweepOptions)
    log_dir: Path | None = None  # worker logs; None: a temporary directory, removed afterwards
    threads: int | None = None  # torch intra-op threads per worker; None: torch's default
    #: The sweep's import path when it began; the model's process imports from it. A base
    #: sweep's points into its worktree, so one fork server serves head and base alike.
    sys_path: tuple[str, ...] | None = None
