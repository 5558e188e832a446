"""Faults of the machine at a write: a full disk (a tiny tmpfs), ``ulimit -f`` (RLIMIT_FSIZE), a
read-only mount and a folder the user may not write to. Each ends in one line naming the file
and what happened, exit 2, no traceback, and the previous file whole.

Mounting needs root and a kernel that lets this process mount (a container may not): those
tests skip saying so. The fault-injected versions of the same cases are in
``tests/unit/test_write_errors.py``.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.baseline.cache import ResultCache
from exportwatch.errors import WriteError
from exportwatch.github.publish import append_summary
from exportwatch.report import JsonlLog, load_report, write_report
from exportwatch.report.io import write_text_atomically
from tests.conftest import FIXTURES, REPO_ROOT
from tests.factories import job, ok, report, sub

pytestmark = pytest.mark.quick


def _mount(where: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: the disk that fills up."""
    where = tmp_path / "disk"
    where.mkdir()
    _mount(where, "size=64k")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def _fill(disk: Path) -> None:
    """Leave no byte free on ``disk``."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def big_report(jobs: int = 200):
    """A report larger than the tiny disk."""
    return report(*(job(f"m{i}", "export", sub("", "fail", message="x" * 400)) for i in range(jobs)))


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child before exec; Python ignores SIGXFSZ itself too
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def exportwatch(*args: str, limit: int | None = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(FIXTURES / "manifests"), str(REPO_ROOT)]))
    return subprocess.run(
        [sys.executable, "-m", "exportwatch", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(limit) if limit is not None else None,
    )


def _error_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


# --- a full disk ------------------------------------------------------------------------------


def test_write_report__a_full_disk_is_one_error_and_the_previous_report_stays(tiny_disk: Path):
    path = tiny_disk / "r.json"
    write_report(report(ok("old")), path)
    before = path.read_bytes()
    with pytest.raises(WriteError) as caught:
        write_report(big_report(), path, log=tiny_disk / "r.jsonl")
    assert str(caught.value).startswith(
        f"cannot write {path} (the report): no space left on device (errno 28)"
    )
    assert "free some space, then `exportwatch merge" in str(caught.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["r.json"]  # the temporary file is gone


def test_jsonl_log__a_full_disk_keeps_every_earlier_line_readable(tiny_disk: Path):
    path = tiny_disk / "r.jsonl"
    log = JsonlLog(path, report())
    written = []
    with pytest.raises(WriteError, match=r"\(the sweep's log\): no space left on device \(errno 28\)"):
        for i in range(1000):
            entry = job(f"m{i}", "export", sub("", "fail", message="x" * 1000))
            log.append(entry)
            written.append(entry)
    log.close()
    assert written and load_report(path).jobs == written


def test_append_summary__a_full_disk_leaves_the_summary_as_it_was(tiny_disk: Path):
    path = tiny_disk / "summary.md"
    append_summary(path, "# an earlier step\n")
    _fill(tiny_disk)
    with pytest.raises(WriteError, match=r"GITHUB_STEP_SUMMARY\): no space left on device"):
        append_summary(path, "x" * 10_000)
    assert path.read_text() == "# an earlier step\n"


def test_result_cache__a_full_disk_is_one_warning_and_the_sweep_goes_on(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
):
    cache = ResultCache(tiny_disk / "cache")
    (tiny_disk / "cache").mkdir()
    _fill(tiny_disk)
    jobs = [replace(ok(f"m{i}"), content_hash=f"{i:064x}") for i in range(3)]
    assert [cache.put(j) for j in jobs] == [False, False, False]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "(a cache entry): no space left on device (errno 28)" in warnings[0]


def test_cli_merge__a_full_disk_at_the_output_is_exit_2_with_one_line(tiny_disk: Path, tmp_path: Path):
    log_path = tmp_path / "r.jsonl"
    log = JsonlLog(log_path, replace(report(), plan=["a/export"]))
    log.append(ok("a"))
    log.close()
    output = tiny_disk / "r.json"
    output.write_text("previous\n")
    _fill(tiny_disk)
    done = exportwatch("merge", str(log_path), "-o", str(output))
    assert done.returncode == 2
    assert _error_lines(done) == [
        f"error: cannot write {output} (the report): no space left on device (errno 28)"
    ]
    assert output.read_text() == "previous\n"


# --- a file-size limit (ulimit -f) ------------------------------------------------------------


def test_cli_merge__turns_a_sweep_log_into_its_report(tmp_path: Path):
    log_path = tmp_path / "r.jsonl"
    log = JsonlLog(log_path, replace(report(), plan=["a/export", "b/export"]))
    log.append(ok("b"))
    log.append(ok("a"))
    log.close()
    done = exportwatch("merge", str(log_path), "-o", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    rebuilt = load_report(tmp_path / "r.json", untrusted=True)
    assert rebuilt.complete and [j.model for j in rebuilt.jobs] == ["a", "b"]


@pytest.mark.slow  # renders a page: about 0.5 s
def test_cli_report__a_file_size_limit_is_exit_2_with_one_line_and_the_old_page_stays(tmp_path: Path):
    write_report(report(ok("a")), tmp_path / "r.json")  # its page alone is over 4 KiB (inline styles)
    page = tmp_path / "r.html"
    page.write_text("previous\n")
    done = exportwatch("report", str(tmp_path / "r.json"), "-o", str(page), limit=4096)
    assert done.returncode == 2
    (line,) = _error_lines(done)
    named = re.escape(f"error: cannot write {page}") + r"( \(the HTML report\))?"  # with cli/report.py's what
    assert re.fullmatch(named + r": file too large \(errno 27\)", line), line
    assert page.read_text() == "previous\n"


@pytest.mark.slow  # a real sweep: torch and a worker start (~10 s)
def test_cli_sweep__a_file_size_limit_at_the_report_is_exit_2_and_the_log_rebuilds_it(tmp_path: Path):
    manifest = FIXTURES / "manifests" / "minimal.yml"
    output = tmp_path / "r.json"
    output.write_text("previous\n")
    # The log (compact, ~1.7 KB) fits under 2 KiB, the report (indented, ~2.6 KB) does not.
    done = exportwatch("sweep", str(manifest), "-o", str(output), "--workers", "1", limit=2048)
    assert done.returncode == 2, done.stderr
    lines = _error_lines(done)
    assert len(lines) == 1 and lines[0].startswith(
        f"error: cannot write {output} (the report): file too large"
    )
    assert "exportwatch merge" in lines[0] and "r.jsonl" in lines[0]  # where the results are, and how
    assert output.read_text() == "previous\n"
    rebuilt = exportwatch("merge", str(tmp_path / "r.jsonl"), "-o", str(output))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert load_report(output).complete and [j.model for j in load_report(output).jobs] == ["mlp"]


# --- no permission, a read-only file system --------------------------------------------------


def test_write_text_atomically__a_read_only_mount_is_one_error_and_the_old_file_stays(tmp_path: Path):
    where = tmp_path / "ro"
    where.mkdir()
    _mount(where, "size=64k")
    try:
        (where / "r.html").write_text("previous\n")
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        with pytest.raises(
            WriteError, match=r"r\.html \(the HTML report\): read-only file system \(errno 30\)$"
        ):
            write_text_atomically(where / "r.html", "<html>", what="the HTML report")
        assert (where / "r.html").read_text() == "previous\n"
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_cli_merge__a_folder_the_user_may_not_write_is_exit_2_with_one_line():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to drop to another user (setpriv), as root writes anywhere")
    for folder in (REPO_ROOT, *REPO_ROOT.parents):
        if folder.stat().st_mode & 0o005 != 0o005:
            pytest.skip(f"{folder} is not readable by another user, who must run exportwatch from it")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    probe = subprocess.run(
        [*nobody, "-c", "import exportwatch.cli.main, pydantic_core, yaml"],
        capture_output=True, text=True, timeout=60, cwd="/", env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"another user cannot import exportwatch's dependencies from {sys.executable}'s packages")
    shared = Path(tempfile.mkdtemp(prefix="exportwatch-eacces-"))  # pytest's tmp_path is 0700
    try:
        shared.chmod(0o755)
        log_path = shared / "r.jsonl"
        log = JsonlLog(log_path, replace(report(), plan=["a/export"]))
        log.append(ok("a"))
        log.close()
        log_path.chmod(0o644)
        locked = shared / "locked"
        locked.mkdir(mode=0o755)  # root's: another user may read it, not write in it
        done = subprocess.run(
            [*nobody, "-m", "exportwatch", "merge", str(log_path), "-o", str(locked / "r.json")],
            capture_output=True, text=True, timeout=120, cwd=shared,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), HOME=str(shared)),
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        denied = "permission denied (errno 13)"
        assert _error_lines(done) == [f"error: cannot write {locked / 'r.json'} (the report): {denied}"]
        assert not (locked / "r.json").exists()
    finally:
        shutil.rmtree(shared)
