"""Process isolation with real worker processes: crashes, hangs and memory hogs become results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exportwatch.manifest import load_manifest
from exportwatch.plan import Unit
from exportwatch.report import Verdict, load_report
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.protocol import JobFinished, News, TargetPhase, TargetStarted
from exportwatch.sweep.runner import SweepRequest, run_sweep
from exportwatch.sweep.settings import SweepSettings
from exportwatch.sweep.workers import WorkerPool
from tests.conftest import FIXTURES, REPO_ROOT

HOSTILE_MANIFEST = """\
version: 1
defaults:
  targets: [export, export-strict]
  timeout: 120
models:
  - name: crashes
    factory: models/sweep_cases.py:Crashes
    inputs: {args: [{shape: [2, 4]}]}
  - name: crashes_eagerly
    factory: models/sweep_cases.py:CrashesEagerly
    inputs: {args: [{shape: [2, 4]}]}
  - name: hangs
    factory: models/sweep_cases.py:Hangs
    targets: [export]
    timeout: 6
    inputs: {args: [{shape: [2, 4]}]}
  - name: hogs_memory
    factory: models/sweep_cases.py:HogsMemory
    targets: [export]
    inputs: {args: [{shape: [2, 4]}]}
  - name: fine
    factory: models/sweep_cases.py:Fine
    inputs: {args: [{shape: [2, 4]}]}
  - name: on_gpu
    factory: models/sweep_cases.py:Fine
    device: cuda
    targets: [export]
    inputs: {args: [{shape: [2, 4]}]}
