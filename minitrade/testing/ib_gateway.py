"""A fake IB Client Portal gateway: HTTPS on 127.0.0.1 speaking the real paths and JSON shapes.

Used by the tests (production client pointed at it by URL + CA file) and by people rehearsing the
IB flow without an account (`minitrade ib fake-gateway`, or `python -m minitrade.testing.ib_gateway`).

    with FakeGateway(two_factor="none") as gw:       # gw.url, gw.ca_pem (CA that signed its cert)
        gw.set_state("authenticated")
        gw.set_time(datetime(2026, 11, 25, 14, 0, tzinfo=UTC)); gw.set_price(265598, close=190.0)
        gw.inject("POST", r"/iserver/account/.*/orders", "drop_after")

Faults (consumed in order per rule): "500", "503", "429", "401", "no_bridge" (400 "Bad Request: no
bridge", as while the gateway's link to IB is down), "drop_before", "drop_after" (the request is applied,
then the socket closes without a response), "latency:SECONDS" (applied, answered late), "html",
"malformed", "strip:FIELD" (a list answered with FIELD left out of every row). `set_bridge(False)` keeps the link down (every `/iserver/*` call answers no bridge) until
`set_bridge(True)`. `tickles()` counts keepalive calls; `drop_session()` expires the session as
IB's nightly reset does (a keepalive then reads `authenticated: false`).

Market orders are acknowledged PreSubmitted/Submitted and fill on a later request, as at IB
(`fill_in_post = True` fills them inside the POST instead). Order questions: `questions` are asked of
every order, `value_limit` asks o451 of orders worth more; `answers` records each (id, confirmed).
Paths may end in "/"; unknown routes answer 400. Imports nothing from minitrade on purpose.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from minitrade.testing import ib_login_page as page
from minitrade.testing.ib_book import STATUS_FILTER, Book, FakeOrder
from minitrade.testing.ib_https import TLSServer, tls_material

AUTH_STATES = ("no_session", "sso_only", "authenticated", "competing", "expired", "2fa_pending")
# Texts as IB words them ({order} is e.g. "BUY 10 AAPL NASDAQ.NMS"); some come with HTML and line breaks.
QUESTION_TEXT = {
    "o163": "The following order \"{order} @ {price}\" price exceeds \nthe Percentage constraint of 3%.\n"
            "Are you sure you want to submit this order?",
    "o354": "You are submitting an order without market data. We strongly recommend against this as it may "
            "result in erroneous and unexpected trades.\nAre you sure you want to submit this order?",
    "o383": "The following order \"{order}\" size exceeds the Size Limit of 500.\n"
            "Are you sure you want to submit this order?",
    "o403": "This order will most likely trigger and fill immediately.\nAre you sure you want to submit this order?",
    "o451": "The following order \"{order}\" value estimate of {value} USD exceeds \nthe Total Value Limit of "
            "{limit} USD.\nAre you sure you want to submit this order?",
    "o2137": "Cross side order warning: an order on the other side of {order} is working.\n"
             "Are you sure you want to submit this order?",
    "o10151": "<h4>Market Order Confirmation</h4>Market orders may execute at a price far from the current "
              "quote.\nAre you sure you want to submit this order?",
    "o10153": "<h4>Confirm Mandatory Cap Price</h4>To avoid trading at a price that is not consistent with a "
              "fair and orderly market, IB may set a cap (for a buy order) or floor (for a sell order). THIS MAY "
              "CAUSE AN ORDER THAT WOULD OTHERWISE BE MARKETABLE TO NOT BE TRADED.",
}
NO_BRIDGE = {"error": "Bad Request: no bridge", "statusCode": 400}
BAD_REQUEST = {"error": "Bad Request", "statusCode": 400}
# Documented per-endpoint pacing (seconds between calls), enforced only when `pacing` is on.
PACING = {"/tickle": 1.0, "/iserver/account/orders": 5.0, "/iserver/account/trades": 5.0,
          "/portfolio/accounts": 5.0, "/sso/validate": 60.0}
NOT_AUTHENTICATED = {"error": "not authenticated", "statusCode": 401}


def api_path(raw: str) -> str:
    """A request path without the API prefix (/v1/api or /v1/portal) and without a trailing slash."""
    path = re.sub(r"^/v1/(api|portal)", "", raw)
    return path.rstrip("/") or "/"


class FakeGateway:
    """The gateway process, its brokerage session, one user, and the market behind it."""

    def __init__(self, *, username: str = "fakeuser", password: str = "fakepass", two_factor: str = "push",
                 lock_after: int = 3, accounts: tuple[str, ...] = ("DU1234567",), state: str = "no_session",
                 twofa_window: float = 60.0, auto_approve: float | None = None, port: int = 0,
                 now: datetime | None = None) -> None:
        self.lock = threading.RLock()
        self.book = Book(accounts=list(accounts))
        self.username, self.password, self.two_factor = username, password, two_factor
        self.twofa_code = "123456"                # two_factor="code": the code IB "sends by SMS"
        self.codes: list[str] = []                # every second factor typed into the page
        self.lock_after, self.failed_logins, self.locked = lock_after, 0, False
        self.twofa_window, self.auto_approve = twofa_window, auto_approve
        self.questions: list[str] = []            # message ids asked for every order, in order
        self.value_limit: float | None = None     # ask o451 of orders worth more than this
        self.answers: list[tuple[str, bool]] = []  # (message id, confirmed) of every question answered
        self.suppressed: set[str] = set()
        self.bridge = True                        # False: the link to IB's servers is down ("no bridge")
        self.fill_in_post = False                 # True: market orders fill inside the POST that places them
        self.no_session_as_200 = False            # tickle answers 200 {"error":"no session"} instead of 401
        self.orders_preflight_quirk = True        # first live-orders call of a session comes back empty
        self.coid_at_first_post = False           # reserve the cOID before questions are answered
        self.pacing = False
        self.idle_timeout: timedelta | None = None   # session expires after this long without a request
        self._last_seen: datetime | None = None
        self.requests: list[tuple[str, str, Any]] = []
        self._faults: list[tuple[str, re.Pattern[str], deque[str]]] = []
        self._pending: dict[str, Any] | None = None
        self.accounts_called, self._orders_primed = False, False
        self._reserved: set[str] = set()
        self._now, self._port = now, port
        self._last_call: dict[str, float] = {}
        self._twofa_started = 0.0
        self._twofa_timed_out = False
        self.state = "no_session"
        self.set_state(state)
        self._server: TLSServer | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="fake-ib-"))
        self.ca_pem = self._dir / "ca.pem"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeGateway:
        cert, key = tls_material(self._dir, self.ca_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = TLSServer(("127.0.0.1", self._port), context, self)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-ib-gateway", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the gateway first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    # -- control (tests call these directly; /__fake/* exposes some over HTTP) ------------------
    def now(self) -> datetime:
        return self._now or datetime.now(UTC)

    def set_time(self, moment: datetime) -> None:
        with self.lock:
            self._now = moment
            self.book.settle(moment)

    def advance(self, delta: timedelta) -> None:
        self.set_time(self.now() + delta)

    def set_price(self, conid: int, *, open: float | None = None, close: float | None = None,
                  last: float | None = None) -> None:
        with self.lock:
            quote = self.book.prices.setdefault(conid, {})
            quote.update({k: v for k, v in (("open", open), ("close", close), ("last", last)) if v is not None})
            self.book.settle(self.now())

    def set_state(self, state: str) -> None:
        if state not in AUTH_STATES:
            raise ValueError(f"unknown auth state {state!r}; one of {AUTH_STATES}")
        with self.lock:
            if state == "authenticated" and self.state != "authenticated":
                self._new_brokerage_session()
                self._last_seen = self.now()
            if state == "2fa_pending":
                self._twofa_started, self._twofa_timed_out = time.monotonic(), False
            self.state = state

    def approve_2fa(self) -> bool:
        with self.lock:
            self._tick_2fa()
            if self.state != "2fa_pending":
                return False
            self.set_state("authenticated")
            return True

    def set_bridge(self, up: bool) -> None:
        """Take the gateway's link to IB's servers down (every /iserver/* call: 400 no bridge) or back up."""
        with self.lock:
            self.bridge = up

    def inject(self, method: str, path_pattern: str, *faults: str) -> None:
        with self.lock:
            self._faults.append((method.upper(), re.compile(path_pattern), deque(faults)))

    @property
    def orders(self) -> list[FakeOrder]:
        with self.lock:
            return list(self.book.orders)

    def tickles(self) -> int:
        """How many keepalive `POST /tickle` requests arrived (answered or not; `/__fake/tickles` too)."""
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == "POST" and api_path(p) == "/tickle")

    def drop_session(self) -> None:
        """End the brokerage session as IB's nightly reset or an idle timeout does (state `expired`)."""
        self.set_state("expired")

    def order_posts(self) -> int:
        """How many order-placement POSTs arrived (answered or not)."""
        return sum(1 for m, p, _ in self.requests if m == "POST" and re.fullmatch(r"/iserver/account/[^/]+/orders", p))

    # -- internals -----------------------------------------------------------------------------
    def _new_brokerage_session(self) -> None:
        self.accounts_called = False
        self.suppressed.clear()
        self._pending, self._orders_primed = None, False

    def _tick_2fa(self) -> None:
        if self.state != "2fa_pending":
            return
        elapsed = time.monotonic() - self._twofa_started
        if self.auto_approve is not None and elapsed >= self.auto_approve:
            self.set_state("authenticated")
        elif elapsed >= self.twofa_window:
            self.state, self._twofa_timed_out = "no_session", True

    def _expire_if_idle(self) -> None:
        now = self.now()
        if self.state in ("authenticated", "competing", "sso_only") and self.idle_timeout is not None \
                and self._last_seen is not None and now - self._last_seen > self.idle_timeout:
            self.state = "expired"
        self._last_seen = now

    def take_fault(self, method: str, path: str, body: Any = None) -> str | None:
        """Record an arriving request (faulty or not) and pick the fault to play on it, if any."""
        with self.lock:
            self.requests.append((method, path, body))
            for rule_method, pattern, queue in self._faults:
                if rule_method == method and queue and pattern.fullmatch(path):
                    return queue.popleft()
        return None

    def paced_out(self, path: str) -> bool:
        interval = PACING.get(path)
        if not self.pacing or interval is None:
            return False
        last, now = self._last_call.get(path), time.monotonic()
        self._last_call[path] = now
        return last is not None and now - last < interval

    def dispatch(self, method: str, raw_path: str, body: Any) -> tuple[int, Any, str]:
        """Answer one request: (status, payload, content type). Holds the lock throughout."""
        split = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        with self.lock:
            self._tick_2fa()
            self.book.settle(self.now())
            path = api_path(split.path)
            if self.paced_out(path):
                return 429, {"error": "Too Many Requests"}, "application/json"
            if path == "/" or path.startswith(("/sso/Login", "/sso/Dispatcher", "/__fake/")):
                return self._web(method, path, query, body)
            self._expire_if_idle()
            return self._api(method, path, query, body if isinstance(body, dict) else {})

    def _web(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, str]:
        html = "text/html; charset=utf-8"
        body = body if isinstance(body, dict) else {}
        if path == "/":
            return 302, page.LOGIN_PATH + "?forwardTo=22&RL=1&ip2loc=on", "redirect"
        if path == "/sso/Dispatcher":
            return 200, page.render(success=True), html
        if path == page.LOGIN_PATH and method == "GET":
            return 200, page.render(), html
        if path == page.LOGIN_PATH and method == "POST":
            if "gold-response" in body:
                return 200, self._second_factor(str(body.get("gold-response", ""))), html
            return 200, self._login(str(body.get("username", "")), str(body.get("password", ""))), html
        if path == "/__fake/login-status":
            timed_out = self.state == "no_session" and self._twofa_timed_out
            return 200, {"state": "timeout" if timed_out else self.state}, "application/json"
        if path == "/__fake/2fa/approve" and method == "POST":
            return 200, {"approved": self.approve_2fa()}, "application/json"
        if path == "/__fake/state" and method == "POST":
            self.set_state(str(body.get("state")))
            return 200, {"state": self.state}, "application/json"
        if path == "/__fake/clock" and method == "POST" and "now" in body:
            self.set_time(datetime.fromisoformat(str(body["now"])))
            return 200, {"now": self.now().isoformat()}, "application/json"
        if path == "/__fake/tickles":
            return 200, {"count": self.tickles()}, "application/json"
        if path == "/__fake/orders":
            return 200, [self.book.live_order_json(o) for o in self.book.orders], "application/json"
        if path == "/__fake/bridge" and method == "POST":
            self.set_bridge(bool(body.get("up")))
            return 200, {"up": self.bridge}, "application/json"
        if path == "/__fake/questions" and method == "POST":
            self.questions = [str(q) for q in body.get("ids") or []]
            return 200, {"ids": self.questions}, "application/json"
        if path == "/__fake/answers":
            return 200, [{"id": i, "confirmed": c} for i, c in self.answers], "application/json"
        if path == "/__fake/fills" and method == "POST":
            self.fill_in_post = bool(body.get("in_post"))
            return 200, {"in_post": self.fill_in_post}, "application/json"
        return 400, BAD_REQUEST, "application/json"

    def _login(self, username: str, password: str) -> bytes:
        if self.locked:
            return page.render(error="Too many failed login attempts. Access is locked; reset your "
                                     "password or try again later.")
        if username != self.username or password != self.password:
            self.failed_logins += 1
            self.locked = self.failed_logins >= self.lock_after
            return page.render(error="Invalid username password combination")
        self.failed_logins = 0
        if self.two_factor == "push":
            self.set_state("2fa_pending")
            return page.render(push_pending=True)
        if self.two_factor == "code":
            self.set_state("2fa_pending")
            return page.render(code_prompt=True)
        self.set_state("authenticated")
        return page.render(success=True)

    def _second_factor(self, code: str) -> bytes:
        """A typed second factor (SMS or card code) answering the code prompt."""
        self.codes.append(code)
        if self.two_factor != "code" or self.state != "2fa_pending":
            return page.render(error="Your session has expired. Please log in again.")
        if code.strip() != self.twofa_code:
            return page.render(error="Invalid security code. Please try again.", code_prompt=True)
        self.set_state("authenticated")
        return page.render(success=True)

    def _auth_status(self) -> dict[str, Any]:
        mac = {"MAC": "98:F2:B3:23:BF:A0"}
        if self.state == "expired":
            return {"authenticated": False, "competing": False, "connected": False, **mac}
        return {"authenticated": self.state in ("authenticated", "competing"), "established": True,
                "competing": self.state == "competing", "connected": True, "message": "", **mac,
                "serverInfo": {"serverName": "FakeGw1", "serverVersion": "Build 10.25.0p"}, "fail": ""}

    def _api(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any, str]:
        status, payload = self._route(method, path, query, body)
        return status, payload, "application/json"

    def _route(self, method: str, path: str, query: dict[str, str],
               body: dict[str, Any]) -> tuple[int, Any]:
        no_session = self.state in ("no_session", "2fa_pending")
        if path == "/tickle" and method == "POST":
            if no_session:
                return (200, {"error": "no session"}) if self.no_session_as_200 else (401, NOT_AUTHENTICATED)
            iserver = {"authStatus": self._auth_status()} if self.bridge else {"error": "no bridge"}
            return 200, {"session": uuid.uuid4().hex, "ssoExpires": 460311, "collission": False,
                         "userId": 123456789, "hmds": {"error": "no bridge"}, "iserver": iserver}
        if path.startswith("/iserver/") and not self.bridge and not no_session:
            return 400, NO_BRIDGE
        if path == "/iserver/auth/status":
            return (401, NOT_AUTHENTICATED) if no_session else (200, self._auth_status())
        if path in ("/iserver/auth/ssodh/init", "/iserver/reauthenticate") and method == "POST":
            if self.state not in ("sso_only", "competing", "authenticated"):
                return 401, NOT_AUTHENTICATED
            self.set_state("authenticated")
            return 200, (self._auth_status() if path.endswith("init") else {"message": "triggered"})
        if path == "/logout" and method == "POST":
            self.state = "no_session" if no_session else "sso_only"
            return 200, {"status": True}
        if path == "/sso/validate":
            if no_session or self.state == "expired":
                return 401, NOT_AUTHENTICATED
            return 200, {"USER_ID": 123456789, "USER_NAME": self.username, "RESULT": True, "EXPIRES": 415890,
                         "LOGIN_TYPE": 2, "PAPER_USER_NAME": self.username, "IS_MASTER": False}
        if path.startswith(("/portfolio/", "/trsrv/")):
            if self.state not in ("sso_only", "authenticated", "competing"):
                return 401, NOT_AUTHENTICATED
            return self._portfolio(method, path, query)
        if path.startswith("/iserver/"):
            if self.state != "authenticated":
                return 401, NOT_AUTHENTICATED
            return self._iserver(method, path, query, body)
        return 400, BAD_REQUEST

    def _portfolio(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        accounts = self.book.accounts
        if path == "/portfolio/accounts":
            return 200, [{"id": a, "accountId": a, "accountVan": a, "accountTitle": "Fake", "currency": "USD",
                          "type": "DEMO", "tradingType": "STKCASH", "covestor": False} for a in accounts]
        if path == "/trsrv/stocks":
            return 200, self.book.stocks([s for s in query.get("symbols", "").split(",") if s])
        if m := re.fullmatch(r"/portfolio/([^/]+)/(positions/(\d+)|positions/invalidate|ledger)", path):
            if m.group(1) not in accounts:
                return 400, {"error": f"Account {m.group(1)} is not valid"}
            if m.group(2) == "ledger":
                return 200, self.book.ledger_json(m.group(1), self.now())
            if m.group(2) == "positions/invalidate":
                return 200, {"message": "success"}
            page_no = int(m.group(3))
            return 200, self.book.positions_json(m.group(1))[page_no * 100:(page_no + 1) * 100]
        return 400, BAD_REQUEST

    def _iserver(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        book, now = self.book, self.now()
        if path == "/iserver/accounts":
            self.accounts_called = True
            return 200, {"accounts": book.accounts, "aliases": {a: a for a in book.accounts},
                         "selectedAccount": book.accounts[0], "isPaper": True, "isFT": False,
                         "acctProps": {a: {"hasChildAccounts": False} for a in book.accounts}}
        if path == "/iserver/questions/suppress" and method == "POST":
            self.suppressed = set(body.get("messageIds", []))
            return 200, {"status": "submitted"}
        if path == "/iserver/questions/suppress/reset" and method == "POST":
            self.suppressed.clear()
            return 200, {"status": "submitted"}
        if m := re.fullmatch(r"/iserver/secdef/search", path):
            symbol = query.get("symbol", "")
            name, listings = book.contracts.get(symbol, ("", []))
            return 200, [{"conid": str(c), "companyHeader": f"{name} - {e}", "companyName": name,
                          "symbol": symbol, "description": e, "sections": [{"secType": "STK"}]}
                         for c, e, _ in listings]
        if not self.accounts_called:
            return 400, {"error": "Please query /iserver/accounts first"}
        if m := re.fullmatch(r"/iserver/account/([^/]+)/orders", path):
            if method != "POST" or m.group(1) not in book.accounts:
                return 400, {"error": f"Account {m.group(1)} is not valid"}
            return self._place(list(body.get("orders") or [{}])[0], now)
        if m := re.fullmatch(r"/iserver/reply/([^/]+)", path):
            return self._reply(m.group(1), bool(body.get("confirmed")), now)
        if path == "/iserver/account/orders":
            if self.orders_preflight_quirk and not self._orders_primed:
                self._orders_primed = True
                return 200, {"orders": [], "snapshot": False}
            wanted = set(filter(None, query.get("filters", "").split(",")))
            rows = [book.live_order_json(o) for o in book.orders if now - o.placed_at < timedelta(days=1)
                    and (not wanted or STATUS_FILTER.get(o.status) in wanted)]
            return 200, {"orders": rows, "snapshot": True}
        if m := re.fullmatch(r"/iserver/account/order/status/(\d+)", path):
            order = book.order(int(m.group(1)))
            if order is None:
                return 503, {"error": f"Order {m.group(1)} is not found", "statusCode": 503}
            return 200, book.status_json(order)
        if (m := re.fullmatch(r"/iserver/account/([^/]+)/order/(-?\d+)", path)) and method == "DELETE":
            order = book.order(int(m.group(2)))
            if order is None or order.acct != m.group(1):
                return 400, {"error": f"OrderID {m.group(2)} doesn't exist"}
            book.cancel(order, now)
            return 200, {"msg": "Request was submitted", "order_id": order.order_id, "conid": -1, "account": None}
        if path == "/iserver/account/trades":
            days = min(7, max(1, int(query.get("days", "1"))))
            return 200, [book.trade_json(e) for e in book.executions if now - e.at < timedelta(days=days)]
        return 400, BAD_REQUEST

    def _place(self, ticket: dict[str, Any], now: datetime) -> tuple[int, Any]:
        coid = ticket.get("cOID")
        if coid and (coid in self._reserved or self.book.find_coid(str(coid), now)):
            return 200, {"error": f"Order couldn't be submitted: Local order ID={coid} is already registered."}
        order = self.book.check_ticket(ticket, now)
        if isinstance(order, str):
            return 200, {"error": order}
        self._pending = None                        # a new order invalidates an unanswered chain
        asked = [q for q in self._questions_for(order) if q not in self.suppressed]
        if not asked:
            return 200, self._store(order, now)
        if coid and self.coid_at_first_post:
            self._reserved.add(str(coid))
        return self._ask(order, asked)

    def _questions_for(self, order: FakeOrder) -> list[str]:
        asked = list(self.questions)
        if self.value_limit is not None and order.quantity * self._price(order) > self.value_limit \
                and "o451" not in asked:
            asked.append("o451")
        return asked

    def _price(self, order: FakeOrder) -> float:
        quote = self.book.prices.get(order.conid, {})
        return float(quote.get("last", quote.get("close", 0.0)))

    def _ask(self, order: FakeOrder, remaining: list[str]) -> tuple[int, Any]:
        reply_id = str(uuid.uuid4())
        self._pending = {"id": reply_id, "order": order, "remaining": remaining}
        price = self._price(order)
        text = QUESTION_TEXT.get(remaining[0], "Are you sure you want to submit this order?").format(
            order=f"{order.side} {order.quantity:g} {order.ticker} NASDAQ.NMS", price=f"{price:g}",
            value=f"{order.quantity * price:,.2f}", limit=f"{self.value_limit or 100_000:,.0f}")
        return 200, [{"id": reply_id, "message": [text], "isSuppressed": False, "messageIds": [remaining[0]],
                      "messageOptions": ["Yes", "No"]}]

    def _reply(self, reply_id: str, confirmed: bool, now: datetime) -> tuple[int, Any]:
        pending = self._pending
        if pending is None or pending["id"] != reply_id:
            return 503, {"error": f"reply id {reply_id} not found or no longer valid", "statusCode": 503}
        self._pending = None
        order: FakeOrder = pending["order"]
        self.answers.append((pending["remaining"][0], confirmed))
        if not confirmed:
            self._reserved.discard(order.coid or "")
            return 200, {"error": "Order was not confirmed and has been discarded."}
        if len(pending["remaining"]) > 1:
            return self._ask(order, pending["remaining"][1:])
        return 200, self._store(order, now)

    def _store(self, order: FakeOrder, now: datetime) -> list[dict[str, Any]]:
        self._reserved.discard(order.coid or "")
        self.book.orders.append(order)
        if self.fill_in_post:
            self.book.settle(now)
        else:
            self.book.work(order, now)               # acknowledged now; executions come on a later request
        return [{"order_id": str(order.order_id), "order_status": order.status, "encrypt_message": "1",
                 "local_order_id": order.coid or ""}]


def main(argv: list[str] | None = None) -> None:
    """Run the fake gateway in the foreground until Ctrl-C (a rehearsal without an IB account)."""
    parser = argparse.ArgumentParser(prog="python -m minitrade.testing.ib_gateway", description=main.__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--username", default="fakeuser")
    parser.add_argument("--password", default="fakepass")
    parser.add_argument("--two-factor", choices=["push", "code", "none"], default="push",
                        help="code: the page asks for a typed code (123456)")
    parser.add_argument("--auto-approve", type=float, default=None,
                        help="approve the 2FA push after this many seconds (default: wait for /__fake/2fa/approve)")
    parser.add_argument("--question", action="append", default=[], metavar="ID",
                        help="ask this question (e.g. o451) of every order; repeatable")
    parser.add_argument("--fill-in-post", action="store_true",
                        help="fill market orders inside the POST that places them (default: on a later request)")
    args = parser.parse_args(argv)
    gateway = FakeGateway(username=args.username, password=args.password, two_factor=args.two_factor,
                          auto_approve=args.auto_approve, port=args.port).start()
    gateway.questions, gateway.fill_in_post = list(args.question), args.fill_in_post
    for conid, price in ((265598, 190.0), (756733, 600.0), (320227571, 500.0), (272093, 420.0)):
        gateway.set_price(conid, open=price, close=price, last=price)
    print(f"fake IB gateway on {gateway.url}  (CA certificate: {gateway.ca_pem})", flush=True)
    print(f"login page: {gateway.url}/sso/Login  user {args.username!r} password {args.password!r}", flush=True)
    print(f"approve a 2FA push: curl --cacert {gateway.ca_pem} -X POST {gateway.url}/__fake/2fa/approve",
          flush=True)
    print(f"take the link to IB down: curl --cacert {gateway.ca_pem} -X POST {gateway.url}/__fake/bridge "
          "-H 'Content-Type: application/json' -d '{\"up\": false}'", flush=True)
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)       # `kill` cleans up like Ctrl-C
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
