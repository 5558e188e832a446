"""A headless Chromium from Debian's ``chromium`` and ``chromium-driver`` packages, under
Selenium with the driver found on disk, so nothing is downloaded when a test runs (``.ci/browser``
installs all three). Shared by the browser tests and ``benchmarks/bench_html.py``."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

#: Names the browser goes by (PATH is searched) and where Debian puts its WebDriver.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 900)


class BrowserMissing(RuntimeError):
    """What is missing to drive a browser, in words a skip reason can use."""


def missing_prerequisites() -> list[str]:
    """Every piece missing to drive a browser, each with how to install it (empty when none
    is), so one skip reason names them all instead of one per run."""
    missing = []
    if _find_browser() is None:
        missing.append("Chromium (no chromium on PATH: apt-get install chromium)")
    if _find_driver() is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if importlib.util.find_spec("selenium") is None:
        missing.append("the Selenium library (pip install selenium)")
    return missing


def _find_browser() -> str | None:
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _find_driver() -> str | None:
    return shutil.which("chromedriver") or (CHROMEDRIVER if Path(CHROMEDRIVER).is_file() else None)


def start_chromium(*, window: tuple[int, int] = WINDOW) -> Any:
    """A headless Chromium driven by Selenium; the caller quits it. BrowserMissing names
    everything that is not installed."""
    missing = missing_prerequisites()
    browser, driver = _find_browser(), _find_driver()
    if missing or browser is None or driver is None:
        raise BrowserMissing(f"not installed: {'; '.join(missing)}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
