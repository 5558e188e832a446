"""What a new user mistypes gets a clean refusal before any work (exit 2, one line naming the
problem), and what cannot be checked is never reported as passing. Real CLI subprocesses."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exportwatch.report import Verdict, load_report
from exportwatch.sweep.devices import cuda_available
from tests.integration.test_workers import make_project
from tests.side_by_side import run_side_by_side

TINY = """\
version: 1
models:
  - name: tiny
    factory: exportwatch.examples.models:TinyCNN
    inputs: {args: [{shape: [1, 3, 8, 8]}]}
    targets: [export]
"""


def exportwatch(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exportwatch", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def no_cuda_env() -> dict[str, str]:
    """This machine's real answer where it has no GPU; the documented override where it has one."""
    return {} if not cuda_available() else {"EXPORTWATCH_FAKE_NO_CUDA": "1"}


def one_error_line(done: subprocess.CompletedProcess) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return errors[0]


def test_refusals__device_cuda_without_cuda_is_a_usage_error_before_any_export(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(TINY)
    done = exportwatch(
        "sweep", "m.yml", "--device", "cuda", "--strict", "-o", "r.json", cwd=tmp_path, env=no_cuda_env()
    )
    assert done.returncode == 2
    line = one_error_line(done)
    assert "CUDA is not available" in line and "tiny" in line and "--allow-skip" in line
    assert not (tmp_path / "r.json").exists()
    assert not (tmp_path / "r.jsonl").exists()  # refused before the sweep started


def test_refusals__manifest_device_cuda_without_cuda_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(TINY.replace("targets: [export]", "targets: [export]\n    device: cuda"))
    done = exportwatch("sweep", "m.yml", "-o", "r.json", cwd=tmp_path, env=no_cuda_env())
    assert done.returncode == 2
    assert "CUDA is not available" in one_error_line(done)


def test_refusals__allow_skip_reports_skipped_never_passing(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(TINY)
    done = exportwatch(
        "sweep", "m.yml", "--device", "cuda", "--allow-skip", "-o", "r.json", cwd=tmp_path, env=no_cuda_env()
    )
    assert done.returncode == 0, done.stderr
    job = load_report(tmp_path / "r.json").jobs[0]
    assert job.verdict is Verdict.SKIPPED
    assert job.reason == "CUDA is not available"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("outdir", "-o outdir: is a directory; name a file in it (e.g. outdir/exportwatch-report.json)"),
        ("afile/r.json", "-o afile/r.json: afile is not a directory"),
        ("/proc/self/r.json", "-o /proc/self/r.json: cannot write in /proc/self:"),
    ],
)
def test_refusals__unwritable_output_is_refused_before_the_sweep(
    tmp_path: Path, output: str, expected: str
) -> None:
    (tmp_path / "m.yml").write_text(TINY)
    (tmp_path / "outdir").mkdir()
    (tmp_path / "afile").write_text("")
    started = time.monotonic()
    done = exportwatch("sweep", "m.yml", "-o", output, cwd=tmp_path)
    assert done.returncode == 2
    assert one_error_line(done).startswith(f"error: {expected}")
    assert "sweeping" not in done.stderr  # nothing was swept
    assert time.monotonic() - started < 60


