"""The production Yahoo client against the fake Yahoo on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from minitrade.data.yahoo import ADJUSTMENT, YahooDataSource
from minitrade.errors import DataError
from minitrade.models import YahooSource
from minitrade.testing.market import Session
from minitrade.testing.yahoo import FakeYahoo
from tests.data.conftest import NY_OPEN


def test_bars_are_canonical_and_cover_the_requested_local_dates(yahoo, fake_yahoo):
    bars = yahoo.daily("SPY", date(2026, 10, 1), date(2026, 10, 31))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index[0] == pd.Timestamp("2026-10-01") and bars.index[-1] == pd.Timestamp("2026-10-30")
    assert all(d.weekday() < 5 for d in bars.index)
    assert bars.attrs["adjustment"] == ADJUSTMENT == yahoo.adjustment
    raw = fake_yahoo.book.bars("SPY", date(2026, 10, 1), date(2026, 10, 31), Session())
    assert bars["close"].tolist() == pytest.approx([b.close for b in raw])
    assert bars["volume"].tolist() == [b.volume for b in raw]


def test_shanghai_bars_keep_their_local_date_not_the_utc_one(yahoo, fake_yahoo):
    bars = yahoo.daily("600519.SS", date(2026, 11, 2), date(2026, 11, 6))
    # stamped 09:30 Asia/Shanghai = 01:30 UTC, same date; a UTC shift would still pass, so also
    # check against the fake's own sessions
    raw = fake_yahoo.book.bars("600519.SS", date(2026, 11, 2), date(2026, 11, 6),
                               fake_yahoo.session("600519.SS"))
    assert [d.date() for d in bars.index] == [b.day for b in raw]


def test_prices_before_a_dividend_are_lowered_by_it(yahoo, fake_yahoo):
    fake_yahoo.book.add_dividend("IBM", date(2026, 9, 16), 1.75)
    raw = {b.day: b for b in fake_yahoo.book.bars("IBM", date(2026, 9, 1), date(2026, 9, 30), Session())}
    bars = yahoo.daily("IBM", date(2026, 9, 1), date(2026, 9, 30))
    day_before = pd.Timestamp("2026-09-15")
    # adjclose of the day before the ex-date = close * (1 - d / close) = close - d
    assert bars.loc[day_before, "close"] == pytest.approx(raw[date(2026, 9, 15)].close - 1.75)
    assert bars.loc[pd.Timestamp("2026-09-16"), "close"] == pytest.approx(raw[date(2026, 9, 16)].close)


def test_prices_before_a_split_are_in_todays_shares(yahoo, fake_yahoo):
    fake_yahoo.book.add_split("NVDA", date(2026, 6, 10), 4.0)
    raw = {b.day: b for b in fake_yahoo.book.bars("NVDA", date(2026, 6, 1), date(2026, 6, 30), Session())}
    bars = yahoo.daily("NVDA", date(2026, 6, 1), date(2026, 6, 30))
    assert bars.loc[pd.Timestamp("2026-06-09"), "close"] == pytest.approx(raw[date(2026, 6, 9)].close / 4)
    assert bars.loc[pd.Timestamp("2026-06-09"), "volume"] == pytest.approx(raw[date(2026, 6, 9)].volume * 4)
    assert bars.loc[pd.Timestamp("2026-06-10"), "close"] == pytest.approx(raw[date(2026, 6, 10)].close)


def test_todays_bar_while_the_exchange_is_open_is_kept_and_marked_partial(yahoo, fake_yahoo):
    fake_yahoo.book.now = NY_OPEN
    bars = yahoo.daily("SPY", date(2026, 11, 1))
    assert bars.index[-1] == pd.Timestamp("2026-11-20")
    assert bars.attrs["partial"] is True


def test_after_the_close_todays_bar_is_final(yahoo):
    bars = yahoo.daily("SPY", date(2026, 11, 1))
    assert bars.index[-1] == pd.Timestamp("2026-11-20")
    assert bars.attrs["partial"] is False


def test_rate_limit_is_retried_with_backoff_until_it_passes(yahoo, fake_yahoo):
    fake_yahoo.inject("429", ticker="SPY", times=2)
    bars = yahoo.daily("SPY", date(2026, 11, 1))
    assert len(bars) == 15
    assert len(fake_yahoo.requests_for("SPY")) == 3


@pytest.mark.parametrize("fault, words", [
    pytest.param("429", "HTTP 429", id="rate-limited"),
    pytest.param("500", "HTTP 500", id="server-error"),
    pytest.param("drop", "connection failed", id="dropped-connection"),
    pytest.param("truncated", "malformed JSON", id="truncated-json"),
])
def test_transient_failures_are_retried_then_reported_as_retryable(yahoo, fake_yahoo, fault, words):
    fake_yahoo.inject(fault, times=10)
    with pytest.raises(DataError) as caught:
        yahoo.daily("SPY", date(2026, 11, 1))
    assert caught.value.retryable and caught.value.ticker == "SPY"
    assert words in str(caught.value) and "yahoo/SPY" in str(caught.value)
    assert len(fake_yahoo.requests_for("SPY")) == 3  # first try + 2 retries


@pytest.mark.parametrize("fault, words", [
    pytest.param("missing_fields", "lacks indicators", id="missing-fields"),
    pytest.param("empty", "no prices", id="empty-result"),
    pytest.param("nan", "missing prices", id="nan-prices"),
])
def test_malformed_answers_fail_at_once_naming_the_ticker(yahoo, fake_yahoo, fault, words):
    fake_yahoo.inject(fault)
    with pytest.raises(DataError) as caught:
        yahoo.daily("QQQ", date(2026, 11, 1))
    assert not caught.value.retryable
    assert words in str(caught.value) and "QQQ" in str(caught.value)
    assert len(fake_yahoo.requests_for("QQQ")) == 1


def test_a_hanging_server_is_abandoned_at_the_hard_deadline(fake_yahoo):
    fake_yahoo.inject("hang")
    source = YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=fake_yahoo.url, timeout=0.5),
                             retries=0)
    with pytest.raises(DataError) as caught:
        source.daily("SPY", date(2026, 11, 1))
    assert caught.value.retryable and "hard deadline" in str(caught.value)


def test_unknown_symbol_is_a_terminal_error_with_yahoos_reason(yahoo, fake_yahoo):
    fake_yahoo.book.unknown.add("NOPE")
    with pytest.raises(DataError, match="NOPE: Yahoo says: No data found, symbol may be delisted") as caught:
        yahoo.daily("NOPE", date(2026, 11, 1))
    assert not caught.value.retryable


def test_invalid_crumb_triggers_the_cookie_and_crumb_handshake_once():
    with FakeYahoo(require_crumb=True) as fake:
        fake.book.now = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
        source = YahooDataSource("yahoo", YahooSource(type="yahoo", base_url=fake.url, timeout=3))
        source.daily("SPY", date(2026, 11, 1))
        source.daily("QQQ", date(2026, 11, 1))
        paths = [(r.path, r.query.get("crumb")) for r in fake.requests]
    assert paths == [("/v8/finance/chart/SPY", None), ("/", None), ("/v1/test/getcrumb", None),
                     ("/v8/finance/chart/SPY", "Xp2Ys3cZJ0r"), ("/v8/finance/chart/QQQ", "Xp2Ys3cZJ0r")]


def test_requests_go_through_the_configured_proxy(fake_yahoo):
    # the base host does not resolve: only the proxy (the fake) can answer
    spec = YahooSource(type="yahoo", base_url="http://query2.finance.yahoo.invalid", proxy=fake_yahoo.url,
                       timeout=3)
    bars = YahooDataSource("yahoo", spec, retries=0).daily("SPY", date(2026, 11, 1))
    assert len(bars) == 15
    assert [r.via_proxy for r in fake_yahoo.requests] == [True]


def test_end_before_start_is_refused_without_a_request(yahoo, fake_yahoo):
    with pytest.raises(DataError, match="before start"):
        yahoo.daily("SPY", date(2026, 11, 2), date(2026, 11, 1))
    assert fake_yahoo.requests == []
