"""A read-through DuckDB cache in front of any DataSource: fetch only what is missing.

Per source and ticker the store remembers the range of sessions it holds complete and final
(`price_ranges`). A request inside that range is served from DuckDB with no network at all. A
request past its end fetches from a few days before the end (the overlap) to the new end, in
one request; if the overlapping bars differ from the cached ones, the provider has rewritten
history (a split or a dividend adjustment) and the whole range is fetched again and replaced.
Today's partial bar is stored marked partial and refreshed by the next request.

Edits to older history are caught too: a local source (csv files, which expose `digest(ticker)`)
is read whole again whenever its file's digest changed, and a remote one (which exposes
`verify_every`) has its whole cached range fetched again once that period passed since it was
last fetched whole (`price_checks`). A source with no bar past the cached ones raises DataStale
naming the last cached bar; what a run needs is decided by `freshness`.

The network is never used inside a transaction, and each write is one transaction: a failed or
interrupted fetch leaves the cached history exactly as it was.

    cache = PriceCache(store, YahooDataSource("yahoo", spec))
    spy = cache.daily("SPY", date(2016, 1, 1))          # first run: one request
    spy = cache.daily("SPY", date(2016, 1, 1))          # again: no request (after the close)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from minitrade import clock as real_clock
from minitrade.data.base import COLUMNS, DataSource
from minitrade.errors import DataError, DataStale
from minitrade.store import Store
from minitrade.store import prices as sql

OVERLAP_DAYS = 10          # calendar days re-fetched before the cached end to spot revisions
REVISION_RTOL = 1e-6       # relative change of a cached price that counts as a revision
CONCURRENCY = 4            # fetches in flight at once; modest, providers rate-limit

Progress = Callable[[str, int, int], None]


class PriceCache:
    """A DataSource that serves `source` through the store's price cache."""

    def __init__(self, store: Store, source: DataSource, *, overlap_days: int = OVERLAP_DAYS,
                 today: Callable[[], date] | None = None, concurrency: int = CONCURRENCY,
                 clock: Callable[[], datetime] = real_clock.now) -> None:
        self.store = store
        self.source = source
        self.name = source.name
        self.adjustment = str(getattr(source, "adjustment", "none"))
        self.overlap = timedelta(days=overlap_days)
        # Bars dated before today's UTC date are final on every exchange east of Hawaii.
        self.today = today or (lambda: datetime.now(UTC).date())
        self.concurrency = max(1, concurrency)
        self.clock = clock  # the real present: when a whole history is due to be verified again
        digest = getattr(source, "digest", None)
        self._digest: Callable[[str], str | None] | None = digest if callable(digest) else None
        every = getattr(source, "verify_every", None)
        self.verify_every: timedelta | None = every if isinstance(every, timedelta) else None
        self.fetches = 0   # requests made to the source by this object (for benchmarks and reports)
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PriceCache({self.store!r}, {self.source!r})"

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Bars of `ticker` from start to end inclusive (through today if None), canonical.

        `frame.attrs`: source, ticker, adjustment, partial (the last bar is today's so far).
        Raises DataError (naming the ticker) when the source fails; the cache is then unchanged.
        """
        frames, failures = self._serve([ticker], start, end, None)
        if failures:
            raise failures[0]
        return frames[ticker]

    def daily_many(self, tickers: Iterable[str], start: date, end: date | None = None,
                   progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        """`daily` for each ticker; every ticker is tried, then failures are raised together.

        `progress(ticker, done, total)` is called after each ticker, failed or not. The store is
        opened once when everything is cached, else twice whatever the number of tickers: to see
        what is cached, then to write what was fetched and read the answer.
        """
        names = list(dict.fromkeys(tickers))
        frames, failures = self._serve(names, start, end, progress)
        if failures:
            lines = "; ".join(str(e) for e in failures)
            raise DataError(f"{len(failures)} of {len(names)} tickers failed: {lines}", source=self.name,
                            retryable=all(e.retryable for e in failures))
        return frames

    # -- refreshing ---------------------------------------------------------------------------
    def _serve(self, tickers: list[str], start: date, end: date | None,
               progress: Progress | None) -> tuple[dict[str, pd.DataFrame], list[DataError]]:
        today = self.today()
        last = end or today
        if last < start:
            raise DataError(f"end {last} is before start {start}", source=self.name,
                            ticker=tickers[0] if len(tickers) == 1 else None)
        jobs: dict[str, _Job] = {}
        cached: dict[str, pd.DataFrame] | None = None
        # files are hashed before the transaction: it holds the state file only for what needs it
        digests = {t: self._digest(t) for t in tickers} if self._digest is not None else {}
        now = self.clock()
        with self.store.transaction() as con:
            known = sql.cached_ranges(con, self.name, tickers)
            checks = sql.price_checks(con, self.name, tickers)
            for ticker in tickers:
                job = self._job(known.get(ticker), start, last)
                if job is not None and not job.whole and self._due(checks.get(ticker), digests.get(ticker), now):
                    job = _Job(job.first_cached or start, job.last, whole=True, first_cached=job.first_cached)
                elif job is None and self._due(checks.get(ticker), digests.get(ticker), now):
                    held = known[ticker]
                    job = _Job(min(start, held.first), max(last, held.last), whole=True, first_cached=held.first)
                if job is not None:
                    job.digest = digests.get(ticker)
                    jobs[ticker] = job
            extending = {t: j for t, j in jobs.items() if not j.whole}
            if extending:
                overlap = sql.read_many(con, self.name, list(extending),
                                        min(j.first for j in extending.values()))
                ends = sql.last_dates(con, self.name, list(extending))
                for ticker, job in extending.items():
                    job.last_cached = ends.get(ticker)
                    old = overlap.get(ticker)
                    if old is not None:
                        job.old = old[(old.index >= pd.Timestamp(job.first))
                                      & (old.index <= pd.Timestamp(job.known_last))]
            if not jobs:  # all cached: answer from this one transaction
                cached = sql.read_many(con, self.name, tickers, start, last)
        failures: dict[str, DataError] = {}
        done = 0
        for ticker in tickers:
            if ticker not in jobs:
                done += 1
                if progress is not None:
                    progress(ticker, done, len(tickers))
        if jobs:
            # a few fetches at a time: a 15:45 refresh of 100 tickers must not take 100 round trips
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs)),
                                    thread_name_prefix=f"cache {self.name}") as pool:
                running = {pool.submit(self._run, ticker, job, today): ticker for ticker, job in jobs.items()}
                for future in as_completed(running):
                    ticker = running[future]
                    try:
                        future.result()
                    except DataError as e:
                        failures[ticker] = e
                    done += 1
                    if progress is not None:
                        progress(ticker, done, len(tickers))
        served = [t for t in tickers if t not in failures]
        if cached is None:
            with self.store.transaction() as con:
                written = {t: job for t, job in jobs.items() if job.bars is not None and t not in failures}
                sql.write_many(con, self.name, [(t, job.bars, None if job.whole else job.first, job.covered)
                                                for t, job in written.items()],
                               adjustment=self.adjustment, fetched_at=datetime.now(UTC))
                sql.write_checks(con, self.name, [(t, job.digest, now) for t, job in written.items() if job.whole])
                cached = sql.read_many(con, self.name, served, start, last)
        frames: dict[str, pd.DataFrame] = {}
        for ticker in served:
            bars = cached.get(ticker)
            if bars is None or bars.empty:
                failures[ticker] = DataError(f"no prices from {start} to {last}", source=self.name,
                                             ticker=ticker)
                continue
            out = bars[COLUMNS].astype("float64")
            out.attrs.update(source=self.name, ticker=ticker, adjustment=self.adjustment,
                             partial=bool(bars["partial"].iloc[-1]))
            frames[ticker] = out
        return frames, [failures[t] for t in tickers if t in failures]

    def _job(self, known: sql.CachedRange | None, start: date, last: date) -> _Job | None:
        """What to fetch for one ticker, or None when the cache already has it all."""
        if known is None or known.adjustment != self.adjustment:
            return _Job(start, last, whole=True)
        if start < known.first:
            return _Job(start, max(last, known.last), whole=True, first_cached=known.first)
        if last <= known.last:
            return None
        begin = max(known.first, known.last - self.overlap)
        return _Job(begin, last, whole=False, first_cached=known.first, known_last=known.last)

    def _due(self, check: sql.PriceCheck | None, digest: str | None, now: datetime) -> bool:
        """Must the whole cached history be read again: the file changed, or verification is due?"""
        if self._digest is not None:
            return check is None or check.digest != digest
        if self.verify_every is not None:
            return check is None or check.verified_at is None or now - check.verified_at >= self.verify_every
        return False

    def _run(self, ticker: str, job: _Job, today: date) -> None:
        try:
            bars = self._fetch(ticker, job.first, job.last)
        except DataStale as e:
            if job.whole:
                raise
            # nothing past the cached bars: the cache stays as it is and says how far it goes
            last = e.last_bar or job.last_cached
            raise DataStale(f"no bars after {last} (asked {job.first} to {job.last})", source=self.name,
                            ticker=ticker, last_bar=last) from e
        if not job.whole and job.old is not None and _revised(job.old, bars):
            # the provider rewrote the past (split, dividend adjustment): take it all again
            job.whole, job.first = True, job.first_cached or job.first
            bars = self._fetch(ticker, job.first, job.last)
        job.bars = bars
        job.covered = (job.first if job.whole else job.first_cached or job.first,
                       self._covered_to(bars, job.last, today))

    def _fetch(self, ticker: str, first: date, last: date) -> pd.DataFrame:
        with self._count_lock:
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


@dataclass
class _Job:
    """One ticker's fetch: the range asked, whether it replaces everything, and its result."""

    first: date
    last: date
    whole: bool
    first_cached: date | None = None
    known_last: date | None = None
    old: pd.DataFrame | None = None
    bars: pd.DataFrame | None = None
    covered: tuple[date, date] | None = None
    digest: str | None = None          # a local file's digest taken before this fetch
    last_cached: date | None = None    # the last cached bar before this fetch


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
