"""Incremental mode end to end against the fake IB gateway: the broker's fills set the next run's
book, and this plan's unfilled orders are cancelled at the broker before new ones are placed."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.records import OrderStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.testing.ib_gateway import FakeGateway
from tests.conftest import present_env
from tests.live.conftest import trade_alt_through_ib

NY = ZoneInfo("America/New_York")
DAY3 = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
runner = CliRunner()


@pytest.fixture
def gateway(start_gateway) -> FakeGateway:
    return start_gateway("authenticated", DAY3)


@pytest.fixture
def repo(live_repo, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass")
    trade_alt_through_ib(live_repo, gateway, mode="incremental")
    assert runner.invoke(app, ["apply", "--yes", "--repo", str(live_repo.path)]).exit_code == 0
    return live_repo


def run_at(repo, moment: datetime) -> None:
    result = runner.invoke(app, ["run", "alt", "--at", moment.isoformat(), "--repo", str(repo.path)],
                           env=present_env(moment), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def book(repo) -> tuple[list, list]:
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return order_sql.orders_of(con, "alt"), order_sql.fills_of(con, "alt")


def test_unfilled_orders_are_cancelled_at_the_broker_before_the_next_run_orders(repo, gateway: FakeGateway) -> None:
    run_at(repo, DAY3)
    gateway.set_time(DAY3.replace(minute=48))
    run_at(repo, DAY3.replace(minute=48))  # same day, the first MOC order is still working
    first, second = sorted(gateway.orders, key=lambda o: o.order_id)
    assert first.status == "Cancelled" and second.is_open
    orders, _ = book(repo)
    assert sorted(o.status for o in orders) == sorted([OrderStatus.CANCELLED, OrderStatus.SUBMITTED])


def test_broker_fills_set_the_next_runs_positions_and_cash(repo, gateway: FakeGateway) -> None:
    run_at(repo, DAY3)
    gateway.set_time(DAY3.replace(hour=16, minute=5))  # the MOC order executes at the close
    day4 = datetime(2013, 1, 4, 15, 45, tzinfo=NY)
    gateway.set_time(day4)
    run_at(repo, day4)
    orders, fills = book(repo)
    assert [(f.quantity, f.price) for f in fills] == [(10.0, 76.0)]
    by_day = {o.trading_day: o for o in orders}
    assert by_day[date(2013, 1, 3)].status is OrderStatus.FILLED
    new = by_day.get(date(2013, 1, 4))
    # the strategy targets 10 or 0 shares; holding the 10 filled at the broker that is "nothing" or SELL 10
    assert new is None or (new.side.value, new.quantity) == ("SELL", 10.0)
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        (run,) = [r for r in run_sql.list_runs(con, plan="alt") if r.end_date == date(2013, 1, 4)]
        equity = run_sql.read_equity(con, run.run_id)
    commission = fills[0].commission
    assert equity["cash"].iloc[-2] == pytest.approx(100000 - 760 - commission)


def test_a_toc_order_decided_after_the_auction_cutoff_expires_unsent(repo, gateway: FakeGateway) -> None:
    late = DAY3.replace(minute=52)  # NYSE takes MOC orders until 15:50
    gateway.set_time(late)
    run_at(repo, late)
    (order,), _ = book(repo)
    assert order.status is OrderStatus.EXPIRED and gateway.order_posts() == 0


def test_a_rerun_of_the_same_tick_keeps_its_order_at_the_broker(repo, gateway: FakeGateway) -> None:
    run_at(repo, DAY3)
    again = runner.invoke(app, ["run", "alt", "--at", DAY3.isoformat(), "--repo", str(repo.path)],
                          env=present_env(DAY3), catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "this tick already recorded" in again.output and "changes nothing at the broker" in again.output
    (placed,) = gateway.orders
    assert placed.is_open, "the rerun never cancels the order its own tick placed"
    (order,), _ = book(repo)
    assert order.status is OrderStatus.SUBMITTED and gateway.order_posts() == 1


def test_a_rehearsal_of_an_incremental_plan_leaves_the_broker_alone(repo, gateway: FakeGateway) -> None:
    run_at(repo, DAY3)
    rehearsal = runner.invoke(app, ["run", "alt", "--at", DAY3.replace(hour=10).isoformat(), "--repo",
                                    str(repo.path)], env=present_env(DAY3.replace(hour=16, minute=30)),
                              catch_exceptions=False)
    assert rehearsal.exit_code == 0 and "rehearsal" in rehearsal.output
    (placed,) = gateway.orders
    assert placed.is_open and gateway.order_posts() == 1, "no cancel, no submit from a rehearsal"
