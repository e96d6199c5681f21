"""Deterministic prices and a fault-injecting HTTP server, shared by the Yahoo and EastMoney fakes.

Imports nothing from minitrade: the fakes must not share code with the clients they test.

`PriceBook` holds one deterministic random walk per ticker ("what really traded"), plus splits
and dividends, and a settable clock `now` that decides which bars exist and whether today's bar
is still moving. Each fake renders the book in its own wire format and adjustment convention.
"""

from __future__ import annotations

import random
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

FIRST_DAY = date(2000, 1, 3)

# Fault names accepted by `inject`.
RATE_LIMIT = "429"
SERVER_ERROR = "500"
HANG = "hang"                      # accept, read the request, never answer
DROP = "drop"                      # close the socket without a response (EastMoney's anti-scraping)
TRUNCATED = "truncated"            # a valid status line and a JSON body cut in half
MISSING_FIELDS = "missing_fields"  # the price arrays are gone from an otherwise valid answer
EMPTY = "empty"                    # a valid answer with no bars
NAN = "nan"                        # one bar's close is missing (null / "-")
FAULTS = (RATE_LIMIT, SERVER_ERROR, HANG, DROP, TRUNCATED, MISSING_FIELDS, EMPTY, NAN)


@dataclass(frozen=True)
class RawBar:
    """One session as it traded: unadjusted prices, volume in shares."""

    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float
    partial: bool = False


@dataclass
class Session:
    """An exchange's regular session in local time."""

    tz: str = "America/New_York"
    open: time = time(9, 30)
    close: time = time(16, 0)


@dataclass
class PriceBook:
    """Deterministic daily prices per ticker; weekdays are sessions (no holidays)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    splits: dict[str, list[tuple[date, float]]] = field(default_factory=dict)
    dividends: dict[str, list[tuple[date, float]]] = field(default_factory=dict)
    first_day: dict[str, date] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    # where every walk begins; a recent day makes a book of thousands of tickers quick to serve
    walk_start: date = FIRST_DAY
    _walks: dict[str, list[tuple[date, float, float, float, float, float]]] = field(default_factory=dict)

    def add_split(self, ticker: str, day: date, ratio: float) -> None:
        """From `day` on, one old share is `ratio` new ones (4.0 for a 4:1 split)."""
        self.splits.setdefault(ticker, []).append((day, ratio))

    def add_dividend(self, ticker: str, day: date, amount: float) -> None:
        """Cash dividend per (then current) share with ex-date `day`."""
        self.dividends.setdefault(ticker, []).append((day, amount))

    def bars(self, ticker: str, start: date, end: date, session: Session) -> list[RawBar]:
        """Sessions from start to end inclusive that exist at `now`, unadjusted."""
        local_now = self.now.astimezone(ZoneInfo(session.tz))
        today = local_now.date()
        end = min(end, today)
        if local_now.time() < session.open:
            end = min(end, today - timedelta(days=1))
        begin = max(start, self.first_day.get(ticker, self.walk_start))
        out: list[RawBar] = []
        for day, o, h, low, c, v in self._walk(ticker, end):
            if day < begin:
                continue
            if day > end:
                break
            ratio = self.split_factor(ticker, day)
            bar = RawBar(day, round(o / ratio, 2), round(h / ratio, 2), round(low / ratio, 2),
                         round(c / ratio, 2), float(round(v * ratio)))
            if day == today and local_now.time() < session.close:
                bar = _partial(bar, local_now.time(), session)
            out.append(bar)
        return out

    def split_factor(self, ticker: str, day: date) -> float:
        """How many shares one share of FIRST_DAY had become by `day`."""
        factor = 1.0
        for when, ratio in self.splits.get(ticker, []):
            if when <= day:
                factor *= ratio
        return factor

    def _walk(self, ticker: str, end: date) -> list[tuple[date, float, float, float, float, float]]:
        walk = self._walks.get(ticker)
        if walk is None or walk[-1][0] < end:
            rng = random.Random(zlib.crc32(ticker.encode()))
            price = 20.0 + rng.random() * 200.0
            walk = []
            day = self.walk_start
            stop = max(end, date.today()) + timedelta(days=7)
            while day <= stop:
                if day.weekday() < 5:
                    o = price * (1 + rng.gauss(0, 0.004))
                    c = o * (1 + rng.gauss(0.0003, 0.012))
                    h = max(o, c) * (1 + abs(rng.gauss(0, 0.004)))
                    low = min(o, c) * (1 - abs(rng.gauss(0, 0.004)))
                    v = float(rng.randint(200_000, 5_000_000))
                    walk.append((day, o, h, low, c, v))
                    price = c
                day += timedelta(days=1)
            self._walks[ticker] = walk
        return walk


def _partial(bar: RawBar, now: time, session: Session) -> RawBar:
    """The bar so far: the close moves from the open towards the day's close as the session runs."""
    def seconds(t: time) -> int:
        return t.hour * 3600 + t.minute * 60 + t.second

    done = (seconds(now) - seconds(session.open)) / (seconds(session.close) - seconds(session.open))
    close = round(bar.open + (bar.close - bar.open) * done, 2)
    return RawBar(bar.day, bar.open, max(bar.open, close), min(bar.open, close), close,
                  float(round(bar.volume * done)), partial=True)


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """What the fake saw: method, path, query, whether it came through it as a proxy."""

    method: str
    path: str
    query: dict[str, str]
    ticker: str | None
    via_proxy: bool
    headers: dict[str, str]


