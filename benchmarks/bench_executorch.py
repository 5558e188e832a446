"""The ``executorch`` target on real architectures, against ExecuTorch's own lowering.

Runs ``exportwatch sweep benchmarks/realarch.executorch.yml`` (targets ``export`` and
``executorch``, a subprocess) and then, in this process, on the same models and inputs (built
the way a sweep's worker builds them: exportwatch's builders, seed 0, ``eval()``, ``no_grad``),
ExecuTorch's own recipe::

    edge = to_edge_transform_and_lower(torch.export.export(m, args, kwargs),
                                       partitioner=[XnnpackPartitioner()])
    get_delegation_info(edge.exported_program().graph_module)

and the ``.pte`` it makes, run in the ExecuTorch runtime against eager (the largest absolute
difference of any output). Per model it prints: the executorch verdict, XNNPACK coverage and
the operators left to the portable kernels as exportwatch recorded them, whether ExecuTorch's
own count agrees (``getitem`` left out on both sides: exportwatch does not count it as
compute), the numerics, and the time of the ``executorch`` job against the ``export`` job.

    python benchmarks/bench_executorch.py [--workers 2] [--json numbers.json] [--report r.json]

Needs the executorch extra with torch 2.13, transformers, timm and torchvision
(``pip install torch==2.13.0 -e '.[executorch,zoo]'``); never downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MANIFEST = HERE / "realarch.executorch.yml"
sys.path.insert(0, str(HERE))
import realarch_models  # noqa: E402,F401  # first: lets torchvision import without its C++ ops

#: Node names ExecuTorch's count includes and exportwatch's leaves out (not compute).
NOT_COMPUTE = ("getitem",)


def sweep(*, workers: int, output: Path) -> tuple[dict[str, Any], float]:
    """One real ``exportwatch sweep`` of the manifest: the report, and its wall time."""
    started = time.perf_counter()
    command = ["sweep", str(MANIFEST), "-o", str(output), "--workers", str(workers), "-q"]
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", *command],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if not output.is_file():
        raise SystemExit(f"exportwatch sweep exited {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads(output.read_text(encoding="utf-8")), time.perf_counter() - started


def build(name: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The manifest's model ``name`` and its inputs, as a sweep's worker builds them."""
    import torch

    from exportwatch.manifest import load_manifest
    from exportwatch.worker.inputs import build_inputs, build_model

    manifest = load_manifest(MANIFEST)
    spec = manifest.model(name)
    torch.manual_seed(0)
    model = build_model(spec, root=manifest.root).eval()
    args, kwargs = build_inputs(spec.inputs, root=manifest.root, device="cpu", field_path="inputs")
    return model, tuple(args), kwargs


