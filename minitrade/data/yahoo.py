"""Yahoo Finance daily bars from the chart API (`/v8/finance/chart/{symbol}`).

Why not yfinance: yfinance 1.7 hard-codes Yahoo's hosts, keeps one process-wide session, crumb
and proxy (`YfData` singleton, `yf.config`), caches whole responses of past ranges in an
in-process `lru_cache` (a transient HTTP 500 for a past range is then replayed for the life of
the process, defeating retries and revision checks), writes sqlite caches under the home folder,
and ignores its `timeout` during the cookie/crumb handshake. This client speaks the same wire
protocol with the same TLS fingerprint (curl_cffi, impersonating Chrome, as yfinance does), with
a configurable base URL, a hard deadline, and retries that know the HTTP status.

Adjustment: `indicators.quote` is split-adjusted; `adjclose` is split- and dividend-adjusted. We
scale open/high/low/close by adjclose/close (yfinance's `auto_adjust=True`), so prices are total
return adjusted: `adjustment = "yahoo:split+dividend"`. Volume stays as Yahoo reports it
(split-adjusted). While the exchange is open, Yahoo's last bar is today's bar so far; it is kept
and marked `frame.attrs["partial"] = True`.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from curl_cffi import requests as curl

from minitrade.data.base import canonical
from minitrade.data.transport import retrying, with_deadline
from minitrade.errors import DataError, DataStale
from minitrade.models import YahooSource

ADJUSTMENT = "yahoo:split+dividend"
CHART_HOST = "https://query2.finance.yahoo.com"
CRUMB_HOST = "https://query1.finance.yahoo.com"
COOKIE_URL = "https://fc.yahoo.com"
# Daily bars are stamped at the session open, local time: ask a little beyond the UTC day
# edges so every exchange's dates are covered, then cut by the exchange's own calendar date.
EDGE = timedelta(hours=15)


class YahooDataSource:
    """Daily OHLCV from Yahoo, adjusted for splits and dividends.

    >>> source = YahooDataSource("yahoo", YahooSource(type="yahoo"))
    >>> frame = source.daily("SPY", date(2024, 1, 1))        # doctest: +SKIP
    """

    adjustment = ADJUSTMENT

    def __init__(self, name: str, spec: YahooSource, *, retries: int = 3, backoff: float = 1.0) -> None:
        self.name = name
        self.spec = spec
        self.retries = retries
        self.backoff = backoff
        base = spec.base_url.rstrip("/") if spec.base_url else None
        self._chart = base or CHART_HOST
        self._crumb_url = f"{base or CRUMB_HOST}/v1/test/getcrumb"
        self._cookie_url = base or COOKIE_URL
        self._crumb: str | None = None
        self._cookies: dict[str, str] = {}
        self.verify_every = spec.verify_every  # the price cache re-reads the whole history this often
        self.concurrency = spec.fetch_concurrency  # the price cache's fetches in flight at once

    def __repr__(self) -> str:
        return f"YahooDataSource({self.name!r}, base_url={self._chart!r})"

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Bars of `ticker` from `start` to `end` inclusive (through today if None).

        Raises:
            DataError: naming the ticker; `retryable` for 429, 5xx, timeouts and dropped connections.
        """
        # without an end, ask through tomorrow (UTC): east of UTC, today's local date is ahead
        last = end or (datetime.now(UTC).date() + timedelta(days=1))
        if last < start:
            raise DataError(f"end {last} is before start {start}", source=self.name, ticker=ticker)
        deadline = time.monotonic() + self.spec.timeout

        def fetch() -> pd.DataFrame:
            return retrying(lambda left: self._attempt(ticker, start, last, end, left), deadline=deadline,
                            retries=self.retries, backoff=self.backoff, source=self.name, ticker=ticker)

        return with_deadline(fetch, self.spec.timeout, source=self.name, ticker=ticker)

    # -- one HTTP attempt --------------------------------------------------------------------
    def _attempt(self, ticker: str, start: date, end: date, asked_end: date | None,
                 left: float) -> pd.DataFrame:
        first = datetime.combine(start, datetime.min.time(), UTC) - EDGE
        stop = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC) + EDGE
        params = {"period1": str(int(first.timestamp())), "period2": str(int(stop.timestamp())),
                  "interval": "1d", "includePrePost": "false", "events": "div,splits,capitalGains"}
        url = f"{self._chart}/v8/finance/chart/{ticker}"
        response = self._get(url, params, ticker, left)
        if response.status_code == 401:  # "Invalid Crumb": get a cookie and a crumb, then once more
            self._handshake(ticker, left)
            response = self._get(url, params, ticker, left)
        return self._parse(ticker, response, start, asked_end)

    def _session(self) -> curl.Session[Any]:
        proxies = {"http": self.spec.proxy, "https": self.spec.proxy} if self.spec.proxy else None
        return curl.Session(impersonate="chrome", proxies=proxies)  # type: ignore[arg-type]

    def _get(self, url: str, params: dict[str, str], ticker: str, left: float) -> curl.Response:
        query = dict(params, crumb=self._crumb) if self._crumb else params
        # the client's own timeout ends a little after the hard deadline: the deadline decides,
        # and an abandoned worker thread does not outlive it by more than a second
        try:
            with self._session() as session:
                response: curl.Response = session.get(url, params=query, cookies=self._cookies,
                                                      timeout=left + 1.0)
                return response
        except curl.exceptions.Timeout as e:
            raise self._error(f"timed out: {_short(e)}", ticker, retryable=True) from e
        except (curl.exceptions.RequestException, OSError) as e:
            # refused, reset, dropped without an answer, proxy failure, DNS: all may pass
            raise self._error(f"connection failed: {_short(e)}", ticker, retryable=True) from e

    def _handshake(self, ticker: str, left: float) -> None:
        try:
            with self._session() as session:
                session.get(self._cookie_url, timeout=min(10.0, left))
                answer = session.get(self._crumb_url, timeout=min(10.0, left))
                cookies = {c.name: c.value for c in session.cookies.jar if c.value is not None}
        except (curl.exceptions.RequestException, OSError) as e:
            raise self._error(f"cookie/crumb handshake failed: {_short(e)}", ticker, retryable=True) from e
        crumb = answer.text.strip()
        if answer.status_code == 429:
            raise self._error("rate limited while getting a crumb (HTTP 429)", ticker, retryable=True)
        if answer.status_code >= 400 or not crumb or "<html" in crumb.lower():
            raise self._error(f"Yahoo refused a crumb (HTTP {answer.status_code})", ticker)
        self._crumb, self._cookies = crumb, cookies

    # -- the answer --------------------------------------------------------------------------
    def _parse(self, ticker: str, response: curl.Response, start: date, end: date | None) -> pd.DataFrame:
        status = response.status_code
        if status == 429 or (status >= 400 and "Too Many Requests" in response.text[:200]):
            raise self._error("rate limited by Yahoo (HTTP 429)", ticker, retryable=True)
        if status >= 500:
            raise self._error(f"Yahoo server error (HTTP {status})", ticker, retryable=True)
        try:
            doc = response.json()
        except ValueError as e:
            if status >= 400:
                raise self._error(f"HTTP {status}: {response.text[:120]!r}", ticker) from e
            raise self._error(f"malformed JSON ({len(response.content)} bytes, truncated?)", ticker,
                              retryable=True) from e
        chart = doc.get("chart") if isinstance(doc, dict) else None
        if not isinstance(chart, dict):
            raise self._error(f"HTTP {status}: answer has no 'chart' object", ticker)
        if chart.get("error"):
            error = chart["error"]
            what = error.get("description") or error.get("code") if isinstance(error, dict) else error
            raise self._error(f"Yahoo says: {what} (HTTP {status})", ticker)
        if status >= 400:
            raise self._error(f"HTTP {status}", ticker)
        try:
            result = chart["result"][0]
            meta = result["meta"]
            tz = meta["exchangeTimezoneName"]
        except (KeyError, IndexError, TypeError) as e:
            raise self._error(f"answer lacks chart.result[0].meta.{e}", ticker) from e
        stamps = result.get("timestamp") or []
        if not stamps:  # a known symbol with no bar in the window: behind, not wrong
            raise DataStale(f"no prices from {start} to {end or 'today'} (empty answer)", source=self.name,
                            ticker=ticker)
        try:
            quote = result["indicators"]["quote"][0]
            adjclose = result["indicators"]["adjclose"][0]["adjclose"]
            columns = {c: quote[c] for c in ("open", "high", "low", "close", "volume")}
        except (KeyError, IndexError, TypeError) as e:
            raise self._error(f"answer lacks indicators field {e}", ticker) from e
        lengths = {len(v) for v in columns.values()} | {len(adjclose), len(stamps)}
        if len(lengths) != 1:
            raise self._error(f"partial answer: {len(stamps)} timestamps but price arrays of "
                              f"lengths {sorted(lengths)}", ticker)
        when = pd.to_datetime(pd.Series(stamps, dtype="int64"), unit="s", utc=True).dt.tz_convert(tz)
        frame = pd.DataFrame(dict(columns, adjclose=adjclose), dtype="float64")
        frame.index = pd.DatetimeIndex(when.dt.tz_localize(None).dt.normalize(), name="date")
        # halted sessions come as all-null rows (yfinance drops them too); half-null rows are errors
        frame = frame[frame[["open", "high", "low", "close"]].notna().any(axis=1)]
        factor = frame["adjclose"] / frame["close"]
        for column in ("open", "high", "low", "close"):
            frame[column] = frame[column] * factor
        frame = frame[~frame.index.duplicated(keep="last")]  # a live row may repeat today's date
        frame = frame[frame.index >= pd.Timestamp(start)]
        if end is not None:
            frame = frame[frame.index <= pd.Timestamp(end)]
        if frame.empty:
            raise DataStale(f"no prices from {start} to {end or 'today'}", source=self.name, ticker=ticker)
        out = canonical(frame, source=self.name, ticker=ticker)
        out.attrs.update(source=self.name, ticker=ticker, adjustment=ADJUSTMENT,
                         partial=_last_is_partial(meta, out, tz))
        return out

    def _error(self, message: str, ticker: str, *, retryable: bool = False) -> DataError:
        return DataError(message, source=self.name, ticker=ticker, retryable=retryable)


def _last_is_partial(meta: dict[str, Any], frame: pd.DataFrame, tz: str) -> bool:
    """Today's bar is partial when the last trade is inside today's regular session."""
    try:
        market_time = int(meta["regularMarketTime"])
        regular = meta["currentTradingPeriod"]["regular"]
        begins, ends = int(regular["start"]), int(regular["end"])
    except (KeyError, TypeError, ValueError):
        return False
    local_day = pd.Timestamp(market_time, unit="s", tz="UTC").tz_convert(tz).tz_localize(None).normalize()
    return bool(frame.index[-1] == local_day and begins <= market_time < ends)


def _short(error: BaseException) -> str:
    text = str(error).split(" See https://", 1)[0]
    return f"{type(error).__name__}: {text[:160]}"
