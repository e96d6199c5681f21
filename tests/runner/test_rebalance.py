"""`Strategy.rebalance`: whole shares of the portfolio's value by weight, sells first, checked by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from minitrade.errors import StrategyError
from minitrade.records import Side
from minitrade.runner.backtest import run_backtest
from minitrade.runner.strategy import load_strategy

from .conftest import bars, make_plan

# Rebalances on the bars named in `schedule` (1-based bar number -> weights).
WEIGHTS = '''
from minitrade import Strategy


class Weights(Strategy):
    params = (("schedule", {}), ("buffer", 0.0))

    def next(self):
        weights = self.p.schedule.get(len(self))
        if weights is not None:
            self.rebalance(weights, cash_buffer=self.p.buffer)
'''
DATES = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
SCHEDULE = {1: {"AAA": 0.5, "BBB": 0.3}, 3: {"AAA": 0.2, "BBB": 0.7}}


def prices(aaa_opens: list[float] | None = None, bbb_opens: list[float] | None = None) -> dict[str, Any]:
    aaa, bbb = [10.0, 20.0, 25.0, 40.0], [50.0, 40.0, 40.0, 20.0]
    return {"AAA": bars(aaa_opens or aaa, aaa, dates=DATES), "BBB": bars(bbb_opens or bbb, bbb, dates=DATES),
            "CCC": bars([100.0] * 4, [100.0] * 4, dates=DATES)}


def plan(**overrides: Any) -> Any:
    spec: dict[str, Any] = {"universe": ["AAA", "BBB", "CCC"], "positions": {"CCC": 30}, "cash": 10_000,
                            "params": {"schedule": SCHEDULE, "buffer": 0.1}}
    spec.update(overrides)
    return make_plan(**spec)


def fills_of(result: Any) -> list[tuple[str, str, float, float]]:
    return [(r.date.date().isoformat(), r.ticker, r.size, r.price) for r in result.fills.itertuples()]


@pytest.mark.parametrize("entry", [
    pytest.param({"order_type": "TOC"}, id="TOC"),
    pytest.param({"order_type": "TRG", "mode": "incremental", "run_at": ["10:00"]}, id="TRG-in-session"),
])
def test_rebalance_matches_the_hand_computation_at_the_signal_close(entry: dict[str, Any]) -> None:
    result = run_backtest(plan(**entry), prices(), load_strategy(WEIGHTS, "strategies/weights.py"))
    # Bar 1: value 10,000 cash + 30 CCC x 100 = 13,000; 90% (buffer 0.1) = 11,700.
    #   AAA 0.5 x 11,700 / 10 = 585; BBB 0.3 x 11,700 / 50 = 70.2 -> 70; CCC not named -> sell 30.
    #   Cash: 10,000 + 3,000 - 5,850 - 3,500 = 3,650.
    # Bar 3: value 3,650 + 585 x 25 + 70 x 40 = 21,075; 90% = 18,967.5.
    #   AAA 0.2 x 18,967.5 / 25 = 151.74 -> 151 (sell 434); BBB 0.7 x 18,967.5 / 40 = 331.93 -> 331 (buy 261).
    #   The buy (10,440) is more than the cash (3,650): only the sell placed first pays for it.
    assert fills_of(result) == [
        ("2024-01-02", "CCC", -30.0, 100.0), ("2024-01-02", "AAA", 585.0, 10.0), ("2024-01-02", "BBB", 70.0, 50.0),
        ("2024-01-04", "AAA", -434.0, 25.0), ("2024-01-04", "BBB", 261.0, 40.0),
    ]
    assert result.rejected == []
    assert result.positions.iloc[-1].to_dict() == {"AAA": 151.0, "BBB": 331.0, "CCC": 0.0}
    assert result.equity["cash"].iloc[-1] == pytest.approx(3_650 + 434 * 25 - 261 * 40)  # 3,060


def test_rebalance_with_too_sizes_at_the_close_and_fills_at_the_next_open() -> None:
    # TOO: sized on the signal bar's close, filled at the next bar's open (the buffer absorbs the gap)
    result = run_backtest(plan(order_type="TOO"), prices(aaa_opens=[10.0, 18.0, 24.0, 39.0],
                                                         bbb_opens=[50.0, 35.0, 40.0, 21.0]),
                          load_strategy(WEIGHTS, "strategies/weights.py"))
    # Bar 1 as with TOC (585 AAA, 70 BBB, sell 30 CCC), filled at bar 2's opens:
    #   cash 10,000 + 3,000 - 585 x 18 - 70 x 35 = 20.
    # Bar 3: value 20 + 585 x 25 + 70 x 40 = 17,445; 90% = 15,700.5.
    #   AAA 0.2 x 15,700.5 / 25 = 125.6 -> 125 (sell 460); BBB 0.7 x 15,700.5 / 40 = 274.76 -> 274 (buy 204).
    assert fills_of(result) == [
        ("2024-01-03", "CCC", -30.0, 100.0), ("2024-01-03", "AAA", 585.0, 18.0), ("2024-01-03", "BBB", 70.0, 35.0),
        ("2024-01-05", "AAA", -460.0, 39.0), ("2024-01-05", "BBB", 204.0, 21.0),
    ]
    assert result.rejected == []


def test_rebalance_on_the_last_bar_gives_sells_before_buys_as_the_runs_orders() -> None:
    result = run_backtest(plan(), prices(), load_strategy(WEIGHTS, "strategies/weights.py"), end=date(2024, 1, 4))
    assert [(i.ticker, i.side, i.quantity) for i in result.intents] == [("AAA", Side.SELL, 434.0),
                                                                      ("BBB", Side.BUY, 261.0)]


@pytest.mark.parametrize(("params", "message"), [
    pytest.param({"schedule": {1: {"AAA": 0.7, "BBB": 0.5}}}, "weights sum to 1.2", id="over-one"),
    pytest.param({"schedule": {1: {"AAA": -0.5}}}, "weight -0.5 of AAA must be a number >= 0", id="negative"),
    pytest.param({"schedule": {1: {"ZZZ": 0.5}}}, "ticker 'ZZZ' is not in the plan's universe", id="unknown"),
    pytest.param({"schedule": {1: {"AAA": 0.5}}, "buffer": 1.0}, "cash_buffer 1.0 must be a fraction",
                 id="buffer"),
])
def test_rebalance_refuses_weights_it_cannot_honour(params: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        run_backtest(plan(params=params), prices(), load_strategy(WEIGHTS, "strategies/weights.py"))
