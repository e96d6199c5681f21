"""From a run's intents to recorded orders: client ids, the once-per-signal rule, the actual book.

Pure functions, no I/O: the run reads the existing orders and fills, calls these, and writes.

Client ids are deterministic (plan, trading day, tick, ticker, leg), so a run repeated after a
crash produces the same ids and the broker (IB takes them as cOID) or the store refuses a duplicate.

Strict mode replays the whole history every tick, so several ticks of one day see the same
signal, possibly with a different size (a TOC run at 15:00 and again at 15:45 after the price
moved). The first order recorded for a (plan, trading day, ticker) is THE order for that signal;
later ticks record nothing for it. When the later size differs we REFUSE the new size and keep
the first order, with a note saying so, rather than amend it, because:
- the first order may already be at the broker or in the person's hands (manual), partly filled;
  an amendment races with execution and can double the position if the cancel/replace loses;
- IB cannot amend an MOC order after the close-auction cutoff, so amending would work on some
  ticks and not others, a rule nobody can predict;
- the strict replay assumes the order it recorded executed; whatever differs is reconciled by
  the next day's replay from the plan's own history, never by a second order for one signal.
Incremental mode cancels the plan's open orders before it reruns (see `orders_to_cancel`), so its
orders are always new; only an id this very tick already recorded is never written twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from minitrade.models import Mode, Plan
from minitrade.records import Fill, Order, OrderIntent, OrderStatus, Side

MAX_CLIENT_ID = 64          # IB's cOID limit is generous; 64 keeps ids readable in tables and mails
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
QUANTITY_TOLERANCE = 1e-9


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _safe(part: str) -> str:
    """Characters a broker id takes; anything else is replaced and the original hashed in, so ids stay unique."""
    clean = _SAFE.sub("-", part)
    return clean if clean == part else f"{clean}-{_short_hash(part)}"


def client_id(plan: str, trading_day: date, tick_at: datetime, ticker: str, leg: int = 0) -> str:
    """The deterministic client order id, e.g. ``sma-aapl.20261125.204500Z.AAPL.0``.

    The tick time is written in UTC (suffix Z) so one instant gives one id whatever timezone it
    was expressed in. Ids longer than 64 characters shorten the plan name part (keeping a hash of
    the whole name), then the ticker part the same way.

    >>> from datetime import datetime, date, timezone
    >>> client_id("sma-aapl", date(2026, 11, 25), datetime(2026, 11, 25, 20, 45, tzinfo=timezone.utc), "AAPL")
    'sma-aapl.20261125.204500Z.AAPL.0'
    """
    if tick_at.tzinfo is None or tick_at.utcoffset() is None:
        raise ValueError(f"tick time {tick_at.isoformat()} has no timezone: client ids need an instant")
    if leg < 0:
        raise ValueError(f"leg must be >= 0, not {leg}")
    when = f"{trading_day:%Y%m%d}.{tick_at.astimezone(UTC):%H%M%S}Z"
    plan_part, ticker_part = _safe(plan), _safe(ticker)
    tail = f".{when}.{ticker_part}.{leg}"
    if len(plan_part) + len(tail) > MAX_CLIENT_ID:
        plan_part = _shorten(plan, max(9, MAX_CLIENT_ID - len(tail)))
    tail = f".{when}.{ticker_part}.{leg}"
    if len(plan_part) + len(tail) > MAX_CLIENT_ID:
        room = MAX_CLIENT_ID - len(plan_part) - len(f".{when}..{leg}")
        ticker_part = _shorten(ticker, max(9, room))
    return f"{plan_part}.{when}.{ticker_part}.{leg}"[:MAX_CLIENT_ID]


def _shorten(text: str, width: int) -> str:
    """`width` characters: a readable prefix, '~', and a hash of the whole text."""
    keep = max(0, width - 9)
    return f"{_SAFE.sub('-', text)[:keep]}~{_short_hash(text)}"


@dataclass(frozen=True)
class OrderDecision:
    """What a run records: `new` orders, and intents `kept` out of the book with the reason why."""

    new: list[Order] = field(default_factory=list)
    kept: list[tuple[OrderIntent, str]] = field(default_factory=list)


def decide_orders(plan: Plan, intents: Sequence[OrderIntent], *, run_id: str, trading_day: date,
                  tick_at: datetime, existing: Iterable[Order], commit_sha: str | None,
                  plan_digest: str | None, broker: str) -> OrderDecision:
    """Turn this tick's intents into orders to record (PENDING_SUBMIT), once per signal.

    `existing` are orders already recorded (any of the plan's, at least those of `trading_day`).
    Strict mode: an intent for a ticker that already has an order that day is not recorded again;
    a changed size or side is refused with a note (see the module docstring for why).
    Incremental mode: every intent becomes an order (the run cancelled the open ones first),
    except one whose client id this same tick already recorded.
    """
    mine = [o for o in existing if o.plan == plan.name]
    by_id = {o.client_id: o for o in mine}
    signal_orders: dict[str, list[Order]] = {}
    for order in mine:
        if order.trading_day == trading_day:
            signal_orders.setdefault(order.ticker, []).append(order)
    new: list[Order] = []
    kept: list[tuple[OrderIntent, str]] = []
    legs: dict[str, int] = {}
    for intent in intents:
        if not intent.quantity > 0:
            raise ValueError(f"intent for {intent.ticker} has quantity {intent.quantity}; intents are > 0")
        leg = legs.get(intent.ticker, 0)
        legs[intent.ticker] = leg + 1
        cid = client_id(plan.name, trading_day, tick_at, intent.ticker, leg)
        first = by_id.get(cid)
        same_signal = signal_orders.get(intent.ticker, [])
        if first is None and plan.mode is Mode.STRICT and same_signal:
            first = same_signal[leg] if leg < len(same_signal) else same_signal[0]
        if first is not None:
            kept.append((intent, _kept_note(plan.name, intent, first, same_tick=first.client_id == cid)))
            continue
        instrument = plan.universe.get(intent.ticker)
        new.append(Order(client_id=cid, plan=plan.name, run_id=run_id, trading_day=trading_day,
                         ticker=intent.ticker, side=intent.side, quantity=float(intent.quantity),
                         order_type=intent.order_type, broker=broker, status=OrderStatus.PENDING_SUBMIT,
                         tick_at=tick_at, commit_sha=commit_sha, plan_digest=plan_digest,
                         conid=instrument.conid if instrument is not None else None))
    return OrderDecision(new=new, kept=kept)


def _kept_note(plan: str, intent: OrderIntent, first: Order, *, same_tick: bool) -> str:
    wanted = f"{intent.side.value} {intent.quantity:g} {intent.ticker}"
    had = f"{first.side.value} {first.quantity:g} {first.ticker}"
    where = "this tick already recorded" if same_tick else f"the signal of {first.trading_day} already has"
    if first.side is intent.side and abs(first.quantity - intent.quantity) <= QUANTITY_TOLERANCE:
        return f"plan {plan}: {wanted}: {where} order {first.client_id} ({first.status.value}); not recorded again"
    return (f"plan {plan}: REFUSED {wanted}: {where} order {first.client_id} for {had} ({first.status.value}); "
            "kept the first order, no second order for one signal")


def orders_to_cancel(existing: Iterable[Order], plan: str | None = None) -> list[Order]:
    """The open orders (PENDING_SUBMIT, HELD, SUBMITTED, PARTIAL) of `plan` (of all given if None)."""
    return [o for o in existing if o.status.is_open and (plan is None or o.plan == plan)]


def actual_book(plan: Plan, orders: Iterable[Order], fills: Iterable[Fill]) -> tuple[float, dict[str, float]]:
    """The plan's real cash and positions: its initial ones plus every fill of its orders.

    A BUY fill adds shares and costs quantity x price, a SELL the reverse, each minus its
    commission. Only filled quantities count: an open or cancelled order moves nothing.
    Fills of orders that are not this plan's are ignored.
    """
    side = {o.client_id: o for o in orders if o.plan == plan.name}
    cash = float(plan.cash)
    positions: dict[str, float] = {t: float(q) for t, q in plan.positions.items()}
    for fill in fills:
        order = side.get(fill.client_id)
        if order is None:
            continue
        signed = fill.quantity if order.side is Side.BUY else -fill.quantity
        cash -= signed * fill.price + fill.commission
        positions[order.ticker] = positions.get(order.ticker, 0.0) + signed
    return cash, {t: q for t, q in positions.items() if abs(q) > QUANTITY_TOLERANCE}
