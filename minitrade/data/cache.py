"""A read-through DuckDB cache in front of any DataSource: fetch only what is missing.

Per source and ticker the store remembers the range of sessions it holds complete and final
(`price_ranges`). A request inside that range is served from DuckDB with no network at all. A
request past its end fetches from a few days before the end (the overlap) to the new end, in
one request; if the overlapping bars differ from the cached ones, the provider has rewritten
history (a split or a dividend adjustment) and the whole range is fetched again and replaced.
Today's partial bar is stored marked partial and refreshed by the next request.

The network is never used inside a transaction, and each write is one transaction: a failed or
interrupted fetch leaves the cached history exactly as it was.

    cache = PriceCache(store, YahooDataSource("yahoo", spec))
    spy = cache.daily("SPY", date(2016, 1, 1))          # first run: one request
    spy = cache.daily("SPY", date(2016, 1, 1))          # again: no request (after the close)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from minitrade.data.base import COLUMNS, DataSource
from minitrade.errors import DataError
from minitrade.store import Store
from minitrade.store import prices as sql

OVERLAP_DAYS = 10          # calendar days re-fetched before the cached end to spot revisions
REVISION_RTOL = 1e-6       # relative change of a cached price that counts as a revision

Progress = Callable[[str, int, int], None]


class PriceCache:
    """A DataSource that serves `source` through the store's price cache."""

    def __init__(self, store: Store, source: DataSource, *, overlap_days: int = OVERLAP_DAYS,
                 today: Callable[[], date] | None = None) -> None:
        self.store = store
        self.source = source
        self.name = source.name
        self.adjustment = str(getattr(source, "adjustment", "none"))
        self.overlap = timedelta(days=overlap_days)
        # Bars dated before today's UTC date are final on every exchange east of Hawaii.
        self.today = today or (lambda: datetime.now(UTC).date())
        self.fetches = 0   # requests made to the source by this object (for benchmarks and reports)

    def __repr__(self) -> str:
        return f"PriceCache({self.store!r}, {self.source!r})"

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Bars of `ticker` from start to end inclusive (through today if None), canonical.

        `frame.attrs`: source, ticker, adjustment, partial (the last bar is today's so far).
        Raises DataError (naming the ticker) when the source fails; the cache is then unchanged.
        """
        today = self.today()
        last = end or today
        if last < start:
            raise DataError(f"end {last} is before start {start}", source=self.name, ticker=ticker)
        with self.store.transaction() as con:
            known = sql.cached_range(con, self.name, ticker)
        if known is None or known.adjustment != self.adjustment or start < known.first:
            first = start if known is None or known.adjustment != self.adjustment else min(start, known.first)
            upto = last if known is None or known.adjustment != self.adjustment else max(last, known.last)
            self._replace_all(ticker, first, upto, today)
        elif last > known.last:
            self._extend(ticker, known.first, known.last, last, today)
        with self.store.transaction() as con:
            cached = sql.read_bars(con, self.name, ticker, start, last)
        if cached.empty:
            raise DataError(f"no prices from {start} to {last}", source=self.name, ticker=ticker)
        partial = bool(cached["partial"].iloc[-1])
        out = cached[COLUMNS].astype("float64")
        out.attrs.update(source=self.name, ticker=ticker, adjustment=self.adjustment, partial=partial)
        return out

    def daily_many(self, tickers: Iterable[str], start: date, end: date | None = None,
                   progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        """`daily` for each ticker; every ticker is tried, then failures are raised together.

        `progress(ticker, done, total)` is called after each ticker, failed or not.
        """
        names = list(dict.fromkeys(tickers))
        frames: dict[str, pd.DataFrame] = {}
        failures: list[DataError] = []
        for number, ticker in enumerate(names, 1):
            try:
                frames[ticker] = self.daily(ticker, start, end)
            except DataError as e:
                failures.append(e)
            if progress is not None:
                progress(ticker, number, len(names))
        if failures:
            lines = "; ".join(str(e) for e in failures)
            raise DataError(f"{len(failures)} of {len(names)} tickers failed: {lines}", source=self.name,
                            retryable=all(e.retryable for e in failures))
        return frames

    # -- refreshing ---------------------------------------------------------------------------
    def _fetch(self, ticker: str, first: date, last: date) -> pd.DataFrame:
        self.fetches += 1
        bars = self.source.daily(ticker, first, last)
        got = str(bars.attrs.get("adjustment", self.adjustment))
        if got != self.adjustment:
            raise DataError(f"source returned {got} prices, the cache holds {self.adjustment}",
                            source=self.name, ticker=ticker)
        marked = bars[COLUMNS].copy()
        marked["partial"] = False
        if bars.attrs.get("partial"):
            marked.iloc[-1, marked.columns.get_loc("partial")] = True
        return marked

    def _covered_to(self, bars: pd.DataFrame, asked_to: date, today: date) -> date:
        """The last date up to which the fetched range is complete and final."""
        if asked_to < today:
            return asked_to
        final = bars.index[~bars["partial"].to_numpy()]
        if len(final) and final[-1].date() >= today:
            return today
        return today - timedelta(days=1)

    def _replace_all(self, ticker: str, first: date, last: date, today: date) -> None:
        bars = self._fetch(ticker, first, last)
        covered = (first, self._covered_to(bars, last, today))
        with self.store.transaction() as con:
            sql.write_bars(con, self.name, ticker, bars, replace_from=None, replace_to=None,
                           adjustment=self.adjustment, covered=covered, fetched_at=datetime.now(UTC))

    def _extend(self, ticker: str, first: date, known_last: date, last: date, today: date) -> None:
        begin = max(first, known_last - self.overlap)
        bars = self._fetch(ticker, begin, last)
        with self.store.transaction() as con:
            old = sql.read_bars(con, self.name, ticker, begin, known_last)
            if not _revised(old, bars):
                covered = (first, self._covered_to(bars, last, today))
                sql.write_bars(con, self.name, ticker, bars, replace_from=begin, replace_to=None,
                               adjustment=self.adjustment, covered=covered, fetched_at=datetime.now(UTC))
                return
        # the provider rewrote the past (split, dividend adjustment): take the whole range again
        self._replace_all(ticker, first, last, today)


def _revised(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """Did any cached final bar in the overlap change price, or vanish?"""
    old = old[~old["partial"].astype(bool)]
    if old.empty:
        return False
    both = old.index.intersection(new.index)
    if len(both) < len(old):
        return True
    before = old.loc[both, ["open", "high", "low", "close"]].to_numpy()
    after = new.loc[both, ["open", "high", "low", "close"]].to_numpy()
    return not np.allclose(after, before, rtol=REVISION_RTOL, atol=0.0)
