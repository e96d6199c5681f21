"""Client Portal Web API client (`/v1/api` over HTTPS on the local gateway).

Every wire error is mapped here, in one place, to the broker error tree:
HTTP 401 / `{"error": "no session"}` -> BrokerNotReady; `400 {"error": "Bad Request: no bridge"}` (the
gateway's link to IB's servers is down) -> BrokerDisconnected; timeouts, dropped connections, 429 and 5xx
-> BrokerUnavailable; an `{"error": ...}` answer to an order -> OrderRejected (AlreadyPlaced when IB says
the cOID is already registered). Reads are retried briefly; order POSTs never are (the broker adapter
reconciles by cOID first). Documented pacing is respected by sleeping, never by failing.
Order questions are answered by the caller's `answer`: yes only to the ids it allows (logged at info),
no to anything else (logged as a warning; the order is discarded and OrderQuestionRefused raised).

    client = IBClient.from_spec(spec, name="ib-paper")
    client.session_state()            # SessionState, never raises for "not logged in"
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import requests
from urllib3.exceptions import InsecureRequestWarning

from minitrade.brokers.base import SessionState
from minitrade.errors import (
    AlreadyPlaced,
    BrokerDisconnected,
    BrokerError,
    BrokerNotReady,
    BrokerUnavailable,
    OrderNotFound,
    OrderQuestionRefused,
    OrderRejected,
    RateLimited,
)
from minitrade.models import IBBroker

log = logging.getLogger(__name__)

API = "/v1/api"
# IBKR's documented per-endpoint limits, as seconds between calls.
DOCUMENTED_PACING: dict[str, float] = {
    "/tickle": 1.0, "/sso/validate": 60.0, "/iserver/account/orders": 5.0, "/iserver/account/trades": 5.0,
    "/portfolio/accounts": 5.0, "/portfolio/subaccounts": 5.0,
}
MAX_QUESTIONS = 10
ALREADY_REGISTERED = "is already registered"
ORDER_GONE = "doesn't exist"
NOT_LOGGED_IN = ("no session", "not authenticated")
NO_BRIDGE = "no bridge"


@dataclass(frozen=True)
class Pacing:
    """Minimum seconds between calls: per endpoint, and overall (10 requests/s through a gateway)."""

    per_endpoint: Mapping[str, float] = field(default_factory=lambda: dict(DOCUMENTED_PACING))
    overall: float = 0.1

    @classmethod
    def off(cls) -> Pacing:
        return cls(per_endpoint={}, overall=0.0)


@dataclass(frozen=True)
class Question:
    """A confirmation IB asks before it accepts an order (`o163`, `o354`, ...)."""

    reply_id: str
    message_ids: tuple[str, ...]
    text: str


def _plain(text: str) -> str:
    """A question's text on one line: IB sends some with HTML headings and line breaks."""
    return " ".join(re.sub(r"<[^>]+>", " ", text.replace("\\n", "\n")).split())


@dataclass(frozen=True)
class Placement:
    """IB's acknowledgement of one placed order, and the questions confirmed on the way."""

    order_id: str
    order_status: str
    confirmed: tuple[Question, ...] = ()


@dataclass(frozen=True)
class AuthStatus:
    authenticated: bool
    connected: bool
    competing: bool
    message: str = ""

    @property
    def state(self) -> SessionState:
        if self.competing:
            return SessionState.COMPETING
        if self.authenticated and self.connected:
            return SessionState.AUTHENTICATED
        if not self.connected:
            return SessionState.EXPIRED
        return SessionState.NO_SESSION      # SSO up, brokerage session not (yet) initialised


