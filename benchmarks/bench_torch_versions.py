"""The same manifests swept on several torch releases, side by side: verdict changes between
versions, categories that are ``unknown`` on one of them, and time.

Each torch lives in its own interpreter (a virtualenv with exportwatch installed, e.g. the ones
``.ci/run`` keeps for its version legs). One fresh ``exportwatch sweep`` per (manifest, torch),
two workers; the comparison is ``exportwatch matrix``'s own (``render.matrix``):

    python benchmarks/bench_torch_versions.py \\
        --python /tmp/exportwatch-ci-torch-2.14.1/bin/python \\
        --python /tmp/exportwatch-ci-torch-2.15.0/bin/python

The first interpreter is this one (``sys.executable``) unless ``--no-self``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exportwatch.render.matrix import headline, version_matrix  # noqa: E402
from exportwatch.report import FAILING, load_report  # noqa: E402

MANIFESTS = {
    "example": REPO / "config" / "example.exportwatch.yml",
    "realarch": REPO / "benchmarks" / "realarch.exportwatch.yml",
}


def sweep(python: str, manifest: Path, output: Path, workers: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [
            python,
            "-m",
            "exportwatch",
            "sweep",
            str(manifest),
            "-o",
            str(output),
            "-q",
            "--workers",
            str(workers),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        sys.exit(f"{python}: sweep of {manifest.name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def unknown_origins(path: Path) -> Counter[str]:
    """Failing submodules whose category is ``unknown``, per job."""
    found: Counter[str] = Counter()
    for job in load_report(path).jobs:
        for sub in job.submodules:
            if sub.verdict in FAILING and sub.category == "unknown":
                found[f"{job.model}/{job.target}:{sub.path or '(root)'}"] += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", action="append", default=[], help="another interpreter (repeatable)")
    parser.add_argument("--no-self", action="store_true", help="do not sweep with this interpreter")
    parser.add_argument("--manifest", action="append", choices=sorted(MANIFESTS), help="default: all")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pythons = ([] if args.no_self else [sys.executable]) + args.python
    with tempfile.TemporaryDirectory(prefix="exportwatch-bench-versions-") as tmp:
        for name in args.manifest or sorted(MANIFESTS):
            reports, times = [], {}
            for i, python in enumerate(pythons):
                output = Path(tmp) / f"{name}-{i}.json"
                elapsed = sweep(python, MANIFESTS[name], output, args.workers)
                report = load_report(output)
                times[report.environment.torch] = elapsed
                reports.append(output)
            loaded = [load_report(p) for p in reports]
            matrix = version_matrix(loaded)
            print(f"\n## {name}: {headline(matrix)}")
            for report, path in zip(loaded, reports, strict=True):
                jobs = len(report.jobs)
                failing = sum(1 for j in report.jobs if j.verdict in FAILING)
                unknown = unknown_origins(path)
                print(
                    f"- torch {report.environment.torch}: {times[report.environment.torch]:.1f} s wall, "
                    f"{jobs} jobs, {failing} failing, {sum(unknown.values())} failing submodule(s) of "
                    f"category unknown" + (f" ({', '.join(sorted(unknown)[:5])})" if unknown else "")
                )
            for row in matrix.rows:  # any difference: verdict, failing submodules or category
                seen = {(c.verdict, c.origins, c.category) if c else None for c in row.cells}
                if len(seen) > 1:
                    cells = " | ".join(
                        f"{col.version}: {c.verdict.value} {','.join(c.origins)} {c.category or ''}".strip()
                        if c
                        else f"{col.version}: -"
                        for col, c in zip(matrix.columns, row.cells, strict=True)
                    )
                    print(f"  - {row.model} · {row.target}: {cells}")


if __name__ == "__main__":
    main()
