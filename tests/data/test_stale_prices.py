"""Stale prices (issue 10, item 4): a run whose source lacks the bar its tick needs fails with DataStale.

Through the CLI on a scaffolded repo (real git, real DuckDB, the Apprise sink on loopback), and
through the production Yahoo client against the fake Yahoo for the publication delay.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.data.cache import PriceCache
from minitrade.data.freshness import fresh_prices, needed_day
from minitrade.errors import DataStale
from minitrade.store import Store
from minitrade.store import runs as run_sql
from minitrade.testing.apprise_sink import AppriseSink
from tests.data.conftest import NY_AFTER_CLOSE

runner = CliRunner()
START = date(2026, 1, 5)


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def git(path: Path, *args: str) -> None:
    import subprocess

    subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as running:
        yield running


@pytest.fixture
def scaffolded(tmp_path: Path, sink: AppriseSink) -> Path:
    """`minitrade init` (sample prices end 2013-03-01), a notifier for failed runs, applied."""
    target = tmp_path / "repo"
    assert cli("init", str(target)).exit_code == 0
    settings = target / "minitrade.yaml"
    settings.write_text(settings.read_text().replace(
        "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n    events: [run.failed]"))
    git(target, "commit", "-qam", "notify failed runs")
    applied = cli("apply", "--yes", "--repo", str(target))
    assert applied.exit_code == 0, applied.output
    return target


def test_a_run_long_after_the_data_ends_fails_stale_the_same_way_every_time(scaffolded: Path,
                                                                           sink: AppriseSink) -> None:
    repo = str(scaffolded)
    first = cli("run", "example", "--at", "2026-11-25T15:45:00-05:00", "--repo", repo)
    again = cli("run", "example", "--at", "2026-11-25T15:45:00-05:00", "--repo", repo)  # all from the cache
    later = cli("run", "example", "--at", "2026-11-30T15:45:00-05:00", "--repo", repo)  # the cache's tail re-read
    for result, day in ((first, "2026-11-25"), (again, "2026-11-25"), (later, "2026-11-30")):
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())
        assert f"samples/AAPL: stale prices: no bar for {day} (last bar: AAPL 2013-03-01)" in text
        assert "delay_minutes" in text
    with Store(scaffolded / "state" / "minitrade.duckdb").transaction() as con:
        runs = run_sql.list_runs(con, plan="example")
    assert [r.status for r in runs] == ["FAILED"] * 3
    assert all("stale prices" in (r.error or "") for r in runs)
    failed = [p for p in sink.posts if "run FAILED" in p.title]
    assert failed and "samples/AAPL: stale prices: no bar for 2026-11-25" in failed[0].message
    assert any("no bar for 2026-11-30" in p.message for p in failed)


def test_plan_warns_when_a_plans_source_cannot_serve_the_current_dates(scaffolded: Path) -> None:
    result = cli("plan", "--repo", str(scaffolded))
    text = " ".join(result.output.split())
    assert "warning: plan example: data source samples cannot serve the current dates" in text
    assert "(last bar: AAPL 2013-03-01)" in text


def test_apply_refuses_a_trading_plan_whose_source_is_stale_and_applies_it_in_its_own_time(
        scaffolded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = scaffolded / "plans" / "example.yaml"
    plan.write_text(plan.read_text().replace("trading: disabled", "trading: enabled"))
    git(scaffolded, "commit", "-qam", "trade it")
    refused = cli("apply", "--yes", "--repo", str(scaffolded))
    text = " ".join(refused.output.split())
    assert refused.exit_code == 1
    assert "check failed: plan example: trading is enabled but data source samples cannot serve" in text
    assert "(last bar: AAPL 2013-03-01)" in text and "Nothing applied" in text
    monkeypatch.setenv("MINITRADE_NOW", "2013-02-15T12:00:00-05:00")  # while the sample prices were current
    assert cli("apply", "--yes", "--repo", str(scaffolded)).exit_code == 0


@pytest.mark.parametrize("at, delay, needed", [
    pytest.param("2026-11-20T09:00:00-05:00", 20, date(2026, 11, 19), id="before-the-open-yesterday"),
    pytest.param("2026-11-20T09:40:00-05:00", 20, date(2026, 11, 19), id="within-the-delay-yesterday"),
    pytest.param("2026-11-20T09:55:00-05:00", 20, date(2026, 11, 20), id="after-the-delay-today"),
    pytest.param("2026-11-20T09:31:00-05:00", 0, date(2026, 11, 20), id="no-delay-today-once-open"),
    pytest.param("2026-11-22T12:00:00-05:00", 0, date(2026, 11, 20), id="sunday-friday"),
    pytest.param("2026-11-27T02:00:00-05:00", 0, date(2026, 11, 25), id="after-thanksgiving-wednesday"),
])
def test_the_bar_a_run_needs_allows_for_the_sources_delay(at: str, delay: int, needed: date) -> None:
    assert needed_day("XNYS", datetime.fromisoformat(at), timedelta(minutes=delay)) == needed


def test_a_remote_source_behind_the_tick_fails_stale_naming_its_last_bar(store: Store, yahoo, fake_yahoo) -> None:
    cache = PriceCache(store, yahoo, today=lambda: fake_yahoo.book.now.date())
    tick = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)  # Tuesday 15:45 New York
    fake_yahoo.book.now = NY_AFTER_CLOSE  # Yahoo itself stuck on Friday 2026-11-20
    with pytest.raises(DataStale) as caught:
        fresh_prices(cache, ["SPY"], START, date(2026, 11, 24), needed=date(2026, 11, 24), at=tick)
    assert caught.value.last_bar == date(2026, 11, 20) and caught.value.expected == date(2026, 11, 24)
    assert "yahoo/SPY: stale prices: no bar for 2026-11-24 (last bar: SPY 2026-11-20)" in str(caught.value)
    fake_yahoo.book.now = tick  # Yahoo caught up: today's partial bar counts
    frames = fresh_prices(cache, ["SPY"], START, date(2026, 11, 24), needed=date(2026, 11, 24), at=tick)
    assert frames["SPY"].index[-1].date() == date(2026, 11, 24) and frames["SPY"].attrs["partial"]
