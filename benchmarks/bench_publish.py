"""Publishing at monorepo scale: the trusted half of the action, end to end, against the local
fake GitHub server (``tests/fakegithub``), on the synthetic reports of ``bench_scale.py``.

For each size, in a fresh process: both report files (the compact form the size cap allows most
of) are loaded as untrusted input (what a
``workflow_run`` publish job gets from a fork), diffed, gated, and ``action.main.conclude`` writes
the outputs and the job summary, upserts the sticky comment and creates the check run with its
annotations. Measured: seconds per stage, the process's peak memory (``ru_maxrss``), the API
writes, the annotations and the job summary's size. The fake server answers on localhost, so
"the GitHub round trips" are near zero here; on github.com add each write's latency.

    python benchmarks/bench_publish.py [--reports 2000,20000,200000] [--json rows.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent

#: Run in a fresh interpreter: argv = base.json head.json workdir; prints one JSON row.
_CHILD = r"""
import io, json, resource, sys, time
from pathlib import Path
from exportwatch.action.main import ModeOutcome, conclude
from exportwatch.diff import diff_reports, gate
from exportwatch.github.client import ClientSettings
from exportwatch.github.config import ActionConfig
from exportwatch.report import load_report
from tests.fakegithub import FakeGitHub

base_path, head_path, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
row = {}
t = time.perf_counter()
json.loads(base_path.read_bytes()); json.loads(head_path.read_bytes())
row["json_load_s"] = time.perf_counter() - t
t = time.perf_counter()
base = load_report(base_path, untrusted=True)
head = load_report(head_path, untrusted=True)
row["load_s"] = time.perf_counter() - t
t = time.perf_counter()
changes = diff_reports(base, head)
result = gate(changes, "regression")
row["diff_s"] = time.perf_counter() - t
with FakeGitHub() as fake:
    fake.add_pull("o/r", 7, head_sha="1" * 40)
    config = ActionConfig.from_env({
        "INPUT_GITHUB-TOKEN": fake.token, "INPUT_COMMENT": "always", "GITHUB_REPOSITORY": "o/r",
        "GITHUB_API_URL": fake.api_url, "GITHUB_SERVER_URL": fake.server_url, "GITHUB_RUN_ID": "1",
        "GITHUB_OUTPUT": str(work / "output"), "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_WORKSPACE": str(work),
    })
    settings = ClientSettings(api_url=fake.api_url, seconds_between_writes=0)
    t = time.perf_counter()
    code = conclude(
        config, ModeOutcome(changes=changes, result=result, sha="1" * 40, pr_number=7),
        out=io.StringIO(), settings=settings,
    )
    row["conclude_s"] = time.perf_counter() - t
    row["writes"] = sum(1 for r in fake.requests if r.method in ("POST", "PATCH", "PUT", "DELETE"))
    row["requests"] = len(fake.requests)
row["exit_code"] = code
row["summary_bytes"] = (work / "summary.md").stat().st_size
row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(row))
"""


def measure(submodules: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_scale

    base, head = bench_scale.scale_reports(submodules)
    with tempfile.TemporaryDirectory(prefix="exportwatch-bench-publish-") as tmp:
        work = Path(tmp)
        (work / "base.json").write_text(bench_scale.compact_json(base), encoding="utf-8")
        (work / "head.json").write_text(bench_scale.compact_json(head), encoding="utf-8")
        sizes = sum((work / name).stat().st_size for name in ("base.json", "head.json"))
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(work / "base.json"), str(work / "head.json"), str(work)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"the publish child failed:\n{done.stderr[-3000:]}")
        row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    row["submodules"] = sum(len(j.submodules) for j in head.jobs)
    row["json_mb"] = sizes / 1e6
    row["total_s"] = row["load_s"] + row["diff_s"] + row["conclude_s"]
    row["ratio_to_json_load"] = (row["load_s"] + row["diff_s"]) / row["json_load_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", default="2000,20000,200000", help="submodule counts, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = [measure(int(n)) for n in args.reports.split(",") if n.strip()]
    print(
        "| submodules | JSON, both (MB) | load (s) | diff + gate (s) | (load + diff) ÷ json.load | conclude: "
        "outputs, summary, comment, check (s) | total (s) | API writes | summary (KB) | peak (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['submodules']:,} | {r['json_mb']:.1f} | {r['load_s']:.2f} | {r['diff_s']:.2f} | "
            f"{r['ratio_to_json_load']:.1f}× | {r['conclude_s']:.2f} | {r['total_s']:.1f} | {r['writes']} | "
            f"{r['summary_bytes'] / 1024:.0f} | {r['peak_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
