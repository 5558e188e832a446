"""The token and the user's code: nothing the install commands or the sweep run can reach it.

An ``install:`` step runs as the same user as the action and may rewrite any installed module
(exportwatch's own included) or read other processes through ``/proc``. The action imports every
module it needs before that code runs, reads the token from the entrypoint's descriptor only at
first use, and makes its process non-dumpable, so neither route leads to the token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT
from tests.fakegithub import FakeGitHub, events

ENTRYPOINT = REPO_ROOT / "entrypoint" / "entrypoint.sh"

#: Run in a fresh interpreter: the publish paths after ``preload_publish_modules`` import nothing.
LATE_IMPORTS = textwrap.dedent(
    """
    import io, json, sys, tempfile, zipfile
    from pathlib import Path
    import exportwatch.action.main as action
    action.preload_publish_modules()
    from exportwatch.diff import diff_reports, gate
    from exportwatch.github.client import ClientSettings, NoArtifact, build_github
    from exportwatch.github.config import ActionConfig
    from tests.factories import base_report, failing, ok, report
    from tests.fakegithub import FakeGitHub
    before = set(sys.modules)
    with FakeGitHub() as fake, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake.add_pull("o/r", 7, head_sha="1" * 40)
        config = ActionConfig.from_env({
            "INPUT_GITHUB-TOKEN": fake.token, "INPUT_COMMENT": "always", "INPUT_CACHE-DIR": "cache",
            "GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": fake.api_url, "GITHUB_RUN_ID": "1",
            "GITHUB_SERVER_URL": fake.server_url, "GITHUB_OUTPUT": str(tmp / "o"),
            "GITHUB_STEP_SUMMARY": str(tmp / "s"), "GITHUB_WORKSPACE": str(tmp),
        })
        settings = ClientSettings(api_url=fake.api_url, seconds_between_writes=0)
        changes = diff_reports(base_report(ok("cnn")), report(failing("cnn")))
        outcome = action.ModeOutcome(
            changes=changes, result=gate(changes, "regression"), pr_number=7, sha="1" * 40
        )
        action.conclude(config, outcome, out=io.StringIO(), settings=settings)
        action.warm_cache(config, report(ok("cnn")))
        action.xfail_index(config)
        fake.add_workflow_run("o/r", 5, head_sha="1" * 40)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("exportwatch-report.json", report(ok("cnn")).to_json())
        fake.add_artifact("o/r", 5, "baseline", archive.getvalue())
        repo = build_github(config.github_token, settings).get_repo("o/r")
        try:
            action.fetch_stored_baseline(
                repo, name="baseline", sha="1" * 40, token=config.github_token, dest=tmp / "b",
                settings=settings,
            )
        except NoArtifact:
            pass  # the report is about another commit: all the code ran
        from exportwatch.git import find_merge_base  # stored_baseline's lazy import
    print(json.dumps(sorted(m for m in set(sys.modules) - before if not m.startswith("tests"))))
    """
)


def test_preload__publishing_imports_no_module_after_the_users_code_ran():
    done = subprocess.run(
        [sys.executable, "-c", LATE_IMPORTS],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    late = json.loads(done.stdout.strip().splitlines()[-1])
    assert late == [], f"imported after user code (add them to action.main.PUBLISH_MODULES): {late}"


MODELS = """\
import torch


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
"""
MANIFEST = """\
version: 1
defaults: {targets: [export], device: cpu, timeout: 120}
models:
  - name: mlp
    factory: models:MLP
    inputs: {args: [{shape: [2, 4]}]}
"""
#: Appended by the hostile install step to a module the action used to import only later.
PLANTED = """

# --- planted by the install step ---
import gc as _gc, os as _os
_loot = [f"{_k}={_v}" for _k, _v in _os.environ.items()]
for _o in _gc.get_objects():
    if type(_o).__name__ == "Secret":
        try:
            _loot.append(_o.reveal())
        except Exception as _e:
            _loot.append(repr(_e))
for _fd in range(3, 10):
    try:
        _loot.append(_os.read(_fd, 4096).decode("utf-8", "replace"))
    except OSError:
        pass
with open(LOOT_PATH, "a") as _f:
    _f.write(f"planted code ran in pid {_os.getpid()}: {_loot!r}\\n")
"""
#: The install step itself: read the action process (its parent) through /proc.
SNOOP = """
import os, re
action, loot = int(os.environ["ACTION_PID"]), []
for what in ("environ", "fd/3"):
    try:
        loot.append(open(f"/proc/{action}/{what}", "rb").read().decode("utf-8", "replace"))
    except OSError as exc:
        loot.append(f"{what}: {exc.strerror}")
try:
    with open(f"/proc/{action}/maps") as maps, open(f"/proc/{action}/mem", "rb", 0) as mem:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if line.split()[1].startswith("rw") and end - start < 1 << 30:
                try:
                    mem.seek(start)
                    loot += [m.decode() for m in re.findall(rb"ghp_[A-Za-z0-9]{30,}", mem.read(end - start))]
                except OSError:
                    pass
except OSError as exc:
    loot.append(f"mem: {exc.strerror}")
open(os.environ["LOOT"], "a").write(f"install step read: {loot!r}\\n")
"""


@pytest.mark.slow  # a real sweep (torch) through the entrypoint
@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("setpriv") is None, reason="Linux")
def test_token__an_install_step_that_plants_code_or_reads_proc_gets_nothing(tmp_path):
    site = tmp_path / "site"  # the installed exportwatch the install step rewrites
    shutil.copytree(
        REPO_ROOT / "exportwatch", site / "exportwatch", ignore=shutil.ignore_patterns("__pycache__")
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "models.py").write_text(MODELS)
    (workspace / "exportwatch.yml").write_text(MANIFEST)
    (tmp_path / "snoop.py").write_text(SNOOP)
    loot = tmp_path / "loot.txt"
    planted = site / "exportwatch" / "baseline" / "cache.py"  # used after the sweep (cache-dir)
    code = PLANTED.replace("LOOT_PATH", repr(str(loot)))
    install = (
        f"cat >> {planted} <<'PLANT'\n{code}\nPLANT\n"
        f"ACTION_PID=$PPID LOOT={loot} {sys.executable} {tmp_path / 'snoop.py'}\n"
    )
    with FakeGitHub() as fake:
        runner = tmp_path / "runner"
        runner.mkdir()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(runner),
            "PYTHONPATH": f"{site}:{REPO_ROOT}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "EXPORTWATCH_PYTHON": sys.executable,
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(events.write(runner, events.payload("push.branch"))),
            "GITHUB_REPOSITORY": "acme/vision",
            "GITHUB_SHA": "1" * 40,
            "GITHUB_API_URL": fake.api_url,
            "GITHUB_SERVER_URL": fake.server_url,
            "GITHUB_RUN_ID": "9",
            "GITHUB_OUTPUT": str(runner / "output"),
            "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
            "GITHUB_WORKSPACE": str(workspace),
            "INPUT_GITHUB-TOKEN": fake.token,
            "INPUT_MODE": "full",
            "INPUT_INSTALL": install,
            "INPUT_CACHE-DIR": ".cache",
            "INPUT_WORKERS": "1",
            "INPUT_BASELINE-ARTIFACT": "",
        }
        # Docker's default capabilities: root, but no CAP_SYS_PTRACE (as GitHub runs actions)
        command = ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", str(ENTRYPOINT)]
        done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(fake.check_runs("acme/vision")) == 1, "the action still published with the token"
    stolen = loot.read_text()
    assert "install step read" in stolen, "the install step ran"
    assert fake.token not in stolen, f"the token reached the user's code: {stolen[:2000]}"