class FakeHTTPServer:
    """A real HTTP server on 127.0.0.1 (port 0) in a thread, with scripted faults per ticker.

    Subclasses implement `route` and the format-specific faults (`fault_reply`).
    Usable as a context manager. `requests` logs every request received.
    """

    def __init__(self, book: PriceBook | None = None) -> None:
        self.book = book or PriceBook()
        self.requests: list[Request] = []
        self.latency = 0.0  # seconds added before every answer, to model a real round trip
        self._faults: list[tuple[str, str | None, list[int]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, fault: str, *, ticker: str | None = None, times: int = 1) -> None:
        """Answer the next `times` requests (for `ticker`, or any) with `fault`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults.append((fault, ticker, [times]))

    def clear(self) -> None:
        """Forget injected faults and the request log."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def requests_for(self, ticker: str) -> list[Request]:
        return [r for r in self.requests if r.ticker == ticker]

    # -- to implement ---------------------------------------------------------------------
    def request_ticker(self, path: str, query: dict[str, str]) -> str | None:
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict[str, str]) -> Reply:
        raise NotImplementedError

    def fault_reply(self, fault: str, reply: Reply) -> Reply:
        """Turn a good reply into the format-specific faulty one (missing fields, empty, NaN)."""
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------
    def _take_fault(self, ticker: str | None) -> str | None:
        with self._lock:
            for i, (fault, only, left) in enumerate(self._faults):
                if only is None or only == ticker:
                    left[0] -= 1
                    if left[0] <= 0:
                        del self._faults[i]
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.path
        via_proxy = raw.startswith("http://") or raw.startswith("https://")
        parts = urlsplit(raw)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        ticker = self.request_ticker(parts.path, query)
        with self._lock:
            self.requests.append(Request(handler.command, parts.path, query, ticker, via_proxy,
                                         {k.lower(): v for k, v in handler.headers.items()}))
        fault = self._take_fault(ticker)
        if self.latency > 0:
            self._stopping.wait(self.latency)
        if fault == HANG:
            self._stopping.wait(120)
            handler.close_connection = True
            return
        if fault == DROP:
            handler.close_connection = True
            return
        if fault == RATE_LIMIT:
            reply = Reply(429, b"Too Many Requests\r\n", "text/plain;charset=utf-8",
                          {"Retry-After": "1"})
        elif fault == SERVER_ERROR:
            reply = Reply(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>",
                          "text/html;charset=utf-8")
        else:
            try:
                reply = self.route(handler.command, parts.path, query)
            except Exception as e:  # a bug in the fake must show as a 500, not a hang
                reply = Reply(500, f"fake error: {e!r}".encode(), "text/plain")
            if fault == TRUNCATED:
                reply = Reply(reply.status, reply.body[: len(reply.body) // 2], reply.content_type)
            elif fault is not None:
                reply = self.fault_reply(fault, reply)
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(reply.body)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def at(day: date, clock: time, tz: str) -> datetime:
    """A local wall time on `day` in `tz`, as an aware datetime."""
    return datetime.combine(day, clock, ZoneInfo(tz))