def executorch_own(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """ExecuTorch's own lowering of ``model``: its delegation info, the ``.pte`` run against
    eager (largest absolute difference), and the seconds each step took."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        program = torch.export.export(model, args, kwargs)
        exported = time.perf_counter()
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        lowered = time.perf_counter()
        info = get_delegation_info(edge.exported_program().graph_module)
        buffer = edge.to_executorch().buffer
        method = Runtime.get().load_program(buffer).load_method("forward")
        flat = torch.utils._pytree.tree_leaves((args, kwargs))
        outputs = method.execute(flat)
        ran = time.perf_counter()
        expected = torch.utils._pytree.tree_leaves(model(*args, **kwargs))
    error = max(float((got - want).abs().max()) for got, want in zip(outputs, expected, strict=True))
    return {
        "info": info,
        "max_abs_error": error,
        "export_s": round(exported - started, 2),
        "lower_s": round(lowered - exported, 2),
        "total_s": round(ran - started, 2),
    }


def own_counts(info: Any) -> dict[str, Any]:
    """ExecuTorch's ``DelegationInfo`` in exportwatch's terms: ``getitem`` left out."""
    by_op = info.delegation_by_operator
    skipped = [by_op[name] for name in NOT_COMPUTE if name in by_op]
    return {
        "delegated_nodes": info.num_delegated_nodes - sum(b.delegated for b in skipped),
        "not_delegated_nodes": info.num_non_delegated_nodes - sum(b.non_delegated for b in skipped),
        "subgraphs": info.num_delegated_subgraphs,
        "not_delegated": {
            name: b.non_delegated for name, b in by_op.items() if b.non_delegated and name not in NOT_COMPUTE
        },
    }


def disagreements(delegation: dict[str, Any], info: Any) -> list[str]:
    """Where exportwatch's recorded ``delegation`` (report JSON) and ExecuTorch's own count of
    the same model differ; empty when they agree.

    ExecuTorch names an operator by its node (``aten_cumsum_default``), exportwatch by the
    operator (``aten.cumsum``): a node counts for the longest exportwatch name it starts with.
    """
    own = own_counts(info)
    ours_left = delegation.get("not_delegated") or {}
    problems = []
    for field, ours in (
        ("delegated_nodes", delegation["delegated_nodes"]),
        ("not_delegated_nodes", delegation["compute_nodes"] - delegation["delegated_nodes"]),
        ("subgraphs", delegation["subgraphs"]),
    ):
        if own[field] != ours:
            problems.append(f"{field}: exportwatch {ours}, ExecuTorch {own[field]}")
    counted: dict[str, int] = {}
    for node_name, count in own["not_delegated"].items():
        matches = [op for op in ours_left if _names(node_name, op)]
        if not matches:
            problems.append(f"ExecuTorch leaves {node_name} ×{count}; exportwatch names no such operator")
            continue
        best = max(matches, key=len)
        counted[best] = counted.get(best, 0) + count
    for op, count in ours_left.items():
        if counted.get(op, 0) != count:
            problems.append(f"{op}: exportwatch ×{count}, ExecuTorch ×{counted.get(op, 0)}")
    return problems


def _names(node_name: str, operator: str) -> bool:
    """``aten_cumsum_default`` names ``aten.cumsum``; so does ``scalar_tensor`` (a node a pass
    made, named without its namespace) ``aten.scalar_tensor``."""
    stems = {operator.replace(".", "_"), operator.split(".", 1)[-1].replace(".", "_")}
    return any(node_name == stem or node_name.startswith(stem + "_") for stem in stems)


def _root(job: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in job["submodules"] if s["path"] == "")


def _percent(delegation: dict[str, Any] | None) -> str:
    if not delegation or not delegation["compute_nodes"]:
        return "–"
    share = 100 * delegation["delegated_nodes"] / delegation["compute_nodes"]
    return f"{share:.0f}% ({delegation['delegated_nodes']}/{delegation['compute_nodes']})"


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.report is not None:  # a sweep of the manifest made earlier: only ExecuTorch's side runs
        report = json.loads(args.report.read_text(encoding="utf-8"))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report, sweep_s = sweep(workers=args.workers, output=Path(tmp) / "r.json")
        print(f"exportwatch sweep (export + executorch, {args.workers} workers): {sweep_s:.1f} s", flush=True)
    jobs = {(j["model"], j["target"]): j for j in report["jobs"]}
    rows = []
    for name in dict.fromkeys(model for model, _target in jobs):
        et, export = jobs[(name, "executorch")], jobs.get((name, "export"))
        root = _root(et)
        delegation = root.get("delegation")
        model, inputs, kwargs = build(name)
        own = executorch_own(model, inputs, kwargs)
        row = {
            "model": name,
            "verdict": et["verdict"],
            "lowered": delegation is not None,
            "coverage": _percent(delegation),
            "not_delegated": (delegation or {}).get("not_delegated", {}),
            "max_abs_error": own["max_abs_error"],
            "mismatch": (root.get("mismatch") or {}).get("message"),
            "export_job_s": export["duration_s"] if export else None,
            "executorch_job_s": et["duration_s"],
            "executorch_own": {k: v for k, v in own.items() if k != "info"} | own_counts(own["info"]),
            "disagreements": disagreements(delegation, own["info"]) if delegation else ["not lowered"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | executorch | XNNPACK coverage | not delegated | max abs error | export job"
        " | executorch job | ExecuTorch's own count |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        left = ", ".join(f"`{op}` ×{n}" for op, n in row["not_delegated"].items()) or "–"
        agree = "agrees" if not row["disagreements"] else "; ".join(row["disagreements"])
        lines.append(
            f"| {row['model']} | {row['verdict']} | {row['coverage']} | {left} | {row['max_abs_error']:.1e} "
            f"| {row['export_job_s']:.1f} s | {row['executorch_job_s']:.1f} s | {agree} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--report", type=Path, help="an earlier sweep's report: sweep no more")
    args = parser.parse_args(argv)
    rows = measure(args)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0 if all(not row["disagreements"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
