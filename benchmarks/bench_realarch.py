"""The real-architecture manifest: ``exportwatch sweep`` vs ``report_exportability``, and a
results snapshot that later speed work can be checked against.

A thin layer over ``bench_scale.py`` (which measures any manifest the same way: fresh processes,
same seed and inputs, ``_export`` calls counted in every process, interleaved runs, medians),
run on ``benchmarks/realarch.exportwatch.yml``. Added here:

- root-verdict agreement per model (report_exportability's ``""`` entry vs exportwatch's root);
- extra findings: failing submodules on paths report_exportability never tried;
- ``--save FILE``: every job's per-submodule verdict, fingerprint, category, same-as link,
  origin flag and frame (plus report_exportability's per-path result) as JSON;
- ``--compare FILE``: the same snapshot of this run against a saved one; exit 1 when any
  exportwatch result changed (so a speed-up can show it changed no result).

    python benchmarks/bench_realarch.py [--workers 2] [--repeat 3] [--json numbers.json]
                                        [--save snapshot.json] [--compare snapshot.json]

Needs transformers and timm (``pip install -e '.[bench]' timm``); never downloads.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale  # beside this file

REPO = bench_scale.REPO
MANIFEST = REPO / "benchmarks" / "realarch.exportwatch.yml"
FAILING = ("fail", "mismatch")


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """bench_scale's interleaved benchmark; also keeps the first run of each side's raw results."""
    kept: dict[str, list[Any]] = {"baseline": [], "report": []}
    measure_baseline, measure_exportwatch = bench_scale.measure_baseline, bench_scale.measure_exportwatch

    def baseline(*a: Any, **k: Any) -> dict[str, Any]:
        run = measure_baseline(*a, **k)
        kept["baseline"].append(run["results"])
        return run

    def exportwatch(*a: Any, **k: Any) -> dict[str, Any]:
        run = measure_exportwatch(*a, **k)
        kept["report"].append(run["report"])
        return run

    bench_scale.measure_baseline, bench_scale.measure_exportwatch = baseline, exportwatch
    try:
        options = argparse.Namespace(
            manifest=MANIFEST,
            workers=args.workers,
            repeat=args.repeat,
            proposed=[],
            sweep_args=[],
            proposed_sweep_args=[],
        )
        result = bench_scale.benchmark(options)
    finally:
        bench_scale.measure_baseline, bench_scale.measure_exportwatch = measure_baseline, measure_exportwatch
    return result, kept["baseline"][0], kept["report"][0]


def agreement(theirs_by_model: dict[str, dict[str, str | None]], report: Any) -> dict[str, Any]:
    """Per model: both root verdicts, whether they agree, and failures on paths theirs never tried."""
    models: dict[str, Any] = {}
    for job in report.jobs:
        theirs = theirs_by_model.get(job.model, {})
        root = job.root
        ours_root = job.effective(root).verdict.value if root is not None else job.verdict.value
        theirs_root = theirs.get("", "<not tried>")
        agree = (ours_root == "ok") if theirs_root is None else (ours_root in FAILING)
        tried = set(theirs)
        untried = []
        for sub in job.submodules:
            names = {sub.path, *sub.aliases}
            if job.effective(sub).verdict.value in FAILING and not names & tried:
                untried.append(sub.path)
        models[job.model] = {
            "exportwatch": ours_root,
            "report_exportability": "ok" if theirs_root is None else theirs_root,
            "agree": agree,
            "exportwatch_failing": sum(
                1 for s in job.submodules if job.effective(s).verdict.value in FAILING
            ),
            "report_exportability_failing": sum(1 for e in theirs.values() if e is not None),
            "report_exportability_tried": len(theirs),
            "found_only_on_untried_paths": untried,
        }
    return models


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def snapshot(report: Any, theirs_by_model: dict[str, dict[str, str | None]]) -> dict[str, Any]:
    """What a change that only makes the sweep faster must leave exactly as it was."""
    jobs: dict[str, Any] = {}
    for job in report.jobs:
        subs = {}
        for sub in job.submodules:
            frame = sub.user_frame
            subs[sub.path] = {
                "verdict": sub.verdict.value,
                "same_as": sub.same_as,
                "origin": sub.origin,
                "category": sub.category,
                "fingerprint": sub.fingerprint,
                "frame": f"{frame.path}:{frame.line}" if frame is not None else None,
            }
        jobs["/".join(job.key)] = {"verdict": job.verdict.value, "submodules": subs}
    return {
        "manifest": str(MANIFEST.relative_to(REPO)),
        "versions": {name: _version(name) for name in ("torch", "transformers", "timm", "torchvision")},
        "jobs": jobs,
        "report_exportability": theirs_by_model,
    }


def differences(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(exportwatch result changes, report_exportability changes) between two snapshots."""
    ours: list[str] = []
    for key in sorted(old["jobs"].keys() | new["jobs"].keys()):
        before, after = old["jobs"].get(key), new["jobs"].get(key)
        if before is None or after is None:
            ours.append(f"{key}: {'new job' if before is None else 'job gone'}")
            continue
        if before["verdict"] != after["verdict"]:
            ours.append(f"{key}: verdict {before['verdict']} -> {after['verdict']}")
        for path in sorted(before["submodules"].keys() | after["submodules"].keys()):
            b, a = before["submodules"].get(path), after["submodules"].get(path)
            name = f"{key}:{path or '<root>'}"
            if b is None or a is None:
                ours.append(f"{name}: {'new submodule' if b is None else 'submodule gone'}")
                continue
            ours += [
                f"{name}: {field} {b.get(field)!r} -> {a.get(field)!r}"
                for field in a
                if b.get(field) != a[field]
            ]
    theirs = [
        f"{model}: {old['report_exportability'].get(model)} -> {new['report_exportability'].get(model)}"
        for model in sorted(old["report_exportability"].keys() | new["report_exportability"].keys())
        if old["report_exportability"].get(model) != new["report_exportability"].get(model)
    ]
    return ours, theirs


