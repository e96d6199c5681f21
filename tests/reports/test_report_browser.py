"""The report site in real headless Chromium: loads clean, stays offline, draws its charts."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from minitrade.runner.publish import write_site
from tests.reports.conftest import ARTIFACTS
from tests.reports.synthetic import seed_plan, seed_reconciliation

pytestmark = [
    pytest.mark.chromium,
    # exchange_calendars 4.13 on pandas 3.1 (via scheduler.next_run_times); not ours to fix
    pytest.mark.filterwarnings("ignore:Series.values returning an ndarray:pandas.errors.Pandas4Warning"),
]


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR", "WARNING")]


def requested_urls(driver, page_uri: str) -> list[str]:
    """Every URL the browser requested from loading `page_uri` on (DevTools Network events).

    The browser's own start page (chrome:// resources) loads before our navigation and is skipped.
    """
    urls = [m["params"]["request"]["url"] for m in
            (json.loads(e["message"])["message"] for e in driver.get_log("performance"))
            if m["method"] == "Network.requestWillBeSent"]
    assert page_uri in urls, urls
    return urls[urls.index(page_uri):]


def test_plan_page_loads_offline_and_draws_equity_and_drawdown(tmp_path, store, browser):
    seed_plan(store, "spy-qqq", days=2520)
    seed_reconciliation(store)
    reports = tmp_path / "reports"
    write_site(store, reports)
    page = reports / "plans" / "spy-qqq" / "index.html"

    browser.get(page.as_uri())
    browser.find_element("css selector", "svg.plot")

    assert console_errors(browser) == []
    urls = requested_urls(browser, page.as_uri())
    assert {u.rsplit("/reports/", 1)[-1] for u in urls} == {
        "plans/spy-qqq/index.html", "assets/style.css", "assets/chart.js", "assets/live.js"}
    assert all(u.startswith(reports.as_uri() + "/") for u in urls), urls
    charts = browser.execute_script(
        "return [...document.querySelectorAll('svg.plot')].map(s => ({points: +s.dataset.points,"
        " series: [...s.querySelectorAll('path.series')].map(p => [p.dataset.name, +p.dataset.count,"
        " (p.getAttribute('d').match(/L/g) || []).length])}));")
    equity, drawdown = charts
    # the simulation is shown from the day before trade_start (2023-01-03), not over the warm-up years
    days = pd.bdate_range("2016-01-04", periods=2520)
    shown = int((days >= "2023-01-02").sum())
    assert equity["series"][0] == ["Strategy", shown, shown - 1]
    assert equity["series"][1][0] == "Buy & hold" and equity["series"][1][1] == shown
    assert drawdown["series"][0][:2] == ["Drawdown", shown]
    marker = browser.find_element("css selector", "svg.plot .marker-label")
    assert marker.text == "trading starts"
    assert browser.find_element("css selector", "table.stats").text.count("%") >= 4
    assert "strategies/momentum.py" in browser.find_element("css selector", "pre.yaml").text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report-plan-page.png"))


def test_chart_shows_values_on_hover_and_zooms(tmp_path, store, browser):
    seed_plan(store, "spy-qqq", days=1300)
    reports = tmp_path / "reports"
    write_site(store, reports)
    browser.get((reports / "plans" / "spy-qqq" / "index.html").as_uri())
    chart = browser.find_element("css selector", ".chart")
    from selenium.webdriver import ActionChains

    ActionChains(browser).move_to_element(chart.find_element("css selector", "svg rect")).perform()
    tip = chart.find_element("css selector", ".tip").text
    assert re.search(r"\d{4}-\d{2}-\d{2}", tip) and "Strategy:" in tip and "Buy & hold:" in tip

    chart.find_element("xpath", ".//button[text()='1Y']").click()
    points = browser.execute_script("return +document.querySelector('svg.plot path.series').dataset.count")
    assert 240 < points < 270  # one year of business days
    assert console_errors(browser) == []


def test_index_lists_every_plan_and_links_work_on_a_phone_screen(tmp_path, store, browser):
    for i, name in enumerate(("alpha", "beta", "gamma")):
        seed_plan(store, name, days=300, seed=i)
    reports = tmp_path / "reports"
    index = write_site(store, reports)
    browser.set_window_size(390, 844)

    browser.get(index.as_uri())
    rows = browser.find_elements("css selector", "table.plans tbody tr")
    assert [r.find_element("css selector", "a").text for r in rows] == ["alpha", "beta", "gamma"]
    assert "manual (ready)" in rows[0].text.replace("\n", " ")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report-index-phone.png"))
    rows[1].find_element("css selector", "a").click()
    assert browser.find_element("css selector", "h1").text.startswith("beta")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390 + 1  # wide tables scroll inside their box, the page does not
    assert console_errors(browser) == []
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report-plan-page-phone.png"))
