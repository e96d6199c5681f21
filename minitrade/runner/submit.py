"""Getting recorded orders to the broker, exactly once.

Orders are recorded PENDING_SUBMIT before any broker call. A broker that is not logged in gets
nothing: the orders are HELD and the person is asked to log in (never a silent login). Before an
order that may have reached the broker is sent again (a crash or timeout left it PENDING_SUBMIT),
the broker is asked for its client id. A held order is sent later only while it is still valid
for its entry type: a TOC order after the close-auction cutoff has expired and is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from minitrade import failpoints
from minitrade.brokers.base import Broker, BrokerOrder, SessionState
from minitrade.errors import BrokerError, BrokerNotReady, BrokerUnavailable, OrderRejected
from minitrade.models import OrderType, Plan
from minitrade.notify import Notifier, messages
from minitrade.records import Fill, Order, OrderStatus
from minitrade.runner.fills import record_broker_fills
from minitrade.runner.orders import orders_to_cancel
from minitrade.runner.suspension import skip_reason
from minitrade.scheduler import CLOSE_AUCTION_CUTOFF
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import suspensions as suspension_sql
from minitrade.store.suspensions import Override
from minitrade.trading_calendar import get_calendar

BrokerFor = Callable[[str], Broker]
READY = (SessionState.READY, SessionState.AUTHENTICATED)
SENT = (OrderStatus.SUBMITTED, OrderStatus.PARTIAL, OrderStatus.FILLED)  # at the broker
log = logging.getLogger("minitrade.orders")


def expiry(order: Order, plan: Plan) -> datetime:
    """The moment after which `order` must no longer be sent, by its entry type."""
    cal = get_calendar(plan.calendar)
    day = order.trading_day
    if order.order_type is OrderType.TOC:
        return cal.session(day).close - CLOSE_AUCTION_CUTOFF
    following = cal.next_session_day(day + timedelta(days=1))
    if following is None:
        return cal.session(day).close
    nxt = cal.session(following)
    return nxt.open if order.order_type is OrderType.TOO else nxt.close


def _set(store: Store, order: Order, status: OrderStatus, *, broker_order_id: str | None = None,
         note: str | None = None, clear_note: bool = False, later: list[Order] | None = None) -> Order:
    """Record the order's new status now, or (given `later`) add it there for the caller to write."""
    if later is not None:
        updated = order_sql.with_status(order, status, broker_order_id=broker_order_id, note=note,
                                        clear_note=clear_note)
        later.append(updated)
    else:
        with store.transaction() as con:
            updated = order_sql.set_status(con, order.client_id, status, broker_order_id=broker_order_id,
                                           note=note, clear_note=clear_note)
    log.log(logging.WARNING if status in (OrderStatus.REJECTED, OrderStatus.EXPIRED) else logging.INFO,
            "order %s %s -> %s%s", order.client_id, order.status.value, status.value, f": {note}" if note else "",
            extra={"plan": order.plan})
    return updated


def _ready(broker: Broker) -> tuple[bool, str, bool]:
    """(ready, why not, whether a login would help: not when the gateway is down or failing)."""
    try:
        state = broker.session()
    except BrokerUnavailable as e:
        return False, str(e), False
    except BrokerError as e:
        return False, str(e), True
    return state in READY, f"broker session: {state.value}", state is not SessionState.NOT_RUNNING


def _send(store: Store, broker: Broker, order: Order, later: list[Order] | None = None) -> Order:
    """Send one order; a lost answer leaves it PENDING_SUBMIT for the next lookup, never resent blindly."""
    try:
        placed: BrokerOrder = broker.submit(order)
    except OrderRejected as e:
        return _set(store, order, OrderStatus.REJECTED, note=str(e), later=later)
    except BrokerNotReady as e:
        return _set(store, order, OrderStatus.HELD, note=str(e), later=later)
    except BrokerUnavailable as e:
        return _set(store, order, OrderStatus.PENDING_SUBMIT, note=f"outcome unknown, will look up: {e}", later=later)
    failpoints.hit("submit-sent")
    # the broker's word on the order stands; "not yet sent" states are ours alone
    status = OrderStatus.SUBMITTED if placed.status in (OrderStatus.PENDING_SUBMIT, OrderStatus.HELD) \
        else placed.status
    # the order reached the broker: a hold reason ("broker session: expired") is no longer true;
    # a decision's note (an order clipped to the actual book) stays, and the broker's (a question confirmed) joins it
    held = order.status is OrderStatus.HELD
    note = "; ".join(n for n in (None if held else order.note, placed.note) if n) or None
    return _set(store, order, status, broker_order_id=placed.broker_order_id, note=note, clear_note=held,
                later=later)


def submit_new(store: Store, plan: Plan, orders: list[Order], brokers: BrokerFor, *,
               notify: Notifier | None, now: datetime, suspended: Mapping[str, Override] | None = None,
               later: list[Order] | None = None) -> list[Order]:
    """Submit a run's new orders, or hold them (broker not ready) or park them (trading disabled).

    `suspended` is the plans suspended now, when the caller read them already (a batch of runs, once).
    `later` is only for a broker whose calls never leave this process (manual): the orders' new
    statuses are added there instead of written one transaction each, and the caller writes them
    together (order_sql.save_statuses). A crash before that leaves them PENDING_SUBMIT, and they
    are sent again, which such a broker takes as the first time."""
    if not plan.trading_enabled:
        return [_set(store, o, OrderStatus.CANCELLED, note="trading disabled: recorded, never submitted", later=later)
                for o in orders]
    if suspended is None:
        with store.transaction() as con:
            suspended = suspension_sql.suspended(con)
    paused = suspended.get(plan.name)
    if paused is not None:  # a run started by hand while suspended (the daemon skips the plan's ticks)
        return [_set(store, o, OrderStatus.CANCELLED, note=f"plan {skip_reason(paused)}: "
                     "recorded, never submitted", later=later) for o in orders]
    broker = brokers(plan.broker)
    ready, why, login_helps = _ready(broker)
    if not ready:
        held = [_set(store, o, OrderStatus.HELD, note=why, later=later) for o in orders]
        if notify is not None and not login_helps:
            notify.notify(messages.broker_unavailable(plan.name, held, broker=plan.broker, reason=why))
        else:  # held for want of a session: announced as any held order is (its note is `why`)
            _announce(notify, plan, held)
        return held
    sent = [_send(store, broker, o, later) if now < expiry(o, plan) else
            _set(store, o, OrderStatus.EXPIRED, note=f"{o.order_type.value} order already too late at "
                                                      f"{now:%Y-%m-%d %H:%M %Z}; not sent", later=later)
            for o in orders]
    _announce(notify, plan, sent)
    return sent