def print_agreement(models: dict[str, Any]) -> None:
    print()
    print("| model | exportwatch root | report_exportability root | agree | failing (ew / re, re tried) |")
    print("|---|---|---|:-:|---:|")
    for name, row in models.items():
        print(
            f"| {name} | {row['exportwatch']} | {row['report_exportability']} | "
            f"{'yes' if row['agree'] else '**no**'} | {row['exportwatch_failing']} / "
            f"{row['report_exportability_failing']}, {row['report_exportability_tried']} |"
        )
    agreeing = sum(row["agree"] for row in models.values())
    print(f"\nroot verdicts: {agreeing} of {len(models)} agree")
    extra = [f"{m}:{p or '<root>'}" for m, row in models.items() for p in row["found_only_on_untried_paths"]]
    print(f"failing on paths report_exportability never tried ({len(extra)}): {', '.join(extra) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--save", type=Path, metavar="FILE", help="write the results snapshot here")
    parser.add_argument(
        "--compare", type=Path, metavar="FILE", help="compare this run's snapshot with a saved one"
    )
    args = parser.parse_args()
    result, theirs, report = measure(args)
    bench_scale.print_table(result)
    models = agreement(theirs, report)
    print_agreement(models)
    current = snapshot(report, theirs)
    if args.json:
        args.json.write_text(json.dumps({**result, "models": models}, indent=2) + "\n")
    if args.save:
        args.save.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"\nsnapshot written to {args.save}")
    if args.compare:
        check_unchanged(args.compare, current)


def check_unchanged(saved: Path, current: dict[str, Any], *, only_current_jobs: bool = False) -> None:
    """Exit 1, listing them, when exportwatch results differ from the snapshot in ``saved``
    (``only_current_jobs``: jobs this run did not make are not compared)."""
    previous = json.loads(saved.read_text())
    if previous.get("versions") != current["versions"]:
        print(f"\nnote: versions differ: {previous.get('versions')} then, {current['versions']} now")
    if only_current_jobs:
        previous["jobs"] = {k: v for k, v in previous["jobs"].items() if k in current["jobs"]}
    ours, theirs_changed = differences(previous, current)
    for line in theirs_changed:
        print(f"report_exportability changed: {line}")
    if ours:
        print(f"\n{len(ours)} exportwatch results differ from {saved}:")
        print("\n".join(f"  {line}" for line in ours))
        raise SystemExit(1)
    print(f"\nno exportwatch result differs from {saved} ({len(current['jobs'])} jobs compared)")


if __name__ == "__main__":
    main()
