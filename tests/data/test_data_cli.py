"""`minitrade data check|fetch|accept` on a real trading repo folder, sources pointed at the fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli.data_cmds import data_app
from minitrade.data.changes import record_history
from minitrade.store import Store


@pytest.fixture
def trading_repo(tmp_path: Path, fake_yahoo, fake_eastmoney) -> Path:
    now = datetime.now(UTC)   # the CLI runs on the real clock
    fake_yahoo.book.now = now
    fake_eastmoney.book.now = now
    (tmp_path / "plans").mkdir()
    (tmp_path / "strategies").mkdir()
    (tmp_path / "minitrade.yaml").write_text(f"""\
timezone: America/New_York
state_dir: state
data_sources:
  yahoo: {{type: yahoo, base_url: "{fake_yahoo.url}", timeout: 5}}
  yahoo-via-proxy: {{type: yahoo, base_url: "http://query2.finance.yahoo.invalid", proxy: "{fake_yahoo.url}"}}
  eastmoney: {{type: eastmoney, base_url: "{fake_eastmoney.url}", timeout: 5}}
""")
    (tmp_path / "strategies" / "hold.py").write_text(
        "import backtrader as bt\n\n\nclass Hold(bt.Strategy):\n    def next(self):\n        pass\n")
    plan = """\
strategy: strategies/hold.py
universe: {universe}
data_source: {source}
backtest_start: {start}
run_at: "15:45"
cash: 10000
"""
    (tmp_path / "plans" / "rotation.yaml").write_text(
        plan.format(universe="[SPY, QQQ]", source="yahoo", start="2024-01-02"))
    (tmp_path / "plans" / "china.yaml").write_text(
        plan.format(universe="['600519', '510300']", source="eastmoney", start="2025-01-02")
        + "calendar: XSHG\n")
    return tmp_path


def run(repo: Path, *args: str):
    # the `data` group alone: other command groups' state does not matter here
    return CliRunner().invoke(data_app, [*args, "--repo", str(repo)])


def cached_tickers(repo: Path) -> dict[str, int]:
    with Store(repo / "state" / "minitrade.duckdb").transaction() as con:
        return dict(con.execute("SELECT ticker, count(*) FROM prices GROUP BY ticker").fetchall())


def test_check_prints_the_last_bars_of_each_ticker(trading_repo, fake_yahoo):
    result = run(trading_repo, "check", "yahoo", "SPY", "QQQ", "--days", "3")
    assert result.exit_code == 0, result.output
    assert "yahoo SPY (yahoo:split+dividend)" in result.output and "yahoo QQQ" in result.output
    assert "ok: yahoo answered for 2 ticker(s)" in result.output
    assert {r.ticker for r in fake_yahoo.requests} == {"SPY", "QQQ"}
    assert not (trading_repo / "state" / "minitrade.duckdb").exists()  # check never touches the cache


def test_check_honours_the_sources_proxy_setting(trading_repo, fake_yahoo):
    result = run(trading_repo, "check", "yahoo-via-proxy", "SPY")
    assert result.exit_code == 0, result.output
    assert [r.via_proxy for r in fake_yahoo.requests] == [True]


def test_check_names_a_failing_ticker_and_still_shows_the_others(trading_repo, fake_yahoo):
    fake_yahoo.book.unknown.add("NOPE")
    result = run(trading_repo, "check", "yahoo", "NOPE", "SPY")
    assert result.exit_code == 1
    assert "yahoo/NOPE: Yahoo says: No data found" in result.output
    assert "yahoo SPY" in result.output


def test_check_of_an_unknown_source_lists_the_defined_ones(trading_repo):
    result = run(trading_repo, "check", "bloomberg", "SPY")
    assert result.exit_code == 1
    assert "no data source named 'bloomberg'" in result.output and "eastmoney, yahoo" in result.output


def test_fetch_warms_the_cache_for_every_plan_and_a_second_fetch_asks_for_little(
        trading_repo, fake_yahoo, fake_eastmoney):
    result = run(trading_repo, "fetch")
    assert result.exit_code == 0, result.output
    assert "ok: prices cached for 4 ticker(s)" in result.output
    counts = cached_tickers(trading_repo)
    assert set(counts) == {"SPY", "QQQ", "600519", "510300"} and counts["SPY"] > 400
    assert len(fake_yahoo.requests) == 2 and len(fake_eastmoney.requests) == 2
    again = run(trading_repo, "fetch", "--plan", "rotation")
    assert again.exit_code == 0, again.output
    assert len(fake_yahoo.requests) <= 4 and len(fake_eastmoney.requests) == 2  # at most today's bar


def test_fetch_reports_failures_and_keeps_what_it_could_cache(trading_repo, fake_yahoo):
    fake_yahoo.inject("nan", ticker="QQQ")
    result = run(trading_repo, "fetch", "--plan", "rotation")
    assert result.exit_code == 1
    assert "yahoo/QQQ: 1 bars with missing prices" in result.output
    assert set(cached_tickers(trading_repo)) == {"SPY"}


def test_fetch_of_an_unknown_plan_is_an_error(trading_repo):
    result = run(trading_repo, "fetch", "--plan", "nope")
    assert result.exit_code == 1 and "no plan named nope" in result.output


def test_accept_forgets_the_history_a_strict_plan_recorded(trading_repo):
    import pandas as pd

    store = Store(trading_repo / "state" / "minitrade.duckdb")
    frame = pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0]},
                         index=pd.DatetimeIndex(["2026-11-20"], name="date"))
    record_history(store, "rotation", "run-1", {"SPY": frame})
    result = run(trading_repo, "accept", "rotation")
    assert result.exit_code == 0, result.output
    with store.transaction() as con:
        assert con.execute("SELECT count(*) FROM price_history").fetchone() == (0,)


def test_apply_check_tries_each_changed_source_with_a_plan_ticker(trading_repo, fake_yahoo, fake_eastmoney):
    from minitrade.data.source_check import check
    from minitrade.loader import load_worktree

    snap = load_worktree(trading_repo)
    assert check(snap, {("data_source", "yahoo"), ("data_source", "eastmoney"),
                        ("data_source", "yahoo-via-proxy"), ("plan", "rotation")}) == []
    # yahoo for plan rotation's first ticker; yahoo-via-proxy, which no plan uses, with its probe ticker
    assert [r.ticker for r in fake_yahoo.requests] == ["SPY", "SPY"]
    assert [r.ticker for r in fake_eastmoney.requests] == ["600519"]


def test_apply_check_reports_a_source_that_fails(trading_repo, fake_yahoo):
    from minitrade.data.source_check import check
    from minitrade.loader import load_worktree

    fake_yahoo.book.unknown.add("SPY")
    [error] = check(load_worktree(trading_repo), {("data_source", "yahoo")})
    assert error == ("data source yahoo: could not fetch SPY for plan rotation: "
                     "Yahoo says: No data found, symbol may be delisted (HTTP 404)")
