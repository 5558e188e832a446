"""exportwatch sweep versus torch._export.tools.report_exportability on the same models.

Both start from a fresh Python process (so both pay for ``import torch``), use the same
inputs (built from the manifest by exportwatch's own input builder) and the same target
(torch.export non-strict unless --strict). Prints wall time, export attempts, failures found
and verdict agreement; see benchmarks/README.md for recorded numbers.

    python benchmarks/bench_sweep.py [MANIFEST] [--workers 2] [--strict] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = REPO / "config" / "example.exportwatch.yml"


def run_baseline(manifest_path: Path, strict: bool) -> dict:
    """Inside a fresh process: report_exportability over every model, sequentially."""
    started = time.perf_counter()
    import resource

    import torch
    import torch.export._trace
    from torch._export.tools import report_exportability

    from exportwatch.manifest import load_manifest
    from exportwatch.worker.inputs import build_inputs, build_model

    attempts = 0
    original = torch.export._trace._export

    def counting(*args, **kwargs):
        nonlocal attempts
        attempts += 1
        return original(*args, **kwargs)

    torch.export._trace._export = counting
    manifest = load_manifest(manifest_path)
    results: dict[str, dict[str, str | None]] = {}
    for spec in manifest.models:
        model = build_model(spec, root=manifest.root)
        args, kwargs = build_inputs(spec.inputs, root=manifest.root, device="cpu", field_path="inputs")
        with torch.no_grad():
            try:
                report = report_exportability(model, tuple(args), kwargs, strict=strict)
            except Exception as exc:  # report_exportability itself can raise (e.g. bad inputs)
                report = {"": exc}
        results[spec.name] = {k: (type(v).__name__ if v is not None else None) for k, v in report.items()}
    return {
        "wall_s": time.perf_counter() - started,
        "attempts": attempts,
        "results": results,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_baseline(manifest: Path, strict: bool) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, str(manifest), "--baseline-only", *(["--strict"] if strict else [])],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    data = json.loads(done.stdout.strip().splitlines()[-1])
    data["process_wall_s"] = time.perf_counter() - started
    return data


def measure_exportwatch(manifest: Path, workers: int, strict: bool) -> dict:
    from exportwatch.report import load_report

    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "report.json"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "exportwatch",
                "sweep",
                str(manifest),
                "-o",
                str(output),
                "--workers",
                str(workers),
                "--target",
                "export-strict" if strict else "export",
                "-q",
            ],
            check=True,
            cwd=REPO,
        )
        wall = time.perf_counter() - started
        report = load_report(output)
    return {"process_wall_s": wall, "report": report}


def compare(baseline: dict, ours) -> dict:
    """Failures found by each, and agreement on every path report_exportability reported."""
    agree = disagree = 0
    theirs_failures = ours_failures = 0
    missed_by_them: list[str] = []
    for job in ours.jobs:
        theirs = baseline["results"].get(job.model, {})
        failing = {s.path for s in job.submodules if job.effective(s).verdict.value in ("fail", "mismatch")}
        ours_failures += len(failing)
        theirs_failing = {p for p, e in theirs.items() if e is not None}
        theirs_failures += len(theirs_failing)
        missed_by_them += [f"{job.model}:{p or '<root>'}" for p in sorted(failing - theirs_failing)]
        for path, error in theirs.items():
            sub = job.submodule(path)
            if sub is None:
                disagree += 1
                continue
            ours_ok = job.effective(sub).verdict.value in ("ok", "covered")
            if ours_ok == (error is None):
                agree += 1
            else:
                disagree += 1
    return {
        "agree": agree,
        "disagree": disagree,
        "theirs_failures": theirs_failures,
        "ours_failures": ours_failures,
        "missed_by_report_exportability": missed_by_them,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest", nargs="?", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_only:
        print(json.dumps(run_baseline(args.manifest, args.strict)))
        return

    base_runs = [measure_baseline(args.manifest, args.strict) for _ in range(args.repeat)]
    our_runs = [measure_exportwatch(args.manifest, args.workers, args.strict) for _ in range(args.repeat)]
    base_wall = statistics.median(r["process_wall_s"] for r in base_runs)
    our_wall = statistics.median(r["process_wall_s"] for r in our_runs)
    ours = our_runs[0]["report"]
    our_attempts = sum(j.attempts for j in ours.jobs)
    our_peak = max((j.peak_rss_mb or 0) for j in ours.jobs)
    summary = compare(base_runs[0], ours)
    target = "export-strict" if args.strict else "export (non-strict)"
    print(
        f"manifest: {args.manifest}"
    )
    print(f"target: {target}; median of {args.repeat} runs, each from a fresh process")
    print(f"{'':28}{'report_exportability':>22}{'exportwatch':>16}")
    print(f"{'wall time (s)':28}{base_wall:>22.2f}{our_wall:>16.2f}   ratio {our_wall / base_wall:.2f}x")
    print(f"{'export attempts':28}{base_runs[0]['attempts']:>22}{our_attempts:>16}")
    print(f"{'failing submodules found':28}{summary['theirs_failures']:>22}{summary['ours_failures']:>16}")
    print(f"{'peak RSS per process (MiB)':28}{base_runs[0]['peak_rss_mb']:>22.0f}{our_peak:>16.0f}")
    print(
        f"verdict agreement on report_exportability's paths: {summary['agree']} agree, "
        f"{summary['disagree']} disagree"
    )
    if summary["missed_by_report_exportability"]:
        print("failures report_exportability misses: " + ", ".join(summary["missed_by_report_exportability"]))


if __name__ == "__main__":
    main()
