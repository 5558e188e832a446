"""The fork server's preload never changes what the user's code sees: code a model's file runs
before it imports a library (a shim, an environment variable, a dynamo setting) runs before that
library is imported, as in ``python -c "import models"``. One real ``exportwatch sweep``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

GUARD = """\
import sys

if "idna" in sys.modules:
    raise RuntimeError("guard must be imported before idna")
"""

SHIMMED = """\
import guard
import idna
import torch


def build():
    return torch.nn.Linear(4, 4)
"""

OFFLINE = """\
import os

os.environ["HF_HUB_OFFLINE"] = "1"
import transformers  # huggingface_hub reads HF_HUB_OFFLINE when transformers imports it

import json
import pathlib

import huggingface_hub.constants
import torch


def build(record):
    seen = {"offline": huggingface_hub.constants.HF_HUB_OFFLINE}
    pathlib.Path(record).write_text(json.dumps(seen))
    return torch.nn.Linear(4, 4)
"""

DYNAMO = """\
import sys

import torch

torch._dynamo.config.recompile_limit = 3
TRANSFORMERS_ALREADY_IMPORTED = "transformers" in sys.modules
import transformers

import json
import pathlib


def build(record):
    seen = {
        "transformers_imported_before_the_setting": TRANSFORMERS_ALREADY_IMPORTED,
        "recompile_limit": torch._dynamo.config.recompile_limit,
    }
    pathlib.Path(record).write_text(json.dumps(seen))
    return torch.nn.Linear(4, 4)
"""


@pytest.fixture(scope="module")
def ordered_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp = tmp_path_factory.mktemp("order")
    for name, source in {"guard": GUARD, "shimmed": SHIMMED, "offline": OFFLINE, "dynamo": DYNAMO}.items():
        (tmp / f"{name}.py").write_text(source)
    shape = "inputs: {args: [{shape: [2, 4]}]}"
    models = [
        f"{{name: shimmed, factory: 'shimmed.py:build', {shape}}}",
        *(
            f"{{name: {name}, factory: '{name}.py:build', kwargs: {{record: '{tmp / name}.json'}}, {shape}}}"
            for name in ("offline", "dynamo")
        ),
    ]
    (tmp / "exportwatch.yml").write_text(
        "version: 1\ndefaults: {targets: [export]}\nmodels:\n" + "".join(f"  - {m}\n" for m in models)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.pop("EXPORTWATCH_START_METHOD", None)  # the fork server's preload is what is tested
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", "exportwatch.yml", "-o", "r.json", "--workers", "2"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, tmp


def _job(tmp: Path, model: str) -> dict[str, Any]:
    (job,) = [j for j in json.loads((tmp / "r.json").read_text())["jobs"] if j["model"] == model]
    return job


def test_preload__a_shim_imported_first_runs_before_the_library_it_guards(ordered_sweep):
    done, tmp = ordered_sweep
    job = _job(tmp, "shimmed")
    assert job["verdict"] == "ok", (job.get("reason"), done.stdout[-3000:])
    assert "guard must be imported" not in done.stdout + done.stderr


def test_preload__an_environment_variable_set_before_import_transformers_is_read_by_it(ordered_sweep):
    done, tmp = ordered_sweep
    assert _job(tmp, "offline")["verdict"] == "ok", done.stdout[-3000:]
    assert json.loads((tmp / "offline.json").read_text()) == {"offline": True}


def test_preload__a_dynamo_setting_at_the_top_of_the_file_runs_before_transformers_is_imported(ordered_sweep):
    done, tmp = ordered_sweep
    assert _job(tmp, "dynamo")["verdict"] == "ok", done.stdout[-3000:]
    seen = json.loads((tmp / "dynamo.json").read_text())
    assert seen == {"transformers_imported_before_the_setting": False, "recompile_limit": 3}
