"""The HTML report of the real-architecture manifest's largest model in headless Chromium: file
size, and how long it takes to open, to filter ("failing only") and to search (issue 18).

The largest model is the one with the most submodules in the real-architecture sweep
(``benchmarks/realarch.exportwatch.yml``), so the whole manifest is swept first (``--workers 2``,
10 to 70 s on the 2-core machine), unless ``--report`` gives its report. Two pages are measured:

- ``as swept``: the model's real report;
- ``all failing``: the same tree with every submodule failing for its own reason, each with a
  message, a source line and a full-size traceback: every branch expanded, the worst case
  for the page's size and layout (synthetic: built from the swept report, no export runs).

Times, medians of ``--repeat`` fresh page loads in one browser:

- open: ``driver.get`` of the file until the load event, plus a forced layout;
- filter: ticking "failing only" and laying the page out again, measured in the page;
- search: typing a query that matches one node (the script opens its branch), in the page.

    python benchmarks/bench_html.py [--repeat 5] [--report REPORT.json] [--json out.json]

Needs Chromium, its driver and Selenium (``.ci/browser``) and, to sweep, transformers and timm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MANIFEST = REPO / "benchmarks" / "realarch.exportwatch.yml"

from exportwatch.render.html import render_html  # noqa: E402
from exportwatch.report import JobResult, Report, UserFrame, Verdict, load_report  # noqa: E402
from tests.browser.chromium import start_chromium  # noqa: E402

FILTER_JS = """
const t = performance.now();
document.getElementById("failing-only").click();
document.body.getBoundingClientRect(); document.body.offsetHeight;
const shown = Array.from(document.querySelectorAll("li.node")).filter(n => n.offsetParent !== null).length;
return [performance.now() - t, shown];
"""
SEARCH_JS = """
const box = document.getElementById("search"), t = performance.now();
box.value = arguments[0]; box.dispatchEvent(new Event("input"));
document.body.offsetHeight;
return [performance.now() - t, document.getElementById("search-count").textContent];
"""


def sweep_largest(workdir: Path) -> Report:
    """Sweep the whole manifest: which model is largest is known only from its report."""
    output = workdir / "realarch.json"
    command = [sys.executable, "-m", "exportwatch", "sweep", str(MANIFEST), "-o", str(output), "-q"]
    subprocess.run([*command, "--workers", "2"], cwd=REPO, check=True)
    return load_report(output)


def largest(report: Report) -> Report:
    job = max(report.jobs, key=lambda j: len(j.submodules))
    return replace(report, jobs=[job])


def all_failing(report: Report) -> Report:
    """Every submodule fails for its own reason (origins everywhere): the heaviest page."""
    (job,) = report.jobs
    trace = "Traceback (most recent call last):\n" + '  File "model.py", line 1, in forward\n    x\n' * 150
    subs = [
        replace(
            s,
            verdict=Verdict.FAIL,
            same_as=None,
            covered_by=None,
            category="data-dependent-control-flow",
            fingerprint=f"fp-{i}",
            message=f"Could not guard on data-dependent expression Eq(u{i}, 1) in {s.path or 'root'}",
            detail=trace[:8_000],
            user_frame=UserFrame(
                path="models/net.py", line=10 + i, function="forward", source="if x.sum() > 0:"
            ),
            origin=True,
        )
        for i, s in enumerate(job.submodules)
    ]
    failing: JobResult = replace(job, verdict=Verdict.FAIL, submodules=subs)
    return replace(report, jobs=[failing])


def measure(driver: Any, page: Path, query: str, repeat: int) -> dict[str, Any]:
    opens, filters, searches = [], [], []
    shown = matches = None
    for _ in range(repeat):
        start = time.perf_counter()
        driver.get(page.as_uri())
        driver.execute_script("document.body.offsetHeight")
        opens.append((time.perf_counter() - start) * 1000)
        took, shown = driver.execute_script(FILTER_JS)
        filters.append(took)
        driver.execute_script('document.getElementById("failing-only").click()')
        took, matches = driver.execute_script(SEARCH_JS, query)
        searches.append(took)
    return {
        "bytes": page.stat().st_size,
        "nodes": driver.execute_script('return document.querySelectorAll("li.node").length'),
        "open_ms": round(statistics.median(opens), 1),
        "filter_ms": round(statistics.median(filters), 1),
        "search_ms": round(statistics.median(searches), 1),
        "shown_after_filter": shown,
        "search": f"{query!r}: {matches}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--report", type=Path, help="a sweep of the real-architecture manifest to read")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-html-") as tmp:
        workdir = Path(tmp)
        swept = load_report(args.report) if args.report else sweep_largest(workdir)
        model = largest(swept)
        (job,) = model.jobs
        query = job.submodules[-1].path  # the last node: deep in a collapsed branch
        pages = {}
        for name, report in (("as swept", model), ("all failing", all_failing(model))):
            start = time.perf_counter()
            source = render_html(report)
            render_ms = (time.perf_counter() - start) * 1000
            path = workdir / f"{name.replace(' ', '-')}.html"
            path.write_text(source, encoding="utf-8")
            pages[name] = (path, render_ms)
        driver = start_chromium()
        try:
            results = {}
            for name, (path, render_ms) in pages.items():
                results[name] = {
                    "render_ms": round(render_ms, 1),
                    **measure(driver, path, query, args.repeat),
                }
        finally:
            driver.quit()
    print(f"model: {job.model} · {job.target} ({len(job.submodules)} submodules)")
    for name, numbers in results.items():
        print(f"{name:12} " + " · ".join(f"{k} {v}" for k, v in numbers.items()))
    if args.json:
        args.json.write_text(json.dumps({"model": job.model, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
