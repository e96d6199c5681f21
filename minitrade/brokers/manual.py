"""The manual broker: orders are shown to a person, who places them wherever they trade.

Submitting an order only marks it SUBMITTED (the person has it: `minitrade orders`, the report and
the orders.pending notification list it); its broker order id is its client id. This adapter never
learns about executions: the person records each one with `minitrade fill ORDER --price P`, which
writes the fill into the store. So `find` knows nothing, `cancel` has nobody to tell (the person
reads the cancelled status) and `fills` is always empty.
"""

from __future__ import annotations

from datetime import datetime

from minitrade.brokers.base import BrokerOrder, SessionState
from minitrade.records import Fill, Order, OrderStatus


class ManualBroker:
    """A `type: manual` broker account of minitrade.yaml."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ManualBroker({self.name!r})"

    def session(self) -> SessionState:
        """Always READY: a person needs no login."""
        return SessionState.READY

    def submit(self, order: Order) -> BrokerOrder:
        """Hand the order to the person; idempotent by nature (nothing leaves this process)."""
        return BrokerOrder(client_id=order.client_id, broker_order_id=order.client_id,
                           status=OrderStatus.SUBMITTED, filled_quantity=0.0, remaining_quantity=order.quantity)

    def find(self, client_id: str) -> BrokerOrder | None:
        """None: only the store knows manual orders and their fills."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    def cancel(self, order: Order) -> None:
        """Nothing to call: the order's CANCELLED status in the store is what the person sees."""

    def fills(self, since: datetime | None = None) -> list[Fill]:
        """Empty: manual fills enter the store through `minitrade fill`, not through the adapter."""
        return []
