"""EastMoney daily klines for China A-shares and ETFs (`/api/qt/stock/kline/get`).

Prices are forward-adjusted (`fqt=1`, 前复权): the latest prices are what trades today and the
past is scaled for later splits and dividends, so `adjustment = "eastmoney:forward"`. Volumes
arrive in lots of 100 shares and are returned in shares. While the Shanghai/Shenzhen session
runs (09:30-15:00 Asia/Shanghai), today's kline is the day so far: it is kept and marked
`frame.attrs["partial"] = True`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pandas as pd
import requests

from minitrade.data.base import canonical
from minitrade.data.transport import retrying, with_deadline
from minitrade.errors import DataError, DataStale
from minitrade.models import EastMoneySource

ADJUSTMENT = "eastmoney:forward"
KLINE_PATH = "/api/qt/stock/kline/get"
SHARES_PER_LOT = 100
CHINA = ZoneInfo("Asia/Shanghai")
SESSION_CLOSE = clock_time(15, 0)
PARAMS = {
    "klt": "101",  # daily
    "fqt": "1",    # forward-adjusted
    "fields1": "f1,f2,f3,f4,f5,f6",
    "fields2": "f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61",
    "ut": "7eea3edcaed734bea9cbfc24409ed989",
    "lmt": "1000000",
}
HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0 Safari/537.36",
    "Accept": "*/*",
    "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
    "Referer": "https://quote.eastmoney.com/",
}
_EXCHANGE_MARKET = {"SH": 1, "SS": 1, "SZ": 0, "BJ": 0}
_FORMS = [
    re.compile(r"^(?P<code>\d{6})$"),
    re.compile(r"^(?P<code>\d{6})\.(?P<ex>SH|SS|SZ|BJ)$", re.IGNORECASE),
    re.compile(r"^(?P<ex>SH|SZ|BJ)(?P<code>\d{6})$", re.IGNORECASE),
]
_SECID = re.compile(r"^(?P<market>[01])\.(?P<code>\d{6})$")


def secid_for(ticker: str) -> str:
    """EastMoney's `secid` (`market.code`) for an A-share or ETF code.

    Shanghai (market 1): stocks 6xxxxx (incl. STAR 688xxx), ETFs/funds 5xxxxx, B shares 9xxxxx.
    Shenzhen (market 0): 0xxxxx, 3xxxxx (ChiNext), ETFs/funds 1xxxxx, B shares 2xxxxx.
    Beijing (market 0): 8xxxxx, 4xxxxx, 92xxxx. A suffix or prefix (`000001.SH`, `sz000001`) or an
    explicit secid (`1.000001`, the SSE Composite) overrides the guess; indices need one.

    >>> secid_for("600519"), secid_for("159915"), secid_for("000001.SH")
    ('1.600519', '0.159915', '1.000001')
    """
    text = ticker.strip()
    if m := _SECID.match(text):
        return text
    for form in _FORMS:
        if m := form.match(text):
            code, exchange = m.group("code"), (m.groupdict().get("ex") or "").upper()
            if exchange:
                return f"{_EXCHANGE_MARKET[exchange]}.{code}"
            if code.startswith("92") or code[0] in "012348":
                return f"0.{code}"
            if code[0] in "569":
                return f"1.{code}"
    raise DataError(f"{ticker!r} is not a code EastMoney knows how to look up: use a six-digit A-share "
                    "or ETF code (600519, 000001, 510300, 159915, 430047), optionally with the exchange "
                    "(000001.SZ, sh600519, 430047.BJ), or an explicit secid such as 1.000001",
                    source="eastmoney", ticker=ticker)


class EastMoneyDataSource:
    """Daily OHLCV from EastMoney, forward-adjusted, volume in shares."""

    adjustment = ADJUSTMENT

    def __init__(self, name: str, spec: EastMoneySource, *, retries: int = 3, backoff: float = 1.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.spec = spec
        self.retries = retries
        self.backoff = backoff
        self.clock = clock or (lambda: datetime.now(UTC))
        self._url = spec.base_url.rstrip("/") + KLINE_PATH
        self.verify_every = spec.verify_every  # the price cache re-reads the whole history this often
        self.concurrency = spec.fetch_concurrency  # the price cache's fetches in flight at once

    def __repr__(self) -> str:
        return f"EastMoneyDataSource({self.name!r}, base_url={self.spec.base_url!r})"

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Bars of `ticker` from `start` to `end` inclusive (through today if None).

        Raises:
            DataError: naming the ticker; `retryable` for 429, 5xx, timeouts and dropped connections.
        """
        try:
            secid = secid_for(ticker)
        except DataError as e:
            raise DataError(str(e).split(": ", 1)[-1], source=self.name, ticker=ticker) from None
        today = self.clock().astimezone(CHINA).date()
        last = end or today
        if last < start:
            raise DataError(f"end {last} is before start {start}", source=self.name, ticker=ticker)
        params = dict(PARAMS, secid=secid, beg=start.strftime("%Y%m%d"), end=last.strftime("%Y%m%d"))
        deadline = time.monotonic() + self.spec.timeout

        def fetch() -> pd.DataFrame:
            return retrying(lambda left: self._attempt(ticker, params, left), deadline=deadline,
                            retries=self.retries, backoff=self.backoff, source=self.name, ticker=ticker)

        frame = with_deadline(fetch, self.spec.timeout, source=self.name, ticker=ticker)
        frame = frame[(frame.index >= pd.Timestamp(start)) & (frame.index <= pd.Timestamp(last))]
        if frame.empty:  # no bar in the window: behind, not wrong
            raise DataStale(f"no prices from {start} to {last}", source=self.name, ticker=ticker)
        now = self.clock().astimezone(CHINA)
        partial = frame.index[-1] == pd.Timestamp(now.date()) and now.time() < SESSION_CLOSE
        frame.attrs.update(source=self.name, ticker=ticker, adjustment=ADJUSTMENT, partial=bool(partial))
        return frame

    def _attempt(self, ticker: str, params: dict[str, str], left: float) -> pd.DataFrame:
        proxies = {"http": self.spec.proxy, "https": self.spec.proxy} if self.spec.proxy else None
        try:
            response = requests.get(self._url, params=params, headers=HEADERS, proxies=proxies,
                                    timeout=(min(10.0, left + 1.0), left + 1.0))
        except requests.Timeout as e:
            raise self._error(f"timed out: {type(e).__name__}", ticker, retryable=True) from e
        except requests.RequestException as e:
            # EastMoney's anti-scraping drops the connection without an answer: back off
            raise self._error(f"connection failed ({type(e).__name__}: {str(e)[:120]})", ticker,
                              retryable=True) from e
        status = response.status_code
        if status == 429 or status >= 500:
            raise self._error(f"EastMoney answered HTTP {status}", ticker, retryable=True)
        if status >= 400:
            raise self._error(f"EastMoney answered HTTP {status}: {response.text[:120]!r}", ticker)
        try:
            doc = response.json()
        except ValueError as e:
            raise self._error(f"malformed JSON ({len(response.content)} bytes, truncated?)", ticker,
                              retryable=True) from e
        if not isinstance(doc, dict):
            raise self._error("answer is not a JSON object", ticker)
        if doc.get("rc") not in (0, None):
            raise self._error(f"EastMoney error rc={doc.get('rc')}", ticker)
        data = doc.get("data")
        if data is None:
            raise self._error(f"EastMoney has no data for secid {params['secid']} from {params['beg']} to "
                              f"{params['end']} (unknown code, wrong exchange, or no trading then)", ticker)
        if not isinstance(data, dict) or "klines" not in data:
            raise self._error("answer lacks data.klines", ticker)
        return self._frame(ticker, data["klines"])

    def _frame(self, ticker: str, klines: object) -> pd.DataFrame:
        if not isinstance(klines, list):
            raise self._error("no prices in the answer (data.klines is not a list)", ticker)
        if not klines:
            raise DataStale("no prices in the answer (empty data.klines)", source=self.name, ticker=ticker)
        days, rows = [], []
        for number, line in enumerate(klines):
            cells = str(line).split(",")
            if len(cells) < 6:
                raise self._error(f"kline {number} has {len(cells)} columns, expected 11: {line!r}", ticker)
            days.append(cells[0][:10])
            # f52 open, f53 close, f54 high, f55 low, f56 volume in lots
            o, c, h, low, lots = (_number(cells[i]) for i in (1, 2, 3, 4, 5))
            rows.append((o, h, low, c, lots * SHARES_PER_LOT))
        try:
            index = pd.DatetimeIndex(pd.to_datetime(days, format="%Y-%m-%d"), name="date")
        except ValueError as e:
            raise self._error(f"bad kline date: {e}", ticker) from e
        frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"])
        return canonical(frame, source=self.name, ticker=ticker)

    def _error(self, message: str, ticker: str, *, retryable: bool = False) -> DataError:
        return DataError(message, source=self.name, ticker=ticker, retryable=retryable)


def _number(text: str) -> float:
    """EastMoney writes '-' for a missing value; it becomes NaN and the bar is rejected downstream."""
    try:
        return float(text)
    except ValueError:
        return float("nan")
