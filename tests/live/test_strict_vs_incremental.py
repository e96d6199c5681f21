"""Strict and incremental mode on the same plan, data and sessions, through `minitrade run` and `fill`.

Two plans identical but for their name and mode run side by side in one real trading repo (real git,
real DuckDB, the CLI in process). The strategy sizes its position from its equity, so both a fill
price and a fill quantity that differ from the simulation change what it wants next:
- every order filled exactly as simulated (the close, TOC): both modes place the same orders;
- one partial fill at another price: the incremental run of the next day trades from the actual
  book to the strategy's target, while strict mode keeps following its own simulation.
The expectations come from a small independent model of the strategy, not from the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.records import Order, OrderStatus, Side
from minitrade.store import Store
from minitrade.store import orders as order_sql
from tests.conftest import present_env

runner = CliRunner()

FRACTION = '''import backtrader as bt


class Fraction(bt.Strategy):
    """Holds `high` of its equity in the stock on odd bars and `low` on even ones, in whole shares."""

    params = (("high", 0.5), ("low", 0.2))

    def next(self):
        share = self.p.high if len(self) % 2 else self.p.low
        self.order_target_size(target=int(share * self.broker.getvalue() / self.data.close[0]))
'''

PLAN = """name: {name}
strategy: strategies/fraction.py
universe: [AAPL]
data_source: samples
calendar: XNYS
backtest_start: 2013-01-02
trade_start: 2013-01-02
run_at: "15:45"
order_type: TOC
mode: {mode}
broker: manual
cash: 100000
commission: 0
trading: enabled
"""

CASH = 100000.0
HIGH, LOW = 0.5, 0.2
SESSIONS = [date(2013, 1, 2), date(2013, 1, 3), date(2013, 1, 4), date(2013, 1, 7), date(2013, 1, 8)]
DIVERGE = SESSIONS[2]           # the day whose order is filled differently from the simulation
SLIPPAGE, SHORT, FEE = 1.25, 7, 2.5  # paid this much more per share, got this many shares fewer, paid this fee


def cli(*args: str, env: dict[str, str] | None = None):
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def closes() -> pd.Series:
    from importlib import resources

    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        frame = pd.read_csv(path, index_col="date", parse_dates=True)
    return frame["close"]


@dataclass
class Book:
    """The model of one account: cash and shares, and what Fraction wants from it on a bar."""

    cash: float = CASH
    shares: float = 0.0

    def wanted(self, bar: int, close: float) -> float:
        """The signed order Fraction places on its `bar`-th bar (1-based) at `close`."""
        share = HIGH if bar % 2 else LOW
        return int(share * (self.cash + self.shares * close) / close) - self.shares

    def fill(self, signed: float, price: float, fee: float = 0.0) -> None:
        self.shares += signed
        self.cash -= signed * price + fee


def signed(order: Order) -> float:
    return order.quantity if order.side is Side.BUY else -order.quantity


def test_strict_and_incremental_agree_until_a_fill_diverges_then_each_follows_its_book(trading_repo, monkeypatch) -> None:
    # apply refuses trading-enabled plans whose prices end before the present: live in 2013
    monkeypatch.setenv("MINITRADE_NOW", f"{SESSIONS[0]}T15:45:00-05:00")
    for path in sorted((trading_repo.path / "plans").glob("*.yaml")):
        path.unlink()
    trading_repo.write("strategies/fraction.py", FRACTION)
    trading_repo.write("plans/strict.yaml", PLAN.format(name="strict", mode="strict"))
    trading_repo.write("plans/incr.yaml", PLAN.format(name="incr", mode="incremental"))
    trading_repo.commit("one plan in both modes")
    repo = str(trading_repo.path)
    cli("apply", "--yes", "--repo", repo)
    store = Store(trading_repo.path / "state" / "minitrade.duckdb")
    close = closes()

    def orders_of(plan: str, day: date) -> list[Order]:
        with store.transaction() as con:
            return order_sql.orders_of(con, plan, trading_day=day)

    sim, strict_actual, incr_actual = Book(), Book(), Book()
    placed: dict[str, dict[date, Order]] = {"strict": {}, "incr": {}}
    for bar, day in enumerate(SESSIONS, start=1):
        price = float(close[pd.Timestamp(day)])
        for plan in ("strict", "incr"):
            at = f"{day.isoformat()}T15:45:00-05:00"
            cli("run", plan, "--at", at, "--repo", repo, env=present_env(at))
            (order,) = orders_of(plan, day)
            assert order.ticker == "AAPL" and order.status is OrderStatus.SUBMITTED
            placed[plan][day] = order

        strict, incr = placed["strict"][day], placed["incr"][day]
        assert signed(strict) == sim.wanted(bar, price), f"{day}: strict follows its simulation"
        assert signed(incr) == incr_actual.wanted(bar, price), f"{day}: incremental trades from the actual book"
        if day <= DIVERGE:
            assert (strict.side, strict.quantity) == (incr.side, incr.quantity), f"{day}: nothing diverged yet"
        else:
            assert signed(strict) != signed(incr), f"{day}: the modes part ways after the divergent fill"
            assert signed(strict) != strict_actual.wanted(bar, price), "strict does not look at the real book"

        if day == SESSIONS[SESSIONS.index(DIVERGE) + 1]:
            # the day after: incremental cancelled the unfilled remainder; strict left it alone
            (left,) = orders_of("incr", DIVERGE)
            assert left.status is OrderStatus.CANCELLED
            (kept,) = orders_of("strict", DIVERGE)
            assert kept.status is OrderStatus.PARTIAL

        incr_target = incr_actual.shares + incr_actual.wanted(bar, price)
        sim.fill(signed(strict), price)  # the simulation always assumes a full fill at the close
        if day == DIVERGE:
            for plan, book in (("strict", strict_actual), ("incr", incr_actual)):
                order = placed[plan][day]
                qty = order.quantity - SHORT
                cli("fill", order.client_id, "--price", repr(price + SLIPPAGE), "--qty", repr(qty),
                    "--commission", repr(FEE), "--at", f"{day} 15:59", "--repo", repo)
                book.fill(qty if order.side is Side.BUY else -qty, price + SLIPPAGE, FEE)
        else:
            for plan, book in (("strict", strict_actual), ("incr", incr_actual)):
                order = placed[plan][day]
                cli("fill", order.client_id, "--price", repr(price), "--at", f"{day} 15:59", "--repo", repo)
                book.fill(signed(order), price)
        if day > DIVERGE:
            # filled, incremental's order lands the actual position on the strategy's target of that bar
            assert incr_actual.shares == incr_target

    # The divergence is visible in the books: strict's real position is not its simulated one.
    assert strict_actual.shares != sim.shares
    assert strict_actual.shares - sim.shares == -SHORT, "strict never recovers the missing shares"
    with store.transaction() as con:
        fills = {plan: order_sql.fills_of(con, plan) for plan in ("strict", "incr")}
        all_orders = {plan: order_sql.orders_of(con, plan) for plan in ("strict", "incr")}
    for plan, book in (("strict", strict_actual), ("incr", incr_actual)):
        mine = {o.client_id: o for o in all_orders[plan]}
        shares = sum(f.quantity if mine[f.client_id].side is Side.BUY else -f.quantity for f in fills[plan])
        assert shares == book.shares, f"{plan}: the recorded fills are the modelled book"
    assert len(all_orders["strict"]) == len(all_orders["incr"]) == len(SESSIONS), "one order a session each"
