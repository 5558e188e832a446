"""A headless Chromium from Debian's ``chromium`` and ``chromium-driver`` packages, under
Selenium with the driver found on disk, so nothing is downloaded when a test runs (``.ci/browser``
installs all three). Shared by the browser tests and ``benchmarks/bench_html.py``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

#: Names the browser goes by (PATH is searched) and where Debian puts its WebDriver.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 900)


class BrowserMissing(RuntimeError):
    """What is missing to drive a browser, in words a skip reason can use."""


def chromium_paths() -> tuple[str, str]:
    """(browser, driver) executables; BrowserMissing names the one that is not installed."""
    browser = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    if browser is None:
        raise BrowserMissing("Chromium is not installed: no chromium on PATH (apt-get install chromium)")
    driver = shutil.which("chromedriver") or (CHROMEDRIVER if Path(CHROMEDRIVER).is_file() else None)
    if driver is None:
        raise BrowserMissing("chromedriver is not installed (apt-get install chromium-driver)")
    return browser, driver


def start_chromium(*, window: tuple[int, int] = WINDOW) -> Any:
    """A headless Chromium driven by Selenium; the caller quits it."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise BrowserMissing("the Selenium library is not installed (pip install selenium)") from exc
    browser, driver = chromium_paths()
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
