"""Performance statistics of one backtest: from its daily equity curve and its closed trades.

Conventions (the tests recompute each one independently):
- daily returns are the equity curve's `pct_change`; annualised with 252 trading days, risk-free 0;
- return and CAGR run from the starting equity (cash + preexisting positions at the first open) to
  the final equity; CAGR uses calendar years of 365.25 days;
- Sortino's downside deviation is the root mean square of the negative daily returns over all days;
- a drawdown episode runs from a peak to the first day back at that peak (or the last day);
- buy-and-hold is an equal-weight basket of the universe bought at each ticker's first close;
- trade statistics use closed round trips (FIFO); percentages are plain percent numbers.
Values that are undefined (no trades, flat equity) are None so JSON stays valid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252


def compute_stats(equity: pd.Series, *, start_equity: float, trades: pd.DataFrame,
                  exposure: pd.Series, closes: pd.DataFrame) -> dict[str, Any]:
    """All statistics of a run, keyed by snake_case names (see the module docstring).

    Computed on the curve's numpy arrays: an optimisation runs this once a trial, and pandas'
    per-call overhead was a third of what a trial costs beyond backtrader.
    """
    if equity.empty:
        raise ValueError("an empty equity curve has no statistics")
    values = equity.to_numpy(dtype=np.float64)
    days_of = equity.index.values.astype("datetime64[D]").astype(np.int64)
    start, end = equity.index[0], equity.index[-1]
    final, days = float(values[-1]), int(days_of[-1] - days_of[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1      # pct_change without its first (undefined) day
        returns = returns[~np.isnan(returns)]
        drawdown = values / np.maximum.accumulate(values) - 1
    total = final / start_equity - 1 if start_equity > 0 else math.nan
    years = days / 365.25
    cagr = (final / start_equity) ** (1 / years) - 1 if years > 0 and start_equity > 0 and final > 0 else math.nan
    std = float(returns.std(ddof=1)) if len(returns) > 1 else math.nan
    mean = float(returns.mean()) if len(returns) else math.nan
    downside = float(np.sqrt((np.minimum(returns, 0.0) ** 2).mean())) if len(returns) else math.nan
    episodes = drawdown_episodes(drawdown, days_of)
    max_dd = _nan_reduce(np.min, drawdown)
    stats: dict[str, Any] = {
        "start": start.date().isoformat(),
        "end": end.date().isoformat(),
        "duration_days": days,
        "bars": len(values),
        "exposure_pct": 100 * float(np.mean(exposure.to_numpy(dtype=np.float64))),
        "start_equity": float(start_equity),
        "final_equity": final,
        "peak_equity": _nan_reduce(np.max, values),
        "return_pct": 100 * total,
        "buy_hold_return_pct": 100 * buy_hold_return(closes),
        "cagr_pct": 100 * cagr,
        "volatility_pct": 100 * std * math.sqrt(TRADING_DAYS),
        "sharpe": _ratio(mean * math.sqrt(TRADING_DAYS), std),
        "sortino": _ratio(mean * math.sqrt(TRADING_DAYS), downside),
        "calmar": _ratio(cagr, abs(max_dd)),
        "max_drawdown_pct": 100 * max_dd,
        "max_drawdown_days": max((e[1] for e in episodes), default=0),
        "avg_drawdown_pct": 100 * float(np.mean([e[0] for e in episodes])) if episodes else 0.0,
        "avg_drawdown_days": float(np.mean([e[1] for e in episodes])) if episodes else 0.0,
    }
    stats.update(trade_stats(trades))
    return {k: _clean(v) for k, v in stats.items()}


def buy_hold_return(closes: pd.DataFrame) -> float:
    """The equal-weight basket's return: each ticker from its first close to its last."""
    prices = closes.to_numpy(dtype=np.float64)
    known = ~np.isnan(prices)
    if not known.any(axis=0).all():
        return math.nan
    first = prices[known.argmax(axis=0), np.arange(prices.shape[1])]
    last = prices[len(prices) - 1 - known[::-1].argmax(axis=0), np.arange(prices.shape[1])]
    return float(np.mean(last / first) - 1)


def drawdown_episodes(drawdown: np.ndarray, days: np.ndarray) -> list[tuple[float, int]]:
    """(depth, calendar days from the peak to recovery or the last day) of every drawdown.

    `days` are the sessions as day numbers. An episode is a run of days below the peak; its peak
    is the day before the run (the first day for a run that starts the curve).
    """
    below = drawdown < 0
    edges = np.diff(np.concatenate(([0], below.view(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stop: first day back
    if not len(starts):
        return []
    depths = np.minimum.reduceat(np.where(below, drawdown, 0.0), starts)
    peaks = np.maximum(starts - 1, 0)
    ends = np.minimum(stops, len(drawdown) - 1)
    return [(float(d), int(n)) for d, n in zip(depths, days[ends] - days[peaks], strict=True)]


def _nan_reduce(reduce: Any, values: np.ndarray) -> float:
    """`reduce` over the values that are not NaN (pandas' skipna), NaN when there are none."""
    known = values[~np.isnan(values)]
    return float(reduce(known)) if len(known) else math.nan


def trade_stats(trades: pd.DataFrame) -> dict[str, Any]:
    """Statistics of closed trades (columns `pnl` and `return_pct`)."""
    count = len(trades)
    if count == 0:
        return {"trades": 0, "win_rate_pct": None, "best_trade_pct": None, "worst_trade_pct": None,
                "avg_trade_pct": None, "profit_factor": None, "expectancy": None, "sqn": None}
    pnl, pct = trades["pnl"].to_numpy(dtype=np.float64), trades["return_pct"].to_numpy(dtype=np.float64)
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    pnl_std = float(pnl.std(ddof=1)) if count > 1 else math.nan
    return {
        "trades": count,
        "win_rate_pct": 100 * float((pnl > 0).mean()),
        "best_trade_pct": float(pct.max()),
        "worst_trade_pct": float(pct.min()),
        "avg_trade_pct": float(pct.mean()),
        "profit_factor": _ratio(gains, losses),
        "expectancy": float(pnl.mean()),
        "sqn": _ratio(math.sqrt(count) * float(pnl.mean()), pnl_std),
    }


def _ratio(top: float, bottom: float) -> float:
    if not math.isfinite(top) or not math.isfinite(bottom) or bottom == 0:
        return math.nan
    return top / bottom


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
