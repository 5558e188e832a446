"""Hostile reports are refused in bounded memory and time, measured on a real process.

A 10 KB artifact unpacked to a report whose ``plan`` held 3 million wrong-typed items, and the
schema check collected every error before sorting them: 4 GB. Here each reader runs in a child
process whose address space is capped at 1 GiB (``RLIMIT_AS``): exhausting it is a
``MemoryError`` traceback or a kill, either of which fails the test.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from exportwatch.report import Report
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # a few seconds each: three-million-item documents

ADDRESS_SPACE = 1 << 30  # 1 GiB
PLAN_ITEMS = 3_000_000

#: ``import jsonschema`` fails in the child: the core install (no ``github`` extra).
WITHOUT_JSONSCHEMA = "import sys; sys.modules['jsonschema'] = None\n"

DIFF = "from exportwatch.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"

PUBLISH_READ = """
from pathlib import Path
from exportwatch.action.main import load_untrusted_report
from exportwatch.errors import ExportwatchError
from exportwatch.github.artifacts import safe_extract
try:
    for path in safe_extract(Path(sys.argv[1]), Path(sys.argv[2])):
        load_untrusted_report(path)
except ExportwatchError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_capped(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, *args],
        cwd=REPO_ROOT,
        preexec_fn=capped,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def wrong_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = Report(tool_version="0.1.0").to_dict()
    data["plan"] = [0] * PLAN_ITEMS  # every item the wrong type
    path = tmp_path_factory.mktemp("hostile") / "exportwatch-report.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_artifact(wrong_plan: Path) -> Path:
    archive = wrong_plan.with_name("artifact.zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.write(wrong_plan, wrong_plan.name)
    assert archive.stat().st_size < 20_000, "the finding's artifact was about 10 KB"
    return archive


def assert_refused(done: subprocess.CompletedProcess[str], *, says: str) -> None:
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines[:3]


@pytest.mark.parametrize("install", ["github extra", "core"])
def test_diff__refuses_a_3_million_item_wrong_typed_plan_within_1_gib(wrong_plan, install):
    prelude = WITHOUT_JSONSCHEMA if install == "core" else ""
    done = run_capped(prelude + DIFF, "diff", str(wrong_plan))
    assert_refused(done, says=f"{wrong_plan}: plan[0]: expected a string, got a number")


@pytest.mark.parametrize("install", ["github extra", "core"])
def test_publish__refuses_a_10_kb_artifact_with_a_3_million_item_plan_within_1_gib(
    small_artifact, tmp_path, install
):
    prelude = WITHOUT_JSONSCHEMA if install == "core" else ""
    done = run_capped(prelude + PUBLISH_READ, str(small_artifact), str(tmp_path / "files"))
    assert_refused(done, says="plan[0]: expected a string, got a number")


def test_merge__refuses_a_3_million_item_wrong_typed_plan_within_1_gib(wrong_plan, tmp_path):
    done = run_capped(DIFF, "merge", str(wrong_plan), "-o", str(tmp_path / "merged.json"))
    assert_refused(done, says=f"{wrong_plan}: plan[0]")