def _announce(notify: Notifier | None, plan: Plan, orders: list[Order]) -> None:
    """Tell the person which of `orders` reached the broker, which are held (e.g. a 401 at submit) and
    which the broker rejected (with its reason, e.g. a question minitrade answered no)."""
    if notify is None:
        return
    for order in (o for o in orders if o.status is OrderStatus.REJECTED):
        notify.notify(messages.order_rejected(plan.name, order, broker=plan.broker, reason=order.note or ""))
    done = [o for o in orders if o.status in SENT]
    if done:
        notify.notify(messages.orders_submitted(plan.name, done, broker=plan.broker))
    held = [o for o in orders if o.status is OrderStatus.HELD]
    if held:
        notify.notify(messages.orders_pending(plan.name, held, broker=plan.broker, reason=held[0].note or ""))
        notify.notify(messages.broker_login_needed(plan.broker, plans=[plan.name], held=held))


def resolve_pending(store: Store, plans: dict[str, Plan], brokers: BrokerFor, *, now: datetime,
                    notify: Notifier | None = None) -> list[Order]:
    """Send what is waiting: PENDING_SUBMIT orders (looked up first) and HELD ones, while still valid.

    Called on every daemon pass, after a login and on restart after a crash.
    """
    with store.transaction() as con:
        waiting = order_sql.orders_of(con, None, statuses=[OrderStatus.PENDING_SUBMIT, OrderStatus.HELD])
        paused = suspension_sql.suspended(con)
    out: list[Order] = []
    news: dict[str, list[Order]] = {}  # per plan: orders that went out, or newly held, in this call
    for order in sorted(waiting, key=lambda o: o.client_id):
        plan = plans.get(order.plan)
        if plan is None or not plan.trading_enabled or order.plan in paused:  # suspended: not sent, not judged
            continue
        if now >= expiry(order, plan):
            expired = _set(store, order, OrderStatus.EXPIRED,
                           note=f"{order.order_type.value} order no longer valid at {now:%Y-%m-%d %H:%M %Z}")
            out.append(expired)
            if notify is not None:
                notify.notify(messages.order_expired(plan.name, expired, expired.note or "too late"))
            continue
        broker = brokers(plan.broker)
        if not _ready(broker)[0]:
            continue
        if order.status is OrderStatus.PENDING_SUBMIT:
            known = broker.find(order.client_id)
            if known is not None:
                out.append(_set(store, order, known.status, broker_order_id=known.broker_order_id,
                                note="found at the broker by client id; not resent"))
                news.setdefault(plan.name, []).append(out[-1])
                continue
        out.append(_send(store, broker, order))
        if out[-1].status is not order.status:  # an order held again is no news (it was announced)
            news.setdefault(plan.name, []).append(out[-1])
    for name, changed in news.items():
        _announce(notify, plans[name], changed)
    return out


def cancel_open(store: Store, plan: Plan, brokers: BrokerFor, *, reason: str,
                keep_tick: datetime | None = None) -> list[Order]:
    """Cancel this plan's open orders (incremental mode, step 3): at the broker first, then here.

    Orders of `keep_tick` stand: a rerun of a tick never cancels what that tick placed.
    """
    with store.transaction() as con:
        open_orders = orders_to_cancel(order_sql.orders_of(con, plan.name), plan.name, keep_tick=keep_tick)
    out = []
    broker = brokers(plan.broker) if open_orders else None
    for order in open_orders:
        if broker is not None and order.status in (OrderStatus.SUBMITTED, OrderStatus.PARTIAL):
            broker.cancel(order)
        out.append(_set(store, order, OrderStatus.CANCELLED, note=reason))
    return out


def sync_from_broker(store: Store, plan: Plan, brokers: BrokerFor) -> list[Fill]:
    """Record the broker's executions of this plan's orders and settle their statuses; returns new fills.

    Runs on every pass for plans with orders at a broker (strict and incremental alike), so every
    fill is in DuckDB; incremental mode also needs it before computing actual positions.
    """
    with store.transaction() as con:
        mine = {o.client_id: o for o in order_sql.orders_of(con, plan.name)}
    if not mine or plan.broker not in {o.broker for o in mine.values()}:
        return []
    broker = brokers(plan.broker)
    reported = [f for f in broker.fills() if f.client_id in mine]
    with store.transaction() as con:
        new = record_broker_fills(con, reported)
    for order in mine.values():
        if order.status in (OrderStatus.SUBMITTED, OrderStatus.PARTIAL):
            seen = broker.find(order.client_id)
            if seen is not None and seen.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED,
                                                     OrderStatus.EXPIRED):
                _set(store, order, seen.status, broker_order_id=seen.broker_order_id,
                     note="reported by the broker")
    return new
