"""The ``executorch`` target's data without executorch installed: the manifest field, the
report's coverage fields (old reports still load), the coverage phrase in every renderer, the
shelf that hands one capture to every later reader, the version pairing, and the usage error a
sweep gives when the extra is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from exportwatch.manifest import ConfigError, load_manifest
from exportwatch.plan import execution_order
from exportwatch.render.common import coverage_phrase
from exportwatch.render.html import render_html
from exportwatch.render.markdown import tree_lines
from exportwatch.render.tree_view import build_tree
from exportwatch.report import Delegation, ReportError, load_report, write_report
from exportwatch.report.validate import validate_report
from exportwatch.targets.base import Call, SharedTrace, TraceShelf
from tests.conftest import REPO_ROOT
from tests.factories import job, report, sub

PARTIAL = Delegation(
    backend="xnnpack",
    delegated_nodes=3,
    compute_nodes=4,
    subgraphs=2,
    not_delegated={"aten.cumsum": 1},
)


def _manifest(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "exportwatch.yml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            models:
              - name: m
                factory: models.py:Net
                inputs: {args: [{shape: [2, 8]}]}
                targets: [export, executorch]
            """
        )
        + extra,
        encoding="utf-8",
    )
    return path


def test_manifest__executorch_backend_defaults_to_xnnpack_and_takes_portable(tmp_path):
    assert load_manifest(_manifest(tmp_path, "")).models[0].executorch_backend == "xnnpack"
    chosen = load_manifest(_manifest(tmp_path, "    executorch: {backend: portable}\n"))
    assert chosen.models[0].executorch_backend == "portable"
    assert "executorch" in chosen.models[0].targets


