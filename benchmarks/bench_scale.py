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

    python benchmarks/bench_scale.py [--workers 2] [--repeat 3] [--copies K] [--json out.json]
                                     [--proposed CHECKOUT]
    python benchmarks/bench_scale.py --profile [--profile-html DIR]   # where a sweep's time goes
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = REPO / "benchmarks" / "scale.exportwatch.yml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}

#: Installed as ``sitecustomize`` on PYTHONPATH: counts ``torch.export._trace._export`` calls and
#: records ``ru_maxrss`` in every process (the sweep's parent and its spawned workers alike).
COUNTER = r"""
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
"""


def counted_env(count_dir: Path, hook_dir: Path, root: Path = REPO) -> dict[str, str]:
    (hook_dir / "sitecustomize.py").write_text(COUNTER)
    path = os.pathsep.join(p for p in [str(hook_dir), str(root), ENV.get("PYTHONPATH", "")] if p)
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

    from exportwatch.manifest import load_manifest
    from exportwatch.worker.inputs import build_inputs, build_model

    manifest = load_manifest(manifest_path)
    results: dict[str, dict[str, str | None]] = {}
    for spec in manifest.models:
        torch.manual_seed(0)  # as exportwatch.worker.walk.prepare_model: same weights
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
            capture_output=True,
            text=True,
            cwd=REPO,
            env=counted_env(count_dir, hook_dir),
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"baseline failed:\n{done.stderr[-3000:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        counts = read_counts(count_dir)
    data.update(
        wall_s=wall,
        attempts=sum(c["calls"] for c in counts),
        peak_rss_mb=max(c["maxrss_mb"] for c in counts),
        peak_rss_sum_mb=sum(c["maxrss_mb"] for c in counts),
    )
    return data


# ---------------------------------------------------------------------------------------------
# exportwatch sweep, as a user runs it


def measure_exportwatch(manifest: Path, workers: int, extra: list[str], root: Path = REPO) -> dict[str, Any]:
    """``exportwatch sweep`` from checkout ``root`` (to compare a proposed change with this one)."""
    from exportwatch.report import load_report

    with tempfile.TemporaryDirectory() as tmp:
        count_dir, hook_dir = Path(tmp) / "counts", Path(tmp) / "hook"
        count_dir.mkdir()
        hook_dir.mkdir()
        output = Path(tmp) / "report.json"
        started = time.perf_counter()
        done = subprocess.run(
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
                "export",
                "-q",
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=root,
            env=counted_env(count_dir, hook_dir, root),
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"exportwatch sweep failed:\n{done.stderr[-3000:]}")
        report = load_report(output)
        counts = read_counts(count_dir)
    return {
        "wall_s": wall,
        "report": report,
        "attempts": sum(c["calls"] for c in counts),
        "warmup_attempts": sum(c["warmup"] for c in counts),
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
        per_model[job.model] = {
            "theirs": len(theirs_failing),
            "ours": len(failing),
            "reported_by_them": len(theirs),
        }
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
        "theirs_failures": theirs_total,
        "ours_failures": ours_total,
        "agree": agree,
        "disagree": disagree,
        "missed_by_report_exportability": missed_by_them,
        "missed_by_exportwatch": missed_by_us,
        "per_model": per_model,
    }


_SPIN = (
    "import time\nt = time.perf_counter()\nx = 0\n"
    "for i in range(6_000_000):\n    x += i * i\nprint(time.perf_counter() - t)"
)


