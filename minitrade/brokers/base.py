"""The Broker protocol every broker adapter implements.

Adapters never log in by themselves, never touch the store, and report in `records` types.
Submission must be idempotent by `Order.client_id`: before any retry an adapter asks the broker
whether that id already exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from minitrade.records import Fill, Order, OrderStatus


class SessionState(StrEnum):
    NOT_RUNNING = "not running"      # gateway process down
    NO_SESSION = "no session"        # gateway up, nobody logged in
    AUTHENTICATED = "authenticated"
    COMPETING = "competing"          # another session took over
    EXPIRED = "expired"
    READY = "ready"                  # manual broker: always


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker sees it, matched to ours by `client_id`."""

    client_id: str
    broker_order_id: str
    status: OrderStatus
    filled_quantity: float
    remaining_quantity: float
    avg_price: float | None = None
    note: str | None = None          # what the person should see on the order (e.g. a question confirmed)


class Broker(Protocol):
    name: str

    def session(self) -> SessionState:
        """Session state, without logging in."""
        ...

    def submit(self, order: Order) -> BrokerOrder:
        """Place `order` (idempotent by client id); BrokerNotReady if no session."""
        ...

    def find(self, client_id: str) -> BrokerOrder | None:
        """The broker's view of the order with this client id, or None if it never arrived."""
        ...

    def cancel(self, order: Order) -> None:
        ...

    def fills(self, since: datetime | None = None) -> list[Fill]:
        ...

    def close(self) -> None:
        """Release what the adapter holds (an HTTP session); it is not used afterwards."""
        ...
