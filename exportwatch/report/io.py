"""Report files: one loader and one writer; a finished report is one JSON document, a sweep in
progress streams JSON Lines."""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from exportwatch.report.model import (
    MAX_REPORT_BYTES,
    JobResult,
    Report,
    ReportError,
    _json_kind,
    _to_jsonable,
    check_document,
)

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


def load_report(
    path: Path, *, untrusted: bool = False, max_bytes: int | None = None, shown_as: str | None = None
) -> Report:
    """Read a report (``.json``) or a partial sweep log (``.jsonl``): the one report loader.

    ``untrusted`` (a report from a pull request's run, a downloaded baseline, a shard): refused
    over ``MAX_REPORT_BYTES`` before it is read (and the read itself stops there), and checked
    against the report's JSON Schema (where jsonschema is installed) before the dataclasses
    are built. ``max_bytes`` overrides the cap. Every refusal is one :class:`ReportError` line
    that starts with the path, or with ``shown_as`` where the path means nothing to the user
    (``artifact 'exportwatch-report': exportwatch-report.json`` rather than a temporary folder):
    a hostile file never ends as a traceback.
    """
    limit = max_bytes if max_bytes is not None else (MAX_REPORT_BYTES if untrusted else None)
    name = shown_as or str(path)
    text = _read_text(path, limit, name=name)
    try:
        data = _jsonl_document(text) if path.suffix == ".jsonl" else parse_json(text)
        check_document(data)
        if untrusted:
            _check_schema(data)
        return Report.from_dict(data)
    except RecursionError as exc:  # json and jsonschema recurse per level: ~1000 is their limit
        raise ReportError(f"{name}: nested deeper than any report (refused)") from exc
    except ReportError as exc:
        raise ReportError(f"{name}: {exc}") from exc


def _read_text(path: Path, limit: int | None, *, name: str) -> str:
    """The file's text, read no further than ``limit`` bytes (a FIFO or ``/dev/zero`` never ends)."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ReportError(f"{name}: is a directory, not a report file")
        if limit is not None and info.st_size > limit:
            raise ReportError(f"{name}: report is {info.st_size} bytes, over the {limit}-byte limit")
        with path.open("rb") as handle:
            raw = handle.read() if limit is None else handle.read(limit + 1)
    except OSError as exc:
        raise ReportError(f"{name}: cannot read report: {exc.strerror or exc}") from exc
    if limit is not None and len(raw) > limit:
        raise ReportError(f"{name}: report is over the {limit}-byte limit")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{name}: not a readable JSON report: not UTF-8 (byte {exc.start})") from exc


def parse_json(text: str) -> Any:
    """``json.loads`` that refuses what no report holds: NaN, Infinity, 1e400, 5,000-digit numbers.

    Python's json reads ``NaN`` and turns ``1e400`` into ``inf``; neither is JSON a report writer
    produces, and both break arithmetic and rendering later. Deep nesting raises RecursionError,
    which the caller turns into a refusal.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ReportError(f"not valid JSON: {exc}") from exc
    except ReportError:
        raise
    except ValueError as exc:  # int(): more digits than sys.get_int_max_str_digits()
        raise ReportError("not valid JSON: a number with too many digits") from exc


def _refuse_constant(name: str) -> Any:
    raise ReportError(f"not valid JSON: {name} is not a number a report holds")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ReportError(f"not valid JSON: {text[:40]} is out of range for a number")
    return number


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
    # Document order: indexes as numbers (jobs[2] before jobs[10]), never int compared with str.
    errors = sorted(
        found, key=lambda e: [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in e.absolute_path]
    )
    if errors:
        where, problem = _describe_schema_error(errors[0])
        raise ReportError(f"{where}: {problem} (does not match the report schema)")


#: JSON Schema's type names in the words ``Report.from_dict`` uses.
_SCHEMA_TYPES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "object": "an object",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}


def _describe_schema_error(error: Any) -> tuple[str, str]:
    """(``jobs[3].verdict``, ``missing``) for one jsonschema error: the words of ``Report.from_dict``."""
    parts = list(error.absolute_path)
    problem = " ".join(str(error.message).split())
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            parts.append(missing[0])
            problem = "missing"
    elif error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        named = [_SCHEMA_TYPES.get(str(t), str(t)) for t in wanted]
        problem = f"expected {' or '.join(named)}, got {_json_kind(error.instance)}"
    where = ""
    for part in parts:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "(top)", problem if len(problem) <= 200 else problem[:200] + "…"


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


def _jsonl_document(text: str) -> dict[str, Any]:
    """A partial sweep log as one report document: the header's fields, the jobs, complete false."""
    header: dict[str, Any] | None = None
    jobs: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except ReportError as exc:
            if isinstance(exc.__cause__, json.JSONDecodeError):
                break  # a line cut short by a kill: everything before it is good
            raise ReportError(f"line {number}: {exc}") from exc
        if not isinstance(record, dict):
            raise ReportError(f"line {number}: not a JSON object")
        if "header" in record:
            if not isinstance(record["header"], dict):
                raise ReportError(f"line {number}: the header is not a JSON object")
            header = record["header"]
        elif "job" in record:
            jobs.append(record["job"])
    if header is None:
        raise ReportError("partial report has no header line")
    # A job logged twice (a model retried after its process died) counts by its last result.
    last: dict[Any, Any] = {}
    for job in jobs:
        parts = [job.get(k) for k in ("model", "target", "device")] if isinstance(job, dict) else []
        key = tuple(parts) if parts and all(isinstance(p, str) for p in parts) else id(job)
        last.pop(key, None)
        last[key] = job
    return dict(header, jobs=list(last.values()), complete=False)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report (``config/report.schema.json``), shipped with the package."""
    from importlib import resources

    text = resources.files("exportwatch").joinpath("schemas/report.schema.json").read_text("utf-8")
    return json.loads(text)
