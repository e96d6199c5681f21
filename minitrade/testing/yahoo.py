"""A fake Yahoo Finance: `/v8/finance/chart/{symbol}` plus the cookie and crumb endpoints.

Imports nothing from minitrade. Serves the real wire format (see EXTERNAL_APIS.md §6): epoch-second
timestamps at the session open, `indicators.quote[0]` arrays split-adjusted, `indicators.adjclose`
split- and dividend-adjusted, split and dividend events, `meta` with the exchange timezone and
the current trading period; today's bar while the session runs is stamped with the last trade time.
`GET /` answers like fc.yahoo.com (404 with an A3 cookie), `GET /v1/test/getcrumb` returns a crumb.

    with FakeYahoo() as yahoo:
        yahoo.book.now = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
        yahoo.inject("429", ticker="SPY")
        ... YahooSource(type="yahoo", base_url=yahoo.url) ...
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from minitrade.testing.market import (
    EMPTY,
    MISSING_FIELDS,
    NAN,
    FakeHTTPServer,
    PriceBook,
    RawBar,
    Reply,
    Session,
    at,
    epoch,
)

CRUMB = "Xp2Ys3cZJ0r"
RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
RANGE_DAYS = {"1d": 1, "5d": 5, "1mo": 31, "3mo": 92, "6mo": 183, "1y": 366, "2y": 731, "5y": 1827,
              "10y": 3653, "max": 40000}
SUFFIX_SESSIONS = {
    ".SS": Session("Asia/Shanghai", time(9, 30), time(15, 0)),
    ".SZ": Session("Asia/Shanghai", time(9, 30), time(15, 0)),
    ".L": Session("Europe/London", time(8, 0), time(16, 30)),
}
ETFS = {"SPY", "QQQ", "IWM", "TLT", "GLD", "EFA", "VTI"}


class FakeYahoo(FakeHTTPServer):
    """Yahoo's chart API on 127.0.0.1 from a PriceBook, with scripted faults."""

    def __init__(self, book: PriceBook | None = None, *, require_crumb: bool = False) -> None:
        super().__init__(book)
        self.require_crumb = require_crumb
        self.hold = 0.0          # seconds each chart answer is held, counted in flight
        self.released = threading.Event()  # set: held answers go out at once (a test's clean-up)
        self.most_in_flight = 0  # the most chart requests answered at once (a client's concurrency)
        self._in_flight = 0
        self._flight_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Chart requests being answered now."""
        with self._flight_lock:
            return self._in_flight

    def request_ticker(self, path: str, query: dict[str, str]) -> str | None:
        if path.startswith("/v8/finance/chart/"):
            return path.rsplit("/", 1)[-1]
        return None

    def session(self, ticker: str) -> Session:
        for suffix, session in SUFFIX_SESSIONS.items():
            if ticker.endswith(suffix):
                return session
        return Session()

    def route(self, method: str, path: str, query: dict[str, str]) -> Reply:
        if path in ("", "/"):
            return Reply(404, b"<html><body>Not Found</body></html>", "text/html",
                         {"Set-Cookie": "A3=d=AQABBKfake&S=AQAAAfake; Max-Age=31557600; Path=/; "
                                        "SameSite=None; HttpOnly"})
        if path == "/v1/test/getcrumb":
            return Reply(200, CRUMB.encode(), "text/plain;charset=utf-8")
        if path.startswith("/v8/finance/chart/"):
            ticker = path.rsplit("/", 1)[-1]
            if self.require_crumb and query.get("crumb") != CRUMB:
                return _error(401, "Unauthorized", "Invalid Crumb")
            with self._flight_lock:
                self._in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self._in_flight)
            try:
                if self.hold > 0:
                    self.released.wait(self.hold)
                return self.chart(ticker, query)
            finally:
                with self._flight_lock:
                    self._in_flight -= 1
        return Reply(404, b'{"finance":{"result":null,"error":{"code":"Not Found",'
                          b'"description":"HTTP 404 Not Found"}}}')

    def chart(self, ticker: str, query: dict[str, str]) -> Reply:
        if ticker in self.book.unknown:
            return _error(404, "Not Found", "No data found, symbol may be delisted")
        interval = query.get("interval", "1d")
        if interval != "1d":
            return _error(400, "Bad Request", f"Invalid input - interval={interval} is not supported "
                                              "by this fake (only 1d)")
        session = self.session(ticker)
        tz = ZoneInfo(session.tz)
        now = self.book.now
        today = now.astimezone(tz).date()
        if "period1" in query or "period2" in query:
            start = datetime.fromtimestamp(int(query.get("period1", "0")), UTC)
            stop = datetime.fromtimestamp(int(query.get("period2", str(epoch(now)))), UTC)
        else:
            period = query.get("range", "1mo")
            if period not in RANGES:
                return _error(400, "Bad Request", f"Invalid input - range={period} is not valid")
            stop = now + timedelta(days=1)
            days = (today - date(today.year, 1, 1)).days if period == "ytd" else RANGE_DAYS[period]
            start = at(today - timedelta(days=days), time(0), session.tz)
        bars = [b for b in self.book.bars(ticker, start.astimezone(tz).date() - timedelta(days=1),
                                          stop.astimezone(tz).date(), session)
                if start <= self._stamp(b, session) < stop]
        return Reply(200, json.dumps(self._body(ticker, session, bars, query)).encode())

    def fault_reply(self, fault: str, reply: Reply) -> Reply:
        doc = json.loads(reply.body)
        result = ((doc.get("chart") or {}).get("result") or [None])[0]
        if result is None:
            return reply
        if fault == EMPTY:
            result.pop("timestamp", None)
            result.pop("events", None)
            result["indicators"] = {"quote": [{}], "adjclose": [{}]}
        elif fault == MISSING_FIELDS:
            result.pop("indicators", None)
        elif fault == NAN and result.get("timestamp"):
            closes = result["indicators"]["quote"][0]["close"]
            closes[len(closes) // 2] = None
        return Reply(reply.status, json.dumps(doc).encode(), reply.content_type)

    # -- rendering ------------------------------------------------------------------------
    def _stamp(self, bar: RawBar, session: Session) -> datetime:
        if bar.partial:
            return self.book.now
        return at(bar.day, session.open, session.tz)

    def _body(self, ticker: str, session: Session, bars: list[RawBar], query: dict[str, str]) -> dict[str, Any]:
        book, tz = self.book, ZoneInfo(session.tz)
        local_now = book.now.astimezone(tz)
        today_factor = book.split_factor(ticker, local_now.date())
        last = book.bars(ticker, local_now.date() - timedelta(days=10), local_now.date(), session)
        last_bar = last[-1] if last else None
        quote: dict[str, list[Any]] = {"open": [], "high": [], "low": [], "close": [], "volume": []}
        adjclose: list[float] = []
        steps = self._dividend_steps(ticker, session)
        for bar in bars:
            scale = book.split_factor(ticker, bar.day) / today_factor  # to today's share units
            quote["open"].append(bar.open * scale)
            quote["high"].append(bar.high * scale)
            quote["low"].append(bar.low * scale)
            quote["close"].append(bar.close * scale)
            quote["volume"].append(int(round(bar.volume / scale)))
            factor = 1.0
            for ex_day, step in steps:
                if bar.day < ex_day:
                    factor *= step
            adjclose.append(bar.close * scale * factor)
        if last_bar is None:
            market_time, period_day = book.now, local_now.date()
        elif last_bar.partial:
            market_time, period_day = book.now, last_bar.day
        else:
            market_time, period_day = at(last_bar.day, session.close, session.tz), last_bar.day
        opens, closes = at(period_day, session.open, session.tz), at(period_day, session.close, session.tz)
        utc_offset = opens.utcoffset()
        offset = int(utc_offset.total_seconds()) if utc_offset is not None else 0
        abbrev = opens.tzname() or ""

        def period(begin: datetime, end: datetime) -> dict[str, Any]:
            return {"timezone": abbrev, "start": epoch(begin), "end": epoch(end), "gmtoffset": offset}

        meta: dict[str, Any] = {
            "currency": "CNY" if session.tz == "Asia/Shanghai" else "USD",
            "symbol": ticker, "exchangeName": "PCX" if ticker in ETFS else "NMS",
            "fullExchangeName": "NYSEArca" if ticker in ETFS else "NasdaqGS",
            "instrumentType": "ETF" if ticker in ETFS else "EQUITY",
            "firstTradeDate": epoch(at(book.first_day.get(ticker, date(2000, 1, 3)), session.open, session.tz)),
            "regularMarketTime": epoch(market_time), "hasPrePostMarketData": True,
            "gmtoffset": offset, "timezone": abbrev, "exchangeTimezoneName": session.tz,
            "regularMarketPrice": quote["close"][-1] if bars else None,
            "chartPreviousClose": quote["close"][0] if bars else None, "priceHint": 2,
            "currentTradingPeriod": {
                "pre": period(opens - timedelta(hours=5, minutes=30), opens),
                "regular": period(opens, closes),
                "post": period(closes, closes + timedelta(hours=4)),
            },
            "dataGranularity": "1d", "range": query.get("range", ""), "validRanges": RANGES,
        }
        result: dict[str, Any] = {"meta": meta}
        if bars:
            result["timestamp"] = [epoch(self._stamp(b, session)) for b in bars]
            events = self._events(ticker, bars, session, today_factor, query.get("events", ""))
            if events:
                result["events"] = events
            result["indicators"] = {"quote": [quote], "adjclose": [{"adjclose": adjclose}]}
        else:
            result["indicators"] = {"quote": [{}], "adjclose": [{}]}
        return {"chart": {"result": [result], "error": None}}

    def _dividend_steps(self, ticker: str, session: Session) -> list[tuple[date, float]]:
        """Yahoo's adjclose multipliers: (ex-date, 1 - dividend / previous close) up to today."""
        steps = []
        today = self.book.now.astimezone(ZoneInfo(session.tz)).date()
        for ex_day, amount in self.book.dividends.get(ticker, []):
            if ex_day <= today:
                before = self.book.bars(ticker, ex_day - timedelta(days=7), ex_day - timedelta(days=1), session)
                if before:
                    steps.append((ex_day, 1 - amount / before[-1].close))
        return steps

    def _events(self, ticker: str, bars: list[RawBar], session: Session, today_factor: float,
                wanted: str) -> dict[str, Any]:
        first, last = bars[0].day, bars[-1].day
        events: dict[str, Any] = {}
        if "div" in wanted:
            divs = {}
            for day, amount in self.book.dividends.get(ticker, []):
                if first <= day <= last:
                    stamp = epoch(at(day, session.open, session.tz))
                    scaled = amount * self.book.split_factor(ticker, day) / today_factor
                    divs[str(stamp)] = {"amount": scaled, "date": stamp}
            if divs:
                events["dividends"] = divs
        if "split" in wanted:
            splits = {}
            for day, ratio in self.book.splits.get(ticker, []):
                if first <= day <= last:
                    stamp = epoch(at(day, session.open, session.tz))
                    num, den = (ratio, 1) if ratio >= 1 else (1, round(1 / ratio))
                    splits[str(stamp)] = {"date": stamp, "numerator": num, "denominator": den,
                                          "splitRatio": f"{num:g}:{den:g}"}
            if splits:
                events["splits"] = splits
        return events


def _error(status: int, code: str, description: str) -> Reply:
    body = {"chart": {"result": None, "error": {"code": code, "description": description}}}
    return Reply(status, json.dumps(body).encode())
