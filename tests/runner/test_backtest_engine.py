"""The engine: fill prices per entry type, positions, intents, bad prices, timezones, and
equivalence with plain backtrader set up by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

import backtrader as bt
import pandas as pd
import pytest

from minitrade.errors import DataError, StrategyError
from minitrade.models import OrderType
from minitrade.records import OrderIntent, Side
from minitrade.runner.backtest import run_backtest
from minitrade.runner.strategy import load_strategy

from .conftest import SCRIPTED, SMA_SOURCE, bars, make_plan, random_walk

OPENS = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
CLOSES = [10.5, 11.5, 12.5, 13.5, 14.5, 15.5]


def scripted() -> type:
    return load_strategy(SCRIPTED, "strategies/scripted.py")


def fills_of(result: Any) -> list[tuple[str, str, float, float]]:
    return [(r.date.date().isoformat(), r.ticker, r.size, r.price) for r in result.fills.itertuples()]


def test_toc_fills_at_the_signal_bars_close() -> None:
    result = run_backtest(make_plan(order_type="TOC"), {"AAA": bars(OPENS, CLOSES)}, scripted())
    # signal on bar 2 (2024-01-03, close 11.5) and bar 4 (2024-01-05, close 13.5)
    assert fills_of(result) == [("2024-01-03", "AAA", 10.0, 11.5), ("2024-01-05", "AAA", -10.0, 13.5)]
    assert result.trades["pnl"].tolist() == [pytest.approx(20.0)]
    assert result.final_equity == pytest.approx(10_020.0)


def test_too_fills_at_the_next_bars_open() -> None:
    result = run_backtest(make_plan(order_type="TOO"), {"AAA": bars(OPENS, CLOSES)}, scripted())
    # signal on bar 2 -> bar 3 open 12.0; signal on bar 4 -> bar 5 open 14.0
    assert fills_of(result) == [("2024-01-04", "AAA", 10.0, 12.0), ("2024-01-08", "AAA", -10.0, 14.0)]
    assert result.final_equity == pytest.approx(10_020.0)


def test_trg_decided_after_the_close_fills_at_the_next_available_open_of_that_ticker() -> None:
    # BBB has no bar on 2024-01-04, so the order placed on 01-03 fills at BBB's next bar (01-05).
    frames = {"AAA": bars(OPENS, CLOSES),
              "BBB": bars([20, 21, 23, 24, 25], [20.5, 21.5, 23.5, 24.5, 25.5],
                          dates=["2024-01-02", "2024-01-03", "2024-01-05", "2024-01-08", "2024-01-09"])}
    plan = make_plan(order_type="TRG", mode="incremental", universe=["AAA", "BBB"], run_at=["16:30"],
                     params={"ticker": "BBB", "buy_at": 2, "sell_at": 5})
    result = run_backtest(plan, frames, scripted())
    assert fills_of(result) == [("2024-01-05", "BBB", 10.0, 23.0), ("2024-01-09", "BBB", -10.0, 25.0)]


@pytest.mark.parametrize("run_at", ["10:00", "09:30:01-16:00/30min"])
def test_trg_decided_during_the_session_fills_on_the_signal_day_at_its_close(run_at: str) -> None:
    # the guide: a TRG order placed in market hours executes at once; daily bars give the signal
    # bar's close as the price the run saw (see runner/entry.py for why not the open)
    plan = make_plan(order_type="TRG", mode="incremental", run_at=[run_at])
    result = run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert fills_of(result) == [("2024-01-03", "AAA", 10.0, 11.5), ("2024-01-05", "AAA", -10.0, 13.5)]


def test_trg_decided_before_the_open_fills_at_that_days_open() -> None:
    # an 08:00 run decides on the previous session's bar; its market order waits for the open
    plan = make_plan(order_type="TRG", mode="incremental", run_at=["08:00"])
    result = run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert fills_of(result) == [("2024-01-04", "AAA", 10.0, 12.0), ("2024-01-08", "AAA", -10.0, 14.0)]


@pytest.mark.parametrize("order_type", ["TOC", "TOO"])
def test_an_order_refused_for_lack_of_cash_is_dated_the_day_it_was_placed(order_type: str) -> None:
    plan = make_plan(order_type=order_type, params={"buy_at": 2, "sell_at": 99, "size": 10_000})
    result = run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert result.fills.empty
    assert result.rejected == ["2024-01-03 AAA +10000: Margin"]  # placed on bar 2, 2024-01-03


def test_commission_is_charged_on_traded_value() -> None:
    result = run_backtest(make_plan(), {"AAA": bars(OPENS, CLOSES)}, scripted(), commission=0.01)
    assert result.fills["commission"].tolist() == pytest.approx([1.15, 1.35])
    assert result.final_equity == pytest.approx(10_000 + 20 - 2.5)
    assert result.trades["pnl"].tolist() == pytest.approx([17.5])


def test_preexisting_positions_enter_at_the_first_open_as_cost_basis() -> None:
    plan = make_plan(positions={"AAA": 5}, params={"buy_at": 99, "sell_at": 3, "size": 5})
    result = run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert result.start_equity == pytest.approx(10_000 + 5 * 10.0)
    assert result.positions["AAA"].tolist() == [5, 5, 0, 0, 0, 0]
    trade = result.trades.iloc[0]
    assert (trade["entry_price"], trade["exit_price"], trade["size"]) == (10.0, 12.5, 5.0)
    assert trade.pnl == pytest.approx(12.5)
    assert result.equity["equity"].iloc[0] == pytest.approx(10_000 + 5 * 10.5)


def test_last_bar_orders_become_intents_from_trade_start_on() -> None:
    plan = make_plan(params={"buy_at": 6, "sell_at": 99}, trade_start=date(2024, 1, 9))
    result = run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert result.intents == [OrderIntent("AAA", Side.BUY, 10.0, OrderType.TOC)]
    assert result.fills.empty  # decided on the last bar: not filled in the simulation


def test_signals_before_trade_start_never_become_intents() -> None:
    plan = make_plan(params={"buy_at": 6, "sell_at": 99}, trade_start=date(2024, 1, 10))
    assert run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted()).intents == []
    # ...and earlier signals are still executed in the simulation
    early = run_backtest(make_plan(trade_start=date(2024, 1, 10)), {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert len(early.fills) == 2 and early.intents == []


def test_last_bar_sell_becomes_a_sell_intent_with_the_plans_entry_type() -> None:
    plan = make_plan(order_type="TOO", positions={"AAA": 10}, params={"buy_at": 99, "sell_at": 6})
    assert run_backtest(plan, {"AAA": bars(OPENS, CLOSES)}, scripted()).intents == [
        OrderIntent("AAA", Side.SELL, 10.0, OrderType.TOO)]


@pytest.mark.parametrize(("frame", "message"), [
    pytest.param(bars([10, float("nan"), 12], [10, 11, 12]), r"1 bars with missing prices \(e.g. 2024-01-03\)", id="nan"),
    pytest.param(bars([10, 11, 12], [10, 11, 12], dates=["2024-01-02", "2024-01-04", "2024-01-03"]),
                 r"dates are not in ascending order \(2024-01-04 comes before 2024-01-03\)", id="unsorted"),
    pytest.param(bars([10, 11, 12], [10, 11, 12], dates=["2024-01-02", "2024-01-03", "2024-01-03"]),
                 r"duplicated dates 2024-01-03", id="duplicated"),
    pytest.param(bars([10, 0, 12], [10, 11, 12]), r"zero or negative prices on 2024-01-03", id="zero"),
    pytest.param(bars([10, 11], [10, 11]).iloc[:0], r"no prices for AAA", id="empty"),
])
def test_bad_prices_are_errors_naming_plan_and_ticker(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=rf"samples/AAA: plan test-plan: {message}") as info:
        run_backtest(make_plan(), {"AAA": frame}, scripted())
    assert info.value.ticker == "AAA"


def test_ticker_without_prices_is_an_error() -> None:
    with pytest.raises(DataError, match=r"samples/BBB: plan test-plan: no prices for BBB"):
        run_backtest(make_plan(universe=["AAA", "BBB"]), {"AAA": bars(OPENS, CLOSES)}, scripted())


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Shanghai"])
def test_timezone_aware_bars_keep_their_session_dates(tz: str) -> None:
    frame = bars(OPENS, CLOSES)
    frame.index = frame.index.tz_localize(tz)
    result = run_backtest(make_plan(), {"AAA": frame}, scripted())
    assert [d.date().isoformat() for d in result.equity.index] == [
        "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"]
    assert fills_of(result)[0] == ("2024-01-03", "AAA", 10.0, 11.5)


def test_prices_before_backtest_start_are_not_traded() -> None:
    result = run_backtest(make_plan(backtest_start=date(2024, 1, 4)), {"AAA": bars(OPENS, CLOSES)}, scripted())
    assert result.equity.index[0] == pd.Timestamp("2024-01-04")
    assert fills_of(result)[0] == ("2024-01-05", "AAA", 10.0, 13.5)


# -- equivalence with plain backtrader ------------------------------------------------------------


class _FillLog(bt.Analyzer):  # type: ignore[misc]
    def start(self) -> None:
        self.fills: list[tuple[str, float, float, float]] = []
        self.values: list[float] = []

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            ex = order.executed
            self.fills.append((bt.num2date(ex.dt).date().isoformat(), ex.size, ex.price, ex.comm))

    def next(self) -> None:
        self.values.append(self.strategy.broker.getvalue())


def plain_backtrader(cls: type, frame: pd.DataFrame, *, coc: bool, commission: float) -> tuple[list[Any], float,
                                                                                              list[float]]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(10_000)
    cerebro.broker.setcommission(commission=commission)
    cerebro.broker.set_coc(coc)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, name="AAA"))
    cerebro.addstrategy(cls)
    cerebro.addanalyzer(_FillLog, _name="log")
    strat = cerebro.run()[0]
    return strat.analyzers.log.fills, cerebro.broker.getvalue(), strat.analyzers.log.values


@pytest.mark.parametrize("order_type", ["TOC", "TOO"])
def test_same_fills_and_final_equity_as_plain_backtrader(order_type: str) -> None:
    frame = random_walk(600, seed=7)
    cls = load_strategy(SMA_SOURCE, "strategies/sma.py")
    expected_fills, expected_value, _ = plain_backtrader(cls, frame, coc=order_type == "TOC", commission=0.001)
    result = run_backtest(make_plan(order_type=order_type, backtest_start=date(2020, 1, 1)), {"AAA": frame}, cls,
                          commission=0.001)
    got = [(r.date.date().isoformat(), r.size, r.price, r.commission) for r in result.fills.itertuples()]
    assert len(expected_fills) > 10
    assert got == expected_fills
    assert round(result.final_equity, 2) == round(expected_value, 2)


@pytest.mark.parametrize("order_type", ["TOC", "TOO"])
def test_equity_curve_equals_backtraders_broker_value_on_every_bar(order_type: str) -> None:
    frame = random_walk(300, seed=11)
    cls = load_strategy(SMA_SOURCE, "strategies/sma.py")
    _, _, values = plain_backtrader(cls, frame, coc=order_type == "TOC", commission=0.0)
    result = run_backtest(make_plan(order_type=order_type, backtest_start=date(2020, 1, 1)), {"AAA": frame}, cls)
    assert result.equity["equity"].tolist() == pytest.approx(values, abs=1e-6)


def test_progress_is_reported_up_to_the_last_bar() -> None:
    seen: list[tuple[int, int]] = []
    frame = random_walk(600, seed=2)
    run_backtest(make_plan(backtest_start=date(2020, 1, 1)), {"AAA": frame}, scripted(),
                 progress=lambda done, total: seen.append((done, total)))
    assert seen == [(250, 600), (500, 600), (600, 600)]


def test_limit_order_on_the_last_bar_cannot_become_an_intent() -> None:
    source = "import backtrader as bt\n\nclass Lim(bt.Strategy):\n    def next(self):\n" \
             "        self.buy(size=1, price=1.0, exectype=bt.Order.Limit)\n"
    with pytest.raises(StrategyError, match=r"the last bar placed a Limit order for AAA; only market orders"):
        run_backtest(make_plan(), {"AAA": bars(OPENS, CLOSES)}, load_strategy(source, "strategies/lim.py"))
