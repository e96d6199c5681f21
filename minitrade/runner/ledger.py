"""Books of a backtest rebuilt from its fills: end-of-day cash, positions, equity; closed trades.

Rebuilding from fills (rather than sampling the broker inside the run) dates every fill on the day
it executed at: a TOC fill at the signal bar's close belongs to that bar, not the next one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TRADE_COLUMNS = ["ticker", "size", "entry_date", "exit_date", "entry_price", "exit_price", "pnl", "return_pct"]


@dataclass
class Book:
    equity: pd.DataFrame     # equity, cash per session
    positions: pd.DataFrame  # shares per ticker per session


def daily_book(dates: pd.DatetimeIndex, closes: pd.DataFrame, fills: pd.DataFrame, *, cash: float,
               positions: Mapping[str, float]) -> Book:
    """End-of-day cash, shares and equity on each session of `dates`.

    `closes` has one column per ticker (NaN where the ticker has no bar); a position is valued at
    the ticker's last known close. Fills dated outside `dates` are ignored. Built on numpy arrays:
    an optimisation builds one book a trial.
    """
    tickers = list(closes.columns)
    deltas = np.zeros((len(dates), len(tickers)))
    flows = np.zeros(len(dates))
    if not fills.empty:
        rows = dates.get_indexer(pd.DatetimeIndex(fills["date"]))
        cols = pd.Index(tickers).get_indexer(fills["ticker"])
        size, price, commission = (fills[c].to_numpy(dtype=np.float64) for c in ("size", "price", "commission"))
        kept = (rows >= 0) & (cols >= 0)
        np.add.at(deltas, (rows[kept], cols[kept]), size[kept])
        np.add.at(flows, rows[kept], -(size * price + commission)[kept])
    initial = np.array([float(positions.get(t, 0.0)) for t in tickers])
    held = deltas.cumsum(axis=0) + initial
    cash_curve = cash + flows.cumsum()
    equity_curve = cash_curve + (held * _last_known(closes.to_numpy(dtype=np.float64))).sum(axis=1)
    index = pd.DatetimeIndex(dates, name="date")
    equity = pd.DataFrame({"equity": equity_curve, "cash": cash_curve}, index=index)
    return Book(equity=equity, positions=pd.DataFrame(held, index=index, columns=tickers))


def _last_known(prices: np.ndarray) -> np.ndarray:
    """Each cell's latest non-NaN value at or above it in its column (0 before the first)."""
    known = ~np.isnan(prices)
    rows = np.maximum.accumulate(np.where(known, np.arange(len(prices))[:, None], 0), axis=0)
    filled = prices[rows, np.arange(prices.shape[1])]
    return np.where(np.isnan(filled), 0.0, filled)


def closed_trades(fills: pd.DataFrame, initial: Mapping[str, tuple[float, float, Any]]) -> pd.DataFrame:
    """Round trips matched first-in first-out per ticker; commissions split by quantity.

    `initial` maps a ticker to a preexisting lot (size, cost price, date) that opens before any fill.
    """
    lots: dict[str, deque[list[Any]]] = {}
    for ticker, (size, price, day) in initial.items():
        if size:
            lots[ticker] = deque([[float(size), float(price), pd.Timestamp(day), 0.0]])
    rows: list[tuple[Any, ...]] = []
    for fill in fills.itertuples(index=False):
        book = lots.setdefault(fill.ticker, deque())
        remaining = float(fill.size)
        per_share = float(fill.commission) / abs(remaining) if remaining else 0.0
        while remaining and book and (book[0][0] > 0) != (remaining > 0):
            lot = book[0]
            qty = min(abs(lot[0]), abs(remaining))
            sign = 1.0 if lot[0] > 0 else -1.0
            pnl = sign * qty * (float(fill.price) - lot[1]) - qty * (lot[3] + per_share)
            rows.append((fill.ticker, sign * qty, lot[2], pd.Timestamp(fill.date), lot[1], float(fill.price),
                         pnl, 100 * pnl / (qty * lot[1]) if lot[1] else 0.0))
            lot[0] -= sign * qty
            remaining += sign * qty
            if abs(lot[0]) < 1e-12:
                book.popleft()
        if abs(remaining) > 1e-12:
            book.append([remaining, float(fill.price), pd.Timestamp(fill.date), per_share])
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)
