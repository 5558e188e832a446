"""Each library-aware hint, applied to the real model it is given for, makes the export pass.

The transformers hint offers two remedies for a cache object in a module's inputs or outputs:
``use_cache=False`` (the manifest's ``hf_llama_nocache``, in the shared zoo sweep) and
registering the cache classes as pytree nodes (a sweep of its own here: registration is
process-wide and must not reach the other models' workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.zoo.conftest import MANIFEST, REPO_ROOT

pytest.importorskip("transformers")
pytestmark = [pytest.mark.zoo, pytest.mark.slow]

CACHE_MODELS = ("hf_llama", "hf_qwen2", "hf_mistral", "hf_gpt2", "hf_t5", "hf_bart", "hf_whisper")


def _transformers_hint(job: dict[str, Any]) -> str:
    origins = [s for s in job["submodules"] if s["origin"] and s["verdict"] == "fail"]
    assert origins, f"{job['model']} fails with no origin"
    hints = {s["hint"] for s in origins if s["category"] == "unsupported-type"}
    assert hints, f"{job['model']}: no origin fails on an unsupported type"
    (hint,) = hints
    return hint


@pytest.mark.parametrize("model", CACHE_MODELS)
def test_transformers_cache_failures__get_transformers_own_remedies(zoo_jobs, model):
    hint = _transformers_hint(zoo_jobs[model])
    assert "use_cache=False" in hint
    assert "register_cache_pytrees_for_model(model)" in hint
    assert "huggingface.co" in hint


def test_hint__use_cache_false_makes_the_llama_export_pass(zoo_jobs):
    assert zoo_jobs["hf_llama"]["verdict"] == "fail"
    assert zoo_jobs["hf_llama_nocache"]["verdict"] == "ok"


def test_hint__registering_the_cache_classes_makes_the_exports_pass(tmp_path):
    manifest = tmp_path / "remedies.yml"
    zoo = REPO_ROOT / "tests" / "zoo"
    manifest.write_text(
        "version: 1\n"
        "defaults: {targets: [export], device: cpu, timeout: 300}\n"
        "models:\n"
        f"  - {{name: llama, factory: '{zoo}/remedies.py:llama_with_registered_caches',\n"
        f"     inputs: {{callable: '{MANIFEST.parent}/realarch_models.py:llm_inputs'}}}}\n"
        f"  - {{name: t5, factory: '{zoo}/remedies.py:t5_with_registered_caches',\n"
        f"     inputs: {{callable: '{MANIFEST.parent}/realarch_models.py:seq2seq_inputs'}}}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "r.json"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(MANIFEST.parent), str(REPO_ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(out), "--workers", "2", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.is_file(), done.stderr[-4000:]
    jobs = {j["model"]: j for j in json.loads(out.read_text())["jobs"]}
    for name in ("llama", "t5"):
        root = next(s for s in jobs[name]["submodules"] if s["path"] == "")
        assert jobs[name]["verdict"] == "ok", f"{name}: {root.get('message')}"
