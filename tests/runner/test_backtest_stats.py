"""Statistics of a run, checked against an independent computation on the same equity curve."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from minitrade.runner.backtest import run_backtest
from minitrade.runner.stats import compute_stats
from minitrade.runner.strategy import load_strategy

from .conftest import SMA_SOURCE, make_plan, random_walk


@pytest.fixture(scope="module")
def run() -> object:
    frames = {"AAA": random_walk(800, seed=3), "BBB": random_walk(800, seed=4)}
    plan = make_plan(universe=["AAA", "BBB"], backtest_start=date(2020, 1, 1), params={"size": 30})
    return run_backtest(plan, frames, load_strategy(SMA_SOURCE, "strategies/sma.py"), commission=0.001), frames


def independent(equity: pd.Series, start_equity: float, pnl: list[float], pct: list[float],
                held: pd.DataFrame, closes: pd.DataFrame) -> dict[str, float]:
    """The same definitions as the module docstring, written out longhand."""
    values = equity.to_numpy()
    rets = values[1:] / values[:-1] - 1
    n = len(rets)
    mean = sum(rets) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rets) / (n - 1))
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / n)
    years = (equity.index[-1] - equity.index[0]).days / 365.25
    cagr = (values[-1] / start_equity) ** (1 / years) - 1
    peak, worst, depths, durations = values[0], 0.0, [], []
    in_dd, start_i, depth = False, 0, 0.0
    for i, v in enumerate(values):
        if v >= peak:
            if in_dd:
                depths.append(depth)
                durations.append((equity.index[i] - equity.index[start_i]).days)
                in_dd = False
            peak = v
        else:
            dd = v / peak - 1
            if not in_dd:
                in_dd, start_i, depth = True, i - 1, 0.0
            depth = min(depth, dd)
            worst = min(worst, dd)
    if in_dd:
        depths.append(depth)
        durations.append((equity.index[-1] - equity.index[start_i]).days)
    wins = [p for p in pnl if p > 0]
    losses = [-p for p in pnl if p < 0]
    pnl_mean = sum(pnl) / len(pnl)
    pnl_std = math.sqrt(sum((p - pnl_mean) ** 2 for p in pnl) / (len(pnl) - 1))
    basket = np.mean([closes[c].dropna().iloc[-1] / closes[c].dropna().iloc[0] for c in closes])
    return {
        "return_pct": 100 * (values[-1] / start_equity - 1),
        "cagr_pct": 100 * cagr,
        "volatility_pct": 100 * std * math.sqrt(252),
        "sharpe": mean / std * math.sqrt(252),
        "sortino": mean * 252 / (downside * math.sqrt(252)),
        "max_drawdown_pct": 100 * worst,
        "calmar": cagr / abs(worst),
        "max_drawdown_days": max(durations),
        "avg_drawdown_pct": 100 * sum(depths) / len(depths),
        "peak_equity": max(values),
        "final_equity": values[-1],
        "exposure_pct": 100 * sum(1 for row in held.to_numpy() if any(row != 0)) / len(held),
        "buy_hold_return_pct": 100 * (basket - 1),
        "trades": len(pnl),
        "win_rate_pct": 100 * len(wins) / len(pnl),
        "best_trade_pct": max(pct),
        "worst_trade_pct": min(pct),
        "avg_trade_pct": sum(pct) / len(pct),
        "profit_factor": sum(wins) / sum(losses),
        "expectancy": pnl_mean,
        "sqn": math.sqrt(len(pnl)) * pnl_mean / pnl_std,
        "duration_days": (equity.index[-1] - equity.index[0]).days,
    }


def test_stats_match_an_independent_computation(run: tuple) -> None:
    result, frames = run
    closes = pd.DataFrame({t: f["close"] for t, f in frames.items()})
    expected = independent(result.equity["equity"], result.start_equity, result.trades["pnl"].tolist(),
                           result.trades["return_pct"].tolist(), result.positions, closes)
    assert expected["trades"] > 10 and expected["max_drawdown_pct"] < 0
    for key, value in expected.items():
        assert result.stats[key] == pytest.approx(value, rel=1e-9), key
    assert result.stats["start"] == "2020-01-01" and result.stats["end"] == result.equity.index[-1].date().isoformat()


def test_flat_equity_and_no_trades_give_none_not_nan() -> None:
    index = pd.bdate_range("2024-01-01", periods=5)
    stats = compute_stats(pd.Series(100.0, index=index), start_equity=100.0,
                          trades=pd.DataFrame(columns=["pnl", "return_pct"]),
                          exposure=pd.Series(False, index=index), closes=pd.DataFrame({"A": [1.0] * 5}, index=index))
    assert stats["sharpe"] is None and stats["sortino"] is None and stats["calmar"] is None
    assert stats["trades"] == 0 and stats["win_rate_pct"] is None and stats["max_drawdown_pct"] == 0.0
    assert stats["return_pct"] == 0.0 and stats["exposure_pct"] == 0.0


def test_drawdown_episodes_by_hand_including_one_still_open_at_the_end() -> None:
    index = pd.date_range("2024-01-01", periods=8, freq="D")
    equity = pd.Series([100.0, 90, 95, 100, 100, 80, 120, 110], index=index)
    closes = pd.DataFrame({"A": [np.nan, 10, 20, 20, 20, 20, 20, np.nan], "B": [5.0, 5, 5, 5, 5, 5, 5, 10]},
                          index=index)
    stats = compute_stats(equity, start_equity=100.0, trades=pd.DataFrame(columns=["pnl", "return_pct"]),
                          exposure=pd.Series([False] * 4 + [True] * 4, index=index), closes=closes)
    # 100 -> 90 -> 95 -> back to 100 on day 3; 100 -> 80 -> 120 on day 6; 120 -> 110, still open on day 7
    depths = [-10.0, -20.0, 100 * (110 / 120 - 1)]
    assert stats["max_drawdown_pct"] == pytest.approx(-20.0)
    assert stats["max_drawdown_days"] == 3
    assert stats["avg_drawdown_days"] == pytest.approx((3 + 2 + 1) / 3)
    assert stats["avg_drawdown_pct"] == pytest.approx(sum(depths) / 3)
    assert stats["peak_equity"] == 120.0 and stats["exposure_pct"] == 50.0
    # each ticker from its first known close to its last: A 10 -> 20, B 5 -> 10
    assert stats["buy_hold_return_pct"] == pytest.approx(100.0)


def test_the_daily_book_by_hand_with_a_missing_close_and_a_preexisting_position() -> None:
    from minitrade.runner.ledger import daily_book

    dates = pd.DatetimeIndex(pd.date_range("2024-01-01", periods=4, freq="D"))
    closes = pd.DataFrame({"A": [10.0, np.nan, 12.0, 13.0], "B": [np.nan, 50.0, 50.0, 55.0]}, index=dates)
    fills = pd.DataFrame({"date": [dates[0], dates[1], dates[1], dates[3]], "ticker": ["A", "B", "A", "A"],
                          "size": [5.0, 2.0, -3.0, 1.0], "price": [10.0, 50.0, 11.0, 13.0],
                          "commission": [0.5, 1.0, 0.25, 0.0]})
    book = daily_book(dates, closes, fills, cash=1000.0, positions={"A": 2.0})
    cash = [1000 - 50.5, 1000 - 50.5 - 101 + 32.75, 881.25, 881.25 - 13]
    held_a, held_b = [7.0, 4.0, 4.0, 5.0], [0.0, 2.0, 2.0, 2.0]
    # A has no close on day 1: valued at its last known one (10); B before its first close: nothing
    value = [7 * 10.0, 4 * 10.0 + 2 * 50, 4 * 12.0 + 2 * 50, 5 * 13.0 + 2 * 55]
    assert book.equity["cash"].tolist() == pytest.approx(cash)
    assert book.equity["equity"].tolist() == pytest.approx([c + v for c, v in zip(cash, value, strict=True)])
    assert book.positions["A"].tolist() == held_a and book.positions["B"].tolist() == held_b
    assert book.equity.index.name == book.positions.index.name == "date"
