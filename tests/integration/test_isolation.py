"""Isolation that holds: a fresh process per model, the whole process tree policed, clocks that
measure the model, honest endings. Real sweeps, real processes, checked in the process table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from exportwatch.manifest import load_manifest
from exportwatch.report import Report, Verdict, load_report
from exportwatch.sweep import processes
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.runner import SweepRequest, run_sweep
from tests.integration.test_workers import make_project

if not sys.platform.startswith("linux"):
    pytest.skip("process-table checks read /proc", allow_module_level=True)

SHAPE = "inputs: {args: [{shape: [2, 4]}]}"


def sweep(tmp_path: Path, models: str, **options) -> object:
    manifest = make_project(
        tmp_path, "version: 1\nmodels:\n" + textwrap.indent(textwrap.dedent(models), "  ")
    )
    request = SweepRequest.of(
        load_manifest(manifest), output=tmp_path / "report.json", options=SweepOptions(**options)
    )
    return run_sweep(request).report


def alive(pid: int) -> bool:
    """Running (a zombie whose parent is gone is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until_gone(pids: list[int], seconds: float = 15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def in_session(sid: int) -> list[int]:
    """Every live process of a session (the sweep started with ``start_new_session``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def start_sweep(
    tmp_path: Path, models: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, Path]:
    manifest = make_project(
        tmp_path, "version: 1\nmodels:\n" + textwrap.indent(textwrap.dedent(models), "  ")
    )
    output = tmp_path / "report.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(output), "-q", *args],
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, output


def wait_for_file(path: Path, process: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path.name} never appeared: {process.communicate()}")
        time.sleep(0.1)


# --- state does not leak between models ---------------------------------------------------------


@dataclass(frozen=True)
class OneAtATime:
    """One sweep with one worker of the models whose tests check what a model's process leaves
    behind; what is left is read right after the sweep (pids are reused on a busy machine)."""

    report: Report
    cwd_before: str
    cwd_after: str
    forked: dict[str, list[int]]  # model → the pids its forward forked
    left: dict[str, list[int]]  # model → those still alive 5 s after the sweep


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory) -> OneAtATime:
    """One process at a time, so the old reused worker would have run all of these in turn."""
    tmp_path = tmp_path_factory.mktemp("one-at-a-time")
    pid_files = {"forks": tmp_path / "forks-pids", "leaves": tmp_path / "leaves-pids"}
    cwd = os.getcwd()
    report = sweep(
        tmp_path,
        f"""\
        - name: a_sets_dtype
          factory: models/sweep_cases.py:sets_default_dtype
          {SHAPE}
        - name: b_changes_directory
          factory: models/sweep_cases.py:ChangesDirectory
          {SHAPE}
        - name: c_healthy
          factory: models/sweep_cases.py:ExpectsCleanProcess
          kwargs: {{cwd: {cwd!r}}}
          {SHAPE}
        - name: d_healthy
          factory: models/sweep_cases.py:Fine
          {SHAPE}
        - name: leaks
          factory: models/sweep_cases.py:LeaksMemory
          {SHAPE}
        - name: small
          factory: models/sweep_cases.py:Fine
          {SHAPE}
        - name: forks
          factory: models/sweep_cases.py:ForksSleepers
          kwargs: {{pid_file: {str(pid_files["forks"])!r}}}
          {SHAPE}
        - name: leaves
          factory: models/sweep_cases.py:LeavesItsSession
          kwargs: {{pid_file: {str(pid_files["leaves"])!r}}}
          {SHAPE}
        """,
        workers=1,
    )
    cwd_after = os.getcwd()
    forked = {name: [int(p) for p in file.read_text().split()] for name, file in pid_files.items()}
    left = {name: wait_until_gone(pids, 5) for name, pids in forked.items()}
    return OneAtATime(report=report, cwd_before=cwd, cwd_after=cwd_after, forked=forked, left=left)


def test_isolation__a_model_changing_globals_does_not_reach_the_models_after_it(one_at_a_time):
    verdicts = {j.model: j.verdict for j in one_at_a_time.report.jobs}
    assert {"a_sets_dtype", "b_changes_directory", "c_healthy", "d_healthy"} <= set(verdicts)
    # a_sets_dtype fails on its own account (float64 weights, float32 inputs); the rest stay ok.
    assert {m: verdicts[m] for m in ("b_changes_directory", "c_healthy", "d_healthy")} == {
        m: Verdict.OK for m in ("b_changes_directory", "c_healthy", "d_healthy")
    }
    assert one_at_a_time.cwd_after == one_at_a_time.cwd_before


def test_isolation__peak_memory_is_the_jobs_own(one_at_a_time):
    report = one_at_a_time.report
    leaks, small = report.job("leaks", "export", "cpu"), report.job("small", "export", "cpu")
    assert leaks.peak_rss_mb - small.peak_rss_mb > 400  # the 600 MiB left behind is not counted again


# --- the whole tree -------------------------------------------------------------------------------


def test_isolation__processes_a_model_forks_do_not_outlive_its_job(one_at_a_time):
    assert one_at_a_time.report.job("forks", "export", "cpu").verdict == Verdict.OK
    assert len(one_at_a_time.forked["forks"]) >= 3
    assert one_at_a_time.left["forks"] == []


def test_isolation__memory_is_measured_over_the_whole_tree(tmp_path):
    pid_file = tmp_path / "pids"
    report = sweep(
        tmp_path,
        f"""\
        - name: forked_hog
          factory: models/sweep_cases.py:ForksMemoryHog
          kwargs: {{pid_file: {str(pid_file)!r}}}
          {SHAPE}
        """,
        workers=1,
        max_memory_mb=1024,
    )
    job = report.jobs[0]
    assert job.verdict == Verdict.OOM, job.reason
    assert "--max-memory" in job.reason and "while exporting the root module" in job.reason
    assert wait_until_gone([int(p) for p in pid_file.read_text().split()], 5) == []


def test_isolation__a_normal_sweep_leaves_no_process_behind(tmp_path):
    process, _ = start_sweep(tmp_path, f"- name: fine\n  factory: models/sweep_cases.py:Fine\n  {SHAPE}\n")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert wait_until_gone(in_session(process.pid), 5) == []


@pytest.mark.fuzz  # the fuzz leg: the `model` case of the test below checks the same, within 2 s
def test_isolation__kill_9_of_the_sweep_ends_every_process_of_it(tmp_path):
    marker = tmp_path / "hanging"
    process, _ = start_sweep(
        tmp_path,
        f"""\
        - name: hangs
          factory: models/sweep_cases.py:HangsIgnoringSigterm
          kwargs: {{marker: {str(marker)!r}}}
          timeout: 600
          {SHAPE}
        """,
    )
    wait_for_file(marker, process)
    tree = processes.descendants(process.pid)
    assert int(marker.read_text()) in tree  # the model's process, under the sweep
    os.kill(process.pid, signal.SIGKILL)  # the sweep alone, not its group
    process.wait()
    assert wait_until_gone(tree) == []
    assert wait_until_gone(in_session(process.pid)) == []


#: A library whose import (preloaded by the fork server, warming up) says where it is and hangs.
HANGS_AT_IMPORT = """\
import os, pathlib, time
pathlib.Path(os.environ["HANGS_AT_IMPORT_MARKER"]).write_text(str(os.getpid()))
time.sleep(600)
"""


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _spawned_child(pid: int) -> int | None:
    for child in processes.children(pid):
        line = _command_line(child)
        if "spawn_main" in line and "resource_tracker" not in line:
            return child
    return None


def _loading_torch(pid: int | None) -> bool:
    try:
        return pid is not None and "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_isolation__kill_9_of_the_sweep_while_a_spawned_model_warms_up_leaves_nothing(tmp_path):
    """A spawned model's process imports torch before its pipe is watched: the kernel ends it."""
    process, _ = start_sweep(
        tmp_path,
        f"- name: fine\n  factory: models/sweep_cases.py:Fine\n  {SHAPE}\n",
        env={"EXPORTWATCH_START_METHOD": "spawn"},
    )
    deadline = time.monotonic() + 60
    while not _loading_torch(_spawned_child(process.pid)) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    assert _loading_torch(_spawned_child(process.pid))  # its warm-up: importing torch takes seconds
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    left = wait_until_gone(in_session(process.pid), 2.0)
    assert left == [], [_command_line(pid) for pid in left]


@pytest.mark.parametrize("phase", ["warm-up", "model"])
def test_isolation__kill_9_of_the_sweep_leaves_nothing_within_two_seconds(tmp_path, phase):
    """The fork server reads no pipe while it warms up (torch, the targets, the preloads): the
    kernel must end it (and, with it gone, the resource tracker) when the sweep is killed."""
    marker = tmp_path / "marker"
    if phase == "warm-up":
        site = tmp_path / "site-packages"
        (site / "hangs_at_import").mkdir(parents=True)
        (site / "hangs_at_import" / "__init__.py").write_text(HANGS_AT_IMPORT)
        (tmp_path / "hangs.py").write_text(
            "import hangs_at_import\nimport torch\n\ndef build():\n    return torch.nn.Linear(4, 4)\n"
        )
        models = f"- name: hangs\n  factory: hangs.py:build\n  {SHAPE}\n"
        env = {"PYTHONPATH": str(site), "HANGS_AT_IMPORT_MARKER": str(marker)}
    else:
        models = f"""\
        - name: hangs
          factory: models/sweep_cases.py:HangsIgnoringSigterm
          kwargs: {{marker: {str(marker)!r}}}
          timeout: 600
          {SHAPE}
        """
        env = {}
    process, _ = start_sweep(tmp_path, models, env=env)
    wait_for_file(marker, process)
    deadline = time.monotonic() + 5
    while not marker.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    tree = processes.descendants(process.pid)
    assert int(marker.read_text()) in tree  # the fork server (warming up) or the model's process
    assert any("resource_tracker" in _command_line(pid) for pid in tree)
    os.kill(process.pid, signal.SIGKILL)  # the sweep alone, not its group
    process.wait()
    left = wait_until_gone(in_session(process.pid), 2.0)
    assert left == [], [_command_line(pid) for pid in left]


# --- interrupts -----------------------------------------------------------------------------------

HANGING_AFTER_ONE_JOB = """\
- name: fine
  factory: models/sweep_cases.py:Fine
  {shape}
- name: hangs
  factory: models/sweep_cases.py:HangsIgnoringSigterm
  kwargs: {{marker: {marker!r}}}
  timeout: 600
  {shape}
"""


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [
        (signal.SIGINT, True),  # Ctrl-C: a terminal signals the whole foreground group
        # `kill PID`, or a runner stopping the sweep's process (in the fuzz leg: the diff test
        # below sends it too, and reads the partial report it leaves)
        pytest.param(signal.SIGTERM, False, marks=pytest.mark.fuzz),
        (signal.SIGTERM, True),  # a CI step's timeout (coreutils `timeout`) signals the group
    ],
    ids=["ctrl-c", "sigterm", "sigterm-to-the-group"],
)
def test_isolation__an_interrupt_writes_a_partial_report_with_the_running_job_interrupted(
    tmp_path, signum, to_group
):
    marker = tmp_path / "hanging"
    process, output = start_sweep(
        tmp_path, HANGING_AFTER_ONE_JOB.format(marker=str(marker), shape=SHAPE), "--workers", "1"
    )
    wait_for_file(marker, process)
    if to_group:
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)
    started = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr  # the shell's convention: 130 Ctrl-C, 143 SIGTERM
    assert time.monotonic() - started < 10
    assert "1 of 2 job(s) finished, 1 interrupted; partial report in" in stderr
    for written in (output, output.with_name("report.jsonl")):  # the report, and its log
        partial = load_report(written)
        assert partial.complete is False, written
        verdicts = [(j.model, j.verdict) for j in partial.jobs]
        assert verdicts == [("fine", Verdict.OK), ("hangs", Verdict.INTERRUPTED)], written
    hangs = partial.job("hangs", "export", "cpu")
    assert hangs.reason.startswith("the sweep was interrupted"), hangs.reason
    assert "while exporting" in hangs.reason
    assert wait_until_gone(in_session(process.pid), 5) == []


