"""The manual broker: always ready, hands the order to the person, learns nothing by itself."""

from __future__ import annotations

from minitrade.brokers.base import Broker, SessionState
from minitrade.brokers.manual import ManualBroker
from minitrade.records import OrderStatus
from tests.orders.conftest import make_order


def test_manual_broker_marks_orders_submitted_under_their_client_id() -> None:
    broker: Broker = ManualBroker("manual")
    order = make_order("AAPL", 7, status=OrderStatus.PENDING_SUBMIT)
    assert broker.session() is SessionState.READY
    placed = broker.submit(order)
    assert (placed.client_id, placed.broker_order_id, placed.status) == (order.client_id, order.client_id,
                                                                         OrderStatus.SUBMITTED)
    assert (placed.filled_quantity, placed.remaining_quantity) == (0.0, 7.0)
    assert broker.submit(order) == placed


def test_manual_broker_knows_no_orders_or_fills_and_cancel_is_harmless() -> None:
    broker = ManualBroker("desk")
    order = make_order()
    broker.cancel(order)
    assert broker.find(order.client_id) is None
    assert broker.fills() == []
    assert broker.name == "desk" and "desk" in repr(broker)
