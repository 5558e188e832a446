"""Loading an untrusted report at scale: candidates for decode + validate + build, side by side.

Builds a report of N submodules by replicating a small realistic job (1,000 submodules a job,
1 in 50 failing with hostile text: markdown, HTML, a ``#123``, a 40-hex sha, a 2 KB detail),
written compact (fields at their default left out, as the schema allows: 200k submodules
≈ 25 MB). Each candidate runs in a fresh process; in that process it is timed against a plain
``json.loads`` of the same bytes (the ratio is what survives a loaded shared machine), and its
peak RSS (``VmHWM``, the whole process: Python, the file's bytes, the report) is read before
that ``json.loads`` runs.

Candidates:
- ``before``: ``load_report(untrusted=True)`` of another checkout (``--before DIR``, e.g. a
  ``git archive main exportwatch`` unpacked): json + jsonschema + dataclasses built by hand;
- ``after``: this checkout's ``load_report(untrusted=True)``: the C decoder's duplicate-key
  pass, then pydantic-core decoding, checking and building in one pass;
- ``pydantic-core only``: ``report.validate.validate_report`` alone (no duplicate-key pass);
- ``fastjsonschema``: json.loads + a fastjsonschema-compiled validator of the published schema
  (``--extra-path`` where it is installed); the dataclasses would still be built by hand after it;
- ``msgspec``: ``msgspec.json.decode`` straight into the dataclasses, types only (no bounds,
  no duplicate-key refusal): a lower bound of what msgspec would cost.

    python benchmarks/bench_load.py --sizes 20000 200000 --before /tmp/ew-main --extra-path /tmp/cand

Measured (2 shared vCPUs, load average 3-4; time = median of 3, 1 for ``before`` at 200k;
ratio = time / a plain ``json.loads`` of the same bytes in the same process; peak = VmHWM):

| candidate | 20k (2.8 MiB) ratio | peak MiB | 200k (27.7 MiB) ratio | peak MiB |
|---|---:|---:|---:|---:|
| before (json + jsonschema + hand-built) | 103× | 46 | 132× (32.5 s) | 274 |
| after (duplicate-key pass + pydantic-core) | 4.5× | 48 | 5.9× (1.8 s) | 279 |
| pydantic-core only | 6.0× | 44 | 5.3× | 252 |
| fastjsonschema (validation only, nothing built) | 7.6× | 39 | 5.2× | 176 |
| msgspec into the dataclasses (types only) | 12.2× | 36 | 11.3× | 178 |

Every field written (``--form written``, 20k, 14.3 MiB): before 53.6×, after 2.1×.
``exportwatch diff --format markdown`` of two 200k reports: 66 s → 18 s, ~416 MB both
(identical output); loading both is 3.2× a plain ``json.loads`` of both (the rest is diff
and render).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

HOSTILE = (
    "Could not guard on data-dependent expression Eq(u0, 1) <b>**bold**</b> [x](javascript:alert(1)) "
    "#123 @someone deadbeefdeadbeefdeadbeefdeadbeefdeadbeef "
    "owner/repo@0123456789abcdef0123456789abcdef01234567"
)


def build_report(submodules: int, *, per_job: int = 1_000) -> dict[str, Any]:
    """A compact report document of ``submodules`` submodules: defaults and nulls left out."""
    jobs = []
    made = 0
    index = 0
    while made < submodules:
        count = min(per_job, submodules - made)
        subs: list[dict[str, Any]] = [{"path": "", "module_type": "models.Net", "verdict": "fail"}]
        for i in range(1, count):
            block, leaf = divmod(i, 10)
            path = f"layers.{block}.mlp.fc{leaf}"
            if i % 50 == 0:
                subs.append(
                    {
                        "path": path,
                        "module_type": "torch.nn.Linear",
                        "verdict": "fail",
                        "stage": "capture",
                        "category": "data-dependent",
                        "fingerprint": f"{i % 7:016x}",
                        "exception_type": "GuardOnDataDependentSymNode",
                        "message": HOSTILE[:500],
                        "detail": (HOSTILE + "\n") * 8,
                        "user_frame": {"path": "models/net.py", "line": 40 + leaf, "function": "forward"},
                        "origin": True,
                        "duration_s": 0.25,
                        "attempts": 1,
                    }
                )
            else:
                subs.append(
                    {
                        "path": path,
                        "module_type": "torch.nn.Linear",
                        "verdict": "covered",
                        "covered_by": f"layers.{block}",
                    }
                )
        jobs.append(
            {
                "model": f"model{index // 4}",
                "target": ("export", "onnx", "executorch", "aoti")[index % 4],
                "device": "cpu",
                "verdict": "fail",
                "duration_s": 12.5,
                "submodules": subs,
            }
        )
        made += count
        index += 1
    return {
        "schema_version": 1,
        "tool_version": "0.1.0",
        "environment": {"python": "3.11.9", "torch": "2.13.0"},
        "plan": sorted({f"{j['model']}/{j['target']}" for j in jobs}),
        "jobs": jobs,
    }


CHILD = r"""
import json, sys, time
path, candidate, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
from pathlib import Path
raw = Path(path).read_bytes()

