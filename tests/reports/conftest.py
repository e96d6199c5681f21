"""Fixtures for report tests: a real DuckDB file with synthetic runs, and headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minitrade.browser import find_browser
from minitrade.store import Store

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "minitrade.duckdb")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium through selenium with the driver found on this machine; fresh profile, no network.

    Tests using it are marked `chromium`: without a browser they are skipped (tests/conftest.py).
    """
    found = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(found.binary)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--window-size=1200,1600", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(found.driver)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
