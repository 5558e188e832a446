"""The speed goals of issue 17, measured in one command, with a check that no result changed.

Three parts, each from fresh processes on this machine (both sides pay ``import torch``):

1. **sweep**: ``report_exportability`` (sequential, non-strict) vs ``exportwatch sweep
   --workers 2`` on the real-architecture manifest (``bench_realarch.py``, interleaved runs,
   medians). Goal: exportwatch's wall time ≤ 0.6× report_exportability's.
2. **onnx**: one ``exportwatch sweep --target export --target export-strict --target onnx`` of
   the same manifest (the ONNX target starts from both export targets' captures, as torch.onnx
   tries non-strict then strict); the ONNX jobs' summed duration over the export jobs', on all
   jobs, on models whose root exports and on models whose root fails. Goal: ≤ 2×.
   ``--checkout DIR`` sweeps another checkout (the base of a change, back to back with this
   one); ``--onnx-report FILE`` reads the numbers from a report of that sweep instead.
3. **compare**: a temporary git repository of N models (``bench_baseline.py``), a PR that edits
   one of them: ``exportwatch compare --base main`` without any cache or stored baseline vs
   sweeping head and merge-base in full. Goal: ≤ 1/N + 20%.

``--save FILE`` writes the snapshot of every result (both targets, every submodule's verdict,
fingerprint, category, same-as link, origin flag and frame, and report_exportability's per-path
results); ``--compare FILE`` exits 1 when any exportwatch result differs from that snapshot,
so a speed-up proves it changed nothing.

    python benchmarks/bench_speed.py [--repeat 3] [--parts sweep,onnx,compare]
                                     [--save snapshot.json] [--compare snapshot.json]
                                     [--json numbers.json] [--checkout DIR] [--onnx-report FILE]

Needs transformers and timm (``pip install -e '.[bench]'``); never downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_baseline  # beside this file
import bench_realarch
import bench_scale

PARTS = ("sweep", "onnx", "compare")


def sweep_part(args: argparse.Namespace) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    options = argparse.Namespace(workers=args.workers, repeat=args.repeat)
    result, theirs, report = bench_realarch.measure(options)
    bench_scale.print_table(result)
    base, ours = result["report_exportability"], result["sides"]["exportwatch"]
    numbers = {
        "report_exportability_s": base["wall_s"],
        "exportwatch_s": ours["wall_s"],
        "walls": [base["walls"], ours["walls"]],
        "ratio": ours["wall_s"] / base["wall_s"],
        "goal": 0.6,
        "attempts": [base["attempts"], ours["attempts"]],
        "failing_found": [base.get("failures"), ours["failures"]],
    }
    models = bench_realarch.agreement(theirs, report)
    numbers["root_agreement"] = sum(row["agree"] for row in models.values()), len(models)
    return numbers, report, theirs


#: The ONNX part's targets: both export targets, whose captures the ONNX target starts from.
ONNX_PART_TARGETS = ("export", "export-strict", "onnx")


def onnx_part(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    if args.onnx_report is not None:
        from exportwatch.report import load_report

        report, wall = load_report(args.onnx_report), None
    else:
        extra = [flag for target in ONNX_PART_TARGETS[1:] for flag in ("--target", target)]
        root = args.checkout or bench_scale.REPO
        run = bench_scale.measure_exportwatch(bench_realarch.MANIFEST, args.workers, extra, root=root)
        report, wall = run["report"], run["wall_s"]
    numbers = onnx_numbers(report)
    numbers["wall_s"] = wall
    return numbers, report


def onnx_numbers(report: Any) -> dict[str, Any]:
    """The ONNX jobs' summed duration over the export jobs', on all models, on models whose
    root exports and on models whose root fails (the export-strict jobs beside them)."""
    jobs: dict[str, dict[str, Any]] = {}
    for job in report.jobs:
        jobs.setdefault(job.model, {})[job.target] = job
    sums = {"all": [0.0, 0.0, 0.0], "root exports": [0.0, 0.0, 0.0], "root fails": [0.0, 0.0, 0.0]}
    counts = {name: 0 for name in sums}
    for pair in jobs.values():
        export, onnx, strict = pair["export"], pair["onnx"], pair.get("export-strict")
        kind = "root exports" if export.verdict.value == "ok" else "root fails"
        for key in ("all", kind):
            counts[key] += 1
            sums[key][0] += export.duration_s or 0.0
            sums[key][1] += onnx.duration_s or 0.0
            sums[key][2] += (strict.duration_s or 0.0) if strict is not None else 0.0
    numbers: dict[str, Any] = {
        name: {
            "models": counts[name],
            "export_s": e,
            "onnx_s": o,
            "export_strict_s": st,
            "ratio": o / e if e else None,
        }
        for name, (e, o, st) in sums.items()
    }
    numbers["goal"] = 2.0
    return numbers


def compare_part(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="exportwatch-bench-speed-"))
    try:
        repo, out = tmp / "repo", tmp / "out"
        out.mkdir()
        bench_baseline.build_repo(repo, models=args.models, depth=args.depth)
        last = f"nets/m{args.models - 1}.py"
        edited = bench_baseline.model_source(args.models - 1, depth=args.depth, uses_helper=False, variant=1)
        bench_baseline.git(repo, "checkout", "-q", "-B", "pr", "main")
        (repo / last).write_text(edited)
        bench_baseline.git(repo, "commit", "-qam", "one model changed")
        workers = str(args.workers)
        full, ours = [], []
        compare = [
            "compare",
            "exportwatch.yml",
            "--base",
            "main",
            "-o",
            str(out / "pr.json"),
            "--workers",
            workers,
            "-q",
            "--format",
            "json",
        ]
        for _ in range(args.repeat):
            full.append(bench_baseline.full_double_sweep(repo, out, workers))
            ours.append(bench_baseline.exportwatch(repo, *compare))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    full_s, ours_s = statistics.median(full), statistics.median(ours)
    return {
        "models": args.models,
        "full_double_sweep_s": full_s,
        "compare_s": ours_s,
        "ratio": ours_s / full_s,
        "goal": 1 / args.models + 0.2,
    }


def snapshot(sweep_report: Any, onnx_report: Any, theirs: Any) -> dict[str, Any]:
    """Every job of both reports in one bench_realarch snapshot (onnx jobs beside export's)."""
    combined = bench_realarch.snapshot(sweep_report, theirs or {}) if sweep_report is not None else None
    if onnx_report is not None:
        extra = bench_realarch.snapshot(onnx_report, theirs or {})
        if combined is None:
            combined = extra
        else:
            combined["jobs"].update({k: v for k, v in extra["jobs"].items() if "/onnx/" in k})
    assert combined is not None
    return combined


def verdict(value: float | None, goal: float) -> str:
    return "—" if value is None else ("met" if value <= goal else "not met")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--models", type=int, default=8, help="models in the compare part's repository")
    parser.add_argument("--depth", type=int, default=4, help="transformer layers per compare-part model")
    parser.add_argument("--save", type=Path, metavar="FILE", help="write the results snapshot here")
    parser.add_argument(
        "--compare", type=Path, metavar="FILE", help="fail if a result differs from this snapshot"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--checkout", type=Path, help="the onnx part sweeps this checkout instead")
    parser.add_argument(
        "--onnx-report", type=Path, metavar="FILE", help="the onnx part's numbers from this report"
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; known: {', '.join(PARTS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    numbers: dict[str, Any] = {}
    sweep_report = onnx_report = theirs = None
    if "sweep" in parts:
        numbers["sweep"], sweep_report, theirs = sweep_part(args)
    if "onnx" in parts:
        numbers["onnx"], onnx_report = onnx_part(args)
    if "compare" in parts:
        numbers["compare"] = compare_part(args)

    print(f"\n## Speed goals ({os.cpu_count()} cores, --workers {args.workers}, medians of {args.repeat})\n")
    print("| goal | measured | target | |")
    print("|---|---:|---:|---|")
    if "sweep" in numbers:
        s = numbers["sweep"]
        print(
            f"| full sweep vs report_exportability (real architectures) | {s['exportwatch_s']:.1f} s / "
            f"{s['report_exportability_s']:.1f} s = **{s['ratio']:.2f}×** | ≤ {s['goal']}× | "
            f"{verdict(s['ratio'], s['goal'])} |"
        )
    if "onnx" in numbers:
        o = numbers["onnx"]
        for name in ("all", "root exports", "root fails"):
            row = o[name]
            print(
                f"| ONNX vs export target, {name} ({row['models']}) | {row['onnx_s']:.1f} s / "
                f"{row['export_s']:.1f} s = **{row['ratio']:.2f}×** | ≤ {o['goal']}× | "
                f"{verdict(row['ratio'], o['goal'])} |"
            )
    if "compare" in numbers:
        c = numbers["compare"]
        print(
            f"| PR editing 1 of {c['models']} models, no cache, vs full base + head sweep | "
            f"{c['compare_s']:.1f} s / {c['full_double_sweep_s']:.1f} s = **{c['ratio']:.0%}** | "
            f"≤ {c['goal']:.0%} | {verdict(c['ratio'], c['goal'])} |"
        )
    if "sweep" in numbers:
        s = numbers["sweep"]
        print(
            f"\nexport attempts: report_exportability {s['attempts'][0]}, exportwatch {s['attempts'][1]}; "
            f"failing submodules found: {s['failing_found'][0]} vs {s['failing_found'][1]}; "
            f"root verdicts agree: {s['root_agreement'][0]} of {s['root_agreement'][1]}"
        )

    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2, default=str) + "\n")
    if sweep_report is None and onnx_report is None:
        return
    current = snapshot(sweep_report, onnx_report, theirs)
    if args.save:
        args.save.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"\nsnapshot written to {args.save}")
    if args.compare:
        bench_realarch.check_unchanged(args.compare, current, only_current_jobs=True)


if __name__ == "__main__":
    main()
