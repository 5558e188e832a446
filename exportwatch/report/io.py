"""Report files: one loader and one writer; a finished report is one JSON document, a sweep in
progress streams JSON Lines."""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from exportwatch.errors import WriteError, remedy
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


def write_report(report: Report, path: Path, *, log: Path | None = None) -> None:
    """Write atomically, so a reader never sees half a report.

    ``log``: the sweep's ``.jsonl`` log, which holds every result; when the report cannot be
    written (a full disk, ``ulimit -f``), the error says the results are safe there and which
    command turns the log into the report.
    """
    try:
        write_text_atomically(path, report.to_json(), what="the report")
    except WriteError as exc:
        if log is None:
            raise
        raise exc.with_hint(recovery_hint(log, report=path, error=exc.error)) from None


def recovery_hint(log: Path, *, report: Path, error: OSError) -> str:
    """What to do when a sweep's report cannot be written but its log holds the results."""
    return (
        f"the sweep's results are safe in {log}: {remedy(error)}, then "
        f"`exportwatch merge {log} -o {report}` writes the report from them"
    )


def write_text_atomically(path: Path, text: str, *, what: str = "") -> None:
    """Replace ``path`` with ``text`` in one step, with the mode a plain ``open`` would give.

    ``mkstemp`` creates files readable by their owner only; the Docker action writes as root
    while later steps (upload-artifact, actions/cache) read as the runner user, so the file
    gets ``0o666`` less the process umask (0644 under the usual 022).

    Any ``OSError`` (a full disk, ``ulimit -f``, no permission, a read-only mount) is one
    :class:`WriteError` naming ``path`` (and ``what`` it is), and the previous file is intact.
    """
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    except FileExistsError:  # mkdir's words for "a file is where a parent folder should be"
        raise WriteError(path, OSError(errno.ENOTDIR, "Not a directory"), what=what) from None
    except OSError as exc:
        raise WriteError(path, exc, what=what) from None
    try:
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteError(path, exc, what=what) from None
        raise


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    """``json.loads`` that refuses what no report holds: NaN, Infinity, 1e400, 5,000-digit numbers,
    and an object with one key twice.

    Python's json reads ``NaN`` and turns ``1e400`` into ``inf``; neither is JSON a report writer
    produces, and both break arithmetic and rendering later. A key given twice (two ``jobs``) is
    read by Python as its last value and by other readers as its first: a report that means two
    things is refused, with where. Deep nesting raises RecursionError, which the caller turns
    into a refusal.
    """
    closed = itertools.count(1)  # objects closed so far: the hook runs as each one ends

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        number = next(closed)
        result = dict(pairs)
        if len(result) != len(pairs):
            raise _DuplicateKey(number, pairs)
        return result

    try:
        return json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=unique_keys
        )
    except _DuplicateKey as exc:
        raise ReportError(f"not valid JSON: {_describe_duplicate(text, exc)}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"not valid JSON: {exc}") from exc
    except ReportError:
        raise
    except ValueError as exc:  # int(): more digits than sys.get_int_max_str_digits()
        raise ReportError("not valid JSON: a number with too many digits") from exc


class _DuplicateKey(Exception):
    """Raised by ``parse_json``'s hook: the ``closed``-th object to end has a key twice."""

    def __init__(self, closed: int, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(closed)
        self.closed = closed
        seen: set[str] = set()
        self.key = ""
        for key, _ in pairs:
            if key in seen:
                self.key = key
                break
            seen.add(key)


#: A JSON string, or a brace outside one.
_STRING_OR_BRACE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}]')
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _describe_duplicate(text: str, error: _DuplicateKey) -> str:
    """``duplicate key 'jobs': line 9 column 3 (char 180)``, in the words of json's own errors.

    Only on this error path is the text scanned again: objects end in the order of their ``}``,
    so the ``closed``-th ``}`` outside a string ends the object the hook refused.
    """
    key = error.key if len(error.key) <= 80 else error.key[:80] + "…"
    at = _second_key_offset(text, error)
    if at is None:
        return f"duplicate key {key!r}"
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)
    return f"duplicate key {key!r}: line {line} column {column} (char {at})"


