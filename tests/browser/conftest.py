"""The browser tier: a headless Chromium (tests/browser/chromium.py) for the whole session.

Without Chromium, its driver or Selenium the tests skip, naming every missing piece in one
reason (not one per run); with ``EXPORTWATCH_REQUIRE_BROWSER=1`` (set it in CI) they fail
instead, so an image that lost its browser cannot pass quietly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.chromium import BrowserMissing, start_chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One browser for the session (starting one costs about a second)."""
    try:
        driver = start_chromium()
    except BrowserMissing as exc:
        reason = f"{exc} (run .ci/browser to install it)"
        if os.environ.get("EXPORTWATCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"EXPORTWATCH_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    try:
        yield driver
    finally:
        driver.quit()