def test_isolation__diff_of_an_interrupted_sweep_says_the_report_is_partial_and_fails_the_gate(tmp_path):
    marker = tmp_path / "hanging"
    process, output = start_sweep(
        tmp_path, HANGING_AFTER_ONE_JOB.format(marker=str(marker), shape=SHAPE), "--workers", "1"
    )
    wait_for_file(marker, process)
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    for view in ("text", "markdown"):
        done = subprocess.run(
            [sys.executable, "-m", "exportwatch", "diff", str(output), "--format", view, "--color", "never"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, (view, done.stdout, done.stderr)  # interrupted is never a pass
        assert "The head's sweep was interrupted: 1 export not checked (a partial report)" in done.stdout
        assert "head report is partial" in done.stdout, (view, done.stdout)
        assert "interrupted" in done.stdout.split("head report is partial")[0], (view, done.stdout)


def test_isolation__a_second_ctrl_c_ends_everything_at_once(tmp_path):
    marker = tmp_path / "hanging"
    process, _ = start_sweep(tmp_path, HANGING_AFTER_ONE_JOB.format(marker=str(marker), shape=SHAPE))
    wait_for_file(marker, process)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    assert wait_until_gone(in_session(process.pid), 5) == []


# --- clocks that measure the model ----------------------------------------------------------------


def test_isolation__a_short_timeout_passes_a_tiny_model_under_two_workers(tmp_path):
    models = "".join(
        f"- name: tiny_{i}\n  factory: models/sweep_cases.py:Fine\n  targets: [export, export-strict]\n"
        f"  timeout: 3\n  {SHAPE}\n"
        for i in range(4)
    )
    report = sweep(tmp_path, models, workers=2)
    assert {j.verdict for j in report.jobs} == {Verdict.OK}, [j.reason for j in report.jobs]
    assert len(report.jobs) == 8


def test_isolation__a_timeout_names_the_phase_that_ran_out(tmp_path):
    report = sweep(
        tmp_path,
        f"""\
        - name: slow_factory
          factory: models/sweep_cases.py:hangs_while_building
          timeout: 3
          {SHAPE}
        - name: slow_export
          factory: models/sweep_cases.py:Hangs
          timeout: 3
          {SHAPE}
        """,
        workers=2,
    )
    building = report.job("slow_factory", "export", "cpu")
    exporting = report.job("slow_export", "export", "cpu")
    assert building.verdict == exporting.verdict == Verdict.TIMEOUT
    assert "after 3 s (per-job timeout) while building the model" in building.reason
    assert "while exporting the root module" in exporting.reason


# --- honest endings -------------------------------------------------------------------------------


def test_isolation__model_code_ending_the_program_is_a_prompt_crash_saying_so(tmp_path):
    report = sweep(
        tmp_path,
        f"""\
        - name: sys_exit
          factory: models/sweep_cases.py:CallsSysExit
          timeout: 120
          {SHAPE}
        - name: os_exit
          factory: models/sweep_cases.py:CallsOsExit
          timeout: 120
          {SHAPE}
        - name: interrupt
          factory: models/sweep_cases.py:RaisesKeyboardInterrupt
          timeout: 120
          {SHAPE}
        """,
        workers=2,
    )
    by_model = {j.model: j for j in report.jobs}
    sys_exit = by_model["sys_exit"]
    assert sys_exit.verdict == Verdict.CRASH
    assert sys_exit.reason == "model code called sys.exit(0) in `blocks.1.forward`"
    assert sys_exit.root.user_frame is not None and sys_exit.root.user_frame.path.endswith("sweep_cases.py")
    assert "sys.exit(0)" in sys_exit.root.user_frame.source
    os_exit = by_model["os_exit"]
    assert os_exit.verdict == Verdict.CRASH
    assert os_exit.reason.startswith("model code called os._exit(3) while exporting the root module")
    assert "sweep_cases.py" in os_exit.reason
    interrupt = by_model["interrupt"]
    assert interrupt.verdict == Verdict.CRASH
    assert interrupt.reason.startswith(
        "model code raised KeyboardInterrupt in `RaisesKeyboardInterrupt.forward`"
    )
    for job in by_model.values():
        assert job.duration_s < 5, (job.model, job.duration_s)  # no interpreter teardown, no timeout


@pytest.fixture(scope="module")
def spawned(tmp_path_factory) -> tuple[Report, list[int], list[int]]:
    """One sweep under the spawn start method (the fallback where fork is unsafe), 2 workers: the
    report, the pids ``leaves`` forked, and those still alive 5 s after the sweep."""
    tmp_path = tmp_path_factory.mktemp("spawned")
    pid_file = tmp_path / "pids"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("EXPORTWATCH_START_METHOD", "spawn")
        report = sweep(
            tmp_path,
            f"""\
            - name: fine
              factory: models/sweep_cases.py:Fine
              {SHAPE}
            - name: sys_exit
              factory: models/sweep_cases.py:CallsSysExit
              {SHAPE}
            - name: leaves
              factory: models/sweep_cases.py:LeavesItsSession
              kwargs: {{pid_file: {str(pid_file)!r}}}
              {SHAPE}
            """,
            workers=2,
        )
    forked = [int(p) for p in pid_file.read_text().split()]
    return report, forked, wait_until_gone(forked, 5)


def test_isolation__spawn_fallback_gives_the_same_verdicts(spawned):
    report, _, _ = spawned
    assert report.job("fine", "export", "cpu").verdict == Verdict.OK
    assert (
        report.job("sys_exit", "export", "cpu").reason
        == "model code called sys.exit(0) in `blocks.1.forward`"
    )


# --- found by review: groups left, a fork server killed, libraries that crash at import ---------


def test_isolation__a_ci_timeout_signalling_the_sweeps_group_leaves_nothing(tmp_path):
    """coreutils ``timeout`` (a CI step's limit) sends SIGTERM to the whole group: the fork
    server dies too, and a grandchild that left the model's group must still be ended."""
    pid_file = tmp_path / "pids"
    process, _ = start_sweep(
        tmp_path,
        f"""\
        - name: leaves
          factory: models/sweep_cases.py:LeavesItsSession
          kwargs: {{pid_file: {str(pid_file)!r}, hang: true}}
          timeout: 600
          {SHAPE}
        """,
    )
    wait_for_file(pid_file, process)
    os.killpg(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    assert wait_until_gone([int(p) for p in pid_file.read_text().split()]) == []
    assert wait_until_gone(in_session(process.pid)) == []


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_isolation__a_process_that_left_the_group_is_ended_with_its_model(one_at_a_time, spawned, method):
    if method == "fork":
        report, left = one_at_a_time.report, one_at_a_time.left["leaves"]
    else:
        report, _, left = spawned
    assert report.job("leaves", "export", "cpu").verdict == Verdict.OK
    assert left == []


#: A library whose first import ever aborts the process (as a compiled extension built for
#: another torch may, where it is first loaded): the fork server preloading it dies.
ABORTS_THE_FIRST_TIME = """\
import os, pathlib
marker = pathlib.Path(__file__).with_name("imported-once")
if not marker.exists():
    marker.touch()
    os.abort()
"""


def test_isolation__a_library_that_kills_the_fork_server_at_import_is_left_to_the_models_processes(
    tmp_path, monkeypatch
):
    site = tmp_path / "site-packages"
    (site / "crashing_lib").mkdir(parents=True)
    (site / "crashing_lib" / "__init__.py").write_text(ABORTS_THE_FIRST_TIME)
    monkeypatch.syspath_prepend(str(site))
    events: list[str] = []
    manifest = make_project(
        tmp_path,
        "version: 1\nmodels:\n"
        f"  - name: first\n    factory: needs.py:build\n    {SHAPE}\n"
        f"  - name: second\n    factory: needs.py:build\n    {SHAPE}\n",
    )
    (tmp_path / "needs.py").write_text(
        "import crashing_lib\nimport torch\n\ndef build():\n    return torch.nn.Linear(4, 4)\n"
    )
    from exportwatch.sweep.progress import Progress

    class Recording(Progress):
        def message(self, text: str) -> None:
            events.append(text)

    request = SweepRequest.of(
        load_manifest(manifest), output=tmp_path / "r.json", options=SweepOptions(workers=1)
    )
    report = run_sweep(request, progress=Recording(total=2, quiet=True)).report
    assert [report.job(m, "export", "cpu").verdict for m in ("first", "second")] == [Verdict.OK] * 2
    assert any(
        "preloading `import crashing_lib` killed the fork server (signal SIGABRT)" in e for e in events
    )
