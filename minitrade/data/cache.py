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

Many tickers (a 5,000-ticker first fetch) go in batches: `concurrency` fetches in flight at once
(the source's `concurrency`, set in minitrade.yaml), and each batch of `batch_size` tickers stored
in one transaction, bars inserted from one DataFrame. Between batches, and while a batch's
fetches run, `should_stop()` is asked: once it says yes, queued fetches are dropped, the ones on
the wire get a few seconds before they are abandoned (`fetch_pool`), what was fetched is stored,
and the request ends; every stored batch stays, and the next request fetches
only the tickers still missing. A request opens the store once to plan (reading the tickers
already cached, one query per batch) and once per batch; only the frames asked for are kept.

The network is never used inside a transaction: a failed or interrupted fetch leaves the cached
history of its ticker exactly as it was.

A caller about to make many requests (a daemon pass: one per plan) can `preload` them: one
transaction reads the ranges, checks and bars of all their tickers, and each later request that
needs no fetch is answered from that reading without opening the store. A ticker's preloaded bars
are forgotten as soon as this cache stores new ones for it, and all of them at `forget()`.

    cache = PriceCache(store, YahooDataSource("yahoo", spec))
    spy = cache.daily("SPY", date(2016, 1, 1))          # first run: one request
    spy = cache.daily("SPY", date(2016, 1, 1))          # again: no request (after the close)
    got = cache.serve_many(tickers, date(2016, 1, 1), should_stop=stop.is_set)  # batched
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from minitrade import clock as real_clock
from minitrade.data.base import COLUMNS, DataSource
from minitrade.data.fetch_pool import fetch_all
from minitrade.errors import DataError, DataStale, FetchStopped
from minitrade.store import Store
from minitrade.store import prices as sql

OVERLAP_DAYS = 10          # calendar days re-fetched before the cached end to spot revisions
REVISION_RTOL = 1e-6       # relative change of a cached price that counts as a revision
CONCURRENCY = 4            # fetches in flight at once for a source that sets none (csv files)
BATCH = 100                # tickers stored per transaction; a stop request waits at most this long

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BatchStored:
    """Told after each batch's transaction committed: where a many-ticker request stands."""

    number: int        # this batch, from 1
    batches: int       # batches the request needs (tickers to fetch / batch size)
    done: int          # tickers answered so far: cached before, stored, or failed
    total: int
    fetched: int       # tickers fetched and stored so far
    failed: int


@dataclass
class Served:
    """A many-ticker request's answer: frames (when kept), failures, and whether it was stopped."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    failures: dict[str, DataError] = field(default_factory=dict)
    stopped: bool = False      # `should_stop` said yes before every ticker was answered
    missing: list[str] = field(default_factory=list)  # tickers left unanswered by the stop
    fetched: int = 0           # tickers fetched from the source and stored
    batches: int = 0           # batches done, each stored in one transaction


class PriceCache:
    """A DataSource that serves `source` through the store's price cache."""

    def __init__(self, store: Store, source: DataSource, *, overlap_days: int = OVERLAP_DAYS,
                 today: Callable[[], date] | None = None, concurrency: int | None = None,
                 batch_size: int = BATCH, clock: Callable[[], datetime] = real_clock.now) -> None:
        self.store = store
        self.source = source
        self.name = source.name
        self.adjustment = str(getattr(source, "adjustment", "none"))
        self.overlap = timedelta(days=overlap_days)
        # Bars dated before today's UTC date are final on every exchange east of Hawaii.
        self.today = today or (lambda: datetime.now(UTC).date())
        if concurrency is None:  # the source's own setting (minitrade.yaml `concurrency:`)
            own = getattr(source, "concurrency", None)
            concurrency = own if isinstance(own, int) else CONCURRENCY
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size)
        self.clock = clock  # the real present: when a whole history is due to be verified again
        digest = getattr(source, "digest", None)
        self._digest: Callable[[str], str | None] | None = digest if callable(digest) else None
        every = getattr(source, "verify_every", None)
        self.verify_every: timedelta | None = every if isinstance(every, timedelta) else None
        self.fetches = 0   # requests made to the source by this object (for benchmarks and reports)
        self._count_lock = threading.Lock()
        self._preloaded: _Preloaded | None = None

    def __repr__(self) -> str:
        return f"PriceCache({self.store!r}, {self.source!r})"

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Bars of `ticker` from start to end inclusive (through today if None), canonical.

        `frame.attrs`: source, ticker, adjustment, partial (the last bar is today's so far).
        Raises DataError (naming the ticker) when the source fails; the cache is then unchanged.
        """
        got = self.serve_many([ticker], start, end)
        if ticker in got.failures:
            raise got.failures[ticker]
        return got.frames[ticker]

    def daily_many(self, tickers: Iterable[str], start: date, end: date | None = None,
                   progress: Progress | None = None, *,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, pd.DataFrame]:
        """`daily` for each ticker, in batches; every ticker is tried, then failures are raised together.

        Raises FetchStopped when `should_stop()` said yes first (the stored batches stay cached).
        """
        names = list(dict.fromkeys(tickers))
        got = self.serve_many(names, start, end, progress=progress, should_stop=should_stop)
        if got.stopped:
            raise stopped_error(self.name, got, len(names))
        if got.failures:
            lines = "; ".join(str(e) for e in got.failures.values())
            raise DataError(f"{len(got.failures)} of {len(names)} tickers failed: {lines}", source=self.name,
                            retryable=all(e.retryable for e in got.failures.values()))
        return got.frames

    def serve_many(self, tickers: Iterable[str], start: date, end: date | None = None, *, keep: bool = True,
                   should_stop: Callable[[], bool] | None = None, progress: Progress | None = None,
                   on_batch: Callable[[BatchStored], None] | None = None) -> Served:
        """Bring each ticker's bars into the cache in batches; return them (if `keep`) and the failures.

        `keep=False` only warms the cache: no frame is read back, so memory stays at one batch.
        `progress(ticker, done, total)` is called after each ticker, `on_batch` after each commit.
        A stop request (`should_stop()` true) ends the request with `stopped` set; nothing raised.
        """
        names = list(dict.fromkeys(tickers))
        today = self.today()
        last = end or today
        if last < start:
            raise DataError(f"end {last} is before start {start}", source=self.name,
                            ticker=names[0] if len(names) == 1 else None)
        # files are hashed before the transaction: it holds the state file only for what needs it
        digests = {t: self._digest(t) for t in names} if self._digest is not None else {}
        now = self.clock()
        size = self.batch_size
        got = _Answer(names, start, last, keep)
        if self._serve_preloaded(got, digests, now, progress):
            return got.finish()
        with self.store.transaction() as con:
            jobs = self._plan(con, names, start, last, digests, now)
            waiting = [t for t in names if t in jobs]
            chunks = [waiting[i:i + size] for i in range(0, len(waiting), size)]
            if chunks:
                self._load_cached(con, {t: jobs[t] for t in chunks[0]})
            ready = [t for t in names if t not in jobs]
            for i in range(0, len(ready), size):  # one query per batch: a bounded result set each
                got.take(self, con, ready[i:i + size])
        for ticker in ready:
            got.answered(ticker, progress)
        for number, chunk in enumerate(chunks, 1):
            if should_stop is not None and should_stop():
                got.stopped = True
                break
            batch = {t: jobs[t] for t in chunk}
            with self.store.released():  # the network: never while holding the state file
                failures, skipped = self._fetch_batch(batch, today, should_stop, got, progress)
            # an abandoned fetch may still be writing its job: only the answered ones are stored
            left = set(skipped)
            written = {t: j for t, j in batch.items() if j.bars is not None and t not in failures and t not in left}
            following = chunks[number] if number < len(chunks) and not skipped else []
            if written or following:
                self._store(written, following, jobs, now, got)
            for job in batch.values():  # the fetched frames are in DuckDB now: let them go
                job.bars = job.old = None
            got.fetched += len(written)
            got.batches += 1
            if on_batch is not None:
                got.told(on_batch, number, len(chunks))
            if skipped:
                got.stopped = True
                break
        return got.finish()

    def preload(self, requests: Mapping[str, date], last: date) -> None:
        """Read at once what requests to come will need (ticker -> first date, all to `last`): the
        cached ranges and checks of every ticker, and the bars of those cached from their first date.
        At most `batch_size` tickers (a bounded result set, as a batch); replaces the last preload."""
        self._preloaded = None
        if not requests or len(requests) > self.batch_size:
            return
        names, start = list(requests), min(requests.values())
        with self.store.transaction() as con:
            ranges = sql.cached_ranges(con, self.name, names)
            checks = sql.price_checks(con, self.name, names)
            held = [t for t in names if t in ranges and ranges[t].first <= requests[t]]
            bars = sql.read_many(con, self.name, held, start, last) if held else {}
        self._preloaded = _Preloaded(ranges, checks, bars, start, last)

    def forget(self) -> None:
        """Drop what `preload` read: later requests read the store again."""
        self._preloaded = None

    def _serve_preloaded(self, got: _Answer, digests: dict[str, str | None], now: datetime,
                         progress: Progress | None) -> bool:
        """Answer `got`'s request from the preloaded reading if it has every ticker and none needs a fetch."""
        memo = self._preloaded
        names = got.names
        if memo is None or not got.keep or not memo.serves(names, got.start, got.last):
            return False
        if self._jobs(memo.ranges, memo.checks, names, got.start, got.last, digests, now):
            return False
        got.keep_frames(self, {t: memo.between(t, got.start, got.last) for t in names})
        for ticker in names:
            got.answered(ticker, progress)
        return True

    def _store(self, written: dict[str, _Job], following: list[str], jobs: dict[str, _Job], now: datetime,
               got: _Answer) -> None:
        """One transaction: store a batch's bars, read them back, and read the next batch's overlap."""
        if self._preloaded is not None:
            self._preloaded.drop(written)
        with self.store.transaction() as con:
            sql.write_many(con, self.name, [(t, j.bars, None if j.whole else j.first, j.covered)
                                            for t, j in written.items() if j.bars is not None],
                           adjustment=self.adjustment, fetched_at=datetime.now(UTC))
            sql.write_checks(con, self.name, [(t, j.digest, now) for t, j in written.items() if j.whole])
            got.take(self, con, list(written))
            if following:
                self._load_cached(con, {t: jobs[t] for t in following})

    # -- planning -----------------------------------------------------------------------------
    def _plan(self, con: duckdb.DuckDBPyConnection, names: list[str], start: date, last: date,
              digests: dict[str, str | None], now: datetime) -> dict[str, _Job]:
        """What each ticker needs fetched; tickers the cache has complete are absent."""
        return self._jobs(sql.cached_ranges(con, self.name, names), sql.price_checks(con, self.name, names),
                          names, start, last, digests, now)

    def _jobs(self, known: Mapping[str, sql.CachedRange], checks: Mapping[str, sql.PriceCheck], names: list[str],
              start: date, last: date, digests: dict[str, str | None], now: datetime) -> dict[str, _Job]:
        """`_plan` from the ranges and checks read."""
        jobs: dict[str, _Job] = {}
        for ticker in names:
            job = self._job(known.get(ticker), start, last)
            if job is not None and not job.whole and self._due(checks.get(ticker), digests.get(ticker), now):
                job = _Job(job.first_cached or start, job.last, whole=True, first_cached=job.first_cached)
            elif job is None and self._due(checks.get(ticker), digests.get(ticker), now):
                held = known[ticker]
                job = _Job(min(start, held.first), max(last, held.last), whole=True, first_cached=held.first)
            if job is not None:
                job.digest = digests.get(ticker)
                jobs[ticker] = job
        return jobs

    def _load_cached(self, con: duckdb.DuckDBPyConnection, batch: dict[str, _Job]) -> None:
        """Read the cached bars an extending fetch compares against (the overlap), before fetching."""
        extending = {t: j for t, j in batch.items() if not j.whole}
        if not extending:
            return
        overlap = sql.read_many(con, self.name, list(extending), min(j.first for j in extending.values()))
        ends = sql.last_dates(con, self.name, list(extending))
        for ticker, job in extending.items():
            job.last_cached = ends.get(ticker)
            old = overlap.get(ticker)
            if old is not None:
                job.old = old[(old.index >= pd.Timestamp(job.first)) & (old.index <= pd.Timestamp(job.known_last))]

    # -- fetching -----------------------------------------------------------------------------
    def _fetch_batch(self, jobs: dict[str, _Job], today: date, should_stop: Callable[[], bool] | None,
                     got: _Answer, progress: Progress | None) -> tuple[dict[str, DataError], list[str]]:
        """Fetch a batch a few at a time; on a stop request the tickers left unanswered are returned."""
        def answered(ticker: str, error: Exception | None) -> None:
            if isinstance(error, DataError):
                got.fail(ticker, error)
            got.answered(ticker, progress)

        # a few fetches at a time: a 15:45 refresh of 100 tickers must not take 100 round trips
        fetched = fetch_all(jobs, lambda ticker: self._run(ticker, jobs[ticker], today), workers=self.concurrency,
                            should_stop=should_stop, on_answer=answered, thread_name=f"cache {self.name}")
        failures: dict[str, DataError] = {}
        for ticker, error in fetched.errors.items():
            if not isinstance(error, DataError):
                raise error  # a bug of ours, not the source's answer
            failures[ticker] = error
        return failures, fetched.unanswered

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


class _Answer:
    """What a many-ticker request has answered so far: frames read back, failures, progress."""

    def __init__(self, names: list[str], start: date, last: date, keep: bool) -> None:
        self.names, self.start, self.last, self.keep = names, start, last, keep
        self.frames: dict[str, pd.DataFrame] = {}
        self.failures: dict[str, DataError] = {}
        self.seen: set[str] = set()
        self.stopped = False
        self.fetched = 0
        self.batches = 0

    def take(self, cache: PriceCache, con: duckdb.DuckDBPyConnection, tickers: list[str]) -> None:
        """Read the cached bars of `tickers` back as canonical frames (when the caller keeps them)."""
        if not self.keep or not tickers:
            return
        cached = sql.read_many(con, cache.name, tickers, self.start, self.last)
        self.keep_frames(cache, {t: cached.get(t) for t in tickers})

    def keep_frames(self, cache: PriceCache, cached: Mapping[str, pd.DataFrame | None]) -> None:
        """Keep each ticker's cached bars (as `sql.read_many` gives them) as a canonical frame."""
        for ticker in cached:
            bars = cached.get(ticker)
            if bars is None or bars.empty:
                self.fail(ticker, DataError(f"no prices from {self.start} to {self.last}", source=cache.name,
                                            ticker=ticker))
                continue
            out = bars[COLUMNS].astype("float64")
            out.attrs.update(source=cache.name, ticker=ticker, adjustment=cache.adjustment,
                             partial=bool(bars["partial"].iloc[-1]))
            self.frames[ticker] = out

    def fail(self, ticker: str, error: DataError) -> None:
        self.failures[ticker] = error

    def answered(self, ticker: str, progress: Progress | None) -> None:
        self.seen.add(ticker)
        if progress is not None:
            progress(ticker, len(self.seen), len(self.names))

    def told(self, on_batch: Callable[[BatchStored], None], number: int, batches: int) -> None:
        on_batch(BatchStored(number=number, batches=batches, done=len(self.seen), total=len(self.names),
                             fetched=self.fetched, failed=len(self.failures)))

    def finish(self) -> Served:
        names = self.names
        return Served(frames={t: self.frames[t] for t in names if t in self.frames},
                      failures={t: self.failures[t] for t in names if t in self.failures},
                      stopped=self.stopped, missing=[t for t in names if t not in self.seen],
                      fetched=self.fetched, batches=self.batches)


def stopped_error(source: str, served: Served, total: int) -> FetchStopped:
    """The one message of a stopped many-ticker fetch: what is kept and what to do."""
    return FetchStopped(f"stopped on request with {len(served.missing)} of {total} tickers not fetched yet "
                        f"({served.fetched} fetched and stored in {served.batches} batches, kept); fetch again "
                        "to continue with the missing ones", source=source)


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


@dataclass
class _Preloaded:
    """What `preload` read in one transaction: ranges, checks, and bars from `start` to `last`."""

    ranges: dict[str, sql.CachedRange]
    checks: dict[str, sql.PriceCheck]
    bars: dict[str, pd.DataFrame]
    start: date
    last: date

    def serves(self, names: list[str], start: date, last: date) -> bool:
        return self.start <= start and last <= self.last and all(t in self.bars for t in names)

    def between(self, ticker: str, start: date, last: date) -> pd.DataFrame:
        """The ticker's bars from start to last inclusive, as `sql.read_many` would read them."""
        bars = self.bars[ticker]
        return bars[(bars.index >= pd.Timestamp(start)) & (bars.index <= pd.Timestamp(last))]

    def drop(self, tickers: Iterable[str]) -> None:
        for ticker in tickers:
            self.bars.pop(ticker, None)


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
