"""The Client Portal client against the fake gateway over real HTTPS."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from pydantic import ValidationError

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.client import IBClient, Pacing
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
from minitrade.models import IB_CONFIRM_DEFAULT
from minitrade.testing.ib_gateway import FakeGateway

from .conftest import AAPL, make_client, make_spec

ACCOUNT = "DU1234567"


def ticket(coid: str, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {"acctId": ACCOUNT, "conid": AAPL, "cOID": coid, "orderType": "MOC", "tif": "DAY",
                                 "side": "BUY", "ticker": "AAPL", "quantity": 10, "listingExchange": "SMART"}
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(("state", "expected"), [
    pytest.param("no_session", SessionState.NO_SESSION, id="no-session"),
    pytest.param("2fa_pending", SessionState.NO_SESSION, id="2fa-pending"),
    pytest.param("sso_only", SessionState.NO_SESSION, id="sso-without-brokerage-session"),
    pytest.param("authenticated", SessionState.AUTHENTICATED, id="authenticated"),
    pytest.param("competing", SessionState.COMPETING, id="competing"),
    pytest.param("expired", SessionState.EXPIRED, id="expired"),
])
def test_session_state_reads_every_auth_state_without_logging_in(gateway: FakeGateway, client: IBClient,
                                                                  state: str, expected: SessionState) -> None:
    gateway.set_state(state)
    assert client.session_state() is expected
    assert not any(path.startswith("/sso/Login") for _, path, _ in gateway.requests)


def test_session_state_is_not_running_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with IBClient(f"https://localhost:{port}", pacing=Pacing.off(), sleep=lambda s: None) as c:
        assert c.session_state() is SessionState.NOT_RUNNING


def test_certificate_is_checked_against_the_pinned_ca(gateway: FakeGateway) -> None:
    unpinned = make_spec(gateway, gateway={"url": gateway.url, "verify_tls": True})
    with make_client(unpinned) as c, pytest.raises(BrokerUnavailable, match="ca_cert"):
        c.session_state()
    insecure = make_spec(gateway, gateway={"url": gateway.url, "verify_tls": False})
    with make_client(insecure) as c:
        assert c.session_state() is SessionState.AUTHENTICATED


@pytest.mark.parametrize(("fault", "error", "text"), [
    pytest.param("500", BrokerUnavailable, "500", id="500"),
    pytest.param("503", BrokerUnavailable, "503", id="503"),
    pytest.param("429", RateLimited, "rate limited", id="429"),
    pytest.param("401", BrokerNotReady, "minitrade ib login ib-test", id="401"),
    pytest.param("html", BrokerUnavailable, "not JSON", id="html-page"),
    pytest.param("malformed", BrokerUnavailable, "not JSON", id="malformed-json"),
    pytest.param("drop_before", BrokerUnavailable, "connection", id="dropped"),
])
def test_wire_errors_map_to_broker_errors(gateway: FakeGateway, client: IBClient, fault: str,
                                          error: type[Exception], text: str) -> None:
    gateway.inject("POST", "/tickle", fault)
    with pytest.raises(error, match=text) as caught:
        client.tickle()
    assert caught.value.account == "ib-test"  # type: ignore[attr-defined]


def test_no_session_answered_with_status_200_is_not_ready(gateway: FakeGateway, client: IBClient) -> None:
    gateway.set_state("no_session")
    gateway.no_session_as_200 = True
    with pytest.raises(BrokerNotReady):
        client.tickle()


def test_errors_keep_their_cause(gateway: FakeGateway, client: IBClient) -> None:
    gateway.inject("POST", "/tickle", "drop_before")
    with pytest.raises(BrokerUnavailable) as caught:
        client.tickle()
    assert caught.value.__cause__ is not None


def test_reads_are_retried_after_a_transient_failure(gateway: FakeGateway, client: IBClient) -> None:
    gateway.inject("GET", "/iserver/accounts", "503", "drop_before")
    assert client.accounts() == [ACCOUNT]
    assert sum(1 for m, p, _ in gateway.requests if p == "/iserver/accounts") == 3


def test_order_posts_are_never_retried_blindly(gateway: FakeGateway, client: IBClient) -> None:
    client.prepare(None)
    gateway.inject("POST", r"/iserver/account/.*/orders", "503")
    with pytest.raises(BrokerUnavailable):
        client.place_order(ACCOUNT, ticket("c-1"))
    assert gateway.order_posts() == 1 and gateway.orders == []


def test_orders_need_the_accounts_call_first(client: IBClient) -> None:
    with pytest.raises(OrderRejected, match="accounts"):
        client.place_order(ACCOUNT, ticket("c-1"))


def test_confirmation_questions_are_answered_one_by_one(gateway: FakeGateway, client: IBClient,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    gateway.questions = ["o354", "o10151"]
    client.prepare(None)
    with caplog.at_level(logging.INFO, logger="minitrade.brokers.ib.client"):
        ack = client.place_order(ACCOUNT, ticket("c-1"), confirm=IB_CONFIRM_DEFAULT)
    assert [q.message_ids for q in ack.confirmed] == [("o354",), ("o10151",)]
    assert "Market orders may execute" in ack.confirmed[1].text and "<h4>" not in ack.confirmed[1].text
    replies = [body for m, p, body in gateway.requests if p.startswith("/iserver/reply/")]
    assert replies == [{"confirmed": True}, {"confirmed": True}]
    assert gateway.answers == [("o354", True), ("o10151", True)]
    assert [o.coid for o in gateway.orders] == ["c-1"] and ack.order_id == str(gateway.orders[0].order_id)
    confirmed = [r for r in caplog.records if "confirmed" in r.getMessage()]
    assert [r.levelno for r in confirmed] == [logging.INFO, logging.INFO]
    assert "o354" in confirmed[0].getMessage() and "without market data" in confirmed[0].getMessage()


def test_suppressed_message_ids_are_never_asked(gateway: FakeGateway) -> None:
    gateway.questions = ["o163", "o10151"]
    spec = make_spec(gateway, confirm_message_ids=["o163", "o10151"], suppress_message_ids=["o163", "o10151"])
    with make_client(spec) as c:
        c.prepare(None)
        c.place_order(ACCOUNT, ticket("c-1"))       # nothing may be confirmed here: IB must not ask
    assert gateway.suppressed == {"o163", "o10151"} and len(gateway.orders) == 1 and gateway.answers == []


def test_suppressing_an_id_that_may_not_be_confirmed_is_a_config_error(gateway: FakeGateway) -> None:
    with pytest.raises(ValidationError, match="o451 would be confirmed without being asked"):
        make_spec(gateway, suppress_message_ids=["o451"])


@pytest.mark.parametrize("question", ["o451", "o163", "o383", "o2137"])
def test_a_question_not_on_the_confirm_list_is_answered_no_and_the_order_discarded(
        gateway: FakeGateway, client: IBClient, question: str, caplog: pytest.LogCaptureFixture) -> None:
    gateway.questions = ["o354", question]
    client.prepare(None)
    with pytest.raises(OrderQuestionRefused, match=question) as caught:
        client.place_order(ACCOUNT, ticket("c-1"), confirm=IB_CONFIRM_DEFAULT)
    assert caught.value.message_ids == (question,) and "Are you sure" in caught.value.question
    assert caught.value.question in str(caught.value) and "confirm_message_ids" in str(caught.value)
    assert gateway.answers == [("o354", True), (question, False)] and gateway.orders == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert question in warning.getMessage() and "NO" in warning.getMessage()


def test_the_value_limit_question_quotes_the_orders_value(gateway: FakeGateway, client: IBClient) -> None:
    gateway.value_limit = 1000.0            # 10 AAPL at 190 is 1,900 USD
    client.prepare(None)
    with pytest.raises(OrderQuestionRefused, match=r"value estimate of 1,900.00 USD exceeds the Total Value Limit"):
        client.place_order(ACCOUNT, ticket("c-1"), confirm=IB_CONFIRM_DEFAULT)
    client.place_order(ACCOUNT, ticket("c-2", quantity=5), confirm=())     # 950 USD: not asked
    assert [o.coid for o in gateway.orders] == ["c-2"]


def test_without_a_confirm_list_every_question_is_answered_no(gateway: FakeGateway, client: IBClient) -> None:
    gateway.questions = ["o10151"]
    client.prepare(None)
    with pytest.raises(OrderQuestionRefused):
        client.place_order(ACCOUNT, ticket("c-1"))
    assert gateway.answers == [("o10151", False)] and gateway.orders == []


def test_no_bridge_is_a_disconnect_never_a_rejection(gateway: FakeGateway, client: IBClient) -> None:
    client.prepare(None)
    gateway.inject("POST", r"/iserver/account/.*/orders", "no_bridge")
    with pytest.raises(BrokerDisconnected, match="no link to IB") as caught:
        client.place_order(ACCOUNT, ticket("c-1"))
    assert isinstance(caught.value, BrokerNotReady) and not isinstance(caught.value, OrderRejected)
    assert gateway.orders == []
    gateway.set_bridge(False)
    with pytest.raises(BrokerDisconnected):
        client.live_orders(ACCOUNT)
    gateway.set_bridge(True)
    client.place_order(ACCOUNT, ticket("c-1"))
    assert [o.coid for o in gateway.orders] == ["c-1"]


def test_a_registered_client_id_is_reported_as_already_placed(client: IBClient) -> None:
    client.prepare(None)
    client.place_order(ACCOUNT, ticket("c-1"))
    with pytest.raises(AlreadyPlaced, match="c-1"):
        client.place_order(ACCOUNT, ticket("c-1"))


def test_an_order_ib_refuses_is_rejected_with_its_text(client: IBClient) -> None:
    client.prepare(None)
    with pytest.raises(OrderRejected, match="Invalid time-in-force for at-the-closing order"):
        client.place_order(ACCOUNT, ticket("c-1", tif="GTC"))


def test_an_account_outside_the_login_is_refused(client: IBClient) -> None:
    with pytest.raises(BrokerError, match="U999"):
        client.prepare("U999")


def test_live_orders_survive_the_empty_first_call(gateway: FakeGateway, client: IBClient) -> None:
    client.prepare(None)
    client.place_order(ACCOUNT, ticket("c-1"))
    assert [row["order_ref"] for row in client.live_orders(ACCOUNT)] == ["c-1"]


def test_positions_are_read_page_by_page(gateway: FakeGateway, client: IBClient) -> None:
    gateway.book.positions = {1000 + i: (float(i + 1), 10.0) for i in range(150)}
    rows = client.positions(ACCOUNT)
    assert len(rows) == 150
    assert [p for m, p, _ in gateway.requests if "/positions/" in p and m == "GET"] == [
        f"/portfolio/{ACCOUNT}/positions/0", f"/portfolio/{ACCOUNT}/positions/1"]


def test_ledger_reports_cash_per_currency(client: IBClient) -> None:
    ledger = client.ledger(ACCOUNT)
    assert ledger["USD"]["cashbalance"] == 100_000.0 and "BASE" in ledger


def test_documented_pacing_spaces_calls_to_paced_endpoints(gateway: FakeGateway) -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with make_client(make_spec(gateway), pacing=Pacing(), sleep=sleep, clock=lambda: now[0]) as c:
        c.prepare(None)
        c.live_orders(ACCOUNT)          # pre-flight + real call: IBKR allows one per 5 s
    assert slept and max(slept) == pytest.approx(5.0)


def test_paced_client_never_trips_the_gateways_limits(gateway: FakeGateway) -> None:
    gateway.pacing = True       # the fake answers 429 to calls closer than IBKR's documented limits
    with make_client(make_spec(gateway), pacing=Pacing(), sleep=time.sleep) as c:
        c.tickle()
        c.tickle()              # 1 per second
    assert gateway.book.orders == []


def test_cancelling_an_order_ib_does_not_know_is_order_not_found(client: IBClient) -> None:
    account = client.accounts()[0]
    with pytest.raises(OrderNotFound, match="doesn't exist"):
        client.cancel_order(account, "987654321")