def test_manifest__an_unknown_executorch_backend_is_located(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_manifest(_manifest(tmp_path, "    executorch: {backend: xnpack}\n"))
    message = str(caught.value)
    assert "exportwatch.yml:7:27" in message
    assert "models[0].executorch.backend" in message
    assert "did you mean 'xnnpack'" in message


def test_manifest__an_unknown_executorch_key_is_located(tmp_path):
    with pytest.raises(ConfigError, match=r"models\[0\]\.executorch\.partitioner: unknown key"):
        load_manifest(_manifest(tmp_path, "    executorch: {partitioner: xnnpack}\n"))


def test_report__coverage_round_trips_and_a_report_without_it_still_loads(tmp_path):
    with_coverage = report(job("m", "executorch", replace(sub(""), delegation=PARTIAL)))
    write_report(with_coverage, tmp_path / "new.json")
    assert load_report(tmp_path / "new.json").jobs[0].root.delegation == PARTIAL

    old = json.loads((tmp_path / "new.json").read_text(encoding="utf-8"))
    for submodule in old["jobs"][0]["submodules"]:
        submodule.pop("delegation")
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    assert load_report(tmp_path / "old.json").jobs[0].root.delegation is None


def test_report__the_strict_reader_refuses_a_negative_node_count(tmp_path):
    written = report(job("m", "executorch", replace(sub(""), delegation=PARTIAL)))
    write_report(written, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    data["jobs"][0]["submodules"][0]["delegation"]["delegated_nodes"] = -1
    with pytest.raises(ReportError, match="delegated_nodes"):
        validate_report(json.dumps(data), strict=True)


def test_coverage_phrase__says_backend_share_counts_and_the_left_operators():
    assert coverage_phrase(PARTIAL) == "XNNPACK 75% (3/4 nodes), not delegated: aten.cumsum ×1"
    assert (
        coverage_phrase(replace(PARTIAL, not_delegated={}, delegated_nodes=4)) == "XNNPACK 100% (4/4 nodes)"
    )
    many = replace(PARTIAL, not_delegated={f"aten.op{i}": 1 for i in range(5)})
    assert coverage_phrase(many).endswith("aten.op2 ×1, +2 more")
    portable = Delegation(backend="portable", compute_nodes=2, not_delegated={"aten.add": 2})
    assert coverage_phrase(portable) == "portable kernels, 2 nodes: aten.add ×2"
    assert coverage_phrase(None) is None


def test_render__markdown_tree_and_html_show_coverage_with_hostile_names_escaped():
    hostile = replace(PARTIAL, not_delegated={"<script>x</script>\n| evil": 1})
    failing_job = job(
        "m",
        "executorch",
        replace(sub("", "fail"), delegation=PARTIAL),
        replace(sub("head", "fail", origin=True), delegation=hostile),
    )
    lines = tree_lines(build_tree(failing_job))
    assert any("XNNPACK 75% (3/4 nodes), not delegated: aten.cumsum ×1" in line for line in lines)
    assert len(lines) == 2  # the newline in the operator name added no line

    html = render_html(report(failing_job))
    assert "XNNPACK 75% (3/4 nodes), not delegated: aten.cumsum ×1" in html
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


def test_shelf__hands_one_capture_to_every_reader_then_lets_it_go():
    module, call = object(), Call(args=())
    shelf = TraceShelf(lambda m: "unchanged", readers=2)
    trace = SharedTrace(program=object())
    shelf.keep(module, call, shelf.state(module), trace)
    assert shelf.take(module, call) is trace  # onnx
    assert shelf.take(module, call) is trace  # executorch: the same program
    assert shelf.take(module, call) is None  # let go after the last reader


def test_execution_order__executorch_after_export_and_after_onnx():
    assert execution_order(["executorch", "onnx", "export"]) == ["export", "onnx", "executorch"]
    assert execution_order(["executorch", "export-strict", "export"]) == [
        "export",
        "export-strict",
        "executorch",
    ]
    assert execution_order(["executorch", "onnx"]) == ["executorch", "onnx"]  # no export to wait for


@pytest.mark.slow  # compat imports torch (seconds on a loaded machine)
def test_compat__executorch_and_torch_pairing():
    compat = pytest.importorskip("exportwatch.compat")  # imports torch
    assert compat.executorch_pairing_problem("1.5.1", "2.13.0+cpu") is None
    assert compat.executorch_pairing_problem(None, "2.14.0") is None
    wrong = compat.executorch_pairing_problem("1.5.1", "2.14.1")
    assert wrong is not None and "needs torch 2.13.x" in wrong and "2.14.1" in wrong
    untested = compat.executorch_pairing_problem("0.9.0", "2.13.0")
    assert untested is not None and "not a tested release" in untested


@pytest.mark.slow  # a CLI subprocess
def test_sweep__asking_for_executorch_without_the_extra_is_a_usage_error_before_any_model(tmp_path):
    """Exit 2 naming the extra, and no model ran (its factory would have written a file)."""
    try:
        import executorch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("executorch is installed here: the usage error cannot happen")
    (tmp_path / "models.py").write_text(
        "import pathlib\nimport torch\n\n\n"
        "class Net(torch.nn.Linear):\n"
        "    def __init__(self):\n"
        "        pathlib.Path(__file__).with_name('ran').write_text('yes')\n"
        "        super().__init__(8, 8)\n",
        encoding="utf-8",
    )
    manifest = _manifest(tmp_path, "")
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'exportwatch[executorch]'" in done.stderr
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "r.json").exists()


def test_render__a_regressed_executorch_cell_shows_its_coverage_in_text_and_markdown():
    from exportwatch.diff import diff_reports, gate
    from exportwatch.render import RenderContext, render

    base = report(job("m", "executorch", replace(sub(""), delegation=PARTIAL)))
    left = replace(PARTIAL, delegated_nodes=1, not_delegated={"aten.cumsum": 1, "aten.native_layer_norm": 2})
    head = report(
        job(
            "m",
            "executorch",
            replace(sub("", "fail", category="executorch-operator-missing"), delegation=left),
            replace(
                sub("head", "fail", origin=True, category="executorch-operator-missing"), delegation=left
            ),
        )
    )
    changes = diff_reports(base, head)
    verdict = gate(changes, "regression")
    phrase = "XNNPACK 25% (1/4 nodes), not delegated: aten.native_layer_norm ×2, aten.cumsum ×1"
    left_sorted = replace(left, not_delegated={"aten.native_layer_norm": 2, "aten.cumsum": 1})
    assert coverage_phrase(left_sorted) == phrase
    text = render(changes, verdict, "text", context=RenderContext())
    assert "coverage: XNNPACK 25% (1/4 nodes)" in text
    markdown = render(changes, verdict, "markdown", context=RenderContext())
    assert "XNNPACK 25% (1/4 nodes)" in markdown
