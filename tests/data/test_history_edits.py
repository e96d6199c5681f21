"""Edits to older history (issue 10, item 5): caught wherever they are, and malformed bars refused.

csv sources are compared whole (a changed file digest means the whole file is read again);
remote sources keep the overlap check and are re-read whole every `verify_every_days`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.data.cache import PriceCache
from minitrade.data.changes import check_unchanged, record_history
from minitrade.data.csv import CsvDataSource
from minitrade.data.yahoo import YahooDataSource
from minitrade.errors import DataChanged, DataError
from minitrade.models import CsvSource, YahooSource
from minitrade.store import Store
from minitrade.store import runs as run_sql
from tests.conftest import at_own_present
from tests.data.conftest import NY_AFTER_CLOSE

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[2] / "minitrade" / "sample_data"

PLAN = """name: own
strategy: strategies/sma_crossover.py
universe: [AAPL]
data_source: mine
calendar: XNYS
backtest_start: 2012-01-03
trade_start: 2013-01-02
run_at: "15:45"
order_type: TOC
mode: strict
broker: manual
cash: 10000
params: {fast: 20, slow: 50}
"""


def cli(*args: str):
    """A command; a `run --at T` runs as the present T (the live path that records price history)."""
    return runner.invoke(app, list(args), env=at_own_present(args), catch_exceptions=False)


def runs(repo) -> list[run_sql.RunRow]:
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return run_sql.list_runs(con, plan="own")


def test_an_edit_to_a_csv_bar_months_back_stops_the_strict_plans_next_run(trading_repo) -> None:
    for path in (trading_repo.path / "plans").glob("*.yaml"):
        path.unlink()
    trading_repo.write("data/AAPL.csv", (SAMPLES / "AAPL.csv").read_text())
    trading_repo.edit("minitrade.yaml", "data_sources:\n", "data_sources:\n  mine: {type: csv, path: data}\n")
    trading_repo.write("plans/own.yaml", PLAN)
    trading_repo.commit("a strict plan on our own csv")
    repo = str(trading_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    first = cli("run", "own", "--at", "2013-02-01T15:45:00-05:00", "--repo", repo)
    assert first.exit_code == 0, first.output
    # months back: far outside the cache's ten-day overlap
    trading_repo.edit("data/AAPL.csv", "2012-10-15,81.6127,81.9715,80.5157,81.9238",
                      "2012-10-15,81.6127,82.9715,80.5157,82.9238")
    second = cli("run", "own", "--at", "2013-02-04T15:45:00-05:00", "--repo", repo)
    assert second.exit_code == 1
    text = " ".join(second.output.split())
    assert "plan own: past prices changed since its previous run" in text
    assert "AAPL: 1 bar on 2012-10-15 changed" in text and "minitrade data accept own" in text
    assert [r.status for r in runs(trading_repo)] == ["FAILED", "FINISHED"]  # newest first
    assert cli("data", "accept", "own", "--repo", repo).exit_code == 0
    assert cli("run", "own", "--at", "2013-02-04T15:46:00-05:00", "--repo", repo).exit_code == 0


def test_an_unchanged_csv_is_not_read_again_and_a_changed_one_is_read_whole(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "AAPL.csv").write_text((SAMPLES / "AAPL.csv").read_text())
    store = Store(tmp_path / "state" / "minitrade.duckdb")
    source = CsvDataSource("mine", CsvSource(type="csv", path=str(folder)), root=tmp_path)
    cache = PriceCache(store, source, today=lambda: date(2013, 3, 4))
    cache.daily("AAPL", date(2012, 1, 3), date(2013, 2, 1))
    cache.daily("AAPL", date(2012, 1, 3), date(2013, 2, 1))
    assert cache.fetches == 1
    text = (folder / "AAPL.csv").read_text()
    (folder / "AAPL.csv").write_text(text)  # written again with the same bytes: not an edit
    cache.daily("AAPL", date(2012, 1, 3), date(2013, 2, 1))
    assert cache.fetches == 1
    edited = text.replace("2012-03-01,70.4475,", "2012-03-01,70.3475,")
    assert edited != text
    (folder / "AAPL.csv").write_text(edited)
    bars = cache.daily("AAPL", date(2012, 1, 3), date(2013, 2, 1))
    assert cache.fetches == 2 and bars.loc["2012-03-01", "open"] == pytest.approx(70.3475)


def test_a_remote_history_edited_long_ago_is_caught_by_the_periodic_full_verification(store, fake_yahoo) -> None:
    yahoo = YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=fake_yahoo.url, timeout=3.0,
                                                 verify_every_days=7), retries=0)
    clock = {"now": NY_AFTER_CLOSE}
    cache = PriceCache(store, yahoo, today=lambda: fake_yahoo.book.now.date(), clock=lambda: clock["now"])
    start = date(2025, 1, 2)
    record_history(store, "rotation", "run-1", {"SPY": cache.daily("SPY", start)})
    # Yahoo adds a dividend it had missed in June: every bar before it moves, the last weeks do not
    fake_yahoo.book.add_dividend("SPY", date(2026, 6, 1), 3.0)
    fake_yahoo.book.now = clock["now"] = NY_AFTER_CLOSE + timedelta(days=3)
    check_unchanged(store, "rotation", {"SPY": cache.daily("SPY", start)})  # the overlap cannot see it
    fake_yahoo.book.now = clock["now"] = NY_AFTER_CLOSE + timedelta(days=7)
    before = len(fake_yahoo.requests)
    verified = cache.daily("SPY", start)
    (request,) = fake_yahoo.requests[before:]
    assert datetime.fromtimestamp(int(request.query["period1"])).date() <= start
    with pytest.raises(DataChanged) as caught:
        check_unchanged(store, "rotation", {"SPY": verified}, source="yahoo")
    [change] = caught.value.changes
    assert change.changed[0] == start and change.changed[-1] == date(2026, 5, 29)


@pytest.mark.parametrize("row, what", [
    pytest.param("2024-01-03,10,9,9.5,9.8", "high below low", id="high-below-low"),
    pytest.param("2024-01-03,10,9.9,9.5,9.8", "high below open", id="high-below-open"),
    pytest.param("2024-01-03,10,10.5,9.9,9.8", "low above close", id="low-above-close"),
])
def test_a_bar_whose_high_and_low_do_not_bracket_it_is_refused(tmp_path: Path, row: str, what: str) -> None:
    (tmp_path / "BAD.csv").write_text(f"date,open,high,low,close\n2024-01-02,10,11,9,10.5\n{row}\n")
    source = CsvDataSource("mine", CsvSource(type="csv", path=str(tmp_path)), root=tmp_path)
    with pytest.raises(DataError) as caught:
        source.daily("BAD", date(2024, 1, 1))
    message = str(caught.value)
    assert message.startswith("mine/BAD: 1 bar(s) with high below low/open/close or low above open/close "
                              "on 2024-01-03"), what
    assert caught.value.source == "mine" and caught.value.ticker == "BAD"
