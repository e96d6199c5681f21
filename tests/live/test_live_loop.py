"""One run, orders exactly once, manual fills, durable ticks and the daemon pass, on real git and DuckDB."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.loader import load_worktree
from minitrade.reconcile_pass import reconcile_once
from minitrade.records import OrderStatus, TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.store.applied import last_applied, last_attempt
from tests.conftest import at_own_present, present

NY = ZoneInfo("America/New_York")
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def live(*args: str):
    """A command at its own `--at` as the real present (the live path, not a rehearsal)."""
    return runner.invoke(app, list(args), env=at_own_present(args), catch_exceptions=False)


def daemon_pass(repo, store: Store, moment: datetime):
    """One daemon pass at `moment`, with the machine's clock reading `moment` too."""
    with present(moment):
        return reconcile_once(repo.path, store, now=lambda: moment)


def store_of(repo) -> Store:
    return Store(repo.path / "state" / "minitrade.duckdb")


def orders(repo):
    with store_of(repo).transaction() as con:
        return order_sql.orders_of(con, "alt")


def closes() -> pd.Series:
    from importlib import resources

    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        frame = pd.read_csv(path, index_col="date", parse_dates=True)
    return frame["close"]


def test_run_records_an_order_once_with_commit_and_digest(live_repo) -> None:
    repo = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    first = live("run", "alt", "--at", "2013-01-03T15:45:00-05:00", "--repo", repo)
    assert first.exit_code == 0, first.output
    (order,) = orders(live_repo)
    assert order.trading_day == date(2013, 1, 3) and order.status is OrderStatus.SUBMITTED
    assert order.commit_sha == live_repo.head
    snap = load_worktree(live_repo.path)
    assert order.plan_digest == snap.digests()[("plan", "alt")]
    again = live("run", "alt", "--at", "2013-01-03T15:50:00-05:00", "--repo", repo)
    assert again.exit_code == 0
    assert len(orders(live_repo)) == 1, "strict mode never records a second order for one signal"
    with store_of(live_repo).transaction() as con:
        runs = run_sql.list_runs(con, plan="alt")
    assert [r.status for r in runs] == ["FINISHED", "FINISHED"]
    assert all(r.commit_sha == live_repo.head for r in runs)


def test_manual_fill_counts_and_shows_in_trades(live_repo) -> None:
    repo = str(live_repo.path)
    cli("apply", "--yes", "--repo", repo)
    live("run", "alt", "--at", "2013-01-03T15:45:00-05:00", "--repo", repo)
    (order,) = orders(live_repo)
    filled = cli("fill", order.client_id, "--price", "75.5", "--commission", "1", "--repo", repo)
    assert filled.exit_code == 0, filled.output
    assert orders(live_repo)[0].status is OrderStatus.FILLED
    trades = json.loads(cli("trades", "--json", "--repo", repo).output)["trades"]
    assert [(t["client_id"], t["price"]) for t in trades] == [(order.client_id, 75.5)]
    refused = cli("fill", order.client_id, "--price", "75.5", "--repo", repo)
    assert refused.exit_code == 1


def test_trading_disabled_records_but_never_submits(live_repo) -> None:
    live_repo.edit("plans/alt.yaml", "trading: enabled", "trading: disabled")
    live_repo.commit("no trading")
    repo = str(live_repo.path)
    cli("apply", "--yes", "--repo", repo)
    assert live("run", "alt", "--at", "2013-01-03T15:45:00-05:00", "--repo", repo).exit_code == 0
    (order,) = orders(live_repo)
    assert order.status is OrderStatus.CANCELLED and "trading disabled" in (order.note or "")


def test_daemon_pass_runs_a_due_tick_once_and_skips_late_ones(live_repo) -> None:
    store = store_of(live_repo)
    tick = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
    first = daemon_pass(live_repo, store, tick + timedelta(seconds=30))
    assert first.outcome == "applied" and [r.status for r in first.runs] == ["FINISHED"]
    second = daemon_pass(live_repo, store, tick + timedelta(seconds=40))
    assert second.attempted is None and second.runs == []
    late = datetime(2013, 1, 4, 15, 45, tzinfo=NY) + timedelta(minutes=5)
    third = daemon_pass(live_repo, store, late)
    assert third.runs == [] and [(p, t.astimezone(NY).day) for p, t in third.skipped] == [("alt", 4)]
    with store.transaction() as con:
        ticks = {t.scheduled_at.astimezone(NY).day: t.status for t in order_sql.ticks_of(con, "alt")}
    assert ticks == {3: TickStatus.FINISHED, 4: TickStatus.SKIPPED}
    assert len(orders(live_repo)) == 1


def test_invalid_commit_is_rejected_once_and_last_good_keeps_running(live_repo) -> None:
    store = store_of(live_repo)
    day3 = datetime(2013, 1, 3, 15, 45, 30, tzinfo=NY)
    daemon_pass(live_repo, store, day3)
    good = live_repo.head
    live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: nothing")
    bad = live_repo.commit("broken")
    day4 = datetime(2013, 1, 4, 15, 45, 30, tzinfo=NY)
    result = daemon_pass(live_repo, store, day4)
    assert result.attempted == bad and result.outcome == "rejected"
    assert [r.status for r in result.runs] == ["FINISHED"], "the last applied plan keeps running"
    with store.transaction() as con:
        assert last_applied(con).commit_sha == good  # type: ignore[union-attr]
        assert last_attempt(con).commit_sha == bad  # type: ignore[union-attr]
    again = daemon_pass(live_repo, store, day4 + timedelta(seconds=10))
    assert again.attempted is None, "a rejected commit is attempted once"


