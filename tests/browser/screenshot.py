"""Make the README's picture of the HTML report (docs/html-report.png) with the browser tests' Chromium.

    exportwatch sweep config/example.exportwatch.yml -o /tmp/example.json
    python -m tests.browser.screenshot /tmp/example.json docs/html-report.png

The page is opened at stacked_encoder's export tree: the branch that breaks expanded down to
encoder.5 and its source line, the blocks that export collapsed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from exportwatch.render.html import job_anchor, render_html
from exportwatch.report import load_report
from tests.browser.chromium import start_chromium

KEY = ("stacked_encoder", "export", "cpu")


def main(argv: list[str]) -> int:
    report, output = Path(argv[0]), Path(argv[1])
    with tempfile.TemporaryDirectory(prefix="html-shot-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_html(load_report(report), title="example manifest"), encoding="utf-8")
        driver = start_chromium(window=(1200, 1180))
        try:
            driver.get(page.as_uri())
            driver.execute_script(
                "const s = document.getElementById(arguments[0]);"
                "window.scrollTo(0, s.getBoundingClientRect().top + window.scrollY"
                " - document.querySelector('header').offsetHeight - 8);",
                job_anchor(KEY),
            )
            driver.save_screenshot(str(output))
        finally:
            driver.quit()
    print(f"screenshot: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