def parallel_capacity() -> float:
    """How many cores two busy processes really get now (2.0 on an idle 2-core machine).

    Other work on a shared machine (or SMT siblings sold as cores) leaves less: then no
    2-worker pool can halve anything, and the ratio below says why.
    """

    def spin(count: int) -> float:
        procs = [
            subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        return max(float(p.communicate()[0]) for p in procs)

    alone = min(spin(1) for _ in range(2))
    together = min(spin(2) for _ in range(2))
    return round(2 * alone / together, 2)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def with_copies(manifest: Path, copies: int, folder: Path) -> Path:
    """The manifest with every model repeated ``copies`` times (``name__2`` …): a bigger repository.

    File-path factories and input callables are made absolute, so the copy runs from ``folder``.
    """
    import yaml

    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))

    def absolute(ref: str) -> str:
        path, sep, name = ref.rpartition(":")
        return f"{(manifest.parent / path).resolve()}{sep}{name}" if path.endswith(".py") else ref

    models = []
    for copy_index in range(1, copies + 1):
        for entry in data["models"]:
            entry = copy.deepcopy(entry)
            if copy_index > 1:
                entry["name"] = f"{entry['name']}__{copy_index}"
            entry["factory"] = absolute(entry["factory"])
            inputs = entry.get("inputs") or {}
            if isinstance(inputs.get("callable"), str):
                inputs["callable"] = absolute(inputs["callable"])
            models.append(entry)
    data["models"] = models
    target = folder / f"{manifest.stem}.x{copies}.yml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved runs (so load changes hit every side alike); medians; the first run's counts."""
    load_before = loadavg()
    capacity_before = parallel_capacity()
    sides = {"exportwatch": REPO, **{f"exportwatch ({root.name})": root for root in args.proposed}}
    base_runs: list[dict[str, Any]] = []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for _ in range(args.repeat):
        base_runs.append(measure_baseline(args.manifest))
        for name, root in sides.items():
            extra = args.sweep_args + (args.proposed_sweep_args if root != REPO else [])
            runs[name].append(measure_exportwatch(args.manifest, args.workers, extra, root))
    base_wall = statistics.median(r["wall_s"] for r in base_runs)
    result: dict[str, Any] = {
        "manifest": str(
            args.manifest.relative_to(REPO) if args.manifest.is_relative_to(REPO) else args.manifest
        ),
        "workers": args.workers,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "report_exportability": {
            "wall_s": base_wall,
            "walls": [r["wall_s"] for r in base_runs],
            "attempts": base_runs[0]["attempts"],
            "peak_rss_mb": base_runs[0]["peak_rss_mb"],
        },
        "sides": {},
    }
    for name, side_runs in runs.items():
        first = side_runs[0]
        summary = compare(base_runs[0], first["report"])
        wall = statistics.median(r["wall_s"] for r in side_runs)
        result["report_exportability"]["failures"] = summary["theirs_failures"]
        result["sides"][name] = {
            "root": str(sides[name]),
            "wall_s": wall,
            "walls": [r["wall_s"] for r in side_runs],
            "ratio": wall / base_wall,
            "attempts": first["attempts"],
            "warmup_attempts": first["warmup_attempts"],
            "report_attempts": first["report_attempts"],
            "failures": summary["ours_failures"],
            "peak_rss_mb": first["peak_rss_mb"],
            "peak_rss_sum_mb": first["peak_rss_sum_mb"],
            "processes": first["processes"],
            "job_seconds": first["job_seconds"],
            "comparison": summary,
        }
    result["load_after"] = loadavg()
    result["parallel_capacity"] = [capacity_before, parallel_capacity()]
    return result


