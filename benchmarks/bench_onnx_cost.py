"""What an ONNX attempt costs next to a torch.export attempt, cold and warm.

Each target runs in a fresh interpreter (as a sweep worker would): we time ``import torch``,
the first attempt (which pays the exporter's one-off start-up: onnxscript import, torchlib
registry) and then warm attempts on a few small example models (median of ``--repeat``).
Verification against eager is on, as in a sweep.

    python benchmarks/bench_onnx_cost.py [--repeat 3] [--targets export onnx ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from typing import Any

TARGETS = ("export", "export-strict", "onnx", "onnx-legacy")


def _models() -> list[tuple[str, Any, tuple[Any, ...], list[tuple[str, tuple[Any, ...]]]]]:
    import torch

    from exportwatch.examples import models

    torch.manual_seed(0)
    return [
        (
            "tiny_cnn",
            models.TinyCNN(channels=8).eval(),
            (torch.randn(2, 3, 32, 32),),
            [("other", (torch.randn(2, 3, 32, 32),))],
        ),
        ("transformer_block", models.TransformerBlock().eval(), (torch.randn(2, 6, 32),), []),
        ("stacked_encoder", models.StackedEncoder().eval(), (torch.randn(2, 16),), []),
    ]


def worker(target_name: str, repeat: int, registry_cache: bool, prepare: bool) -> dict[str, Any]:
    """Runs inside the fresh interpreter: returns timings in seconds."""
    started = time.perf_counter()
    import torch

    import_torch = time.perf_counter() - started

    from exportwatch.targets import Call, TargetOptions, get_target

    if not registry_cache:
        from exportwatch.targets import onnx as onnx_target

        onnx_target._reuse_torchlib_registry = contextlib.nullcontext  # type: ignore[assignment]

    target = get_target(target_name)
    options = TargetOptions()
    out: dict[str, Any] = {"target": target_name, "import_torch_s": import_torch, "models": {}}
    out["prepare_s"] = None
    if prepare:
        t0 = time.perf_counter()
        target.prepare()
        out["prepare_s"] = time.perf_counter() - t0
    first = True
    with torch.no_grad():
        for name, module, args, checks in _models():
            calls = [(n, Call(args=a)) for n, a in checks]
            times: list[float] = []
            verdict = ""
            for _ in range(repeat + (1 if first else 0)):
                t0 = time.perf_counter()
                outcome = target.attempt(module, Call(args=args), checks=calls, options=options)
                times.append(time.perf_counter() - t0)
                verdict = f"{outcome.verdict.value}" + (f"@{outcome.stage}" if outcome.stage else "")
            if first:
                out["first_attempt_s"] = times.pop(0)
                out["first_model"] = name
                first = False
            out["models"][name] = {"warm_median_s": statistics.median(times), "verdict": verdict}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--no-registry-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.worker:
        print(json.dumps(worker(ns.worker, ns.repeat, not ns.no_registry_cache, ns.prepare)))
        return

    runs: list[tuple[str, list[str]]] = []
    for t in ns.targets:
        runs += [(t, []), (t, ["--prepare"])]
    if "onnx" in ns.targets:
        runs.append(("onnx", ["--no-registry-cache"]))
    labels = {"": "", "--prepare": " + prepare()", "--no-registry-cache": " (no registry cache)"}
    results = []
    for target, extra in runs:
        command = [sys.executable, __file__, "--worker", target, "--repeat", str(ns.repeat), *extra]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        result["label"] = target + labels["".join(extra)]
        results.append(result)

    names = list(results[0]["models"])
    header = f"{'target':<30} {'import torch':>12} {'prepare()':>10} {'1st attempt':>12} " + " ".join(
        f"{n:>22}" for n in names
    )
    print(header)
    print("-" * len(header))
    for r in results:
        cells = " ".join(
            f"{r['models'][n]['warm_median_s']:>8.3f}s {r['models'][n]['verdict']:>13}" for n in names
        )
        prep = f"{r['prepare_s']:>9.2f}s" if r["prepare_s"] is not None else f"{'-':>10}"
        print(f"{r['label']:<30} {r['import_torch_s']:>11.2f}s {prep} {r['first_attempt_s']:>11.2f}s {cells}")
    print(
        f"\n1st attempt = first call in a fresh worker (on {results[0]['first_model']}); "
        f"columns per model = warm median of {ns.repeat} attempts, verification on."
    )


if __name__ == "__main__":
    main()
