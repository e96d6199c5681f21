"""The DuckDB price cache in front of the real clients and fakes."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from minitrade.data.cache import PriceCache
from minitrade.errors import DataError
from minitrade.store import Store
from tests.data.conftest import CN_OPEN, NY_AFTER_CLOSE, NY_OPEN

START = date(2016, 1, 4)


def make_cache(store: Store, source, fake) -> PriceCache:
    return PriceCache(store, source, today=lambda: fake.book.now.date())


def table(store: Store) -> pd.DataFrame:
    with store.transaction() as con:
        return con.execute("SELECT * EXCLUDE (fetched_at) FROM prices ORDER BY source, ticker, date").df()


def test_second_run_after_the_close_makes_no_request(store, yahoo, fake_yahoo):
    cache = make_cache(store, yahoo, fake_yahoo)
    first = cache.daily("SPY", START)
    assert len(fake_yahoo.requests) == 1
    second = cache.daily("SPY", START)
    assert len(fake_yahoo.requests) == 1
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs == {"source": "yahoo", "ticker": "SPY", "adjustment": "yahoo:split+dividend",
                            "partial": False}


def test_cached_bars_equal_what_the_source_returned(store, yahoo, fake_yahoo):
    direct = yahoo.daily("QQQ", START, date(2026, 11, 20))
    cached = make_cache(store, yahoo, fake_yahoo).daily("QQQ", START, date(2026, 11, 20))
    pd.testing.assert_frame_equal(direct, cached, check_freq=False)


def test_a_later_run_fetches_only_the_new_days_plus_a_short_overlap_in_one_request(store, yahoo, fake_yahoo):
    cache = make_cache(store, yahoo, fake_yahoo)
    cache.daily("SPY", START)
    fake_yahoo.book.now = NY_AFTER_CLOSE + timedelta(days=3)  # Monday evening
    bars = cache.daily("SPY", START)
    assert bars.index[-1] == pd.Timestamp("2026-11-23")
    later = fake_yahoo.requests[1:]
    assert len(later) == 1
    asked_from = datetime.fromtimestamp(int(later[0].query["period1"]), UTC).date()
    assert date(2026, 11, 9) <= asked_from <= date(2026, 11, 13)


def test_while_open_todays_partial_bar_is_cached_marked_and_refreshed(store, yahoo, fake_yahoo):
    fake_yahoo.book.now = NY_OPEN
    cache = make_cache(store, yahoo, fake_yahoo)
    morning = cache.daily("SPY", START)
    assert morning.attrs["partial"] is True
    rows = table(store)
    assert rows["partial"].tolist().count(True) == 1 and bool(rows["partial"].iloc[-1])
    again = cache.daily("SPY", START)       # still open: one small request for the moving bar
    assert len(fake_yahoo.requests) == 2 and again.attrs["partial"] is True
    fake_yahoo.book.now = NY_AFTER_CLOSE
    final = cache.daily("SPY", START)
    assert final.attrs["partial"] is False and len(final) == len(morning)
    assert final["close"].iloc[-1] != morning["close"].iloc[-1]
    assert not table(store)["partial"].any()
    cache.daily("SPY", START)
    assert len(fake_yahoo.requests) == 3


def test_an_earlier_start_fetches_the_longer_range_once(store, yahoo, fake_yahoo):
    cache = make_cache(store, yahoo, fake_yahoo)
    cache.daily("SPY", date(2024, 1, 2))
    bars = cache.daily("SPY", date(2020, 1, 2))
    assert bars.index[0] == pd.Timestamp("2020-01-02")
    assert len(fake_yahoo.requests) == 2
    cache.daily("SPY", date(2021, 1, 4), date(2023, 1, 3))
    assert len(fake_yahoo.requests) == 2


def test_a_ticker_listed_after_the_start_is_not_fetched_again(store, yahoo, fake_yahoo):
    fake_yahoo.book.first_day["NEWCO"] = date(2024, 6, 3)
    cache = make_cache(store, yahoo, fake_yahoo)
    assert cache.daily("NEWCO", START).index[0] == pd.Timestamp("2024-06-03")
    cache.daily("NEWCO", START)
    assert len(fake_yahoo.requests) == 1


@pytest.mark.parametrize("fault", ["429", "500", "drop", "truncated", "missing_fields", "empty", "nan"])
def test_a_failed_fetch_leaves_the_cached_history_intact(store, yahoo, fake_yahoo, fault):
    cache = make_cache(store, yahoo, fake_yahoo)
    cache.daily("SPY", START)
    before = table(store)
    fake_yahoo.book.now = NY_AFTER_CLOSE + timedelta(days=3)
    fake_yahoo.inject(fault, times=10)
    with pytest.raises(DataError, match="SPY"):
        cache.daily("SPY", START)
    pd.testing.assert_frame_equal(table(store), before)
    fake_yahoo.clear()
    assert cache.daily("SPY", START).index[-1] == pd.Timestamp("2026-11-23")


def test_a_split_rewriting_history_is_seen_in_the_overlap_and_everything_is_fetched_again(
        store, yahoo, fake_yahoo):
    cache = make_cache(store, yahoo, fake_yahoo)
    old = cache.daily("AAPL", START)
    fake_yahoo.book.now = NY_AFTER_CLOSE + timedelta(days=4)
    fake_yahoo.book.add_split("AAPL", date(2026, 11, 24), 4.0)
    new = cache.daily("AAPL", START)
    assert len(fake_yahoo.requests) == 3  # initial, overlap, whole history again
    pd.testing.assert_series_equal(new["close"].loc[:"2026-11-20"], old["close"] / 4, check_freq=False)
    assert cache.daily("AAPL", START).equals(new)


def test_daily_many_tries_every_ticker_reports_progress_and_raises_the_failures_together(
        store, yahoo, fake_yahoo):
    fake_yahoo.book.unknown.add("GONE")
    seen: list[tuple[str, int, int]] = []
    cache = make_cache(store, yahoo, fake_yahoo)
    with pytest.raises(DataError, match=r"1 of 3 tickers failed: yahoo/GONE: .*delisted") as caught:
        cache.daily_many(["SPY", "GONE", "QQQ"], START, progress=lambda *a: seen.append(a))
    assert not caught.value.retryable
    assert sorted(t for t, _, _ in seen) == ["GONE", "QQQ", "SPY"]
    assert [(done, total) for _, done, total in seen] == [(1, 3), (2, 3), (3, 3)]
    frames = cache.daily_many(["SPY", "QQQ"], START)
    assert set(frames) == {"SPY", "QQQ"} and len(fake_yahoo.requests) == 3


def test_eastmoney_through_the_cache_keeps_forward_adjusted_rows(store, eastmoney, fake_eastmoney):
    fake_eastmoney.book.now = CN_OPEN
    cache = PriceCache(store, eastmoney, today=lambda: date(2026, 11, 20))
    bars = cache.daily("600519", START)
    assert bars.attrs["partial"] is True
    rows = table(store)
    assert set(rows["adjustment"]) == {"eastmoney:forward"} and set(rows["source"]) == {"eastmoney"}
    assert rows["volume"].iloc[0] % 100 == 0


def test_concurrent_readers_in_one_process_see_the_same_bars(store, yahoo, fake_yahoo):
    cache = make_cache(store, yahoo, fake_yahoo)
    expected = cache.daily("SPY", START)
    results: list[pd.DataFrame] = []
    threads = [threading.Thread(target=lambda: results.append(cache.daily("SPY", START))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(r.equals(expected) for r in results)
    assert len(fake_yahoo.requests) == 1


def test_preloaded_requests_are_answered_as_the_store_answers_them(store, yahoo, fake_yahoo, monkeypatch):
    """A daemon pass reads its plans' prices at once (`preload`); each plan's request is then answered
    from that reading with the very frame the store gives, without opening the store, until this
    cache stores new bars of a ticker."""
    cache = make_cache(store, yahoo, fake_yahoo)
    cache.daily_many(["SPY", "QQQ"], START)
    end = date(2026, 11, 19)
    plain = {t: cache.daily(t, date(2020, 1, 2), end) for t in ("SPY", "QQQ")}
    transaction, opened = store.transaction, []

    def counted():
        opened.append(1)
        return transaction()

    monkeypatch.setattr(store, "transaction", counted)
    cache.preload({"SPY": START, "QQQ": date(2019, 1, 2)}, end)
    assert len(opened) == 1  # one transaction for every ticker
    for ticker, frame in plain.items():
        served = cache.daily(ticker, date(2020, 1, 2), end)
        pd.testing.assert_frame_equal(served, frame)
        assert served.attrs == frame.attrs
    assert len(opened) == 1  # answered from the preload
    cache.daily("QQQ", date(2020, 1, 2), end + timedelta(days=1))  # past what was read: the store answers
    assert len(opened) == 2

    fake_yahoo.book.now = NY_AFTER_CLOSE + timedelta(days=3)  # a new bar to fetch: stored, so forgotten
    cache.daily("SPY", START)
    assert len(fake_yahoo.requests) > 2
    before = len(opened)
    pd.testing.assert_frame_equal(cache.daily("SPY", date(2020, 1, 2), end), plain["SPY"])
    assert len(opened) > before  # SPY is read from the store again; QQQ still from the preload
    before = len(opened)
    cache.daily("QQQ", date(2020, 1, 2), end)
    assert len(opened) == before
    cache.forget()
    cache.daily("QQQ", date(2020, 1, 2), end)
    assert len(opened) == before + 1
