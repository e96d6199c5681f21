"""The live loop's money-path edges, each through `minitrade run`/`fill` on real git and DuckDB:
past-time runs are rehearsals, a strict plan never sells what it does not hold (nor buys beyond its
cash), and `fill` refuses a short nobody asked for."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.models import OrderType
from minitrade.records import Order, OrderStatus, Side
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.testing.apprise_sink import AppriseSink
from tests.conftest import present_env

NY = ZoneInfo("America/New_York")
DAY3 = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
DAY4 = datetime(2013, 1, 4, 15, 45, tzinfo=NY)
TODAY = datetime(2026, 11, 27, 12, 0, tzinfo=NY)  # years after the ticks above
runner = CliRunner()

LADDER = '''import backtrader as bt


class Ladder(bt.Strategy):
    """Buys `size` more shares on every bar."""

    params = (("size", 10),)

    def next(self):
        self.buy(size=self.p.size)
'''


def cli(*args: str, now: datetime | None = None):
    """A command; with `now`, the machine's clock reads that instant (the live path)."""
    return runner.invoke(app, list(args), env=present_env(now) if now else None, catch_exceptions=False)


def aapl_close(day: date) -> float:
    from importlib import resources

    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        frame = pd.read_csv(path, index_col="date", parse_dates=True)
    return float(frame.loc[pd.Timestamp(day), "close"])


def orders(repo) -> list[Order]:
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return order_sql.orders_of(con, "alt")


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as s:
        yield s


@pytest.fixture
def repo(live_repo, sink: AppriseSink):
    """The `alt` plan (strict, manual broker, trading enabled) with a notifier on the sink, applied."""
    live_repo.edit("minitrade.yaml", "notifiers: {}", f"""notifiers:
  phone:
    urls: ["{sink.url('hook')}"]""")
    live_repo.commit("notifier")
    assert cli("apply", "--yes", "--repo", str(live_repo.path)).exit_code == 0
    return live_repo


def test_a_run_at_a_past_time_is_a_rehearsal_and_never_submits(repo, sink: AppriseSink) -> None:
    path = str(repo.path)
    result = cli("run", "alt", "--at", DAY3.isoformat(), "--repo", path, now=TODAY)
    assert result.exit_code == 0, result.output
    assert "rehearsal" in result.output and "nothing was sent to the broker" in result.output
    (rehearsed,) = orders(repo)
    assert rehearsed.status is OrderStatus.REHEARSAL and rehearsed.client_id.endswith(".R")
    assert not any("submitted" in p.title or "new order" in p.title for p in sink.posts), \
        "a rehearsal announces no orders"
    refused = cli("fill", rehearsed.client_id, "--price", "75", "--repo", path, now=TODAY)
    assert refused.exit_code == 1 and "rehearsal" in refused.output
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        (run,) = run_sql.list_runs(con, plan="alt")
        assert run.kind == "rehearsal" and "not the present" in (run.notes or "")
        assert order_sql.fills_of(con, "alt") == []

    real = cli("run", "alt", "--at", DAY3.isoformat(), "--repo", path, now=DAY3)
    assert real.exit_code == 0, real.output
    by_status = {o.status: o for o in orders(repo)}
    assert set(by_status) == {OrderStatus.REHEARSAL, OrderStatus.SUBMITTED}, \
        "the rehearsal never took the id the real tick needs"


def test_strict_plan_refuses_to_sell_what_an_expired_buy_never_bought(repo, sink: AppriseSink) -> None:
    path = str(repo.path)
    assert cli("run", "alt", "--at", DAY3.isoformat(), "--repo", path, now=DAY3).exit_code == 0
    (buy,) = orders(repo)
    assert (buy.side, buy.quantity, buy.status) == (Side.BUY, 10.0, OrderStatus.SUBMITTED)
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:  # the person let it lapse
        order_sql.set_status(con, buy.client_id, OrderStatus.EXPIRED, note="not placed in time")

    result = cli("run", "alt", "--at", DAY4.isoformat(), "--repo", path, now=DAY4)
    assert result.exit_code == 0, result.output
    sell = next(o for o in orders(repo) if o.trading_day == date(2013, 1, 4))
    assert sell.side is Side.SELL and sell.status is OrderStatus.REJECTED, "no short nobody asked for"
    assert "holds 0 AAPL" in (sell.note or "") and "allow_short" in (sell.note or "")
    assert "simulated 10 AAPL, actual 0: BUY of 2013-01-03 EXPIRED" in result.output
    (notice,) = [p for p in sink.posts if "actual book" in p.title]
    assert "alt" in notice.title and "REFUSED SELL 10 AAPL" in notice.message
    assert "simulated 10 AAPL, actual 0" in notice.message
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        run = next(r for r in run_sql.list_runs(con, plan="alt") if r.end_date == date(2013, 1, 4))
    assert "REFUSED SELL 10 AAPL" in (run.notes or ""), "the refusal is on the run's record"
    page = (repo.path / "state" / "reports" / "plans" / "alt" / "index.html").read_text()
    assert "simulated 10 AAPL, actual 0: BUY of 2013-01-03 EXPIRED" in page, "the report shows the divergence"
    assert cli("fill", sell.client_id, "--price", "75", "--repo", path).exit_code == 1