def test_refusals__compare_checks_every_output_before_sweeping(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(TINY)
    (tmp_path / "taken").mkdir()
    done = exportwatch("compare", "m.yml", "--base", "HEAD", "--base-output", "taken", cwd=tmp_path)
    assert done.returncode == 2
    assert one_error_line(done).startswith("error: --base-output taken: is a directory")


def test_refusals__a_second_sweep_to_the_same_output_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    manifest = make_project(
        tmp_path,
        textwrap.dedent("""\
            version: 1
            models:
              - name: slow
                factory: models/sweep_cases.py:hangs_while_building
                inputs: {args: [{shape: [2, 4]}]}
                timeout: 120
            """),
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", "r.json", "-q"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        log = tmp_path / "r.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
            time.sleep(0.1)
        assert log.exists(), "the first sweep never started its log"
        header = log.read_text()
        second = exportwatch("sweep", str(manifest), "-o", "r.json", "-q", cwd=tmp_path)
        assert second.returncode == 2
        assert "another exportwatch sweep is writing this report" in one_error_line(second)
        assert log.read_text() == header  # the first sweep's log was not truncated
    finally:
        os.killpg(first.pid, 9)
        first.wait(timeout=30)


def test_refusals__the_lock_is_released_when_a_sweep_ends(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(TINY)
    assert exportwatch("sweep", "m.yml", "-o", "r.json", "-q", cwd=tmp_path).returncode == 0
    with (tmp_path / "r.jsonl").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again


def test_refusals__unknown_xfail_submodule_warns_with_the_closest_path(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(
        textwrap.dedent("""\
            version: 1
            models:
              - name: enc
                factory: exportwatch.examples.models:StackedEncoder
                inputs: {args: [{shape: [2, 8, 32]}]}
                targets: [export]
                expect:
                  xfail:
                    encoder.50: a typo
                    encoder.5: reads a tensor value
            """)
    )
    command = [sys.executable, "-m", "exportwatch", "sweep", "m.yml"]
    runs = run_side_by_side(  # two independent sweeps at once: the loud one and -q
        {"loud": [*command, "-o", "r.json"], "quiet": [*command, "-o", "q.json", "-q"]}, cwd=tmp_path
    )
    done = runs["loud"]
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: m.yml:9: model 'enc': expect.xfail names submodule 'encoder.50', which the model "
        "does not have (did you mean 'encoder.5'?)"
    ]
    # Once the sweep ends, after the job lines that would otherwise bury it.
    assert lines.index(warnings[0]) > max(i for i, line in enumerate(lines) if line.startswith("[1/1]"))
    quiet = runs["quiet"]
    assert quiet.returncode == 0, quiet.stderr
    assert [line for line in quiet.stderr.splitlines() if line.startswith("warning:")] == warnings  # -q too


# --- mistakes the manifest's files show: refused before torch or any process starts -----------------

#: Runs the CLI and says, at exit, whether this process imported torch or started a process.
CLI_WATCHED = """\
import sys
from exportwatch.cli.main import main
code = main(sys.argv[1:])
started = {"multiprocessing.popen_spawn_posix", "multiprocessing.popen_fork"} & set(sys.modules)
print(f"watch: torch imported={'torch' in sys.modules} process started={bool(started)}", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.quick  # nothing starts
def test_refusals__a_factory_typo_is_one_error_before_torch_or_any_process(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text("import torch\n\ndef tiny():\n    return torch.nn.Linear(4, 4)\n")
    (tmp_path / "bad.yml").write_text(
        "version: 1\nmodels:\n  - name: tiny\n    factory: models.py:tinny\n"
        "    inputs: {args: [{shape: [2, 4]}]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", CLI_WATCHED, "sweep", "bad.yml", "-o", "r.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert one_error_line(done) == (
        "error: bad.yml:4:14: models[0].factory: models.py has no attribute 'tinny' (did you mean 'tiny'?)"
    )
    assert (done.stdout + done.stderr).count("tinny") == 1
    assert "watch: torch imported=False process started=False" in done.stderr
    assert not (tmp_path / "r.json").exists()


# --- untrusted text in error lines; outputs that would clobber each other ------------------------

HOSTILE_NAME = "x\n  ::error::pwn\n##[error]bad \x1b]0;title\x07 \x1b[2J \u202e"


def _inert(text: str) -> None:
    assert "##[" not in text and "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())


def test_refusals__merge_errors_quote_hostile_shards_inertly(tmp_path: Path) -> None:
    from exportwatch.report import write_report
    from tests.factories import ok, report

    one, two = report(ok("a")), report(ok("b"))
    one.shard, two.shard = "1/2", "2/2"
    one.plan = two.plan = ["a/export", "b/export", f"{HOSTILE_NAME}/export"]  # in no shard
    write_report(one, tmp_path / "s1.json")
    write_report(two, tmp_path / "s2.json")
    done = exportwatch("merge", "s1.json", "s2.json", "-o", "m.json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "missing job: x" in done.stderr and "pwn" in done.stderr  # quoted, but inert
    _inert(done.stderr)


def test_refusals__a_schema_error_quoting_a_hostile_value_is_one_inert_line(tmp_path: Path) -> None:
    from exportwatch.report import write_report
    from tests.factories import ok, report

    write_report(report(ok("a")), tmp_path / "base.json")
    data = json.loads((tmp_path / "base.json").read_text())
    data["jobs"][0]["source"] = "::set-output name=x::y\n ::error::pwn\n##[error]bad \x1b]0;t\x07"
    (tmp_path / "head.json").write_text(json.dumps(data))
    done = exportwatch("diff", "base.json", "head.json", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "head.json: jobs[0].source" in done.stderr
    _inert(done.stderr)


def test_refusals__compare_refuses_a_base_output_that_is_the_head_report(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(TINY)
    done = exportwatch(
        "compare", "m.yml", "--base", "HEAD", "-o", "r.json", "--base-output", "r.json", cwd=tmp_path
    )
    assert done.returncode == 2
    assert one_error_line(done) == (
        "error: --base-output r.json: is the head report's path (-o): give it its own"
    )


@pytest.mark.quick  # nothing starts
def test_refusals__compare_refuses_a_factory_typo_before_any_git_work(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text("def tiny():\n    return None\n")
    (tmp_path / "bad.yml").write_text(
        "version: 1\nmodels:\n  - name: tiny\n    factory: models.py:tinny\n    inputs: {args: []}\n"
    )
    done = exportwatch(
        "compare", "bad.yml", "--base", "main", "-o", "r.json", cwd=tmp_path
    )  # not a repository
    assert done.returncode == 2, done.stderr
    assert one_error_line(done) == (
        "error: bad.yml:4:14: models[0].factory: models.py has no attribute 'tinny' (did you mean 'tiny'?)"
    )
