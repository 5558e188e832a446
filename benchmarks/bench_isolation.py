"""What a fresh process per model costs: the per-model overhead of the sweep's isolation.

Sweeps N and then 2 copies of a tiny model (``Linear(4, 4)``, torch.export non-strict) with one
worker, from fresh processes, and reports ``(wall(N) - wall(2)) / (N - 2)``: the time one more
model adds, start-up of its process included. Run it for each start method:

    python benchmarks/bench_isolation.py [--models 22] [--repeat 3]
    python benchmarks/bench_isolation.py --code /path/to/older/checkout   # another version

``EXPORTWATCH_START_METHOD=spawn`` is set for the ``spawn`` row (the fallback where forking is
unsafe). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = """\
import torch


def tiny():
    return torch.nn.Linear(4, 4)
"""


def manifest(count: int) -> str:
    entries = "".join(
        f"  - name: tiny_{i}\n    factory: tiny.py:tiny\n    inputs: {{args: [{{shape: [2, 4]}}]}}\n"
        for i in range(count)
    )
    return f"version: 1\ndefaults: {{targets: [export]}}\nmodels:\n{entries}"


def wall(directory: Path, count: int, *, method: str, code: Path | None) -> float:
    path = directory / f"m{count}.yml"
    path.write_text(manifest(count))
    env = dict(os.environ)
    env.pop("EXPORTWATCH_START_METHOD", None)
    if method == "spawn":
        env["EXPORTWATCH_START_METHOD"] = "spawn"
    if code is not None:
        env["PYTHONPATH"] = str(code)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "exportwatch", "sweep", str(path), "-o", str(directory / "r.json"),
         "--workers", "1", "-q"],
        check=True, env=env, cwd=directory, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=22)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", default="fork,spawn")
    parser.add_argument("--code", type=Path, help="run the exportwatch found here (PYTHONPATH)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        (directory / "tiny.py").write_text(MODEL)
        for method in args.methods.split(","):
            many = [wall(directory, args.models, method=method, code=args.code) for _ in range(args.repeat)]
            two = [wall(directory, 2, method=method, code=args.code) for _ in range(args.repeat)]
            per_model = (statistics.median(many) - statistics.median(two)) / (args.models - 2)
            print(
                f"{method:6} wall({args.models}) {statistics.median(many):6.2f} s  wall(2) "
                f"{statistics.median(two):6.2f} s  per model {per_model * 1000:6.0f} ms"
            )


if __name__ == "__main__":
    main()
