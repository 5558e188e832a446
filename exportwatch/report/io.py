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
from exportwatch.report.model import MAX_REPORT_BYTES, JobResult, Report, ReportError, _to_jsonable
from exportwatch.report.validate import validate_document, validate_report

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


def load_report(
    path: Path, *, untrusted: bool = False, max_bytes: int | None = None, shown_as: str | None = None
) -> Report:
    """Read a report (``.json``) or a partial sweep log (``.jsonl``): the one report loader.

    ``untrusted`` (a report from a pull request's run, a downloaded baseline, a shard): refused
    over ``MAX_REPORT_BYTES`` before it is read (and the read itself stops there), and checked
    against the bounds of the report's JSON Schema as well as its types. One pass decodes,
    checks and builds (``report.validate``), after one pass of the C decoder that refuses a key
    given twice and values no report holds (``check_json``). ``max_bytes`` overrides the cap.
    Every refusal is one :class:`ReportError` line that starts with the path, or with
    ``shown_as`` where the path means nothing to the user (``artifact 'exportwatch-report':
    exportwatch-report.json`` rather than a temporary folder): a hostile file never ends as a
    traceback.
    """
    limit = max_bytes if max_bytes is not None else (MAX_REPORT_BYTES if untrusted else None)
    name = shown_as or str(path)
    text = _read_text(path, limit, name=name)
    try:
        if path.suffix == ".jsonl":
            return validate_document(_jsonl_document(text), strict=untrusted)
        check_json(text)
        return validate_report(text, strict=untrusted)
    except RecursionError as exc:  # json recurses per level: ~1000 is its limit
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
    return _decode(text, keep=True)


def check_json(text: str) -> None:
    """``parse_json``'s refusals without keeping what it decodes: the report itself is decoded
    by ``report.validate``, whose decoder keeps the last of two keys and reads ``NaN``."""
    _decode(text, keep=False)


def _decode(text: str, *, keep: bool) -> Any:
    closed = itertools.count(1)  # objects closed so far: the hook runs as each one ends

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any] | None:
        number = next(closed)
        result = dict(pairs)
        if len(result) != len(pairs):
            raise _DuplicateKey(number, pairs)
        return result if keep else None  # dropped: the check keeps nothing it decodes

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
    """Raised by the decoder's hook: the ``closed``-th object to end has ``key`` twice."""

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


#: Everything up to the next brace outside a string, and that brace: one match per brace, so the
#: scan's Python loop runs per brace, not per string (C's ``re`` skips the strings and the rest).
#: A run of other characters is one step (``+``): one step per character held 2.5 GB of
#: backtracking marks on ``[1,1,1,…]``. It never fails (the decoder read the text up to the
#: brace the scan stops at), so it never backtracks.
_UP_TO_BRACE = re.compile(r'(?:[^"{}]+|"[^"\\]*(?:\\.[^"\\]*)*")*([{}])')
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _describe_duplicate(text: str, error: _DuplicateKey) -> str:
    """``duplicate key 'jobs': line 9 column 3 (char 180)``, in the words of json's own errors.

    Only on this error path is the text scanned again: objects end in the order of their ``}``,
    so the ``closed``-th ``}`` outside a string ends the object the hook refused. The scan
    stops there, and its loop runs once per brace (a string is skipped inside the regex).
    """
    key = error.key if len(error.key) <= 80 else error.key[:80] + "…"
    start = _object_start(text, error.closed)
    at = None if start is None else _repeated_key(text, start, error.key)
    if at is None:
        return f"duplicate key {key!r}"
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)
    return f"duplicate key {key!r}: line {line} column {column} (char {at})"


def _object_start(text: str, closed: int) -> int | None:
    """Where the ``closed``-th object to end starts. The text up to its end is valid JSON (the
    decoder read it), so every string in it ends and the regex never backtracks far."""
    opened: list[int] = []
    ends = 0
    for token in _UP_TO_BRACE.finditer(text):
        if token.group(1) == "{":
            opened.append(token.start(1))
        elif opened:
            start = opened.pop()
            ends += 1
            if ends == closed:
                return start
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
