"""Recording what really executed: a person's manual fills, checked against the order book.

A fill moves money, so every doubt is a refusal with the reason and the way out: an unknown
order id (with the closest open ids), an order that can no longer fill (cancelled, rejected,
expired, already filled), a quantity above what remains, a price or quantity that is not a
positive number. A fill and its order's new status are written in one transaction.
"""

from __future__ import annotations

import difflib
import math
from datetime import UTC, datetime, timedelta

import duckdb

from minitrade.errors import FillRefused
from minitrade.models import Plan
from minitrade.records import Fill, Order, OrderStatus, Side
from minitrade.runner.orders import QUANTITY_TOLERANCE, actual_book
from minitrade.store import Store
from minitrade.store import orders as order_sql

FILL_TIME_SLACK = timedelta(minutes=1)


def record_fill(store: Store, client_id: str, *, price: float, quantity: float | None = None,
                commission: float = 0.0, at: datetime | None = None, source: str = "manual",
                plan: Plan | None = None) -> Fill:
    """Record an execution of order `client_id` and move the order to PARTIAL or FILLED.

    `quantity` defaults to what remains of the order; `at` to now. With the order's applied `plan`,
    a SELL fill that would take the plan's position below zero is refused unless the plan has
    `allow_short` (its position is its initial one plus its recorded fills). The fill id is
    ``<client_id>#<n>`` (n = 1 for the order's first fill) and the fill carries the commit and
    plan digest of the order it executes.

    Example: ``record_fill(store, "sma-aapl.20261125.204500Z.AAPL.0", price=231.5)``
    """
    with store.transaction() as con:
        order = _fillable(con, client_id)
        earlier = order_sql.fills_of(con, client_id=client_id)
        done, count = sum(f.quantity for f in earlier), len(earlier)
        remaining = order.quantity - done
        qty = remaining if quantity is None else float(quantity)
        _check_numbers(order, price=price, quantity=qty, commission=commission, remaining=remaining)
        when = at or datetime.now(UTC)
        _check_time(order, when)
        if plan is not None:
            _check_no_short(con, plan, order, qty)
        fill = Fill(fill_id=f"{client_id}#{count + 1}", client_id=client_id, quantity=qty, price=float(price),
                    commission=float(commission), filled_at=when.astimezone(UTC), source=source)
        order_sql.insert_fill(con, fill, commit_sha=order.commit_sha, plan_digest=order.plan_digest)
        filled = remaining - qty <= QUANTITY_TOLERANCE
        order_sql.set_status(con, client_id, OrderStatus.FILLED if filled else OrderStatus.PARTIAL)
        return fill


def _fillable(con: duckdb.DuckDBPyConnection, client_id: str) -> Order:
    order = order_sql.get_order(con, client_id)
    if order is None:
        open_ids = [o.client_id for o in order_sql.open_orders(con)]
        close = difflib.get_close_matches(client_id, open_ids, n=3, cutoff=0.5)
        hint = (f"; did you mean {' or '.join(close)}?" if close
                else f"; open orders: {', '.join(open_ids[:5])}" if open_ids else "; there are no open orders")
        raise FillRefused(f"no order {client_id!r}{hint} (list them with `minitrade orders`)")
    if order.status is OrderStatus.FILLED:
        raise FillRefused(f"order {client_id} is already FILLED; a fill for it is refused", account=order.broker)
    if order.status is OrderStatus.REHEARSAL:
        raise FillRefused(f"order {client_id} was decided by a rehearsal (a run at a time that was not the "
                          "present) and was never sent; a fill for it is refused", account=order.broker)
    if not order.status.is_open:
        raise FillRefused(f"order {client_id} is {order.status.value}; a fill for it is refused "
                          "(it can no longer execute)", account=order.broker)
    return order


def _check_no_short(con: duckdb.DuckDBPyConnection, plan: Plan, order: Order, quantity: float) -> None:
    if order.side is not Side.SELL or plan.allow_short:
        return
    _, held = actual_book(plan, order_sql.orders_of(con, plan.name), order_sql.fills_of(con, plan.name))
    have = held.get(order.ticker, 0.0)
    if have - quantity < -QUANTITY_TOLERANCE:
        raise FillRefused(f"order {order.client_id}: selling {quantity:g} {order.ticker} would leave plan "
                          f"{plan.name} with {have - quantity:g} (it holds {have:g} by its recorded fills), a short "
                          "the plan does not allow; record the missing BUY fills first, or set `allow_short: true` "
                          "in the plan", account=order.broker)


def _check_time(order: Order, when: datetime) -> None:
    """An execution cannot precede the tick that decided the order (slack for a time typed to the minute)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise FillRefused(f"order {order.client_id}: fill time {when.isoformat()} has no timezone")
    if order.tick_at is not None and when < order.tick_at - FILL_TIME_SLACK:
        raise FillRefused(f"order {order.client_id}: a fill at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC is "
                          f"before the order was decided ({order.tick_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC); "
                          "check --at (a time without offset is the plan's exchange time)", account=order.broker)


def _check_numbers(order: Order, *, price: float, quantity: float, commission: float, remaining: float) -> None:
    name = f"order {order.client_id} ({order.side.value} {order.quantity:g} {order.ticker}, {order.status.value})"
    if not math.isfinite(price) or price <= 0:
        raise FillRefused(f"{name}: price must be a positive number, not {price:g}", account=order.broker)
    if not math.isfinite(quantity) or quantity <= 0:
        raise FillRefused(f"{name}: quantity must be a positive number, not {quantity:g}", account=order.broker)
    if quantity - remaining > QUANTITY_TOLERANCE:
        raise FillRefused(f"{name}: {quantity:g} is more than the {remaining:g} that remain "
                          f"({order.quantity - remaining:g} already filled)", account=order.broker)
    if not math.isfinite(commission) or commission < 0:
        raise FillRefused(f"{name}: commission must be zero or positive, not {commission:g}", account=order.broker)


def record_broker_fills(con: duckdb.DuckDBPyConnection, fills: list[Fill]) -> list[Fill]:
    """Store executions a broker reported (read again every pass) and settle their orders.

    Returns the fills seen for the first time. Executions of orders not in the book (placed by
    hand or by other software) are left out. An order reaches PARTIAL or FILLED by its summed
    fills; a CANCELLED or EXPIRED order keeps its status (what filled before the cancel still counts).
    """
    new: list[Fill] = []
    touched: dict[str, Order] = {}
    for fill in fills:
        order = touched.get(fill.client_id) or order_sql.get_order(con, fill.client_id)
        if order is None:
            continue
        touched[fill.client_id] = order
        if order_sql.insert_fill(con, fill, commit_sha=order.commit_sha, plan_digest=order.plan_digest):
            new.append(fill)
    for client_id, order in touched.items():
        if not order.status.is_open:
            continue
        done = sum(f.quantity for f in order_sql.fills_of(con, client_id=client_id))
        if done <= 0:
            continue
        status = OrderStatus.FILLED if order.quantity - done <= QUANTITY_TOLERANCE else OrderStatus.PARTIAL
        if status is not order.status:
            order_sql.set_status(con, client_id, status)
    return new