def _second_key_offset(text: str, error: _DuplicateKey) -> int | None:
    opened: list[int] = []
    ends = 0
    for token in _STRING_OR_BRACE.finditer(text):
        brace = token.group()
        if brace == "{":
            opened.append(token.start())
        elif brace == "}" and opened:
            start = opened.pop()
            ends += 1
            if ends == error.closed:
                return _repeated_key(text, start, error.key)
    return None


def _repeated_key(text: str, start: int, key: str) -> int | None:
    """Where ``key`` comes the second time in the object that starts at ``start``."""
    decoder = json.JSONDecoder()
    seen = False
    at = _skip_space(text, start + 1)
    while at < len(text) and text[at] == '"':
        name, end = json.decoder.scanstring(text, at + 1)  # type: ignore[attr-defined]
        if name == key:
            if seen:
                return at
            seen = True
        _, end = decoder.raw_decode(text, _skip_space(text, _skip_space(text, end) + 1))  # past the ':'
        at = _skip_space(text, end)
        if at < len(text) and text[at] == ",":
            at = _skip_space(text, at + 1)
    return None


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
    every finished result readable (``load_report(path)`` on the ``.jsonl`` file, or
    ``exportwatch merge LOG.jsonl -o REPORT.json``). A line that cannot be written (a full
    disk, ``ulimit -f``) is cut off again, so the log stays readable, and raises
    :class:`WriteError` saying where the earlier results are.
    """

    def __init__(self, path: Path, header: Report) -> None:
        self.path = path
        self.jobs = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise WriteError(path, exc, what="the sweep's log") from None
        self._size = 0
        head = header.to_dict()
        head.pop("jobs", None)
        head["complete"] = False
        self._write({"header": head})

    def append(self, job: JobResult) -> None:
        self._write({"job": _to_jsonable(asdict(job))})
        self.jobs += 1

    def _write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: the log is closed")
        data = (json.dumps(record) + "\n").encode("utf-8")
        try:
            write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # never leave half a line for the next one to join
                os.ftruncate(self._fd, self._size)
            hint = (
                f"the sweep stopped; its {self.jobs} earlier result(s) are safe in it: {remedy(exc)}, then "
                f"`exportwatch merge {self.path} -o {_report_path_of(self.path)}` writes a partial report"
                if self.jobs
                else ""
            )
            raise WriteError(self.path, exc, what="the sweep's log", hint=hint) from None
        self._size += len(data)

    def close(self) -> None:
        """Idempotent: the runner closes the log on every way out of a sweep."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):  # every line is already fsynced
                os.close(fd)


def _report_path_of(log: Path) -> Path:
    """``x.jsonl`` → ``x.json``: the report a sweep log belongs to (``sweep.runner.partial_log_path``)."""
    return log.with_suffix(".json") if log.suffix == ".jsonl" else log.with_name(log.name + ".json")


def report_from_log(path: Path) -> Report:
    """The report a sweep's ``.jsonl`` log holds: for when the sweep could not write its own
    report (a full disk, ``ulimit -f``) or was killed after its last job.

    Jobs in plan order, as the sweep writes them. Complete when the sweep was not a shard and
    every planned job has its result; otherwise partial (``complete: false``). The dependency
    hashes (``content_hash``) are missing: the sweep computes them only as it writes its report,
    so ``--cache-dir`` and stored baselines do not reuse these results.
    """
    report = load_report(path)
    position = {key: index for index, key in enumerate(report.plan)}
    jobs = sorted(report.jobs, key=lambda j: (position.get(f"{j.model}/{j.target}", len(position)), j.device))
    done = {f"{job.model}/{job.target}" for job in jobs}
    complete = report.shard is None and bool(position) and all(key in done for key in position)
    return replace(report, jobs=jobs, complete=complete)


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
