"""The ``executorch`` target on real architectures: benchmarks/realarch.executorch.yml (a timm
CNN, a timm MobileNet, torchvision's ResNet and a transformers encoder, tiny and built from code).

One real sweep (``export`` and ``executorch``, a subprocess, 2 workers): every model gets a
verdict from each target and no job or submodule ends in ``error``, ``crash``, ``timeout`` or
``oom``; a root that lowered carries its coverage. Then ExecuTorch's own recipe on the same
models and inputs (``to_edge_transform_and_lower(torch.export.export(m, args, kwargs),
partitioner=[XnnpackPartitioner()])`` and ``get_delegation_info``): the coverage exportwatch
recorded must be ExecuTorch's count (``getitem`` left out on both sides), node for node and
operator for operator. Needs the executorch extra (marker ``executorch``: .ci/executorch-leg
runs it) and the zoo's libraries; numbers per model are in benchmarks/README.md
(``python benchmarks/bench_executorch.py``).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exportwatch.manifest import load_manifest
from tests.zoo.conftest import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
MANIFEST = BENCHMARKS / "realarch.executorch.yml"
# Lowering is most of the time: 1-5 min a model on a busy 2-core machine. This only stops a hang.
SWEEP_TIMEOUT_S = 1800

# Before transformers/timm/torchvision: lets torchvision import when its C++ extension cannot load.
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
importlib.import_module("realarch_models")
pytest.importorskip("executorch", reason="needs the executorch extra: pip install -e '.[executorch]'")
pytest.importorskip("transformers")
pytest.importorskip("timm")
pytest.importorskip("torchvision")
bench_executorch = importlib.import_module("bench_executorch")

pytestmark = [pytest.mark.zoo, pytest.mark.slow, pytest.mark.executorch]

MODELS = [spec.name for spec in load_manifest(MANIFEST).models]
BROKEN = ("error", "crash", "timeout", "oom")  # exportwatch or its worker failed, not the model


@pytest.fixture(scope="module")
def et_jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """The jobs of one real ``exportwatch sweep`` of the manifest, by (model, target)."""
    output: Path = tmp_path_factory.mktemp("zoo-executorch") / "r.json"
    command = ["sweep", str(MANIFEST), "--workers", "2", "-o", str(output), "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", *command],
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=SWEEP_TIMEOUT_S,
    )
    if not output.is_file():
        pytest.fail(f"exportwatch sweep exited {done.returncode}\n{done.stderr[-8000:]}", pytrace=False)
    return {(job["model"], job["target"]): job for job in json.loads(output.read_text())["jobs"]}


def _root(job: dict[str, Any]) -> dict[str, Any]:
    return next(sub for sub in job["submodules"] if sub["path"] == "")


@pytest.mark.parametrize("model", MODELS)
def test_sweep__every_model_gets_a_verdict_from_both_targets_and_none_is_exportwatchs_failure(model, et_jobs):
    for target in ("export", "executorch"):
        job = et_jobs.get((model, target))
        assert job is not None, f"no {target} job for {model}: {sorted(et_jobs)}"
        broken = [
            f"{sub['path'] or '<root>'}: {sub['verdict']} ({sub.get('message') or sub.get('reason')})"
            for sub in job["submodules"]
            if sub["verdict"] in BROKEN
        ]
        said = f"{target}: {job['verdict']}: {job.get('reason')}\n" + "\n".join(broken)
        assert job["verdict"] not in BROKEN, said
        assert not broken, f"{target}:\n" + "\n".join(broken)


@pytest.mark.parametrize("model", MODELS)
def test_executorch__a_root_that_lowered_carries_its_xnnpack_coverage(model, et_jobs):
    root = _root(et_jobs[(model, "executorch")])
    if root["verdict"] == "fail" and root.get("stage") in ("capture", "lowering"):
        assert root.get("delegation") is None  # nothing lowered: nothing to count
        return
    delegation = root["delegation"]
    assert delegation["backend"] == "xnnpack"
    assert 0 < delegation["delegated_nodes"] <= delegation["compute_nodes"]
    assert delegation["subgraphs"] >= 1
    left = sum(delegation["not_delegated"].values())
    assert delegation["delegated_nodes"] + left == delegation["compute_nodes"]


@pytest.mark.parametrize("model", MODELS)
def test_executorch__coverage_is_what_executorchs_own_lowering_counts(model, et_jobs):
    delegation = _root(et_jobs[(model, "executorch")]).get("delegation")
    if delegation is None:
        pytest.skip("the root did not lower: no coverage to compare")
    network, args, kwargs = bench_executorch.build(model)
    own = bench_executorch.executorch_own(network, args, kwargs)
    assert bench_executorch.disagreements(delegation, own["info"]) == []
