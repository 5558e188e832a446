"""`exportwatch sweep` as a user runs it: the bundled example manifest, exit codes, the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from exportwatch.report import load_report
from tests.conftest import REPO_ROOT
from tests.side_by_side import run_side_by_side

EXAMPLE = REPO_ROOT / "config" / "example.exportwatch.yml"


def exportwatch(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exportwatch", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def example_run(example_sweep):
    """The session's one sweep of the example manifest (tests/conftest.py), as (process, report path)."""
    return example_sweep.done, example_sweep.path


def test_cli_sweep__example_manifest_completes_with_exit_0(example_run):
    done, output = example_run
    assert done.returncode == 0, done.stderr
    assert output.exists()
    assert "stacked_encoder" in done.stdout and "report:" in done.stdout


def test_cli_sweep__example_report_matches_the_published_schema(example_run):
    _, output = example_run
    schema = json.loads((REPO_ROOT / "config" / "report.schema.json").read_text())
    jsonschema.validate(json.loads(output.read_text()), schema)


def test_cli_sweep__example_verdicts_are_the_documented_ones(example_run):
    _, output = example_run
    report = load_report(output)
    verdict = {(j.model, j.target): j.verdict.value for j in report.jobs}
    targets = ("export", "export-strict", "onnx", "onnx-legacy")
    expected = {
        "tiny_cnn": ("ok", "ok", "ok", "ok"),
        # The legacy exporter cannot translate MultiheadAttention's fused inference path.
        "transformer_block": ("ok", "ok", "ok", "fail"),
        # Legacy bakes the data-dependent branch in silently: no input set takes the other branch.
        "stacked_encoder": ("fail", "fail", "fail", "ok"),
        "topk_router": ("fail", "fail", "fail", "ok"),
        # Strict mode traces numpy; ONNX falls back to strict capture; legacy bakes a constant
        # that the second input set exposes.
        "numpy_postprocess": ("fail", "ok", "ok", "mismatch"),
        "custom_op": ("fail", "fail", "fail", "fail"),
        "custom_input": ("fail", "fail", "fail", "fail"),
    }
    assert verdict == {
        (model, target): v for model, row in expected.items() for target, v in zip(targets, row, strict=True)
    }
    encoder = report.job("stacked_encoder", "export", "cpu")
    assert encoder.submodule("encoder.5").verdict.value == "fail"
    assert report.job("custom_op", "export", "cpu").xfail
    assert report.environment.torch and report.tool_version


def test_cli_sweep__prints_one_line_per_job_when_not_on_a_terminal(example_run):
    done, _ = example_run
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 28
    assert any("stacked_encoder · export · cpu: FAIL" in line for line in lines)


FACTORIES = (
    "import torch\n"
    "def broken():\n    raise ValueError('no weights configured')\n"
    "def fine():\n    return torch.nn.Linear(4, 4)\n"
)
FACTORY_MANIFEST = (
    "version: 1\nmodels:\n"
    "  - name: broken\n    factory: m.py:broken\n    inputs: {args: [{shape: [2, 4]}]}\n"
    "  - name: fine\n    factory: m.py:fine\n    inputs: {args: [{shape: [2, 4]}]}\n"
)
#: ``exportwatch -v sweep`` and ``exportwatch sweep`` of one strict-mode export.
STRICT_MODE = ["sweep", str(EXAMPLE), "--model", "stacked_encoder", "--target", "export-strict",
               "--workers", "1", "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """This module's own small sweeps, each with other options than the session's example sweep,
    run side by side (tests/side_by_side.py): name → (the finished process, its report path)."""
    folder = tmp_path_factory.mktemp("sweeps")
    (folder / "m.py").write_text(FACTORIES)
    (folder / "exportwatch.yml").write_text(FACTORY_MANIFEST)
    example = ["sweep", str(EXAMPLE), "--target", "export", "--strict", "-q"]
    args = {
        "strict failing": [*example, "--model", "topk_router"],
        "strict xfail": [*example, "--model", "custom_op"],
        "factory error": ["sweep", str(folder / "exportwatch.yml"), "--workers", "1"],
        "strict mode quiet": STRICT_MODE,
        "strict mode verbose": ["-v", *STRICT_MODE],
    }
    outputs = {name: folder / f"{name.replace(' ', '-')}.json" for name in args}
    done = run_side_by_side(
        {
            name: [sys.executable, "-m", "exportwatch", *a, "-o", str(outputs[name])]
            for name, a in args.items()
        }
    )
    return {name: (done[name], outputs[name]) for name in args}


def test_cli_sweep__strict_exits_1_when_a_model_fails(sweeps):
    done, _ = sweeps["strict failing"]
    assert done.returncode == 1, done.stderr


def test_cli_sweep__strict_ignores_xfail_models(sweeps):
    done, _ = sweeps["strict xfail"]
    assert done.returncode == 0, done.stderr


@pytest.mark.quick  # a config error: no worker starts
def test_cli_sweep__unknown_model_is_a_config_error_with_a_suggestion(tmp_path):
    done = exportwatch("sweep", str(EXAMPLE), "-o", str(tmp_path / "r.json"), "--model", "tiny_cn")
    assert done.returncode == 2
    assert "no model named 'tiny_cn'" in done.stderr and "did you mean 'tiny_cnn'" in done.stderr


@pytest.mark.quick  # a config error: no worker starts
def test_cli_sweep__bad_manifest_exits_2_naming_file_line_and_field(tmp_path):
    manifest = tmp_path / "bad.yml"
    manifest.write_text("version: 1\nmodels:\n  - name: a\n    factory: x:y\n    devcie: cpu\n")
    done = exportwatch("sweep", str(manifest), "-o", str(tmp_path / "r.json"))
    assert done.returncode == 2
    assert "bad.yml:5:" in done.stderr and "devcie" in done.stderr and "device" in done.stderr


def test_cli_sweep__factory_error_found_in_a_worker_exits_2_but_keeps_other_results(sweeps):
    done, output = sweeps["factory error"]
    assert done.returncode == 2
    assert "exportwatch.yml:4:" in done.stderr and "no weights configured" in done.stderr
    # Said once, after the table; the job's progress line only points at it.
    assert (done.stdout + done.stderr).count("no weights configured") == 1, done.stdout + done.stderr
    assert "broken · export · cpu: skipped (configuration error, below)" in done.stderr
    report = load_report(output)
    assert report.job("fine", "export", "cpu").verdict.value == "ok"
    assert report.job("broken", "export", "cpu").verdict.value == "skipped"


def test_cli_sweep__strict_mode_graph_dumps_stay_out_of_the_log_unless_verbose(sweeps):
    quiet, _ = sweeps["strict mode quiet"]
    assert quiet.returncode == 0, quiet.stderr
    assert "def forward(self" not in quiet.stdout + quiet.stderr
    loud, _ = sweeps["strict mode verbose"]
    assert loud.returncode == 0, loud.stderr
    assert "def forward(self" in loud.stdout + loud.stderr  # dynamo's partial graph, shown on -v


def test_cli_sweep__each_submodule_says_how_it_was_called(example_run):
    """The inputs every submodule saw (the HTML report shows them): shapes and dtypes."""
    _, path = example_run
    job = load_report(path).job("stacked_encoder", "export", "cpu")
    by_path = {s.path: s for s in job.submodules}
    assert by_path[""].inputs == ["(f32[2, 16])"]
    assert by_path["encoder.5"].inputs == ["(f32[2, 16])"]
    assert by_path["head"].inputs == ["(f32[2, 16])"]  # Linear(16, 1) gets the 16-wide features
