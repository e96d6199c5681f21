"""Live report pages in real headless Chromium after a replay of the embedded default repo:
the headline is the plan's live record, a research backtest gets its own page, tags say what the
files say, and `minitrade serve` reloads an open page after a publish."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.runner.publish import write_site
from minitrade.store import Store

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.filterwarnings("ignore:Series.values returning an ndarray:pandas.errors.Pandas4Warning"),
]

ROOT = Path(__file__).resolve().parents[2]
PLAN = "momentum-rotation"  # its file says trading: disabled; a replay trades it all the same


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the embedded default repo replayed over the first week of February 2013 (trade_start
    is 2013-01-02: the replay's own period starts later)."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copyfile(ROOT / "minitrade.yaml", repo / "minitrade.yaml")
    shutil.copytree(ROOT / "plans", repo / "plans")
    shutil.copytree(ROOT / "strategies", repo / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    result = CliRunner().invoke(app, ["replay", "--from", "2013-02-01", "--to", "2013-02-08", PLAN, "sma-aapl",
                                      "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


@pytest.fixture
def repo(replayed: Path, tmp_path: Path) -> Path:
    """This test's own copy of the replayed repo and its state (tests change the store)."""
    copy = tmp_path / "repo"
    shutil.copytree(replayed, copy)
    return copy


def state(repo: Path) -> Path:
    return repo / "state" / "replay"


def text(browser, css: str) -> str:
    return str(browser.find_element("css selector", css).text)


def test_plan_page_leads_with_the_replays_own_period(repo, browser):
    page = state(repo) / "reports" / "plans" / PLAN / "index.html"
    browser.get(page.as_uri())

    headline = text(browser, "#live h2")
    assert headline.startswith("Replay since 2013-02-01")      # not 2005 (backtest_start) nor trade_start
    assert text(browser, "#live-return").endswith("%")
    live_stats = text(browser, "table.live-stats")
    assert "Start 2013-02-01" in live_stats and "Fills 2" in live_stats
    assert "2005" not in live_stats
    sim_stats = text(browser, "table.sim-stats")
    assert "Start 2013-02-01" in sim_stats                     # the simulation over the same days
    assert text(browser, "#tracking").endswith("pp")
    assert browser.find_elements("css selector", "#live svg.plot")  # the live chart is drawn
    series = browser.execute_script(
        "return [...document.querySelectorAll('#live svg.plot')[0].querySelectorAll('path.series')]"
        ".map(p => p.dataset.name)")
    assert series == ["Replay", "Simulated"]


def test_a_research_backtest_never_changes_the_live_headline(repo, browser):
    page = state(repo) / "reports" / "plans" / PLAN / "index.html"
    browser.get(page.as_uri())
    before = (text(browser, "#live h2"), text(browser, "#live-return"), text(browser, "table.live-stats"),
              text(browser, "table.sim-stats"))
    assert not browser.find_elements("css selector", "#backtest-link")
    runner = CliRunner()

    done = runner.invoke(app, ["backtest", PLAN, "--from", "2012-06-01", "--to", "2013-02-28", "--repo", str(repo),
                               "--state-dir", str(state(repo))])
    assert done.exit_code == 0, done.output
    report = runner.invoke(app, ["report", "--repo", str(repo), "--state-dir", str(state(repo))])
    assert report.exit_code == 0, report.output

    browser.get(page.as_uri())
    after = (text(browser, "#live h2"), text(browser, "#live-return"), text(browser, "table.live-stats"),
             text(browser, "table.sim-stats"))
    assert after == before
    browser.find_element("css selector", "#backtest-link").click()
    assert text(browser, "h1") == f"{PLAN}: research backtest"
    assert text(browser, "#backtest-return").endswith("%")
    assert browser.find_elements("css selector", "svg.plot")


def test_tags_match_the_plan_files_and_a_suspension(repo, browser):
    runner = CliRunner()
    held = runner.invoke(app, ["suspend", "sma-aapl", "--reason", "earnings", "--repo", str(repo),
                               "--state-dir", str(state(repo))])
    assert held.exit_code == 0, held.output
    write_site(Store(state(repo) / "minitrade.duckdb"), state(repo) / "reports")

    browser.get((state(repo) / "reports" / "index.html").as_uri())
    tags = {row.get_attribute("data-plan"): [t.text for t in row.find_elements("css selector", ".tag")]
            for row in browser.find_elements("css selector", "table.plans tbody tr")}
    assert tags == {PLAN: ["trading disabled"], "sma-aapl": ["trading disabled", "suspended"]}
    assert browser.find_element("css selector", "table.plans svg.spark polyline").get_attribute("points")
    assert text(browser, "#total-equity")
    rows = {row.get_attribute("data-plan"): row.text for row in
            browser.find_elements("css selector", "table.plans tbody tr")}
    assert "2013-02-08 15:45 EST" in rows[PLAN] and "2013-02-11 15:45 EST" in rows[PLAN]  # last, next: one clock
    browser.find_element("link text", PLAN).click()
    assert "trading: disabled" in text(browser, "pre.yaml")


def test_serve_answers_on_loopback_and_reloads_an_open_page_after_a_publish(repo, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "minitrade", "serve", "--port", "0", "--repo", str(repo),
                               "--state-dir", str(state(repo))], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        url = line.split("http://", 1)[1].split("/", 1)[0]
        with urllib.request.urlopen(f"http://{url}/index.html") as answer:
            assert answer.status == 200 and b"momentum-rotation" in answer.read()

        browser.get(f"http://{url}/plans/{PLAN}/index.html")
        browser.execute_script("window.minitradeMark = 'before publish';")
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(
            "return performance.getEntriesByType('resource').some(e => e.name.endsWith('/version.txt'))"))
        write_site(Store(state(repo) / "minitrade.duckdb"), state(repo) / "reports")
        WebDriverWait(browser, 30).until(lambda b: b.execute_script("return window.minitradeMark === undefined"))
        assert text(browser, "#live h2").startswith("Replay since")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