def test_restart_closes_interrupted_ticks_and_looks_up_before_resubmitting(live_repo) -> None:
    store = store_of(live_repo)
    tick = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
    daemon_pass(live_repo, store, tick + timedelta(seconds=30))
    (order,) = orders(live_repo)
    with store.transaction() as con:  # as if the process died after recording, before the broker answered
        order_sql.set_status(con, order.client_id, OrderStatus.PENDING_SUBMIT)
        order_sql.start_tick(con, "alt", tick - timedelta(hours=1), "crashed-run")  # too old to resume
    daemon_pass(live_repo, store, tick + timedelta(minutes=1))
    with store.transaction() as con:
        ticks = {t.run_id: t for t in order_sql.ticks_of(con, "alt")}
    assert ticks["crashed-run"].status is TickStatus.FAILED and "interrupted" in (ticks["crashed-run"].error or "")
    after = orders(live_repo)
    assert len(after) == 1 and after[0].status is OrderStatus.SUBMITTED


def test_replay_fills_toc_orders_at_the_signal_close(live_repo) -> None:
    result = cli("replay", "--from", "2013-01-02", "--to", "2013-01-08", "--repo", str(live_repo.path))
    assert result.exit_code == 0, result.output
    assert "Report: " in result.output
    replay_store = Store(live_repo.path / "state" / "replay" / "minitrade.duckdb")
    with replay_store.transaction() as con:
        fills = order_sql.fills_of(con, "alt")
        placed = {o.client_id: o for o in order_sql.orders_of(con, "alt")}
    # nothing trades before trade_start (01-02): the empty book already matches the first target,
    # then one order a session, each filled
    assert len(fills) == len(placed) == 4
    close = closes()
    for fill in fills:
        order = placed[fill.client_id]
        assert fill.price == close[pd.Timestamp(order.trading_day)]
        assert fill.filled_at.astimezone(NY).date() == order.trading_day
    assert (live_repo.path / "state" / "replay" / "reports" / "index.html").is_file()


def test_incremental_mode_runs_from_actual_fills_and_cancels_open_orders(live_repo) -> None:
    live_repo.edit("plans/alt.yaml", "mode: strict", "mode: incremental")
    live_repo.commit("incremental")
    repo = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    assert live("run", "alt", "--at", "2013-01-03T15:45:00-05:00", "--repo", repo).exit_code == 0
    (first,) = orders(live_repo)
    assert first.side.value == "BUY" and first.quantity == 10  # from the actual book: nothing held yet
    assert cli("fill", first.client_id, "--price", "80", "--qty", "4", "--repo", repo).exit_code == 0
    assert live("run", "alt", "--at", "2013-01-04T15:45:00-05:00", "--repo", repo).exit_code == 0
    by_day = {o.trading_day: o for o in orders(live_repo)}
    assert by_day[date(2013, 1, 3)].status is OrderStatus.CANCELLED, "step 3: the open remainder is cancelled"
    second = by_day[date(2013, 1, 4)]
    # the strategy targets 10 or 0 shares; from the 4 actually held that is +6 or -4, never 10 again
    assert (second.side.value, second.quantity) in {("BUY", 6.0), ("SELL", 4.0)}
    with store_of(live_repo).transaction() as con:
        (run,) = [r for r in run_sql.list_runs(con, plan="alt") if r.end_date == date(2013, 1, 4)]
        equity = run_sql.read_equity(con, run.run_id)
    assert equity["cash"].iloc[-2] == 100000 - 4 * 80  # the actual cash, unchanged before today


def test_strict_run_aborts_when_past_prices_change(live_repo) -> None:
    import shutil
    from importlib import resources

    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        shutil.copyfile(path, live_repo.path / "AAPL.csv")
    live_repo.edit("minitrade.yaml", 'path: "package:sample_data"', "path: .")
    live_repo.commit("own price folder")
    repo = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    assert live("run", "alt", "--at", "2013-01-03T15:45:00-05:00", "--repo", repo).exit_code == 0
    frame = pd.read_csv(live_repo.path / "AAPL.csv")
    # a 2:1 split on 2013-01-04: the provider halves every earlier bar
    frame.loc[frame["date"] < "2013-01-04", ["open", "high", "low", "close"]] /= 2
    frame.to_csv(live_repo.path / "AAPL.csv", index=False)
    result = live("run", "alt", "--at", "2013-01-04T15:45:00-05:00", "--repo", repo)
    assert result.exit_code == 1
    assert "past prices changed" in result.output and "AAPL" in result.output
    assert [o.trading_day for o in orders(live_repo)] == [date(2013, 1, 3)], "no order from changed history"


def test_strict_live_run_starts_its_book_at_trade_start_not_backtest_start(live_repo) -> None:
    live_repo.write("strategies/hold.py", "import backtrader as bt\n\n\nclass Hold(bt.Strategy):\n"
                                          "    def next(self):\n        if not self.position:\n"
                                          "            self.buy(size=10)\n")
    live_repo.edit("plans/alt.yaml", "strategies/alternate.py", "strategies/hold.py")
    live_repo.commit("buy and hold")
    repo = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    assert live("run", "alt", "--at", "2013-01-02T15:45:00-05:00", "--repo", repo).exit_code == 0
    (order,) = orders(live_repo)  # the warm-up since backtest_start bought nothing for real
    assert (order.side.value, order.quantity, order.trading_day) == ("BUY", 10.0, date(2013, 1, 2))
