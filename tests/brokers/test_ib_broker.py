"""IBBroker: idempotent submission by client id under every fault, lookups, fills, cancels, money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.broker import IBBroker
from minitrade.errors import (
    BrokerDisconnected,
    BrokerNotReady,
    BrokerUnavailable,
    MalformedResponse,
    OrderQuestionRefused,
    OrderRejected,
)
from minitrade.models import OrderType
from minitrade.records import OrderStatus, Side
from minitrade.testing.ib_gateway import FakeGateway

from .conftest import AAPL, PRE_OPEN, SPY, make_order

ORDER_POSTS = r"/iserver/account/.*/orders"


@pytest.mark.parametrize(("order_type", "at", "wire"), [
    pytest.param(OrderType.TOC, PRE_OPEN, ("MOC", "DAY"), id="TOC-market-on-close"),
    pytest.param(OrderType.TOO, PRE_OPEN, ("MKT", "OPG"), id="TOO-market-on-open"),
    pytest.param(OrderType.TRG, PRE_OPEN, ("MKT", "DAY"), id="TRG-market"),
])
def test_entry_types_become_ib_order_types(gateway: FakeGateway, broker: IBBroker, order_type: OrderType,
                                           at: datetime, wire: tuple[str, str]) -> None:
    gateway.set_time(at)
    placed = broker.submit(make_order(order_type=order_type))
    (order,) = gateway.orders
    assert (order.order_type, order.tif) == wire
    assert order.coid == "plan1-20261125-1500-AAPL-0" and placed.broker_order_id == str(order.order_id)
    assert placed.status is OrderStatus.SUBMITTED and placed.remaining_quantity == 10


def test_submitting_the_same_order_twice_places_it_once(gateway: FakeGateway, broker: IBBroker) -> None:
    first = broker.submit(make_order())
    again = broker.submit(make_order())
    assert len(gateway.orders) == 1 and again.broker_order_id == first.broker_order_id


@pytest.mark.parametrize("fault", [
    pytest.param("drop_after", id="connection-dropped-after-the-order-was-stored"),
    pytest.param("latency:2.5", id="timeout-after-the-order-was-stored"),
    pytest.param("drop_before", id="connection-dropped-before-the-order-arrived"),
    pytest.param("503", id="gateway-503"),
    pytest.param("500", id="gateway-500"),
])
def test_a_failed_send_is_looked_up_before_any_retry_and_placed_exactly_once(
        gateway: FakeGateway, broker: IBBroker, fault: str) -> None:
    gateway.inject("POST", ORDER_POSTS, fault)
    placed = broker.submit(make_order())
    assert [o.coid for o in gateway.orders] == ["plan1-20261125-1500-AAPL-0"]
    assert placed.broker_order_id == str(gateway.orders[0].order_id)
    stored_on_first_send = fault in ("drop_after", "latency:2.5")
    assert gateway.order_posts() == (1 if stored_on_first_send else 2)


def test_a_dropped_confirmation_reply_is_reconciled_not_resent(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.questions = ["o354"]
    gateway.inject("POST", r"/iserver/reply/.*", "drop_after")
    broker.submit(make_order())
    assert len(gateway.orders) == 1 and gateway.order_posts() == 1


def test_a_second_failure_raises_unavailable_and_never_a_third_send(gateway: FakeGateway,
                                                                    broker: IBBroker) -> None:
    gateway.inject("POST", ORDER_POSTS, "drop_before", "drop_before", "drop_before")
    with pytest.raises(BrokerUnavailable):
        broker.submit(make_order())
    assert gateway.order_posts() == 2 and gateway.orders == []


@pytest.mark.parametrize("state", ["no_session", "expired", "competing", "sso_only"])
def test_without_a_live_session_nothing_is_sent(gateway: FakeGateway, broker: IBBroker, state: str) -> None:
    gateway.set_state(state)
    with pytest.raises(BrokerNotReady, match="minitrade ib login ib-test"):
        broker.submit(make_order())
    assert gateway.order_posts() == 0
    assert not any(p.startswith("/sso/Login") for _, p, _ in gateway.requests)


def test_session_expiring_mid_submission_is_not_ready(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.inject("POST", ORDER_POSTS, "401")
    with pytest.raises(BrokerNotReady):
        broker.submit(make_order())
    assert gateway.orders == []


def test_an_order_ib_refuses_is_rejected(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.set_time(datetime(2026, 11, 25, 20, 55, tzinfo=UTC))     # 15:55 New York: past the MOC cutoff
    with pytest.raises(OrderRejected, match="cutoff"):
        broker.submit(make_order())


def test_an_ambiguous_unpinned_symbol_is_refused_with_its_choices(gateway: FakeGateway, broker: IBBroker) -> None:
    with pytest.raises(OrderRejected, match=r"AAPL is ambiguous.*265598 NASDAQ US.*493546048 LSEETF"):
        broker.submit(make_order(conid=None))
    assert gateway.order_posts() == 0


def test_an_unambiguous_unpinned_symbol_is_resolved(gateway: FakeGateway, broker: IBBroker) -> None:
    broker.submit(make_order("c-spy", ticker="SPY", conid=None))
    assert gateway.orders[0].conid == SPY


def test_find_knows_nothing_of_an_order_that_never_arrived(broker: IBBroker) -> None:
    assert broker.find("never-sent") is None


def test_market_on_close_fills_at_the_close_and_moves_positions_and_cash(gateway: FakeGateway,
                                                                        broker: IBBroker) -> None:
    cash_before = broker.cash()["USD"]
    broker.submit(make_order(quantity=10))
    gateway.set_time(datetime(2026, 11, 25, 21, 1, tzinfo=UTC))       # just after the close
    found = broker.find("plan1-20261125-1500-AAPL-0")
    assert found is not None and found.status is OrderStatus.FILLED and found.avg_price == 191.5
    (fill,) = broker.fills(since=datetime(2026, 11, 25, tzinfo=UTC))
    assert (fill.client_id, fill.quantity, fill.price, fill.source) == (
        "plan1-20261125-1500-AAPL-0", 10, 191.5, "ib:ib-test")
    assert fill.filled_at == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    (position,) = broker.positions()
    assert (position.conid, position.ticker, position.quantity) == (AAPL, "AAPL", 10)
    assert broker.cash()["USD"] == pytest.approx(cash_before - 1915.0 - fill.commission)


def test_market_on_open_fills_at_the_next_open(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.set_time(datetime(2026, 11, 24, 22, 0, tzinfo=UTC))       # Tuesday evening
    broker.submit(make_order("c-too", order_type=OrderType.TOO, side=Side.SELL, quantity=5))
    gateway.set_time(datetime(2026, 11, 25, 14, 31, tzinfo=UTC))      # Wednesday 09:31
    (fill,) = broker.fills()
    assert fill.price == 189.0 and fill.filled_at == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    assert broker.positions()[0].quantity == -5


def test_fills_before_since_are_left_out(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.set_time(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    broker.submit(make_order("c-trg", order_type=OrderType.TRG))       # fills at the last price, seen next call
    assert [f.price for f in broker.fills()] == [190.0]
    assert broker.fills(since=gateway.now() + timedelta(seconds=1)) == []


def test_cancel_stops_an_open_order_and_ignores_a_filled_one(gateway: FakeGateway, broker: IBBroker) -> None:
    broker.submit(make_order("c-open"))
    broker.cancel(make_order("c-open"))
    gateway.advance(timedelta(seconds=1))
    assert gateway.orders[0].status == "Cancelled"
    broker.submit(make_order("c-now", order_type=OrderType.TRG))
    broker.cancel(make_order("c-now"))                                  # already filled: left alone
    broker.cancel(make_order("c-unknown"))                              # never sent: nothing to do
    assert gateway.orders[1].status == "Filled"
    assert not any(m == "DELETE" and str(gateway.orders[1].order_id) in p for m, p, _ in gateway.requests)


def test_session_reports_the_gateways_state(gateway: FakeGateway, broker: IBBroker) -> None:
    assert broker.session() is SessionState.AUTHENTICATED
    gateway.set_state("competing")
    assert broker.session() is SessionState.COMPETING


def test_keepalive_holds_the_session_and_notices_expiry(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.idle_timeout = timedelta(minutes=5)
    for _ in range(5):
        gateway.advance(timedelta(minutes=4))
        assert broker.keepalive() is SessionState.AUTHENTICATED
    gateway.advance(timedelta(minutes=6))
    assert broker.keepalive() is SessionState.EXPIRED
    with pytest.raises(BrokerNotReady):
        broker.submit(make_order())


def test_orders_refused_while_expired_are_placed_once_after_login(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.set_state("expired")
    with pytest.raises(BrokerNotReady):
        broker.submit(make_order())
    gateway.set_state("authenticated")          # what `minitrade ib login` achieves
    broker.submit(make_order())
    broker.submit(make_order())                 # a second pass over the same held order
    assert len(gateway.orders) == 1


def test_a_client_id_reserved_while_a_question_is_pending_still_gives_one_order(gateway: FakeGateway,
                                                                                broker: IBBroker) -> None:
    gateway.coid_at_first_post = True
    gateway.questions = ["o354"]                # confirmed by default
    gateway.inject("POST", r"/iserver/reply/.*", "drop_before")
    with pytest.raises(BrokerUnavailable, match="not visible yet"):
        broker.submit(make_order())             # IB holds the id but never got the answer: wait, never resend
    assert gateway.orders == [] and gateway.order_posts() == 2


def test_order_status_reads_one_order(gateway: FakeGateway, broker: IBBroker) -> None:
    placed = broker.submit(make_order())
    status = broker.client.order_status(placed.broker_order_id)
    assert status["order_status"] == "PreSubmitted" and status["order_ref"] == "plan1-20261125-1500-AAPL-0"


def test_split_executions_are_separate_fills_of_one_order(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.book.split_fills = True
    broker.submit(make_order(quantity=11))
    gateway.set_time(datetime(2026, 11, 25, 21, 1, tzinfo=UTC))
    fills = broker.fills()
    assert [f.quantity for f in fills] == [5, 6] and len({f.fill_id for f in fills}) == 2
    assert {f.client_id for f in fills} == {"plan1-20261125-1500-AAPL-0"}
    assert broker.positions()[0].quantity == 11


def test_find_falls_back_to_trades_once_live_orders_forget_the_order(gateway: FakeGateway,
                                                                     broker: IBBroker) -> None:
    gateway.book.split_fills = True
    broker.submit(make_order(quantity=10))
    gateway.set_time(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))       # two days later
    assert broker.client.live_orders("DU1234567") == []
    found = broker.find("plan1-20261125-1500-AAPL-0")
    assert found is not None and (found.status, found.filled_quantity, found.avg_price) == (
        OrderStatus.FILLED, 10, 191.5)


def test_a_value_limit_question_is_refused_and_nothing_is_placed(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.value_limit = 1000.0            # IB's Total Value Limit: 10 AAPL at 190 is above it
    with pytest.raises(OrderQuestionRefused, match="Total Value Limit") as caught:
        broker.submit(make_order())
    assert caught.value.message_ids == ("o451",) and gateway.answers == [("o451", False)]
    assert gateway.orders == [] and gateway.order_posts() == 1


def test_a_confirmable_question_is_confirmed_and_noted_on_the_order(gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.questions = ["o354"]
    placed = broker.submit(make_order())
    assert gateway.answers == [("o354", True)] and len(gateway.orders) == 1
    assert placed.note is not None and placed.note.startswith("confirmed IB question o354: You are submitting")


def test_confirm_message_ids_of_the_broker_spec_decide(gateway: FakeGateway) -> None:
    from .conftest import make_client, make_spec

    spec = make_spec(gateway, confirm_message_ids=["o451"])
    gateway.questions = ["o451"]
    b = IBBroker("ib-test", spec, client=make_client(spec))
    try:
        b.submit(make_order())
    finally:
        b.close()
    assert gateway.answers == [("o451", True)]


def test_no_bridge_on_the_order_post_holds_and_the_order_goes_once_when_the_link_is_back(
        gateway: FakeGateway, broker: IBBroker) -> None:
    gateway.inject("POST", ORDER_POSTS, "no_bridge")
    with pytest.raises(BrokerDisconnected):
        broker.submit(make_order())
    assert gateway.orders == []
    broker.submit(make_order())
    assert [o.coid for o in gateway.orders] == ["plan1-20261125-1500-AAPL-0"] and gateway.order_posts() == 2


def test_a_lost_answer_whose_lookup_meets_no_bridge_stays_unknown_not_held(gateway: FakeGateway,
                                                                          broker: IBBroker) -> None:
    gateway.inject("POST", ORDER_POSTS, "drop_after")       # stored at IB, the answer lost
    gateway.inject("GET", "/iserver/account/orders", "no_bridge")
    with pytest.raises(BrokerUnavailable, match="looked up by client id before anything is sent again"):
        broker.submit(make_order())
    found = broker.find("plan1-20261125-1500-AAPL-0")
    assert found is not None and len(gateway.orders) == 1 and gateway.order_posts() == 1


@pytest.mark.parametrize(("in_post", "status"), [
    pytest.param(False, OrderStatus.SUBMITTED, id="filled-on-a-later-request"),
    pytest.param(True, OrderStatus.FILLED, id="filled-inside-the-post"),
])
def test_market_orders_fill_after_the_post_unless_asked_to_fill_inside_it(
        gateway: FakeGateway, broker: IBBroker, in_post: bool, status: OrderStatus) -> None:
    gateway.fill_in_post = in_post
    placed = broker.submit(make_order("c-trg", order_type=OrderType.TRG))
    assert placed.status is status
    found = broker.find("c-trg")                            # the next request sees the execution
    assert found is not None and found.status is OrderStatus.FILLED and found.avg_price == 190.0


@pytest.mark.parametrize("field", ["execution_id", "size", "price", "trade_time_r"])
def test_an_execution_row_missing_a_field_is_malformed_never_a_guess(gateway: FakeGateway, broker: IBBroker,
                                                                     field: str) -> None:
    gateway.set_time(datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    broker.submit(make_order("c-trg", order_type=OrderType.TRG))
    assert [f.price for f in broker.fills()] == [190.0]
    gateway.inject("GET", r"/iserver/account/trades", f"strip:{field}")
    if field == "trade_time_r":  # the readable trade_time stands in for it, as in IB's older rows
        assert [f.price for f in broker.fills()] == [190.0]
        return
    with pytest.raises(MalformedResponse, match=f"without a readable '{field}'"):
        broker.fills()
    assert [f.price for f in broker.fills()] == [190.0], "asked again, the answer is read"


def test_a_position_row_missing_its_quantity_is_malformed(gateway: FakeGateway, broker: IBBroker) -> None:
    broker.submit(make_order(quantity=10))
    gateway.set_time(datetime(2026, 11, 25, 21, 1, tzinfo=UTC))
    broker.find("plan1-20261125-1500-AAPL-0")
    gateway.inject("GET", r"/portfolio/.*/positions/0", "strip:position")
    with pytest.raises(MalformedResponse, match="without a readable 'position'"):
        broker.positions()
