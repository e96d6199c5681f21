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
    """All statistics of a run, keyed by snake_case names (see the module docstring)."""
    if equity.empty:
        raise ValueError("an empty equity curve has no statistics")
    start, end = equity.index[0], equity.index[-1]
    final, days = float(equity.iloc[-1]), int((end - start).days)
    returns = equity.pct_change().dropna()
    total = final / start_equity - 1 if start_equity > 0 else math.nan
    years = days / 365.25
    cagr = (final / start_equity) ** (1 / years) - 1 if years > 0 and start_equity > 0 and final > 0 else math.nan
    std = float(returns.std(ddof=1)) if len(returns) > 1 else math.nan
    mean = float(returns.mean()) if len(returns) else math.nan
    downside = float(np.sqrt((returns.clip(upper=0) ** 2).mean())) if len(returns) else math.nan
    drawdown = equity / equity.cummax() - 1
    episodes = drawdown_episodes(drawdown)
    max_dd = float(drawdown.min())
    first_closes, last_closes = closes.bfill().iloc[0], closes.ffill().iloc[-1]
    stats: dict[str, Any] = {
        "start": start.date().isoformat(),
        "end": end.date().isoformat(),
        "duration_days": days,
        "bars": len(equity),
        "exposure_pct": 100 * float(exposure.mean()),
        "start_equity": float(start_equity),
        "final_equity": final,
        "peak_equity": float(equity.max()),
        "return_pct": 100 * total,
        "buy_hold_return_pct": 100 * float((last_closes / first_closes).mean() - 1),
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


def drawdown_episodes(drawdown: pd.Series) -> list[tuple[float, int]]:
    """(depth, calendar days from the peak to recovery or the last day) of every drawdown."""
    episodes: list[tuple[float, int]] = []
    dates, values = drawdown.index, drawdown.to_numpy()
    peak_at, depth = None, 0.0
    for i, value in enumerate(values):
        if value < 0:
            if peak_at is None:
                peak_at, depth = max(i - 1, 0), 0.0
            depth = min(depth, float(value))
        elif peak_at is not None:
            episodes.append((depth, int((dates[i] - dates[peak_at]).days)))
            peak_at = None
    if peak_at is not None:
        episodes.append((depth, int((dates[-1] - dates[peak_at]).days)))
    return episodes


def trade_stats(trades: pd.DataFrame) -> dict[str, Any]:
    """Statistics of closed trades (columns `pnl` and `return_pct`)."""
    count = len(trades)
    if count == 0:
        return {"trades": 0, "win_rate_pct": None, "best_trade_pct": None, "worst_trade_pct": None,
                "avg_trade_pct": None, "profit_factor": None, "expectancy": None, "sqn": None}
    pnl, pct = trades["pnl"].astype(float), trades["return_pct"].astype(float)
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
