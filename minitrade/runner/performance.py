"""Live performance from fills: a plan's daily equity since it began trading, and what the strict
simulation expected over the same days. Pure (frames in, frames and dicts out).

The live equity of a day is the plan's cash after that day's fills plus every position marked at
the day's cached close (a ticker without a bar that day carries its last close; a held ticker with
no close yet leaves the day without a value). Cash and quantities move exactly as in
`runner.positions.plan_book`: buys and fees out, sells in; rehearsal orders never count. A fill
belongs to the day of its time in the plan's exchange timezone.

    curve = live_equity(start, orders, fills, closes, first_day=date(2013, 2, 1), zone=ZoneInfo("America/New_York"))
    stats = period_stats(curve.equity, start_equity=curve.start_equity, closes=closes, exposure=curve.exposure)

The tracking difference is the live return minus the simulated return over the days both cover,
each from its own value before the first day (the plan's starting book; the simulation's previous
close), so a live book and a simulation that start at different values still compare.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

import pandas as pd

from minitrade.records import Fill, Order, OrderStatus, Side
from minitrade.runner.positions import TOLERANCE, PlanStart
from minitrade.runner.stats import compute_stats, trade_stats

# trade statistics need closed round trips; the live book is measured by its fills and P&L instead
_TRADE_KEYS = tuple(trade_stats(pd.DataFrame({"pnl": [], "return_pct": []})))


@dataclass(frozen=True)
class LiveCurve:
    """A plan's live daily equity (NaN: a held ticker had no close yet), cash and whether it held anything."""

    equity: pd.Series
    cash: pd.Series
    exposure: pd.Series
    start_equity: float | None   # the book before the first day: cash plus preexisting positions at `start_marks`
    fills: int                   # fills counted up to the last day


def live_equity(start: PlanStart, orders: Iterable[Order], fills: Iterable[Fill], closes: pd.DataFrame, *,
                first_day: date, zone: tzinfo, start_marks: Mapping[str, float] | None = None) -> LiveCurve:
    """The plan's equity on each day of `closes` (a date index, one column per ticker) from `first_day` on.

    Rows of `closes` before `first_day` only carry a close forward into the first days. `start_marks`
    price the preexisting positions of the starting value (the caller passes the closes before
    `first_day`, the base the simulation's return is measured from too).
    """
    mine = {o.client_id: o for o in orders if o.plan == start.plan and o.status is not OrderStatus.REHEARSAL}
    events = sorted(((f.filled_at.astimezone(zone).date(), f.filled_at, mine[f.client_id], f)
                     for f in fills if f.client_id in mine), key=lambda e: (e[0], e[1]))
    carried = closes.sort_index().ffill()
    days = [d for d in pd.DatetimeIndex(carried.index) if d.date() >= first_day]
    cash = float(start.cash)
    held = {t: float(q) for t, q in start.positions.items() if abs(float(q)) > TOLERANCE}
    equity, cash_of, exposed, i, counted = [], [], [], 0, 0
    for day in days:
        while i < len(events) and events[i][0] <= day.date():
            _, _, order, fill = events[i]
            signed = fill.quantity if order.side is Side.BUY else -fill.quantity
            cash -= signed * fill.price + fill.commission
            held[order.ticker] = held.get(order.ticker, 0.0) + signed
            i, counted = i + 1, counted + 1
        row = carried.loc[day]
        value = cash
        for ticker, quantity in held.items():
            if abs(quantity) <= TOLERANCE:
                continue
            close = row.get(ticker) if ticker in row.index else None
            value = value + quantity * float(close) if close is not None and math.isfinite(close) else math.nan
        equity.append(value)
        cash_of.append(cash)
        exposed.append(any(abs(q) > TOLERANCE for q in held.values()))
    index = pd.DatetimeIndex(days, name="date")
    return LiveCurve(pd.Series(equity, index=index, dtype=float), pd.Series(cash_of, index=index, dtype=float),
                     pd.Series(exposed, index=index, dtype=float), start_value(start, start_marks), counted)


def start_value(start: PlanStart, start_marks: Mapping[str, float] | None) -> float | None:
    """Cash plus preexisting positions at their start marks; None when one of them has no mark."""
    value = float(start.cash)
    for ticker, quantity in start.positions.items():
        if abs(float(quantity)) <= TOLERANCE:
            continue
        mark = (start_marks or {}).get(ticker)
        if mark is None:
            return None
        value += float(quantity) * mark
    return value


def period_stats(equity: pd.Series, *, start_equity: float | None, closes: pd.DataFrame, exposure: pd.Series,
                 trades: pd.DataFrame | None = None) -> dict[str, Any]:
    """`runner.stats` over one period's equity (days without a value left out); {} when there is nothing.

    Without `trades` (a live book) the trade statistics are left out rather than shown as zero trades.
    """
    known = equity.dropna()
    if known.empty or start_equity is None or start_equity <= 0:
        return {}
    span = closes.loc[(closes.index >= known.index[0]) & (closes.index <= known.index[-1])]
    if span.empty:
        span = pd.DataFrame({"_": [1.0, 1.0]}, index=[known.index[0], known.index[-1]])
    frame = trades if trades is not None else pd.DataFrame({"pnl": [], "return_pct": []})
    stats = compute_stats(known, start_equity=start_equity, trades=frame,
                          exposure=exposure.reindex(known.index).fillna(0.0), closes=span)
    if trades is None:
        stats = {k: v for k, v in stats.items() if k not in _TRADE_KEYS}
    return stats


@dataclass(frozen=True)
class Tracking:
    """Live against simulated over the days both cover (returns in percent)."""

    start: date
    end: date
    live_return_pct: float
    simulated_return_pct: float
    simulated: pd.Series      # the simulation rebased to the live start value, on the live days

    @property
    def difference_pct(self) -> float:
        """Live minus simulated, in percentage points."""
        return self.live_return_pct - self.simulated_return_pct


def tracking(live: LiveCurve, simulated: pd.Series, *, first_day: date) -> Tracking | None:
    """Compare the live curve with a simulation's daily equity (date index); None without overlap."""
    sim = simulated.dropna().sort_index()
    known = live.equity.dropna()
    if sim.empty or known.empty or live.start_equity is None or live.start_equity <= 0:
        return None
    first = pd.Timestamp(first_day)
    before, during = sim[sim.index < first], sim[sim.index >= first]
    if during.empty:
        return None
    base = float(before.iloc[-1]) if len(before) else float(during.iloc[0])
    end = min(known.index[-1], during.index[-1])
    live_end = known[known.index <= end]
    if live_end.empty or base <= 0:
        return None
    sim_end = float(during[during.index <= end].iloc[-1])
    rebased = (sim.reindex(sim.index.union(live.equity.index)).ffill().reindex(live.equity.index)
               / base * live.start_equity)
    rebased[rebased.index < during.index[0]] = math.nan
    return Tracking(first_day, end.date(), 100 * (float(live_end.iloc[-1]) / live.start_equity - 1),
                    100 * (sim_end / base - 1), rebased)


def closes_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """(ticker, date, close) rows as a frame: a date index, one column per ticker."""
    frame = pd.DataFrame(list(rows), columns=["ticker", "date", "close"])
    if frame.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
    frame["date"] = pd.to_datetime(frame["date"])
    wide = frame.pivot_table(index="date", columns="ticker", values="close", aggfunc="last")
    wide.columns = [str(c) for c in wide.columns]
    return wide.astype(float)
