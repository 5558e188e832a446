"""The browser tier's skip reason names every missing prerequisite at once (issue 25, finding
9): Chromium, its driver and Selenium, not one per run."""

from __future__ import annotations

import importlib.util

import pytest

from tests.browser import chromium


@pytest.fixture
def nothing_installed(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(chromium.shutil, "which", lambda name: None)
    monkeypatch.setattr(chromium, "CHROMEDRIVER", str(tmp_path / "no-chromedriver"))
    monkeypatch.setattr(
        chromium.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "selenium" else real_find_spec(name, *a),
    )


def test_start_chromium__names_chromium_its_driver_and_selenium_in_one_reason(nothing_installed):
    with pytest.raises(chromium.BrowserMissing) as missing:
        chromium.start_chromium()
    reason = str(missing.value)
    for piece in ("apt-get install chromium", "apt-get install chromium-driver", "pip install selenium"):
        assert piece in reason


def test_missing_prerequisites__is_empty_when_all_three_are_there(monkeypatch, tmp_path):
    driver = tmp_path / "chromedriver"
    driver.write_text("")
    monkeypatch.setattr(
        chromium.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "chromium" else None
    )
    monkeypatch.setattr(chromium, "CHROMEDRIVER", str(driver))
    monkeypatch.setattr(chromium.importlib.util, "find_spec", lambda name, *a: object())
    assert chromium.missing_prerequisites() == []
