"""Report files: one loader and one writer; a finished report is one JSON document, a sweep in
progress streams JSON Lines."""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from exportwatch.report.model import MAX_REPORT_BYTES, JobResult, Report, ReportError, _to_jsonable

# ---------------------------------------------------------------------------------------------
# Files: a finished report is one JSON document; a sweep in progress streams JSON Lines.


def write_report(report: Report, path: Path) -> None:
    """Write atomically, so a reader never sees half a report."""
    write_text_atomically(path, report.to_json())


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, with the mode a plain ``open`` would give.

    ``mkstemp`` creates files readable by their owner only; the Docker action writes as root
    while later steps (upload-artifact, actions/cache) read as the runner user, so the file
    gets ``0o666`` less the process umask (0644 under the usual 022).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def base_report_path(head: Path) -> Path:
    """Where the base report goes beside the head's: ``x.json`` → ``x.base.json``.

    One convention for ``compare`` and the action (the upload glob ``x*.json`` takes both).
    """
    return head.with_name(f"{head.stem}.base{head.suffix or '.json'}")


#: Schema errors looked at before one is reported (never all of them: see ``_check_schema``).
MAX_SCHEMA_ERRORS = 50


def load_report(path: Path, *, untrusted: bool = False, max_bytes: int | None = None) -> Report:
    """Read a report (``.json``) or a partial sweep log (``.jsonl``): the one report loader.

    ``untrusted`` (a report from a pull request's run, a downloaded baseline, a shard): refused
    over ``MAX_REPORT_BYTES`` before it is read, and checked against the report's JSON Schema
    (where jsonschema is installed) before the dataclasses are built. ``max_bytes`` overrides
    the cap.
    """
    limit = max_bytes if max_bytes is not None else (MAX_REPORT_BYTES if untrusted else None)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReportError(f"{path}: cannot read report: {exc.strerror}") from exc
    if limit is not None and size > limit:
        raise ReportError(f"{path}: report is {size} bytes, over the {limit}-byte limit")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable JSON report: {exc}") from exc
    try:
        if path.suffix == ".jsonl":
            return _from_jsonl(text)
        data = json.loads(text)
        if untrusted:
            _check_schema(data)
        return Report.from_dict(data)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON: {exc}") from exc
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from exc


def _check_schema(data: Any) -> None:
    """The first schema error, located, when jsonschema is installed (the ``github`` extra)."""
    try:
        import jsonschema
    except ImportError:
        return
    # Bounded: a hostile report can hold millions of wrong values; the first ones are enough.
    found = itertools.islice(
        jsonschema.Draft202012Validator(report_schema()).iter_errors(data), MAX_SCHEMA_ERRORS
    )
    errors = sorted(found, key=lambda e: e.path)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise ReportError(f"does not match the report schema at {where}: {errors[0].message[:200]}")


class JsonlLog:
    """Append-only log of a sweep in progress: a header line, then one line per finished job.

    Each line is flushed and fsynced before the next job starts, so a killed sweep leaves
    every finished result readable (``load_report(path)`` on the ``.jsonl`` file).
    """

    def __init__(self, path: Path, header: Report) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] = path.open("w", encoding="utf-8")
        head = header.to_dict()
        head.pop("jobs", None)
        head["complete"] = False
        self._write({"header": head})

    def append(self, job: JobResult) -> None:
        self._write({"job": _to_jsonable(asdict(job))})

    def _write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _from_jsonl(text: str) -> Report:
    header: dict[str, Any] | None = None
    jobs: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by a kill: everything before it is good
        if "header" in record:
            header = record["header"]
        elif "job" in record:
            jobs.append(record["job"])
    if header is None:
        raise ReportError("partial report has no header line")
    header = dict(header, jobs=jobs, complete=False)
    return Report.from_dict(header)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report (``config/report.schema.json``), shipped with the package."""
    from importlib import resources

    text = resources.files("exportwatch").joinpath("schemas/report.schema.json").read_text("utf-8")
    return json.loads(text)