def print_table(result: dict[str, Any]) -> None:
    base = result["report_exportability"]
    sides = result["sides"]
    print(
        f"manifest: {result['manifest']}; target: export (non-strict); {result['workers']} workers on "
        f"{result['cpus']} CPUs; median of {result['repeat']} interleaved runs, each a fresh process; "
        f"load average {result['load_before']} before, {result['load_after']} after; two busy processes "
        f"got {result['parallel_capacity'][0]} / {result['parallel_capacity'][1]} cores (before / after)"
    )
    print()
    print("| | report_exportability | " + " | ".join(sides) + " |")
    print("|---|---:|" + "---:|" * len(sides))

    def row(label: str, theirs: str, ours: Any) -> None:
        print(f"| {label} | {theirs} | " + " | ".join(ours(s) for s in sides.values()) + " |")

    row("wall time (s)", f"{base['wall_s']:.1f}", lambda s: f"{s['wall_s']:.1f} ({s['ratio']:.2f}×)")
    row(
        "export attempts (`_export` calls)",
        str(base["attempts"]),
        lambda s: f"{s['attempts']} (+{s['warmup_attempts']} warm-up)",
    )
    row("failing submodules found", str(base["failures"]), lambda s: str(s["failures"]))
    row("peak RSS, largest process (MiB)", f"{base['peak_rss_mb']:.0f}", lambda s: f"{s['peak_rss_mb']:.0f}")
    row(
        "peak RSS, sum over processes (MiB)",
        f"{base['peak_rss_mb']:.0f}",
        lambda s: f"{s['peak_rss_sum_mb']:.0f} ({s['processes']} processes)",
    )
    print()
    for name, side in sides.items():
        summary = side["comparison"]
        missed = summary["missed_by_report_exportability"]
        print(
            f"{name}: verdicts on report_exportability's paths: {summary['agree']} agree, "
            f"{summary['disagree']} disagree; failures it finds that exportwatch misses: "
            f"{', '.join(summary['missed_by_exportwatch']) or 'none'}"
        )
        print(
            f"  failures exportwatch finds that report_exportability misses ({len(missed)}): "
            f"{', '.join(missed) or 'none'}"
        )
        print(f"  runs (s): {[round(w, 1) for w in side['walls']]}")
    print(f"report_exportability runs (s): {[round(w, 1) for w in base['walls']]}")


# ---------------------------------------------------------------------------------------------
# Profile: where a sweep's time goes, in-process (what one worker does for one model)


