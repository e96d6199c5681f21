"""Stale prices: which session's bar a run needs, and `DataStale` when its source lacks it.

A run at instant `at` decides on its signal day's bar (today once the session opened, else the
previous session). A source has a session's bar `delay` after that session opens (Yahoo and
EastMoney show today's partial bar minutes after the open; a csv folder has no delay unless its
spec sets one), so the run *needs* the bar of the last session whose open plus the delay has
passed. A source whose last bar is older fails the run with DataStale, the same way whether the
bars came from the source, from the price cache, or from neither:

    needed = needed_day("XNYS", at, timedelta(minutes=20), latest=signal_day)
    prices = fresh_prices(cache, ["SPY"], start, signal_day, needed=needed, at=at)  # or DataStale
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import pandas as pd

from minitrade.data.base import DataSource
from minitrade.errors import DataStale
from minitrade.trading_calendar import get_calendar

PROBE_DAYS = 14  # `probe_last_bars` asks this far back before the needed day


def needed_day(calendar: str, at: datetime, delay: timedelta, *, latest: date | None = None) -> date | None:
    """The last session of `calendar` whose open plus `delay` is at or before `at` (capped at `latest`)."""
    cal = get_calendar(calendar)
    local = at.astimezone(cal.tz).date()
    day = local if cal.is_session(local) else cal.previous_session_day(local)
    if latest is not None and day is not None and day > latest:
        day = latest if cal.is_session(latest) else cal.previous_session_day(latest)
    while day is not None and cal.session(day).open + delay > at:
        day = cal.previous_session_day(day)
    return day


def fresh_prices(source: DataSource, tickers: Iterable[str], start: date, end: date, *, needed: date | None,
                 at: datetime) -> dict[str, pd.DataFrame]:
    """Bars of each ticker from `start` to `end`; DataStale naming every ticker without the needed bar."""
    prices: dict[str, pd.DataFrame] = {}
    stale: dict[str, date | None] = {}
    for ticker in tickers:
        try:
            prices[ticker] = source.daily(ticker, start, end)
        except DataStale as e:
            stale[ticker] = e.last_bar
    if needed is not None:
        for ticker, frame in prices.items():
            last = frame.index[-1].date() if len(frame) else None
            if last is None or last < needed:
                stale[ticker] = last
    if stale:
        raise stale_error(source.name, stale, needed, at)
    return prices


def probe_last_bars(source: DataSource, tickers: Iterable[str], needed: date) -> dict[str, date | None]:
    """Each ticker's last bar up to now, asking only the last few weeks (for `plan` and `apply`).

    A DataError other than DataStale (the source is down, the ticker unknown) propagates.
    """
    last: dict[str, date | None] = {}
    for ticker in tickers:
        try:
            frame = source.daily(ticker, needed - timedelta(days=PROBE_DAYS), None)
            last[ticker] = frame.index[-1].date() if len(frame) else None
        except DataStale as e:
            last[ticker] = e.last_bar
    return last


def stale_error(source: str, stale: dict[str, date | None], needed: date | None, at: datetime) -> DataStale:
    """The one DataStale message: source, tickers, their last bars, the day needed, and what to do."""
    bars = ", ".join(f"{t} {last or 'none in the window asked'}" for t, last in stale.items())
    known = [d for d in stale.values() if d is not None]
    when = f"{at:%Y-%m-%d %H:%M %Z}".strip()
    return DataStale(
        f"stale prices: no bar for {needed} (last bar: {bars}); a run at {when} needs it. Add the missing "
        f"bars to data source {source} (csv: the tickers' files), or if it publishes later in the day, "
        f"raise its `delay_minutes` in minitrade.yaml", source=source, ticker=", ".join(stale),
        last_bar=min(known) if known else None, expected=needed)
