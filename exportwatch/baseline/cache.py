"""``--cache-dir``: job results keyed by their content hash, one JSON file per job.

A job whose content hash is in the cache runs no export: its result is read back with
``source=cache``. The content hash covers the model's repository files, its manifest entry,
target, device and the deciding library versions (see :mod:`exportwatch.report.provenance`); the cache also
requires the same exportwatch version, since a new sweep strategy can change a verdict.

Results that say more about the machine than about the model are never stored: crashes,
timeouts, OOMs (maybe flaky) and skipped jobs (e.g. "CUDA is not available").

In GitHub Actions, keep the directory with ``actions/cache`` (see ``docs/baseline.md``): a
restore-key prefix makes every run start from the newest cache, and entries of unchanged
models simply keep matching. Must not import torch.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

from exportwatch import __version__
from exportwatch.errors import WriteError
from exportwatch.report import (
    INFRASTRUCTURE,
    SCHEMA_VERSION,
    JobResult,
    Report,
    ReportError,
    ResultSource,
    Verdict,
)
from exportwatch.report.io import write_text_atomically

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_HASH_RE = re.compile(r"[0-9a-f]{64}")
#: Verdicts that are not stored: the machine's story, not the model's.
UNCACHEABLE = INFRASTRUCTURE | {Verdict.SKIPPED}


class ResultCache:
    """A directory of ``<content_hash>.json`` files."""

    def __init__(self, directory: Path, *, tool_version: str = __version__) -> None:
        self.directory = Path(directory)
        self.tool_version = tool_version
        self.hits = 0
        self.writes = 0
        self.write_failed = False

    def path_for(self, content_hash: str) -> Path | None:
        if not _HASH_RE.fullmatch(content_hash or ""):
            return None
        return self.directory / f"{content_hash}.json"

    def get(self, content_hash: str | None, *, key: tuple[str, str, str] | None = None) -> JobResult | None:
        """The cached result for ``content_hash`` (``source=cache``), or None.

        ``key`` is (model, target, device): an entry for another device (``auto`` resolved on
        another machine) does not match.
        """
        path = self.path_for(content_hash or "")
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != CACHE_FORMAT or data.get("tool_version") != self.tool_version:
                return None
            job = Report.from_dict({"schema_version": SCHEMA_VERSION, "jobs": [data["job"]]}).jobs[0]
        except (OSError, ValueError, KeyError, TypeError, ReportError) as exc:
            log.warning("cache entry %s is unreadable (%s); ignoring it", path.name, exc)
            return None
        if job.content_hash != content_hash:
            return None
        if key is not None and (job.model, job.target) != key[:2]:
            return None
        if key is not None and key[2] != job.device:
            return None  # includes "auto": resolved on another machine, it may mean another device
        self.hits += 1
        return replace(job, source=ResultSource.CACHE)

    def put(self, job: JobResult) -> bool:
        """Store ``job`` under its content hash; False when it is not cacheable."""
        if not job.content_hash or job.verdict in UNCACHEABLE:
            return False
        path = self.path_for(job.content_hash)
        if path is None:
            return False
        stored = replace(copy.deepcopy(job), source=ResultSource.SWEPT)
        record = {
            "format": CACHE_FORMAT,
            "tool_version": self.tool_version,
            "job": Report(jobs=[stored]).to_dict()["jobs"][0],
        }
        try:
            write_text_atomically(path, json.dumps(record), what="a cache entry")
        except WriteError as exc:
            # The cache saves time later and decides nothing: the sweep goes on. Said once per
            # cache, not per job (a full disk would say it for every result).
            if not self.write_failed:
                log.warning("%s; results are not being cached", exc)
            self.write_failed = True
            return False
        self.writes += 1
        return True