def run():
    if candidate in ("before", "after"):
        from exportwatch.report import load_report
        return load_report(Path(path), untrusted=True)
    if candidate == "pydantic-core only":
        from exportwatch.report.validate import validate_report
        return validate_report(raw, strict=True)
    if candidate == "fastjsonschema":
        import fastjsonschema
        from exportwatch.report import report_schema
        check = fastjsonschema.compile(report_schema())
        return check(json.loads(raw))
    if candidate == "msgspec":
        import msgspec
        from exportwatch.report import Report
        return msgspec.json.decode(raw, type=Report)
    raise SystemExit(candidate)

def high_water_mb():
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak (kept across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

if candidate != "json":
    run()  # imports and compiled validators out of the timing
    import gc; gc.collect()
rss0 = high_water_mb()
times = []
for _ in range(repeat):
    started = time.perf_counter()
    result = run() if candidate != "json" else json.loads(raw)
    times.append(time.perf_counter() - started)
    del result
peak = high_water_mb()
plain = []
for _ in range(3):
    started = time.perf_counter()
    json.loads(raw)
    plain.append(time.perf_counter() - started)
print(json.dumps({"times": times, "json": plain, "peak_mb": peak, "before_mb": rss0}))
"""


def measure(path: Path, candidate: str, *, pythonpath: str, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), candidate, str(repeat)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,  # ``python -c`` puts the working directory first on sys.path: not a checkout
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    found["median_s"] = statistics.median(found["times"])
    found["json_s"] = min(found["json"])
    found["ratio"] = found["median_s"] / found["json_s"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--before", type=Path, help="a checkout (or unpacked archive) to compare with")
    parser.add_argument("--extra-path", help="where fastjsonschema / msgspec are installed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--candidates", nargs="+")
    parser.add_argument(
        "--form",
        choices=["compact", "written"],
        default="compact",
        help="compact: defaults left out; written: every field, as exportwatch's own writer (indent 2)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    ours = os.pathsep.join(p for p in [str(REPO), args.extra_path or ""] if p)
    plans: list[tuple[str, str]] = [("json", ours)]
    if args.before:
        plans.append(("before", os.pathsep.join(p for p in [str(args.before), args.extra_path or ""] if p)))
    plans += [("after", ours), ("pydantic-core only", ours)]
    if args.extra_path:
        plans += [("fastjsonschema", ours), ("msgspec", ours)]
    if args.candidates:
        plans = [p for p in plans if p[0] in args.candidates]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"report-{size}.json"
            document = build_report(size)
            if args.form == "written":
                sys.path.insert(0, str(REPO))
                from exportwatch.report import Report

                path.write_text(Report.from_dict(document).to_json())
            else:
                path.write_text(json.dumps(document, separators=(",", ":")))
            mb = path.stat().st_size / 2**20
            print(f"\n{size:,} submodules: {mb:.1f} MiB JSON ({args.form})")
            print(
                f"  {'candidate':22}{'time (s)':>10}{'json.loads (s)':>16}{'ratio':>8}{'peak RSS (MiB)':>16}"
            )
            for name, pythonpath in plans:
                repeat = 1 if name == "before" and size > 50_000 else args.repeat
                found = measure(path, name, pythonpath=pythonpath, repeat=repeat)
                results[f"{size}/{name}"] = found
                if "error" in found:
                    print(f"  {name:22}{found['error'][:80]}")
                    continue
                print(
                    f"  {name:22}{found['median_s']:>10.2f}{found['json_s']:>16.3f}"
                    f"{found['ratio']:>8.1f}{found['peak_mb']:>16.0f}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