class IBClient:
    """One gateway, one HTTP session. Thread-unsafe on purpose: one order in flight at a time."""

    def __init__(self, base_url: str, *, verify: bool | str = False, timeout: float = 15.0,
                 account_label: str | None = None, suppress: Iterable[str] = (), pacing: Pacing | None = None,
                 read_retries: int = 2, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/") + API
        self.verify, self.timeout, self.label = verify, timeout, account_label
        self.suppress = list(suppress)
        self.pacing = pacing if pacing is not None else Pacing()
        self.read_retries, self._sleep, self._clock = read_retries, sleep, clock
        self._last: dict[str, float] = {}
        self._orders_primed = False
        self._http = requests.Session()
        self._http.trust_env = False      # a local gateway: no proxies, and our CA, not REQUESTS_CA_BUNDLE

    @classmethod
    def from_spec(cls, spec: IBBroker, *, name: str | None = None, **kwargs: Any) -> IBClient:
        gateway = spec.gateway
        verify: bool | str = gateway.ca_cert if gateway.ca_cert else gateway.verify_tls
        return cls(gateway.url, verify=verify, account_label=name, suppress=spec.suppress_message_ids, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IBClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------
    def _pace(self, path: str) -> None:
        now = self._clock()
        waits = [self.pacing.overall - (now - self._last.get("*", -1e9))]
        if path in self.pacing.per_endpoint:
            waits.append(self.pacing.per_endpoint[path] - (now - self._last.get(path, -1e9)))
        wait = max(waits)
        if wait > 0:
            self._sleep(wait)

    def _paced(self, path: str) -> None:
        """Measure spacing from when a call finished: the gateway counts arrivals, which come later."""
        self._last["*"] = self._last[path] = self._clock()

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 json: Any = None, order: bool = False) -> Any:
        """One call with pacing, error mapping and (for reads only) a short retry."""
        attempts = 1 + (self.read_retries if method == "GET" else 0)
        for attempt in range(attempts):
            try:
                return self._once(method, path, params=params, json=json, order=order)
            except BrokerUnavailable as e:
                if attempt + 1 >= attempts or isinstance(e, RateLimited):
                    raise
                log.info("IB %s %s failed (%s); retrying", method, path, e)
                self._sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, *, params: Mapping[str, Any] | None, json: Any,
              order: bool) -> Any:
        self._pace(path)
        where = f"{method} {path}"
        try:
            with warnings.catch_warnings():
                if self.verify is False:    # chosen in minitrade.yaml (gateway.verify_tls: false)
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                response = self._http.request(method, self.base_url + path, params=params, json=json,
                                              verify=self.verify, timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.RequestException as e:
            self._paced(path)
            raise self._transport_error(e, where) from e
        self._paced(path)
        return self._decode(response, where, order=order)

    def _transport_error(self, e: requests.exceptions.RequestException, where: str) -> BrokerUnavailable:
        if isinstance(e, requests.exceptions.SSLError):
            return BrokerUnavailable(f"TLS check of the gateway at {self.base_url} failed ({e}); set "
                                     "gateway.ca_cert to its certificate or verify_tls: false", account=self.label)
        if isinstance(e, requests.exceptions.Timeout):
            return BrokerUnavailable(f"{where} timed out after {self.timeout:g}s", account=self.label)
        return BrokerUnavailable(f"{where}: connection to the gateway failed ({e})", account=self.label)

    def _decode(self, response: requests.Response, where: str, *, order: bool) -> Any:
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        text = str(error or (response.text[:200] if body is None else body))
        if error and NO_BRIDGE in str(error).lower():
            self._orders_primed = False
            raise BrokerDisconnected(f"the gateway has no link to IB's servers ({where}: {status} {text}); "
                                     "orders are held and sent when it is back. If it persists, run "
                                     f"`minitrade ib login {self.label or 'ACCOUNT'}` or restart the gateway",
                                     account=self.label)
        if status == 401 or (error and any(k in str(error).lower() for k in NOT_LOGGED_IN)):
            self._orders_primed = False     # a new session starts with the empty pre-flight again
            raise BrokerNotReady(f"no brokerage session ({where}: {text}); run `minitrade ib login "
                                 f"{self.label or 'ACCOUNT'}`", account=self.label)
        if status == 429:
            raise RateLimited(f"{where}: rate limited (429); IB may block this address for 10 minutes",
                                    account=self.label)
        if status >= 500:
            raise BrokerUnavailable(f"{where}: gateway error {status}: {text}", account=self.label)
        if status >= 300 or error:
            if order and ALREADY_REGISTERED in text:
                raise AlreadyPlaced(text, account=self.label)
            kind = OrderRejected if order else BrokerError
            raise kind(f"{where}: {status} {text}", account=self.label)
        if body is None:
            raise BrokerUnavailable(f"{where}: the gateway answered something that is not JSON: "
                                    f"{response.text[:120]!r}", account=self.label)
        return body

    # -- session -------------------------------------------------------------------------------
    def auth_status(self) -> AuthStatus:
        body = self._request("POST", "/iserver/auth/status")
        return AuthStatus(bool(body.get("authenticated")), bool(body.get("connected")),
                          bool(body.get("competing")), str(body.get("message") or ""))

    def session_state(self) -> SessionState:
        """The gateway's session state; never logs in and never raises for a missing session."""
        try:
            return self.auth_status().state
        except BrokerNotReady:
            return SessionState.NO_SESSION
        except BrokerUnavailable as e:
            cause = e.__cause__
            if isinstance(cause, requests.exceptions.ConnectTimeout) or (
                    isinstance(cause, requests.exceptions.ConnectionError)
                    and any(k in str(cause) for k in ("NewConnectionError", "Connection refused"))):
                return SessionState.NOT_RUNNING     # nothing listens: the gateway process is down
            raise

    def tickle(self) -> dict[str, Any]:
        """Keep the session alive (call about once a minute)."""
        body: dict[str, Any] = self._request("POST", "/tickle")
        return body

    def init_brokerage_session(self) -> AuthStatus:
        """Open the trading session after an SSO login (takes over a competing one)."""
        self._request("POST", "/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
        return self.auth_status()

    def logout(self) -> None:
        self._request("POST", "/logout")

    # -- accounts and contracts ----------------------------------------------------------------
    def accounts(self) -> list[str]:
        """`/iserver/accounts`: IB requires this call before any order call of a session."""
        body = self._request("GET", "/iserver/accounts")
        return [str(a) for a in body.get("accounts", []) if a != "All"]

    def prepare(self, account_id: str | None) -> str:
        """Accounts call, account check and message suppression; returns the account to trade."""
        accounts = self.accounts()
        if account_id is not None and account_id not in accounts:
            raise BrokerError(f"account {account_id} is not among this login's accounts {accounts}",
                              account=self.label)
        if not accounts:
            raise BrokerError("the login has no accounts", account=self.label)
        if self.suppress:
            log.info("IB is told to confirm %s without asking (suppress_message_ids)", ",".join(self.suppress))
            self._request("POST", "/iserver/questions/suppress", json={"messageIds": self.suppress})
        return account_id or accounts[0]

    def stocks(self, symbols: Iterable[str]) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "/trsrv/stocks", params={"symbols": ",".join(symbols)})
        return body

    # -- orders --------------------------------------------------------------------------------
    def place_order(self, account: str, ticket: Mapping[str, Any], *, confirm: Collection[str] = ()) -> Placement:
        """Place one order and answer its questions: yes only when all of a question's ids are in `confirm`.

        Raises:
            OrderQuestionRefused: a question not allowed by `confirm`; IB was told no and discarded the order.
            OrderRejected: IB refused the order (AlreadyPlaced: its cOID is registered already).
        """
        coid = ticket.get("cOID")
        result = self._request("POST", f"/iserver/account/{account}/orders", json={"orders": [dict(ticket)]},
                               order=True)
        confirmed: list[Question] = []
        for _ in range(MAX_QUESTIONS):
            first = result[0] if isinstance(result, list) and result else {}
            if "order_id" in first:
                return Placement(str(first["order_id"]), str(first.get("order_status") or ""), tuple(confirmed))
            if not ("id" in first and "message" in first):
                raise BrokerUnavailable(f"unexpected answer to an order: {str(result)[:200]}", account=self.label)
            question = Question(str(first["id"]), tuple(str(m) for m in first.get("messageIds") or ()),
                                _plain(" ".join(str(m) for m in first.get("message") or ())))
            ids = ",".join(question.message_ids) or "(no id)"
            if not question.message_ids or not set(question.message_ids) <= set(confirm):
                self._refuse(question, coid, confirm)
            log.info("IB asked %s about cOID %s, confirmed (listed in confirm_message_ids): %s", ids, coid,
                     question.text)
            confirmed.append(question)
            result = self._request("POST", f"/iserver/reply/{question.reply_id}", json={"confirmed": True},
                                   order=True)
        raise OrderRejected(f"IB asked more than {MAX_QUESTIONS} questions about order {coid}", account=self.label)

    def _refuse(self, question: Question, coid: object, allowed: Collection[str]) -> NoReturn:
        """Answer no (IB discards the order), then raise OrderQuestionRefused with the question's text."""
        ids = ",".join(question.message_ids) or "(no id)"
        text = question.text
        log.warning("IB asked %s about cOID %s, answered NO (not in confirm_message_ids): %s", ids, coid, text)
        try:
            self._request("POST", f"/iserver/reply/{question.reply_id}", json={"confirmed": False}, order=True)
        except OrderRejected:
            pass            # IB's answer to a "no" ("... has been discarded") carries nothing we need
        except BrokerError as e:
            # An unanswered question leaves the order untransmitted; IB drops it with the next order.
            log.warning("IB did not take the 'no' to %s about cOID %s: %s", ids, coid, e)
        listed = f"confirm_message_ids: {', '.join(sorted(allowed))}" if allowed else "no confirm_message_ids"
        raise OrderQuestionRefused(
            f"order {coid} not placed: IB asked {ids} and minitrade answered no ({listed}): \"{text}\". "
            f"If this order is what you want, add {ids} to this broker's confirm_message_ids in "
            "minitrade.yaml; the next run places it again", account=self.label, message_ids=question.message_ids,
            question=text)

    def live_orders(self, account: str | None = None) -> list[dict[str, Any]]:
        """Orders of the current session/day. The first call of a session is a pre-flight (IB quirk)."""
        params = {"accountId": account} if account else None
        if not self._orders_primed:
            self._request("GET", "/iserver/account/orders", params=params)
            self._orders_primed = True
        body = self._request("GET", "/iserver/account/orders", params=params)
        return list(body.get("orders") or []) if isinstance(body, dict) else []

    def order_status(self, order_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", f"/iserver/account/order/status/{order_id}")
        return body

    def cancel_order(self, account: str, order_id: str) -> dict[str, Any]:
        """Cancel an open order; OrderNotFound when IB no longer knows it (filled, cancelled, expired)."""
        try:
            body: dict[str, Any] = self._request("DELETE", f"/iserver/account/{account}/order/{order_id}",
                                                 order=True)
        except OrderRejected as e:  # IB's words, read here at the wire once: the rest goes by type
            if ORDER_GONE in str(e):
                raise OrderNotFound(str(e), account=self.label) from e
            raise
        return body

    def trades(self, days: int = 1) -> list[dict[str, Any]]:
        """Executions of the last `days` (1-7) days."""
        body = self._request("GET", "/iserver/account/trades", params={"days": max(1, min(7, days))})
        return list(body) if isinstance(body, list) else []

    # -- portfolio -----------------------------------------------------------------------------
    def positions(self, account: str) -> list[dict[str, Any]]:
        """Every position, page by page (100 a page), after invalidating the gateway's cache."""
        self._request("POST", f"/portfolio/{account}/positions/invalidate")
        rows: list[dict[str, Any]] = []
        for page in range(100):
            batch = self._request("GET", f"/portfolio/{account}/positions/{page}")
            rows.extend(batch if isinstance(batch, list) else [])
            if not isinstance(batch, list) or len(batch) < 100:
                break
        return rows

    def ledger(self, account: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", f"/portfolio/{account}/ledger")
        return body
