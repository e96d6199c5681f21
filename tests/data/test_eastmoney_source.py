"""The production EastMoney client against the fake EastMoney on 127.0.0.1."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from minitrade.data.eastmoney import ADJUSTMENT, EastMoneyDataSource, secid_for
from minitrade.errors import DataError
from minitrade.models import EastMoneySource
from minitrade.testing.eastmoney import SHANGHAI
from tests.data.conftest import CN_OPEN


@pytest.mark.parametrize("ticker, secid", [
    pytest.param("600519", "1.600519", id="shanghai-stock"),
    pytest.param("688981", "1.688981", id="shanghai-star"),
    pytest.param("510300", "1.510300", id="shanghai-etf"),
    pytest.param("000001", "0.000001", id="shenzhen-stock"),
    pytest.param("300750", "0.300750", id="chinext"),
    pytest.param("159915", "0.159915", id="shenzhen-etf"),
    pytest.param("430047", "0.430047", id="beijing-4"),
    pytest.param("830799", "0.830799", id="beijing-8"),
    pytest.param("920001", "0.920001", id="beijing-92"),
    pytest.param("900901", "1.900901", id="shanghai-b-share"),
    pytest.param("000001.SH", "1.000001", id="suffix-picks-the-sse-index"),
    pytest.param("sz000001", "0.000001", id="prefix-form"),
    pytest.param("600519.SS", "1.600519", id="yahoo-suffix"),
    pytest.param("1.000300", "1.000300", id="explicit-secid"),
])
def test_tickers_map_to_eastmoney_secids(ticker, secid):
    assert secid_for(ticker) == secid


@pytest.mark.parametrize("ticker", ["700001", "AAPL", "60051", "2.600519", "600519.HK"])
def test_unknown_codes_get_a_clear_error_and_no_request(eastmoney, fake_eastmoney, ticker):
    with pytest.raises(DataError, match="not a code EastMoney knows how to look up: use a six-digit") as caught:
        eastmoney.daily(ticker, date(2026, 11, 1))
    assert caught.value.ticker == ticker
    assert fake_eastmoney.requests == []


def test_klines_are_read_in_eastmoney_column_order_with_volume_in_shares(eastmoney, fake_eastmoney):
    bars = eastmoney.daily("000001", date(2026, 10, 1), date(2026, 10, 31))
    raw = fake_eastmoney.book.bars("000001", date(2026, 10, 1), date(2026, 10, 31), SHANGHAI)
    assert [d.date() for d in bars.index] == [b.day for b in raw]
    assert bars["open"].tolist() == pytest.approx([b.open for b in raw])
    assert bars["high"].tolist() == pytest.approx([b.high for b in raw])
    assert bars["low"].tolist() == pytest.approx([b.low for b in raw])
    assert bars["close"].tolist() == pytest.approx([b.close for b in raw])
    assert bars["volume"].tolist() == [round(b.volume / 100) * 100 for b in raw]
    query = fake_eastmoney.requests[0].query
    assert (query["secid"], query["klt"], query["fqt"], query["beg"], query["end"]) == (
        "0.000001", "101", "1", "20261001", "20261031")


def test_prices_are_forward_adjusted_so_the_latest_are_real(eastmoney, fake_eastmoney):
    fake_eastmoney.book.add_split("600519", date(2026, 6, 10), 2.0)
    raw = {b.day: b for b in fake_eastmoney.book.bars("600519", date(2026, 6, 1), date(2026, 11, 20), SHANGHAI)}
    bars = eastmoney.daily("600519", date(2026, 6, 1))
    assert bars.attrs["adjustment"] == ADJUSTMENT
    assert bars.loc[pd.Timestamp("2026-11-20"), "close"] == pytest.approx(raw[date(2026, 11, 20)].close)
    assert bars.loc[pd.Timestamp("2026-06-09"), "close"] == pytest.approx(raw[date(2026, 6, 9)].close / 2,
                                                                          abs=0.006)


def test_todays_kline_during_the_session_is_marked_partial(eastmoney, fake_eastmoney):
    fake_eastmoney.book.now = CN_OPEN
    bars = eastmoney.daily("510300", date(2026, 11, 1))
    assert bars.index[-1] == pd.Timestamp("2026-11-20") and bars.attrs["partial"] is True


def test_after_the_close_todays_kline_is_final(eastmoney):
    bars = eastmoney.daily("510300", date(2026, 11, 1))
    assert bars.index[-1] == pd.Timestamp("2026-11-20") and bars.attrs["partial"] is False


def test_a_code_on_the_wrong_exchange_gets_no_data_and_says_so(eastmoney):
    with pytest.raises(DataError, match="no data for secid 0.600519") as caught:
        eastmoney.daily("600519.SZ", date(2026, 11, 1))
    assert not caught.value.retryable


@pytest.mark.parametrize("fault, words", [
    pytest.param("429", "HTTP 429", id="rate-limited"),
    pytest.param("500", "HTTP 500", id="server-error"),
    pytest.param("drop", "RemoteDisconnected", id="anti-scraping-drop"),
    pytest.param("truncated", "malformed JSON", id="truncated-json"),
])
def test_transient_failures_are_retried_then_reported_as_retryable(eastmoney, fake_eastmoney, fault, words):
    fake_eastmoney.inject(fault, times=10)
    with pytest.raises(DataError) as caught:
        eastmoney.daily("000001", date(2026, 11, 1))
    assert caught.value.retryable and words in str(caught.value) and "eastmoney/000001" in str(caught.value)
    assert len(fake_eastmoney.requests) == 3


def test_a_dropped_connection_once_is_retried_and_passes(eastmoney, fake_eastmoney):
    fake_eastmoney.inject("drop")
    assert len(eastmoney.daily("000001", date(2026, 11, 1))) == 15
    assert len(fake_eastmoney.requests) == 2


@pytest.mark.parametrize("fault, words", [
    pytest.param("missing_fields", "lacks data.klines", id="missing-fields"),
    pytest.param("empty", "no prices", id="empty-result"),
    pytest.param("nan", "missing prices", id="nan-prices"),
])
def test_malformed_answers_fail_at_once_naming_the_ticker(eastmoney, fake_eastmoney, fault, words):
    fake_eastmoney.inject(fault)
    with pytest.raises(DataError) as caught:
        eastmoney.daily("159915", date(2026, 11, 1))
    assert not caught.value.retryable and words in str(caught.value) and "159915" in str(caught.value)
    assert len(fake_eastmoney.requests) == 1


def test_a_hanging_server_is_abandoned_at_the_hard_deadline(fake_eastmoney):
    fake_eastmoney.inject("hang")
    spec = EastMoneySource(type="eastmoney", base_url=fake_eastmoney.url, timeout=0.5)
    source = EastMoneyDataSource("eastmoney", spec, retries=0, clock=lambda: fake_eastmoney.book.now)
    with pytest.raises(DataError, match="hard deadline") as caught:
        source.daily("000001", date(2026, 11, 1))
    assert caught.value.retryable


def test_requests_go_through_the_configured_proxy(fake_eastmoney):
    spec = EastMoneySource(type="eastmoney", base_url="http://push2his.eastmoney.invalid",
                           proxy=fake_eastmoney.url, timeout=3)
    source = EastMoneyDataSource("eastmoney", spec, retries=0, clock=lambda: fake_eastmoney.book.now)
    assert len(source.daily("000001", date(2026, 11, 1))) == 15
    assert [r.via_proxy for r in fake_eastmoney.requests] == [True]