def profile(args: argparse.Namespace) -> None:
    """Where a worker's time goes, per model, beside report_exportability's work on the same model.

    In one process, after every one-off import and a warm-up export (so a row is the steady-state
    cost a warm worker pays): model build, input capture, torch.export tracing, verification of
    the exported program, the rest of the sweep (dedup keys, diagnosis); then report_exportability
    on a fresh build of the same model. With ``--profile-html DIR``, a pyinstrument profile per
    model's sweep.
    """
    os.environ.update({k: v for k, v in ENV.items() if k.startswith(("HF_", "TRANSFORMERS_"))})
    t0 = time.perf_counter()
    import torch

    t_torch = time.perf_counter() - t0
    t0 = time.perf_counter()
    import torch.export._trace
    from torch._export.tools import report_exportability

    from exportwatch.manifest import load_manifest
    from exportwatch.targets import get_target
    from exportwatch.targets import torch_export as te
    from exportwatch.worker import walk as sweep
    from exportwatch.worker.inputs import build_inputs, build_model

    t_exportwatch = time.perf_counter() - t0
    t0 = time.perf_counter()
    with contextlib.suppress(ImportError):
        import transformers  # noqa: F401
    t_transformers = time.perf_counter() - t0
    t0 = time.perf_counter()
    get_target("export").prepare()
    t_prepare = time.perf_counter() - t0
    print(
        f"one-off start-up (per process): import torch {t_torch:.2f}s, exportwatch.worker.walk and "
        f"torch.export {t_exportwatch:.2f}s, transformers {t_transformers:.2f}s, first (warm-up) "
        f"export {t_prepare:.2f}s"
    )

    manifest = load_manifest(args.manifest)
    settings = sweep.SweepSettings(manifest_root=manifest.root, repo_root=REPO)
    phase = dict.fromkeys(("build", "capture", "export", "verify"), 0.0)
    calls = {"n": 0}

    def timed(name: str, real: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                phase[name] += time.perf_counter() - t

        return wrapper

    sweep.build_model = timed("build", sweep.build_model)
    sweep.capture_calls = timed("capture", sweep.capture_calls)
    torch.export.export = timed("export", torch.export.export)
    te.TorchExport._verify = timed("verify", te.TorchExport._verify)
    real_trace_export = torch.export._trace._export

    def counting(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        return real_trace_export(*a, **k)

    torch.export._trace._export = counting
    specs = [spec for spec in manifest.models if not args.models or spec.name in args.models]

    def ours(spec: Any) -> Any:
        prepared = sweep.prepare_model(spec, device="cpu", settings=settings)
        return sweep.sweep_target(prepared, "export", settings=settings)

    def theirs(spec: Any) -> int:
        calls["n"] = 0
        torch.manual_seed(0)
        model = build_model(spec, root=manifest.root).to("cpu")
        a, k = build_inputs(spec.inputs, root=manifest.root, device="cpu", field_path="inputs")
        with torch.no_grad(), contextlib.suppress(Exception):
            report_exportability(model, tuple(a), k, strict=False)
        return calls["n"]

    for spec in specs:  # warm-up pass: lazy imports and torch's per-process caches, both sides
        ours(spec)
        theirs(spec)
    print()
    print(
        "| model | build | capture | export tracing | verification | rest of sweep | exportwatch total "
        "(attempts) | report_exportability (attempts) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = {"ours": 0.0, "theirs": 0.0, "ours_n": 0, "theirs_n": 0}
    for spec in specs:
        phase.update(dict.fromkeys(phase, 0.0))
        t0 = time.perf_counter()
        job = ours(spec)
        our_s = time.perf_counter() - t0
        rest = our_s - sum(phase.values())
        t0 = time.perf_counter()
        their_n = theirs(spec)
        their_s = time.perf_counter() - t0
        totals["ours"] += our_s
        totals["theirs"] += their_s
        totals["ours_n"] += job.attempts
        totals["theirs_n"] += their_n
        print(
            f"| {spec.name} | {phase['build']:.2f} | {phase['capture']:.2f} | {phase['export']:.2f} | "
            f"{phase['verify']:.2f} | {rest:.2f} | {our_s:.2f} ({job.attempts}) | "
            f"{their_s:.2f} ({their_n}) |"
        )
    print(
        f"| **total** | | | | | | {totals['ours']:.2f} ({totals['ours_n']}) | "
        f"{totals['theirs']:.2f} ({totals['theirs_n']}) |"
    )
    if args.profile_html:  # a separate pass: the profiler's own overhead stays out of the table
        from pyinstrument import Profiler

        args.profile_html.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            profiler = Profiler(interval=0.001)
            profiler.start()
            ours(spec)
            profiler.stop()
            (args.profile_html / f"{spec.name}.html").write_text(profiler.output_html())
            (args.profile_html / f"{spec.name}.txt").write_text(
                profiler.output_text(unicode=True, show_all=False)
            )


# ---------------------------------------------------------------------------------------------
# The trusted side at monorepo scale: load, diff and render reports of N submodules (issue 29)

#: Submodules per job of the synthetic reports: a model of 1,000 submodules on each target.
SUBS_PER_JOB = 1_000
SCALE_TARGETS = ("export", "export-strict", "onnx", "onnx-legacy")
#: A message a hostile (or merely unlucky) model can raise: markup, mentions, references, a sha.
HOSTILE = (
    "<script>alert(1)</script> @octocat #123 ](javascript:x) `tick` *bold* | pipe | "
    "0123456789abcdef0123456789abcdef01234567 acme/vision@fedcba9876543210 ::error::x"
)


def scale_reports(submodules: int, *, removed_every: int = 10) -> tuple[Any, Any]:
    """(base, head) of about ``submodules`` submodules over jobs of :data:`SUBS_PER_JOB`.

    Head: one shared layer broken by an upgrade, so 1 submodule in 50 fails with one cause
    (its block and the root fail because of it) and hostile text; one in ``removed_every``
    base-only submodules is gone on head (thousands of "other changes" items).
    """
    from exportwatch.report import Environment, JobResult, Report, SubmoduleResult, UserFrame, Verdict

    def job(model: str, target: str, *, head: bool) -> JobResult:
        subs = [SubmoduleResult(path="", module_type="Net", verdict=Verdict.OK)]
        failing_blocks: set[int] = set()
        blocks = (SUBS_PER_JOB - 1) // 5
        for i in range(blocks):
            block = f"layers.{i}"
            children = [f"{block}.{c}" for c in ("attn", "mlp", "norm1", "norm2")]
            fails = head and i % 10 == 0
            if fails:
                failing_blocks.add(i)
            subs.append(SubmoduleResult(path=block, module_type="Block", verdict=Verdict.OK))
            for k, path in enumerate(children):
                if head and k == 3 and i % removed_every == 1:
                    continue  # gone on head
                subs.append(SubmoduleResult(path=path, module_type="Leaf", verdict=Verdict.OK))
        if failing_blocks:
            for index, s in enumerate(subs):
                parts = s.path.split(".")
                in_block = len(parts) >= 2 and int(parts[1]) in failing_blocks
                if s.path == "" or (in_block and (len(parts) == 2 or parts[2] == "attn")):
                    subs[index] = SubmoduleResult(
                        path=s.path,
                        module_type=s.module_type,
                        verdict=Verdict.FAIL,
                        category="unsupported-operator",
                        fingerprint="f" * 16,
                        exception_type="torch._dynamo.exc.Unsupported",
                        message=f"aten::shared_op is not supported {HOSTILE}",
                        detail=f'Traceback (most recent call last):\n  File "x.py", line 1\n{HOSTILE}\n' * 8,
                        user_frame=UserFrame(
                            path="models/shared.py", line=42, function="forward", source="y = op(x)"
                        ),
                        hint="Register a decomposition for aten::shared_op.",
                        origin=len(parts) == 3,
                    )
        verdict = Verdict.FAIL if failing_blocks else Verdict.OK
        return JobResult(model=model, target=target, device="cpu", verdict=verdict, submodules=subs)

    jobs = max(1, submodules // SUBS_PER_JOB)
    keys = [(f"model_{m}", SCALE_TARGETS[t]) for m in range(jobs) for t in range(len(SCALE_TARGETS))][:jobs]

    def report(head: bool) -> Report:
        return Report(
            tool_version="0.1.0",
            created_at="2026-01-01T00:00:00Z",
            repository="acme/monorepo",
            git_sha=("1" if head else "2") * 40,
            environment=Environment(python="3.11.7", platform="linux", torch="2.13.0"),
            jobs=[job(m, t, head=head) for m, t in keys],
        )

    return report(False), report(True)


def _rss_now_mb() -> float:
    """This process's resident memory now (not its peak): what the objects it holds take."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def compact_json(report: Any) -> str:
    """The report as the compact form a size cap allows most of: no spaces, no empty fields."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v not in (None, [], {}, False) or k == "verdict"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    data = report.to_dict()
    data["jobs"] = [strip(job) for job in data["jobs"]]
    return json.dumps(data, separators=(",", ":"))


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_report_scale(folder: Path, *, with_load: bool) -> dict[str, Any]:
    """In this (fresh) process: diff, gate and every render of the two reports (unpickled, so
    these figures stand apart from the loader's, which another change speeds up), the peak RSS
    they reach, then a plain ``json.load`` of both files to compare with; ``with_load``: time
    ``load_report`` first (it then sets the peak)."""
    import pickle

    base_path, head_path = folder / "base.json", folder / "head.json"

    from exportwatch.diff import diff_reports, gate
    from exportwatch.render import RenderContext
    from exportwatch.render.markdown import render_comment, render_summary
    from exportwatch.render.terminal import render_text
    from exportwatch.report import load_report

    timings: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        t = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - t
        return value

    if with_load:
        timed(
            "load_s", lambda: (load_report(base_path, untrusted=True), load_report(head_path, untrusted=True))
        )
    base, head = pickle.loads((folder / "reports.pickle").read_bytes())
    rss_reports = _rss_now_mb()
    changes = timed("diff_s", lambda: diff_reports(base, head))
    rss_diff = _rss_now_mb()
    verdict = timed("gate_s", lambda: gate(changes))
    context = RenderContext(run_url="https://github.com/acme/monorepo/actions/runs/1")
    comment = timed("comment_s", lambda: render_comment(changes, verdict, context=context))
    summary = timed("summary_s", lambda: render_summary(changes, verdict, context=context))
    text = timed("terminal_s", lambda: render_text(changes, verdict, context=context))
    timings["render_s"] = timings["comment_s"] + timings["summary_s"] + timings["terminal_s"]
    rss_rendered = _rss_now_mb()  # the reports, the diff and the views: before any JSON is parsed
    started = time.perf_counter()
    for path in (base_path, head_path):
        with path.open(encoding="utf-8") as handle:
            json.load(handle)
    json_s = time.perf_counter() - started
    return {
        "plain_json_load_s": json_s,
        **timings,
        "diff_over_json": timings["diff_s"] / json_s,
        "diff_render_over_json": (timings["diff_s"] + timings["gate_s"] + timings["render_s"]) / json_s,
        # Unpickling the reports sets the process's peak; what the diff and the views add is
        # read from the resident memory now, before and after.
        "rss_with_reports_mb": rss_reports,
        "rss_after_diff_mb": rss_diff,
        "rss_after_render_mb": rss_rendered,
        "diff_and_views_mb": rss_rendered - rss_reports,
        "peak_rss_mb": _peak_rss_mb(),
        "cells": len(changes.cells),
        "comment_chars": len(comment),
        "summary_bytes": len(summary.encode("utf-8")),
        "terminal_chars": len(text),
        "file_mb": (base_path.stat().st_size + head_path.stat().st_size) / 2**20,
    }


def measure_cli_diff(base_path: Path, head_path: Path) -> dict[str, Any]:
    """``exportwatch diff --format markdown`` as a user runs it: wall time and peak RSS."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "diff", str(base_path), str(head_path), "--format", "markdown"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**ENV, "PYTHONPATH": str(REPO)},
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):
        raise SystemExit(f"exportwatch diff failed:\n{done.stderr[-3000:]}")
    return {"cli_wall_s": wall, "cli_peak_rss_mb": peak / 1024 if peak > before else None}


def report_scale(
    sizes: list[int],
    *,
    at_cap: bool,
    with_load: bool,
    cli: bool,
    json_out: Path | None,
    others: Sequence[Path] = (),
) -> None:
    """Synthetic reports of each size (compact JSON), each measured in a fresh process, with
    this checkout's exportwatch and then each of ``others`` (``--proposed``: e.g. main)."""
    import pickle

    from exportwatch.report.model import MAX_REPORT_BYTES

    rows: list[dict[str, Any]] = []
    plan = [(f"{n:,}", n) for n in sizes]
    if at_cap:
        _, probe_head = scale_reports(10_000)
        per_sub = len(compact_json(probe_head)) / 10_000
        plan.append(("at the cap", int(MAX_REPORT_BYTES * 0.97 / per_sub) // SUBS_PER_JOB * SUBS_PER_JOB))
    for label, n in plan:
        with tempfile.TemporaryDirectory(prefix="exportwatch-scale-") as tmp:
            folder = Path(tmp)
            base, head = scale_reports(n)
            (folder / "base.json").write_text(compact_json(base), encoding="utf-8")
            (folder / "head.json").write_text(compact_json(head), encoding="utf-8")
            (folder / "reports.pickle").write_bytes(pickle.dumps((base, head)))
            del base, head
            for root in (REPO, *others):
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--measure-reports",
                        str(folder),
                        *(["--with-load"] * with_load),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=root,
                    env={**ENV, "PYTHONPATH": str(root)},
                )
                if done.returncode != 0:
                    raise SystemExit(f"measuring {n} failed:\n{done.stderr[-3000:]}")
                code = "this checkout" if root == REPO else root.name
                row = {
                    "label": label if root == REPO else f"{label} ({code})",
                    "code": code,
                    "submodules": n,
                    **json.loads(done.stdout.strip().splitlines()[-1]),
                }
                if cli and root == REPO:
                    row.update(measure_cli_diff(folder / "base.json", folder / "head.json"))
                row["load_average"] = loadavg()
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print(f"{os.cpu_count()} CPUs; load average {loadavg()}")
    print(
        "| submodules | JSON (MB, both) | json.load (s) | diff_reports (s) | diff ÷ json.load "
        "| render: comment / summary / terminal (s) | diff+gate+render ÷ json.load "
        "| reports in memory + diff and views (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['label']} | {r['file_mb']:.1f} | {r['plain_json_load_s']:.2f} | {r['diff_s']:.2f} "
            f"| {r['diff_over_json']:.1f}× | {r['comment_s']:.2f} / {r['summary_s']:.2f} / "
            f"{r['terminal_s']:.2f} | {r['diff_render_over_json']:.1f}× "
            f"| {r['rss_with_reports_mb']:.0f} + {r['diff_and_views_mb']:.0f} |"
        )
    if json_out:
        json_out.write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("manifest", nargs="?", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="repeat every model this many times (a bigger repository; default 1)",
    )
    parser.add_argument(
        "--proposed",
        action="append",
        default=[],
        type=Path,
        metavar="CHECKOUT",
        help="also time `exportwatch sweep` from this checkout (e.g. with a proposed patch; repeatable)",
    )
    parser.add_argument(
        "--sweep-arg",
        action="append",
        dest="sweep_args",
        default=[],
        help="extra argument for `exportwatch sweep` (repeatable)",
    )
    parser.add_argument(
        "--proposed-sweep-arg",
        action="append",
        dest="proposed_sweep_args",
        default=[],
        help="extra argument for the --proposed checkouts' sweeps only (e.g. --durations=R)",
    )
    parser.add_argument("--profile", action="store_true", help="time a worker's phases per model instead")
    parser.add_argument("--profile-html", type=Path, help="with --profile: write pyinstrument profiles here")
    parser.add_argument("--model", action="append", dest="models", help="with --profile: only these models")
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--reports",
        type=lambda v: [int(x) for x in v.split(",")],
        metavar="N[,N...]",
        help="instead: load, diff and render synthetic reports of N submodules (e.g. 2000,20000,200000)",
    )
    parser.add_argument("--at-cap", action="store_true", help="with --reports: also at the report size cap")
    parser.add_argument("--with-load", action="store_true", help="with --reports: also time load_report")
    parser.add_argument(
        "--cli", action="store_true", help="with --reports: also time `exportwatch diff --format markdown`"
    )
    parser.add_argument("--measure-reports", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.manifest = args.manifest.resolve()
    if args.baseline_only:
        os.environ.update(ENV)
        print(json.dumps(run_baseline(args.manifest)))
        return
    if args.profile:
        profile(args)
        return
    if args.measure_reports:
        print(json.dumps(measure_report_scale(args.measure_reports, with_load=args.with_load)))
        return
    if args.reports:
        report_scale(
            args.reports,
            at_cap=args.at_cap,
            with_load=args.with_load,
            cli=args.cli,
            json_out=args.json,
            others=args.proposed,
        )
        return
    if args.copies > 1:
        folder = Path(tempfile.mkdtemp(prefix="exportwatch-bench-"))
        args.manifest = with_copies(args.manifest, args.copies, folder)
    result = benchmark(args)
    result["copies"] = args.copies
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
