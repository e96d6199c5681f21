"""Observed state: frozen records of what happened (orders, fills, ticks, runs) and their enums."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from minitrade.models import OrderType


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderStatus(StrEnum):
    """Life of an order. PENDING_SUBMIT is written before any call to the broker."""

    PENDING_SUBMIT = "PENDING_SUBMIT"
    HELD = "HELD"              # broker not logged in; waits for `minitrade ib login`
    SUBMITTED = "SUBMITTED"    # the broker has it (manual: shown to the person)
    PARTIAL = "PARTIAL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"        # no longer valid for its entry type (a TOC after the close)
    REHEARSAL = "REHEARSAL"    # decided by a run at a time that is not the present: never sent, never filled

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.PENDING_SUBMIT, OrderStatus.HELD, OrderStatus.SUBMITTED,
                        OrderStatus.PARTIAL)


class RunStatus(StrEnum):
    """How a run ended."""

    FINISHED = "FINISHED"
    FAILED = "FAILED"


class ApplyOutcome(StrEnum):
    """What an attempt to apply a commit (or working tree) came to."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class TickStatus(StrEnum):
    STARTED = "STARTED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class OrderIntent:
    """What a strategy decided on the last bar: trade `quantity` (> 0) of `ticker` on `side`."""

    ticker: str
    side: Side
    quantity: float
    order_type: OrderType


@dataclass(frozen=True)
class Order:
    """An order as recorded, with its deterministic client id (sent to the broker as cOID)."""

    client_id: str
    plan: str
    run_id: str
    trading_day: date
    ticker: str
    side: Side
    quantity: float
    order_type: OrderType
    broker: str
    status: OrderStatus
    tick_at: datetime | None = None
    broker_order_id: str | None = None
    commit_sha: str | None = None
    plan_digest: str | None = None
    conid: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Fill:
    """An execution against an order: `quantity` > 0 in the order's side."""

    fill_id: str
    client_id: str
    quantity: float
    price: float
    commission: float
    filled_at: datetime
    source: str