"""


def make_project(tmp_path: Path, manifest_text: str) -> Path:
    """A user repository in miniature: the fixture models and a manifest."""
    (tmp_path / "models").mkdir()
    shutil.copy(FIXTURES / "models" / "sweep_cases.py", tmp_path / "models" / "sweep_cases.py")
    manifest = tmp_path / "exportwatch.yml"
    manifest.write_text(manifest_text)
    return manifest


@pytest.fixture(scope="module")
def hostile_sweep(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile")
    manifest = make_project(tmp_path, HOSTILE_MANIFEST)
    output = tmp_path / "report.json"
    request = SweepRequest.of(
        load_manifest(manifest),
        output=output,
        options=SweepOptions(workers=2, max_memory_mb=1024, allow_skip=True),  # a CUDA model is in it
    )
    result = run_sweep(request)
    return result, output


def job(result, model, target="export"):
    found = result.report.job(model, target, "cuda" if model == "on_gpu" else "cpu")
    assert found is not None, f"no result for {model}/{target}"
    return found


def test_workers__abort_during_export_is_a_crash_naming_the_signal(hostile_sweep):
    result, _ = hostile_sweep
    crashed = job(result, "crashes", "export")
    assert crashed.verdict == Verdict.CRASH
    assert "SIGABRT" in crashed.reason
    # The other target of the same model was re-queued and ran on a fresh worker: strict mode
    # refuses to trace os.abort, so it gets a real verdict instead of sharing the crash.
    strict = job(result, "crashes", "export-strict")
    assert strict.verdict == Verdict.FAIL
    assert strict.root.exception_type.endswith("Unsupported")


def test_workers__abort_while_capturing_inputs_fails_every_target_of_that_model(hostile_sweep):
    result, _ = hostile_sweep
    for target in ("export", "export-strict"):
        crashed = job(result, "crashes_eagerly", target)
        assert crashed.verdict == Verdict.CRASH
        assert "while capturing its inputs" in crashed.reason


def test_workers__a_hang_becomes_a_timeout(hostile_sweep):
    result, _ = hostile_sweep
    hung = job(result, "hangs")
    assert hung.verdict == Verdict.TIMEOUT
    assert "6 s" in hung.reason


def test_workers__a_memory_hog_becomes_oom(hostile_sweep):
    result, _ = hostile_sweep
    hog = job(result, "hogs_memory")
    assert hog.verdict == Verdict.OOM
    assert "--max-memory" in hog.reason


def test_workers__the_rest_of_the_sweep_is_intact(hostile_sweep):
    result, _ = hostile_sweep
    for target in ("export", "export-strict"):
        fine = job(result, "fine", target)
        assert fine.verdict == Verdict.OK
        assert fine.peak_rss_mb and fine.peak_rss_mb > 50
    assert len(result.report.jobs) == 9  # every job of the manifest has a result


def test_workers__cuda_without_a_gpu_is_skipped_not_an_error(hostile_sweep):
    result, _ = hostile_sweep
    gpu = job(result, "on_gpu")
    assert gpu.verdict == Verdict.SKIPPED
    assert gpu.reason == "CUDA is not available"


def test_workers__every_finished_job_is_in_the_jsonl_log(hostile_sweep):
    result, output = hostile_sweep
    log = load_report(result.partial_log)
    assert not log.complete
    assert {j.key for j in log.jobs} == {j.key for j in result.report.jobs}
    assert json.loads(output.read_text())["complete"] is True


def test_workers__killing_the_sweep_leaves_a_readable_partial_report(tmp_path):
    manifest = make_project(
        tmp_path,
        textwrap.dedent("""\
        version: 1
        models:
          - name: fine
            factory: models/sweep_cases.py:Fine
            inputs: {args: [{shape: [2, 4]}]}
          - name: hangs
            factory: models/sweep_cases.py:Hangs
            timeout: 600
            inputs: {args: [{shape: [2, 4]}]}
        """),
    )
    output = tmp_path / "report.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exportwatch",
            "sweep",
            str(manifest),
            "-o",
            str(output),
            "--workers",
            "1",
            "-q",
        ],
        start_new_session=True,
    )
    log = output.with_name("report.jsonl")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if log.exists() and '"job"' in log.read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the sweep wrote no job to its log in 120 s")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not output.exists()
    partial = load_report(log)
    assert partial.complete is False
    assert [(j.model, j.verdict) for j in partial.jobs] == [("fine", Verdict.OK)]


def test_workers__a_worker_that_cannot_start_stops_the_sweep_with_its_last_words(tmp_path):
    """A broken torch install must not respawn workers forever."""
    broken = tmp_path / "site" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file')\n"
    )
    fine = "  - name: fine\n    factory: models/sweep_cases.py:Fine\n    inputs: {args: [{shape: [2, 4]}]}\n"
    manifest = make_project(tmp_path, "version: 1\nmodels:\n" + fine)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{REPO_ROOT}")
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(tmp_path / "r.json"),
         "--workers", "1", "-q"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 3
    assert "the sweep's fork server died while starting" in done.stderr
    assert "libcudart.so.12" in done.stderr


def test_workers__infrastructure_results_carry_how_long_they_ran(hostile_sweep):
    result, _ = hostile_sweep
    assert job(result, "hangs").duration_s >= 6


def test_cli__refuses_a_jsonl_report_path(tmp_path):
    manifest = make_project(tmp_path, "version: 1\nmodels: []\n")
    done = subprocess.run([sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", "x.jsonl"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "JSON report" in done.stderr


def test_workers__a_file_that_starts_with_its_imports_has_its_libraries_preloaded(tmp_path):
    """The normal case keeps its speed: ``import torch; from transformers import ...`` at the top
    of the factory's file, and the fork server imports transformers once, for every fork."""
    (tmp_path / "net.py").write_text(
        "import torch\nfrom transformers import GPT2Config\nimport idna\n\n\n"
        "def build():\n    assert GPT2Config is not None\n    return torch.nn.Linear(4, 4)\n"
    )
    (tmp_path / "m.yml").write_text(
        "version: 1\nmodels:\n  - {name: net, factory: 'net.py:build', targets: [export],"
        " inputs: {args: [{shape: [2, 4]}]}}\n"
    )
    manifest = load_manifest(tmp_path / "m.yml")
    settings = SweepSettings(manifest_root=tmp_path, repo_root=tmp_path)
    news: list[News] = []
    pool = WorkerPool(size=1, settings=settings, on_event=news.append, persistent=True)
    try:
        pool.run([Unit(spec=manifest.models[0], targets=["export"], device=None, order=0)])
        assert pool.preloaded == ["from transformers import GPT2Config", "import idna"]
    finally:
        pool.close()
    # The protocol's messages reach the caller as they are: typed, with the model's name; and
    # each phase of the running target as a TargetPhase, for the progress line.
    said = [type(n.event) for n in news if not isinstance(n.event, TargetPhase)]
    assert said == [TargetStarted, JobFinished]
    phases = [(n.event.target, n.event.phase) for n in news if isinstance(n.event, TargetPhase)]
    assert ("export", "export") in phases and ("export", "verification") in phases
    assert {n.model for n in news} == {"net"}
    assert [n.event.job.verdict for n in news if isinstance(n.event, JobFinished)] == [Verdict.OK]


PARENT_PROBE = """
import sys
from pathlib import Path
from exportwatch.manifest import load_manifest
from exportwatch.sweep.options import SweepOptions
from exportwatch.sweep.runner import SweepRequest, run_sweep

request = SweepRequest.of(
    load_manifest(Path(sys.argv[1])), output=Path(sys.argv[2]), options=SweepOptions(workers=1)
)
jobs = run_sweep(request).report.jobs
print([(job.model, job.verdict.value) for job in jobs])
print(sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "exportwatch.worker"))))
"""


def test_workers__the_sweeps_parent_loads_neither_the_worker_package_nor_torch(tmp_path):
    """The parent starts the fork server by module name: a real sweep, and the parent's modules."""
    manifest = make_project(
        tmp_path,
        "version: 1\nmodels:\n  - {name: fine, factory: 'models/sweep_cases.py:Fine',"
        " inputs: {args: [{shape: [2, 4]}]}}\n",
    )
    done = subprocess.run(
        [sys.executable, "-c", PARENT_PROBE, str(manifest), str(tmp_path / "r.json")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    swept, loaded = done.stdout.splitlines()[-2:]
    assert swept == "[('fine', 'ok')]"  # the worker ran, in the processes the parent started
    assert loaded == "[]"
