"""The HTML report in a real browser (issue 18, part 4): the example manifest's sweep, drawn by
``exportwatch report`` and opened from disk in headless Chromium, as a reader opens it.

Debian's chromium and chromium-driver, driven by Selenium (``.ci/browser`` installs them);
without them every test here skips and says which piece is missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exportwatch.render.html import job_anchor, node_anchor
from exportwatch.report import SubmoduleResult, Verdict, load_report, write_report
from tests.conftest import REPO_ROOT, ExampleSweep

By: Any
try:
    from selenium.webdriver.common.by import By
except ImportError:  # the chromium fixture skips, naming what is missing
    By = None

pytestmark = pytest.mark.slow  # the example sweep, then a browser: tens of seconds

STACKED = ("stacked_encoder", "export", "cpu")
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


def render(report: Path, output: Path, *extra: str) -> Path:
    """``exportwatch report`` as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "exportwatch", "report", str(report), "-o", str(output), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return output


@pytest.fixture(scope="module")
def example_page(example_sweep: ExampleSweep, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert example_sweep.path.is_file(), example_sweep.done.stderr
    return render(example_sweep.path, tmp_path_factory.mktemp("html") / "report.html")


def node(driver: Any, key: tuple[str, str, str], path: str, *, side: str = "head") -> Any:
    return driver.find_element(By.ID, node_anchor(key, path, side=side))


def is_open(element: Any) -> bool:
    return bool(element.find_element(By.XPATH, "./details").get_property("open"))


def errors_logged(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_browser__the_failing_branch_of_stacked_encoder_is_expanded_and_encoder_5_shows_its_line(
    chromium: Any, example_page: Path, tmp_path: Path
):
    chromium.get(example_page.as_uri())
    assert chromium.title == "exportwatch report"
    for path in ("", "encoder", "encoder.5"):
        assert is_open(node(chromium, STACKED, path)), path
    origin = node(chromium, STACKED, "encoder.5")
    source = origin.find_element(By.CSS_SELECTOR, ":scope > details > .why .src")
    chromium.execute_script("arguments[0].scrollIntoView({block: 'center'})", source)
    assert source.is_displayed()
    assert "h.mean() > 0" in source.text
    models_py = (REPO_ROOT / "exportwatch" / "examples" / "models.py").read_text().splitlines()
    line = next(i for i, text in enumerate(models_py, 1) if "h.mean() > 0" in text)
    assert f"exportwatch/examples/models.py:{line}" in origin.find_element(By.CSS_SELECTOR, ".where").text
    # The rest is collapsed: encoder.0 passes, so its children are out of sight.
    assert not is_open(node(chromium, STACKED, "encoder.0"))
    assert not node(chromium, STACKED, "encoder.0.norm").is_displayed()
    shot = tmp_path / "stacked_encoder.png"
    assert chromium.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert errors_logged(chromium) == []  # the policy let our script and style in, and nothing broke


def test_browser__failing_only_hides_passing_nodes(chromium: Any, example_page: Path):
    chromium.get(example_page.as_uri())
    embed = node(chromium, STACKED, "embed")
    healthy = chromium.find_element(By.ID, job_anchor(("tiny_cnn", "export", "cpu")))
    assert embed.is_displayed() and healthy.is_displayed()
    chromium.find_element(By.CSS_SELECTOR, "label[for=failing-only]").click()
    assert not embed.is_displayed() and not healthy.is_displayed()
    assert node(chromium, STACKED, "encoder.5").is_displayed()
    assert node(chromium, STACKED, "").is_displayed()
    chromium.find_element(By.CSS_SELECTOR, "label[for=failing-only]").click()
    assert embed.is_displayed()


def test_browser__search_finds_a_node_inside_a_collapsed_branch(chromium: Any, example_page: Path):
    chromium.get(example_page.as_uri())
    target = node(chromium, STACKED, "encoder.0.norm")
    assert not target.is_displayed()
    box = chromium.find_element(By.ID, "search")
    box.send_keys("encoder.0.norm")
    assert target.is_displayed()  # its branch was opened for it
    assert "hit" in (target.get_attribute("class") or "").split()
    assert not node(chromium, STACKED, "embed").is_displayed()
    count = chromium.find_element(By.ID, "search-count").text
    assert count.endswith(("match", "matches")) and int(count.split()[0]) >= 1
    box.clear()
    box.send_keys(" ")  # an empty query shows everything again
    assert node(chromium, STACKED, "embed").is_displayed()


def test_browser__a_same_as_link_opens_its_twins_branch_and_lands_on_it(chromium: Any, example_page: Path):
    chromium.get(example_page.as_uri())
    copy = node(chromium, STACKED, "encoder.1")
    copy.find_element(By.CSS_SELECTOR, ":scope > details > summary").click()  # open encoder.1
    link = node(chromium, STACKED, "encoder.1.norm").find_element(By.CSS_SELECTOR, "a.twin")
    assert link.text == "encoder.0.norm"
    twin = node(chromium, STACKED, "encoder.0.norm")
    assert not twin.is_displayed()
    link.click()
    assert chromium.execute_script("return location.hash.slice(1)") == twin.get_attribute("id")
    assert twin.is_displayed()


def test_browser__a_hostile_message_renders_as_text_and_runs_nothing(
    chromium: Any, example_sweep: ExampleSweep, tmp_path: Path
):
    report = load_report(example_sweep.path)
    job = report.job(*STACKED)
    assert job is not None
    origin = job.submodule("encoder.5")
    assert origin is not None
    origin.message = HOSTILE + " \u202eevil\u202c nul\x00"
    job.submodules.append(SubmoduleResult(path=f"encoder.{HOSTILE}", module_type=HOSTILE, verdict=Verdict.OK))
    write_report(report, tmp_path / "hostile.json")
    page = render(tmp_path / "hostile.json", tmp_path / "hostile.html")
    chromium.get(page.as_uri())
    assert chromium.title == "exportwatch report"
    message = node(chromium, STACKED, "encoder.5").find_element(By.CSS_SELECTOR, ".why .msg")
    chromium.execute_script("arguments[0].scrollIntoView({block: 'center'})", message)
    assert message.is_displayed()
    assert "<img src=x onerror=" in message.text and '<script>document.title="pwned"</script>' in message.text
    assert "\u202e" not in message.text and "\x00" not in message.text
    assert chromium.find_elements(By.TAG_NAME, "img") == []
    assert len(chromium.find_elements(By.TAG_NAME, "script")) == 1  # ours
    assert chromium.execute_script("return document.title") == "exportwatch report"
    chromium.save_screenshot(str(tmp_path / "hostile.png"))
    assert errors_logged(chromium) == []  # not even a refused script: nothing tried to run


def test_browser__with_a_base_regressions_are_marked_and_the_toggle_shows_either_side(
    chromium: Any, example_sweep: ExampleSweep, tmp_path: Path
):
    head = load_report(example_sweep.path)
    job = head.job("tiny_cnn", "export", "cpu")
    assert job is not None and job.root is not None
    job.verdict = job.root.verdict = Verdict.FAIL
    job.root.message, job.root.fingerprint, job.root.category = "it broke", "fp-new", "unsupported-operator"
    write_report(head, tmp_path / "head.json")
    page = render(tmp_path / "head.json", tmp_path / "diff.html", "--base", str(example_sweep.path))
    chromium.get(page.as_uri())
    key = ("tiny_cnn", "export", "cpu")
    on_head, on_base = node(chromium, key, ""), node(chromium, key, "", side="base")
    assert "k-regression" in (on_head.get_attribute("class") or "").split()
    assert on_head.is_displayed() and not on_base.is_displayed()
    chromium.find_element(By.CSS_SELECTOR, "label[for=show-base]").click()
    assert on_base.is_displayed() and not on_head.is_displayed()
    assert "ok" in on_base.find_element(By.CSS_SELECTOR, ".verdict").text
