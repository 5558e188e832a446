"""Scale benchmark: ``exportwatch sweep --workers 2`` vs ``report_exportability``, on real models.

Models: tiny Hugging Face ``transformers`` architectures built from code (BERT, GPT-2 with its
default cache output, T5, ViT; ``benchmarks/hf_models.py``) plus the example manifest's models,
all in ``benchmarks/scale.exportwatch.yml``. Needs ``pip install transformers``; never downloads
(``HF_HUB_OFFLINE=1``).

Both sides start from a fresh Python process (both pay ``import torch`` and ``import
transformers``), build each model with the same seed and the same inputs (exportwatch's own
builders) and use the same target: torch.export non-strict. report_exportability runs
sequentially in one process, as its docs show; exportwatch runs its CLI. Measured:

- wall time of the whole process (median of ``--repeat`` runs);
- export attempts: calls of ``torch.export._trace._export``, counted by wrapping it in every
  process (a ``sitecustomize`` hook, so exportwatch's spawned workers are counted too; their
  one-off warm-up export per worker is shown apart);
- failures found: failing submodule paths; "missed" lists those report_exportability never
  reports because it tries only the first module of each type;
- peak memory: ``ru_maxrss`` of each process (exportwatch: the largest process, and the sum of
  all its processes' peaks, an upper bound of what it held at once).

    python benchmarks/bench_scale.py [--workers 2] [--repeat 3] [--json out.json]
    python benchmarks/bench_scale.py --profile [--profile-html DIR]   # where a sweep's time goes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = REPO / "benchmarks" / "scale.exportwatch.yml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}

#: Installed as ``sitecustomize`` on PYTHONPATH: counts ``torch.export._trace._export`` calls and
#: records ``ru_maxrss`` in every process (the sweep's parent and its spawned workers alike).
COUNTER = r'''
import atexit, importlib.abc, json, os, resource, sys

_DIR = os.environ.get("EW_BENCH_COUNT_DIR")
_STATE = {"calls": 0, "warmup": 0}


def _dump():
    path = os.path.join(_DIR, f"{os.getpid()}.json")
    with open(path, "w") as handle:
        json.dump({"pid": os.getpid(), "calls": _STATE["calls"], "warmup": _STATE["warmup"],
                   "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "worker": "multiprocessing" in sys.modules and "spawn" in " ".join(sys.argv)}, handle)


def _wrap(module):
    real = module._export

    def counting(mod, *args, **kwargs):
        # exportwatch's per-worker warm-up exports a 2x2 Linear before the first job
        import torch
        if type(mod) is torch.nn.Linear and tuple(mod.weight.shape) == (2, 2):
            _STATE["warmup"] += 1
        else:
            _STATE["calls"] += 1
        _dump()
        return real(mod, *args, **kwargs)

    module._export = counting


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch.export._trace":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            _wrap(module)

        spec.loader.exec_module = exec_module
        return spec


if _DIR:
    sys.meta_path.insert(0, _Hook())
    atexit.register(_dump)
'''


def counted_env(count_dir: Path, hook_dir: Path) -> dict[str, str]:
    (hook_dir / "sitecustomize.py").write_text(COUNTER)
    path = os.pathsep.join(p for p in [str(hook_dir), str(REPO), ENV.get("PYTHONPATH", "")] if p)
    return {**ENV, "PYTHONPATH": path, "EW_BENCH_COUNT_DIR": str(count_dir)}


def read_counts(count_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(count_dir.glob("*.json"))]


# ---------------------------------------------------------------------------------------------
# report_exportability, inside a fresh process


def run_baseline(manifest_path: Path) -> dict[str, Any]:
    """report_exportability over every model, sequentially, non-strict, same inputs and seed."""
    started = time.perf_counter()
    import torch
    from torch._export.tools import report_exportability

    from exportwatch.inputs import build_inputs, build_model
    from exportwatch.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    results: dict[str, dict[str, str | None]] = {}
    for spec in manifest.models:
        torch.manual_seed(0)  # as exportwatch.sweep.prepare_model: same weights
        model = build_model(spec, root=manifest.root).to("cpu")
        args, kwargs = build_inputs(spec.inputs, root=manifest.root, device="cpu", field_path="inputs")
        with torch.no_grad():
            try:
                report = report_exportability(model, tuple(args), kwargs, strict=False)
            except Exception as exc:  # report_exportability itself can raise
                report = {"": exc}
        results[spec.name] = {k: (type(v).__name__ if v is not None else None) for k, v in report.items()}
    return {"wall_in_process_s": time.perf_counter() - started, "results": results}


def measure_baseline(manifest: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        count_dir, hook_dir = Path(tmp) / "counts", Path(tmp) / "hook"
        count_dir.mkdir()
        hook_dir.mkdir()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, str(manifest), "--baseline-only"],
            capture_output=True, text=True, cwd=REPO, env=counted_env(count_dir, hook_dir),
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"baseline failed:\n{done.stderr[-3000:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        counts = read_counts(count_dir)
    data.update(
        wall_s=wall, attempts=sum(c["calls"] for c in counts),
        peak_rss_mb=max(c["maxrss_mb"] for c in counts), peak_rss_sum_mb=sum(c["maxrss_mb"] for c in counts),
    )
    return data


# ---------------------------------------------------------------------------------------------
# exportwatch sweep, as a user runs it


def measure_exportwatch(manifest: Path, workers: int, extra: list[str]) -> dict[str, Any]:
    from exportwatch.report import load_report

    with tempfile.TemporaryDirectory() as tmp:
        count_dir, hook_dir = Path(tmp) / "counts", Path(tmp) / "hook"
        count_dir.mkdir()
        hook_dir.mkdir()
        output = Path(tmp) / "report.json"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "exportwatch", "sweep", str(manifest), "-o", str(output),
             "--workers", str(workers), "--target", "export", "-q", *extra],
            capture_output=True, text=True, cwd=REPO, env=counted_env(count_dir, hook_dir),
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"exportwatch sweep failed:\n{done.stderr[-3000:]}")
        report = load_report(output)
        counts = read_counts(count_dir)
    return {
        "wall_s": wall, "report": report,
        "attempts": sum(c["calls"] for c in counts), "warmup_attempts": sum(c["warmup"] for c in counts),
        "report_attempts": sum(j.attempts for j in report.jobs),
        "peak_rss_mb": max(c["maxrss_mb"] for c in counts),
        "peak_rss_sum_mb": sum(c["maxrss_mb"] for c in counts),
        "processes": len(counts),
        "job_seconds": {j.model: j.duration_s for j in report.jobs},
    }


def compare(baseline: dict[str, Any], ours: Any) -> dict[str, Any]:
    """Failing paths each finds; whether ours finds every failure report_exportability finds."""
    theirs_total = ours_total = agree = disagree = 0
    missed_by_them: list[str] = []
    missed_by_us: list[str] = []
    per_model: dict[str, dict[str, int]] = {}
    for job in ours.jobs:
        theirs = baseline["results"].get(job.model, {})
        failing = {s.path for s in job.submodules if job.effective(s).verdict.value in ("fail", "mismatch")}
        theirs_failing = {p for p, e in theirs.items() if e is not None}
        theirs_total += len(theirs_failing)
        ours_total += len(failing)
        per_model[job.model] = {"theirs": len(theirs_failing), "ours": len(failing), "reported_by_them": len(theirs)}
        missed_by_them += [f"{job.model}:{p or '<root>'}" for p in sorted(failing - theirs_failing)]
        missed_by_us += [f"{job.model}:{p or '<root>'}" for p in sorted(theirs_failing - failing)]
        for path, error in theirs.items():
            sub = job.submodule(path)
            ok = sub is not None and job.effective(sub).verdict.value in ("ok", "covered")
            if sub is not None and ok == (error is None):
                agree += 1
            else:
                disagree += 1
    return {
        "theirs_failures": theirs_total, "ours_failures": ours_total, "agree": agree, "disagree": disagree,
        "missed_by_report_exportability": missed_by_them, "missed_by_exportwatch": missed_by_us,
        "per_model": per_model,
    }


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    load_before = loadavg()
    base_runs, our_runs = [], []
    for _ in range(args.repeat):  # interleaved, so load changes hit both sides alike
        base_runs.append(measure_baseline(args.manifest))
        our_runs.append(measure_exportwatch(args.manifest, args.workers, args.sweep_args))
    base_wall = statistics.median(r["wall_s"] for r in base_runs)
    our_wall = statistics.median(r["wall_s"] for r in our_runs)
    ours = our_runs[0]
    summary = compare(base_runs[0], ours["report"])
    return {
        "manifest": str(args.manifest.relative_to(REPO) if args.manifest.is_relative_to(REPO) else args.manifest),
        "workers": args.workers, "repeat": args.repeat, "cpus": os.cpu_count(),
        "load_before": load_before, "load_after": loadavg(),
        "report_exportability": {
            "wall_s": base_wall, "walls": [r["wall_s"] for r in base_runs],
            "attempts": base_runs[0]["attempts"], "failures": summary["theirs_failures"],
            "peak_rss_mb": base_runs[0]["peak_rss_mb"],
        },
        "exportwatch": {
            "wall_s": our_wall, "walls": [r["wall_s"] for r in our_runs],
            "attempts": ours["attempts"], "warmup_attempts": ours["warmup_attempts"],
            "report_attempts": ours["report_attempts"], "failures": summary["ours_failures"],
            "peak_rss_mb": ours["peak_rss_mb"], "peak_rss_sum_mb": ours["peak_rss_sum_mb"],
            "processes": ours["processes"], "job_seconds": ours["job_seconds"],
        },
        "ratio": our_wall / base_wall,
        "comparison": summary,
    }


def print_table(result: dict[str, Any]) -> None:
    base, ours = result["report_exportability"], result["exportwatch"]
    summary = result["comparison"]
    print(f"manifest: {result['manifest']}; target: export (non-strict); {result['workers']} workers on "
          f"{result['cpus']} CPUs; median of {result['repeat']} runs, each a fresh process; "
          f"load average {result['load_before']} before, {result['load_after']} after")
    print()
    print("| | report_exportability | exportwatch |")
    print("|---|---:|---:|")
    print(f"| wall time (s) | {base['wall_s']:.1f} | {ours['wall_s']:.1f} ({result['ratio']:.2f}×) |")
    print(f"| export attempts (`_export` calls) | {base['attempts']} | {ours['attempts']} "
          f"(+{ours['warmup_attempts']} warm-up) |")
    print(f"| failing submodules found | {base['failures']} | {ours['failures']} |")
    print(f"| peak RSS, largest process (MiB) | {base['peak_rss_mb']:.0f} | {ours['peak_rss_mb']:.0f} |")
    print(f"| peak RSS, all processes (MiB) | {base['peak_rss_mb']:.0f} | {ours['peak_rss_sum_mb']:.0f} "
          f"({ours['processes']} processes) |")
    print()
    print(f"verdicts on report_exportability's paths: {summary['agree']} agree, {summary['disagree']} disagree")
    print(f"failures report_exportability finds that exportwatch misses: "
          f"{', '.join(summary['missed_by_exportwatch']) or 'none'}")
    print(f"failures exportwatch finds that report_exportability misses ({len(summary['missed_by_report_exportability'])}): "
          f"{', '.join(summary['missed_by_report_exportability']) or 'none'}")
    print(f"runs (s): report_exportability {[round(w, 1) for w in base['walls']]}, "
          f"exportwatch {[round(w, 1) for w in ours['walls']]}")


# ---------------------------------------------------------------------------------------------
# Profile: where a sweep's time goes, in-process (what one worker does for one model)


def profile(args: argparse.Namespace) -> None:
    """Time each phase of a worker's job, per model; optionally a pyinstrument profile each."""
    os.environ.update({k: v for k, v in ENV.items() if k.startswith(("HF_", "TRANSFORMERS_"))})
    t0 = time.perf_counter()
    import torch  # noqa: F401

    t_torch = time.perf_counter() - t0
    t0 = time.perf_counter()
    from exportwatch import sweep
    from exportwatch.inputs import build_inputs, build_model
    from exportwatch.manifest import load_manifest
    from exportwatch.targets import get_target
    from exportwatch.targets import torch_export as te

    t_exportwatch = time.perf_counter() - t0
    t0 = time.perf_counter()
    import transformers  # noqa: F401

    t_transformers = time.perf_counter() - t0
    t0 = time.perf_counter()
    get_target("export").prepare()
    t_prepare = time.perf_counter() - t0
    print(f"start-up: import torch {t_torch:.2f}s, exportwatch.sweep {t_exportwatch:.2f}s, "
          f"transformers {t_transformers:.2f}s, first (warm-up) export {t_prepare:.2f}s")

    manifest = load_manifest(args.manifest)
    settings = sweep.SweepSettings(manifest_root=manifest.root, repo_root=REPO)
    # Split each attempt into torch.export tracing and verification by timing the two calls.
    phase = {"export": 0.0, "verify": 0.0}
    real_export, real_verify = torch.export.export, te.verify_exported_program

    def timed_export(*a, **k):
        t = time.perf_counter()
        try:
            return real_export(*a, **k)
        finally:
            phase["export"] += time.perf_counter() - t

    def timed_verify(*a, **k):
        t = time.perf_counter()
        try:
            return real_verify(*a, **k)
        finally:
            phase["verify"] += time.perf_counter() - t

    torch.export.export, te.verify_exported_program = timed_export, timed_verify
    profiler_cls = None
    if args.profile_html:
        from pyinstrument import Profiler as profiler_cls

        args.profile_html.mkdir(parents=True, exist_ok=True)
    print("| model | build | inputs + capture | export tracing | verification | other sweep | attempts |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in manifest.models:
        if args.models and spec.name not in args.models:
            continue
        profiler = profiler_cls(interval=0.001) if profiler_cls else None
        if profiler:
            profiler.start()
        phase.update(export=0.0, verify=0.0)
        t0 = time.perf_counter()
        torch.manual_seed(0)
        build_model(spec, root=manifest.root)
        t_build = time.perf_counter() - t0
        build_inputs(spec.inputs, root=manifest.root, device="cpu", field_path="inputs")
        t0 = time.perf_counter()
        prepared = sweep.prepare_model(spec, device="cpu", settings=settings)
        t_prepared = time.perf_counter() - t0  # builds again: capture = prepared - build
        t0 = time.perf_counter()
        job = sweep.sweep_target(prepared, "export", settings=settings)
        t_sweep = time.perf_counter() - t0
        if profiler:
            profiler.stop()
            (args.profile_html / f"{spec.name}.html").write_text(profiler.output_html())
            (args.profile_html / f"{spec.name}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
        other = t_sweep - phase["export"] - phase["verify"]
        print(f"| {spec.name} | {t_build:.2f} | {max(0.0, t_prepared - t_build):.2f} | {phase['export']:.2f} | "
              f"{phase['verify']:.2f} | {other:.2f} | {job.attempts} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", nargs="?", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--sweep-arg", action="append", dest="sweep_args", default=[],
                        help="extra argument for `exportwatch sweep` (repeatable)")
    parser.add_argument("--profile", action="store_true", help="time a worker's phases per model instead")
    parser.add_argument("--profile-html", type=Path, help="with --profile: write pyinstrument profiles here")
    parser.add_argument("--model", action="append", dest="models", help="with --profile: only these models")
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.manifest = args.manifest.resolve()
    if args.baseline_only:
        os.environ.update(ENV)
        print(json.dumps(run_baseline(args.manifest)))
        return
    if args.profile:
        profile(args)
        return
    result = benchmark(args)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