def test_a_buy_beyond_the_actual_cash_is_clipped_to_what_it_pays_for(repo, sink: AppriseSink) -> None:
    repo.write("strategies/ladder.py", LADDER)
    repo.edit("plans/alt.yaml", "strategies/alternate.py", "strategies/ladder.py")
    repo.edit("plans/alt.yaml", "cash: 100000", "cash: 2000")
    repo.commit("ladder on little cash")
    path = str(repo.path)
    assert cli("apply", "--yes", "--repo", path).exit_code == 0
    assert cli("run", "alt", "--at", DAY3.isoformat(), "--repo", path, now=DAY3).exit_code == 0
    (first,) = orders(repo)
    # the person paid far more than the simulation assumed: 10 x 150 leaves 500 of the 2000
    assert cli("fill", first.client_id, "--price", "150", "--repo", path, now=DAY3).exit_code == 0
    result = cli("run", "alt", "--at", DAY4.isoformat(), "--repo", path, now=DAY4)
    assert result.exit_code == 0, result.output
    second = next(o for o in orders(repo) if o.trading_day == date(2013, 1, 4))
    close = aapl_close(date(2013, 1, 4))
    assert second.status is OrderStatus.SUBMITTED and second.quantity == math.floor(500 / (close * 1.001)) < 10  # commission 0.1 %
    assert "CLIPPED BUY 10 AAPL" in (second.note or "") and "actual cash is 500.00" in (second.note or "")
    assert any("CLIPPED BUY 10 AAPL" in p.message for p in sink.posts)


def test_fill_refuses_a_sell_that_would_leave_the_plan_short(repo) -> None:
    # An order recorded before minitrade checked the book (an older version, or a plan edited since):
    # the fill is the last line of defence.
    old = Order(client_id="alt.20130104.204500Z.AAPL.0", plan="alt", run_id="old-run", trading_day=date(2013, 1, 4),
                ticker="AAPL", side=Side.SELL, quantity=10, order_type=OrderType.TOC, broker="manual",
                status=OrderStatus.SUBMITTED, tick_at=DAY4)
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        order_sql.insert_orders(con, [old])
    refused = cli("fill", old.client_id, "--price", "75", "--repo", str(repo.path))
    assert refused.exit_code == 1
    assert "would leave plan alt with -10" in refused.output and "allow_short" in refused.output
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        assert order_sql.fills_of(con, "alt") == []

    repo.edit("plans/alt.yaml", "trading: enabled", "trading: enabled\nallow_short: true")
    repo.commit("shorts allowed")
    assert cli("apply", "--yes", "--repo", str(repo.path)).exit_code == 0
    allowed = cli("fill", old.client_id, "--price", "75", "--repo", str(repo.path))
    assert allowed.exit_code == 0, allowed.output


def test_a_daemon_pass_in_the_future_is_refused_and_one_in_the_past_rehearses(repo) -> None:
    path = str(repo.path)
    future = cli("daemon", "--once", "--at", "2026-11-30T15:45:00-05:00", "--repo", path, now=TODAY)
    assert future.exit_code != 0 and "in the future" in future.output, "it would use up real ticks"
    past = cli("daemon", "--once", "--at", DAY3.replace(second=30).isoformat(), "--repo", path, now=TODAY)
    assert past.exit_code == 0, past.output
    assert "rehearsal" in past.output
    (order,) = orders(repo)
    assert order.status is OrderStatus.REHEARSAL
