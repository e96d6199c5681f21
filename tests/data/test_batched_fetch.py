"""Many tickers through the price cache: batches, bounded concurrency, stop requests, same answers."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pandas as pd
import pytest

from minitrade.data.cache import BatchStored, PriceCache, Served
from minitrade.data.freshness import fresh_prices
from minitrade.data.yahoo import YahooDataSource
from minitrade.errors import DataError, DataStale, FetchStopped
from minitrade.models import YahooSource
from minitrade.store import Store
from minitrade.testing.market import PriceBook
from minitrade.testing.yahoo import FakeYahoo
from tests.data.conftest import NY_AFTER_CLOSE

UNIVERSE = [f"T{i:04d}" for i in range(2000)]
START = date(2026, 1, 2)
TODAY = NY_AFTER_CLOSE.date()


@pytest.fixture
def many_yahoo():
    """A fake Yahoo whose walks start in 2025, so 2,000 tickers are quick to serve."""
    with FakeYahoo(PriceBook(now=NY_AFTER_CLOSE, walk_start=date(2025, 6, 2))) as fake:
        yield fake


def yahoo_at(fake: FakeYahoo, **spec: object) -> YahooDataSource:
    return YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=fake.url, timeout=30, **spec),
                           retries=2, backoff=0.01)


def cache_of(store: Store, fake: FakeYahoo, **kwargs: object) -> PriceCache:
    return PriceCache(store, yahoo_at(fake), today=lambda: fake.book.now.date(), **kwargs)  # type: ignore[arg-type]


def stored(store: Store) -> list[str]:
    with store.transaction() as con:
        return [r[0] for r in con.execute("SELECT ticker FROM price_ranges ORDER BY ticker").fetchall()]


@pytest.mark.slow
def test_a_2000_ticker_first_fetch_stops_between_batches_keeps_them_and_a_restart_fetches_only_the_rest(
        store, many_yahoo, tmp_path):
    told: list[BatchStored] = []
    first = cache_of(store, many_yahoo).serve_many(UNIVERSE, START, keep=False, on_batch=told.append,
                                                   should_stop=lambda: len(told) >= 3)
    assert first.stopped and first.batches == 3 and first.fetched == 300
    assert [(b.number, b.batches, b.done) for b in told] == [(1, 20, 100), (2, 20, 200), (3, 20, 300)]
    assert first.missing == UNIVERSE[300:]
    assert stored(store) == UNIVERSE[:300]  # every committed batch is kept
    assert len(many_yahoo.requests) == 300

    again = cache_of(store, many_yahoo).serve_many(UNIVERSE, START, keep=False)
    assert not again.stopped and not again.failures and again.fetched == 1700 and again.batches == 17
    assert stored(store) == UNIVERSE
    asked = Counter(r.ticker for r in many_yahoo.requests)
    assert set(asked) == set(UNIVERSE) and set(asked.values()) == {1}  # the restart fetched only the rest
    with store.transaction() as con:
        writes = con.execute("SELECT count(DISTINCT fetched_at) FROM price_ranges").fetchone()
    assert writes == (20,)  # one write transaction per batch of 100, not one per ticker

    # the cached bars are what a fetch of one ticker at a time stores and returns
    alone = cache_of(Store(tmp_path / "alone.duckdb"), many_yahoo)
    for ticker in UNIVERSE[::250]:
        pd.testing.assert_frame_equal(cache_of(store, many_yahoo).daily(ticker, START), alone.daily(ticker, START))


def test_a_stop_during_a_batch_drops_its_queued_fetches_and_stores_the_finished_ones(store, many_yahoo):
    names = UNIVERSE[:300]
    answered: list[str] = []
    got = cache_of(store, many_yahoo, concurrency=4).serve_many(
        names, START, keep=False, should_stop=lambda: len(answered) >= 30,
        progress=lambda ticker, done, total: answered.append(ticker))
    assert got.stopped and got.batches == 1
    assert 30 <= len(answered) < 100
    assert sorted(stored(store)) == sorted(answered)  # everything fetched was stored, nothing else
    assert got.missing == [t for t in names if t not in answered]
    assert sorted(r.ticker for r in many_yahoo.requests if r.ticker) == sorted(answered)

    rest = cache_of(store, many_yahoo).serve_many(names, START, keep=False)
    assert rest.fetched == 300 - len(answered) and stored(store) == names


def test_fetches_in_flight_are_bounded_by_the_sources_concurrency_setting(store, many_yahoo):
    many_yahoo.hold = 0.05
    source = yahoo_at(many_yahoo, concurrency=3)
    cache = PriceCache(store, source, today=lambda: TODAY)
    assert cache.concurrency == 3
    got = cache.serve_many(UNIVERSE[:24], START, keep=False)
    assert got.fetched == 24
    assert 1 < many_yahoo.most_in_flight <= 3


def per_ticker(cache: PriceCache, tickers: list[str], start: date) -> Served:
    """The old way: one `daily` (and its transactions) per ticker."""
    out = Served()
    for ticker in tickers:
        try:
            out.frames[ticker] = cache.daily(ticker, start)
        except DataError as e:
            out.failures[ticker] = e
    return out


def assert_same(batched: Served, alone: Served) -> None:
    assert list(batched.frames) == list(alone.frames)
    for ticker, frame in alone.frames.items():
        pd.testing.assert_frame_equal(batched.frames[ticker], frame)
        assert batched.frames[ticker].attrs == frame.attrs
    assert {t: (type(e), str(e)) for t, e in batched.failures.items()} == \
        {t: (type(e), str(e)) for t, e in alone.failures.items()}


def test_batched_answers_equal_one_ticker_at_a_time_on_first_fetch_refresh_and_revision(
        tmp_path, fake_yahoo):
    names = ["SPY", "QQQ", "NOPE", "IWM", "TLT", "LATE", "GLD", "EFA", "VTI", "AAA", "BBB", "CCC"]
    fake_yahoo.book.unknown.add("NOPE")
    fake_yahoo.book.first_day["LATE"] = TODAY + timedelta(days=30)  # no bars yet: stale
    start = date(2024, 1, 2)
    one = cache_of(Store(tmp_path / "one.duckdb"), fake_yahoo)
    many = cache_of(Store(tmp_path / "many.duckdb"), fake_yahoo, batch_size=5)
    first = many.serve_many(names, start)
    assert first.batches == 3 and isinstance(first.failures["LATE"], DataStale)
    assert_same(first, per_ticker(one, names, start))

    # three days on, with a split in the second batch: extensions, the overlap check, a full refetch
    fake_yahoo.book.now = NY_AFTER_CLOSE + timedelta(days=3)
    fake_yahoo.book.add_split("GLD", TODAY + timedelta(days=3), 2.0)
    fake_yahoo.clear()
    later = many.serve_many(names, start)
    gld = [r for r in fake_yahoo.requests if r.ticker == "GLD"]
    assert len(gld) == 2  # the overlap showed the revision: fetched whole again
    assert_same(later, per_ticker(one, names, start))
    assert later.frames["GLD"]["close"].iloc[0] == pytest.approx(first.frames["GLD"]["close"].iloc[0] / 2)


class OneByOne:
    """A DataSource that is not a PriceCache: fresh_prices asks it one ticker at a time."""

    def __init__(self, cache: PriceCache) -> None:
        self.name, self.cache = cache.name, cache

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        return self.cache.daily(ticker, start, end)


def test_fresh_prices_through_the_cache_equal_the_per_ticker_path_and_name_the_same_stale_tickers(
        tmp_path, fake_yahoo):
    names = ["SPY", "QQQ", "IWM", "TLT", "GLD", "EFA", "VTI"]
    fake_yahoo.book.first_day["LATE"] = TODAY + timedelta(days=30)
    one = OneByOne(cache_of(Store(tmp_path / "one.duckdb"), fake_yahoo))
    many = cache_of(Store(tmp_path / "many.duckdb"), fake_yahoo, batch_size=3)
    args = (date(2025, 1, 2), TODAY)
    alone = fresh_prices(one, names, *args, needed=TODAY, at=NY_AFTER_CLOSE)
    batched = fresh_prices(many, names, *args, needed=TODAY, at=NY_AFTER_CLOSE)
    assert list(batched) == list(alone) == names
    for ticker in names:
        pd.testing.assert_frame_equal(batched[ticker], alone[ticker])

    errors = []
    for source in (one, many):
        with pytest.raises(DataStale) as caught:
            fresh_prices(source, ["SPY", "LATE", "QQQ"], *args, needed=TODAY, at=NY_AFTER_CLOSE)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "LATE" in errors[0]


def test_fresh_prices_asked_to_stop_fetches_nothing_and_says_the_fetch_can_continue(store, fake_yahoo):
    cache = cache_of(store, fake_yahoo)
    with pytest.raises(FetchStopped) as caught:
        fresh_prices(cache, ["SPY", "QQQ"], date(2025, 1, 2), TODAY, needed=TODAY, at=NY_AFTER_CLOSE,
                     should_stop=lambda: True)
    assert caught.value.retryable
    assert "2 of 2 tickers not fetched" in str(caught.value) and "fetch again" in str(caught.value)
    assert fake_yahoo.requests == []


def test_daily_many_raises_fetch_stopped_after_storing_what_it_fetched(store, many_yahoo):
    cache = cache_of(store, many_yahoo, batch_size=10)
    seen: list[str] = []
    with pytest.raises(FetchStopped):
        cache.daily_many(UNIVERSE[:40], START, progress=lambda t, d, n: seen.append(t),
                         should_stop=lambda: len(seen) >= 20)
    assert 20 <= len(stored(store)) < 40 and sorted(stored(store)) == sorted(seen)
