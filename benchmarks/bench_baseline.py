"""``exportwatch compare`` versus sweeping base and head in full, on three kinds of PR.

Builds a temporary git repository with N small models (one file each; half of them import a
shared helper), commits it on ``main``, then for each PR kind (nothing model-related changed,
one model changed, the shared helper changed) times:

* **full**: ``exportwatch sweep`` on HEAD plus ``exportwatch sweep`` in a worktree of the
  merge-base (what a bot without reuse does);
* **compare, cold**: ``exportwatch compare --base main`` with no cache (reuse only);
* **compare, warm**: the same with ``--cache-dir`` filled by a run on ``main`` (what CI sees
  with ``actions/cache``: main's push run stores every result).

Every command is a fresh process (each sweep pays for ``import torch`` in its worker).

    python benchmarks/bench_baseline.py [--models 8] [--depth 4] [--workers 1] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = """\
import torch
from torch import nn
{helper_import}

class Net(nn.Module):
    def __init__(self, width={width}, depth={depth}):
        super().__init__()
        self.layers = nn.Sequential(
            *[nn.TransformerEncoderLayer(width, 4, 2 * width, batch_first=True) for _ in range(depth)]
        )
        self.head = nn.Linear(width, {classes})

    def forward(self, x):
        return self.head(self.layers(x)){helper_use}


def make():
    return Net()
"""

HELPER = "def scale():\n    return {value}\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def exportwatch(cwd: Path, *args: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "exportwatch", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"exportwatch {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed


def model_source(index: int, *, depth: int, uses_helper: bool, variant: int = 0) -> str:
    return MODEL.format(
        width=32, depth=depth, classes=4 + index + variant,
        helper_import="from helpers import scale" if uses_helper else "",
        helper_use=" * scale()" if uses_helper else "",
    )


def build_repo(root: Path, *, models: int, depth: int) -> None:
    root.mkdir(parents=True)
    files = {"README.md": "# bench\n", "helpers.py": HELPER.format(value=2.0), "nets/__init__.py": ""}
    entries = []
    for i in range(models):
        files[f"nets/m{i}.py"] = model_source(i, depth=depth, uses_helper=i < models // 2)
        entries.append(
            f"  - name: m{i}\n    factory: nets.m{i}:make\n    inputs: {{args: [{{shape: [2, 8, 32]}}]}}\n"
        )
    files["exportwatch.yml"] = "version: 1\nmodels:\n" + "".join(entries)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "bench")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main")
    with open(root / ".git" / "info" / "exclude", "a") as handle:
        handle.write("*.json\n*.jsonl\n")


def full_double_sweep(repo: Path, out: Path, workers: str) -> float:
    started = time.perf_counter()
    exportwatch(repo, "sweep", "exportwatch.yml", "-o", str(out / "head.json"), "--workers", workers, "-q")
    tree = out / "base-tree"
    git(repo, "worktree", "add", "-q", "--detach", str(tree), git(repo, "merge-base", "main", "HEAD"))
    try:
        exportwatch(tree, "sweep", "exportwatch.yml", "-o", str(out / "b.json"), "--workers", workers, "-q")
    finally:
        git(repo, "worktree", "remove", "--force", str(tree))
    return time.perf_counter() - started


def warm_compare(repo: Path, out: Path, main_cache: Path, compare: list[str]) -> float:
    """A compare whose cache holds main's results (a fresh copy each time)."""
    cache = out / "cache-pr"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(main_cache, cache)
    return exportwatch(repo, *compare, "--cache-dir", str(cache))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--depth", type=int, default=4, help="transformer layers per model")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="exportwatch-bench-"))
    repo = tmp / "repo"
    out = tmp / "out"
    out.mkdir()
    build_repo(repo, models=args.models, depth=args.depth)
    load_before = os.getloadavg()[0]
    # main's own run fills the cache (HEAD == merge-base: everything swept once, base reused).
    main_cache = out / "cache-main"
    exportwatch(repo, "compare", "exportwatch.yml", "--base", "main", "-o", str(out / "main.json"),
                "--cache-dir", str(main_cache), "--workers", args.workers, "-q", "--format", "json")

    helper_users = args.models // 2
    last = f"nets/m{args.models - 1}.py"  # does not use the helper
    edited_model = model_source(args.models - 1, depth=args.depth, uses_helper=False, variant=1)
    scenarios = {
        "no model change (README)": ({"README.md": "# bench, edited\n"}, 0),
        "one model changed": ({last: edited_model}, 1),
        f"shared helper changed ({helper_users} of {args.models})": (
            {"helpers.py": HELPER.format(value=3.0)}, helper_users
        ),
    }
    rows = []
    for name, (edits, changed) in scenarios.items():
        git(repo, "checkout", "-q", "-B", "pr", "main")
        for rel, text in edits.items():
            (repo / rel).write_text(text)
        git(repo, "commit", "-qam", name)
        full = min(full_double_sweep(repo, out, args.workers) for _ in range(args.repeat))
        compare = ["compare", "exportwatch.yml", "--base", "main", "-o", str(out / "pr.json"),
                   "--workers", args.workers, "-q", "--format", "json"]
        cold = min(exportwatch(repo, *compare) for _ in range(args.repeat))
        warm = min(warm_compare(repo, out, main_cache, compare) for _ in range(args.repeat))
        target = 0.15 + changed / args.models if changed else 0.15
        rows.append((name, full, cold, warm, target))
    load_after = os.getloadavg()[0]

    print(f"{args.models} models (TransformerEncoder x{args.depth}), --workers {args.workers}, "
          f"{os.cpu_count()} cores, fastest of {args.repeat}, "
          f"load average {load_before:.1f} → {load_after:.1f}\n")
    print("| PR | full base+head sweep | compare, no cache | compare, warm cache | target |")
    print("|---|---:|---:|---:|---:|")
    for name, full, cold, warm, target in rows:
        print(f"| {name} | {full:.1f} s | {cold:.1f} s ({cold / full:.0%}) "
              f"| {warm:.1f} s ({warm / full:.0%}) | < {target:.0%} |")
    if args.keep:
        print(f"\nrepository kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
