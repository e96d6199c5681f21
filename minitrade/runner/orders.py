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
Incremental mode cancels the plan's open orders of earlier ticks before it reruns (see
`orders_to_cancel`), so its orders are always new; a rerun of a tick that already recorded orders
records nothing and cancels nothing (those orders stand, as in strict mode).

Before anything is recorded for the broker, `check_book` holds the orders against the plan's
actual book (its fills): no short nobody asked for (`allow_short`), no buy beyond its cash.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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


def client_id(plan: str, trading_day: date, tick_at: datetime, ticker: str, leg: int = 0, *,
              rehearsal: bool = False) -> str:
    """The deterministic client order id, e.g. ``sma-aapl.20261125.204500Z.AAPL.0``.

    The tick time is written in UTC (suffix Z) so one instant gives one id whatever timezone it
    was expressed in. A rehearsal's ids end in ``.R``: a rehearsed tick never takes the id its
    real run will need. Ids longer than 64 characters shorten the plan name part (keeping a hash
    of the whole name), then the ticker part the same way.

    >>> from datetime import datetime, date, timezone
    >>> client_id("sma-aapl", date(2026, 11, 25), datetime(2026, 11, 25, 20, 45, tzinfo=timezone.utc), "AAPL")
    'sma-aapl.20261125.204500Z.AAPL.0'
    """
    if tick_at.tzinfo is None or tick_at.utcoffset() is None:
        raise ValueError(f"tick time {tick_at.isoformat()} has no timezone: client ids need an instant")
    if leg < 0:
        raise ValueError(f"leg must be >= 0, not {leg}")
    when = f"{trading_day:%Y%m%d}.{tick_at.astimezone(UTC):%H%M%S}Z"
    end = f"{leg}.R" if rehearsal else f"{leg}"
    plan_part, ticker_part = _safe(plan), _safe(ticker)
    tail = f".{when}.{ticker_part}.{end}"
    if len(plan_part) + len(tail) > MAX_CLIENT_ID:
        plan_part = _shorten(plan, max(9, MAX_CLIENT_ID - len(tail)))
    tail = f".{when}.{ticker_part}.{end}"
    if len(plan_part) + len(tail) > MAX_CLIENT_ID:
        room = MAX_CLIENT_ID - len(plan_part) - len(f".{when}..{end}")
        ticker_part = _shorten(ticker, max(9, room))
    return f"{plan_part}.{when}.{ticker_part}.{end}"[:MAX_CLIENT_ID]


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
                  plan_digest: str | None, broker: str, rehearsal: bool = False) -> OrderDecision:
    """Turn this tick's intents into orders to record (PENDING_SUBMIT), once per signal.

    `existing` are orders already recorded (any of the plan's, at least those of `trading_day`).
    Strict mode: an intent for a ticker that already has an order that day is not recorded again;
    a changed size or side is refused with a note (see the module docstring for why).
    Incremental mode: every intent becomes an order (the run cancelled earlier ticks' open ones
    first), unless this very tick already recorded orders: a rerun of a tick changes nothing.
    A rehearsal records REHEARSAL orders with their own ids and sees only earlier rehearsals.
    """
    mine = [o for o in existing if o.plan == plan.name and (o.status is OrderStatus.REHEARSAL) == rehearsal]
    by_id = {o.client_id: o for o in mine}
    signal_orders: dict[str, list[Order]] = {}
    for order in mine:
        if order.trading_day == trading_day:
            signal_orders.setdefault(order.ticker, []).append(order)
    this_tick = [o for o in mine if o.tick_at is not None and o.tick_at == tick_at]
    new: list[Order] = []
    kept: list[tuple[OrderIntent, str]] = []
    legs: dict[str, int] = {}
    for intent in intents:
        if not intent.quantity > 0:
            raise ValueError(f"intent for {intent.ticker} has quantity {intent.quantity}; intents are > 0")
        leg = legs.get(intent.ticker, 0)
        legs[intent.ticker] = leg + 1
        cid = client_id(plan.name, trading_day, tick_at, intent.ticker, leg, rehearsal=rehearsal)
        first = by_id.get(cid)
        same_signal = signal_orders.get(intent.ticker, [])
        if first is None and plan.mode is Mode.STRICT and same_signal:
            first = same_signal[leg] if leg < len(same_signal) else same_signal[0]
        if first is None and plan.mode is Mode.INCREMENTAL and this_tick:
            kept.append((intent, _rerun_note(plan.name, intent, this_tick)))
            continue
        if first is not None:
            kept.append((intent, _kept_note(plan.name, intent, first, same_tick=first.client_id == cid)))
            continue
        instrument = plan.universe.get(intent.ticker)
        new.append(Order(client_id=cid, plan=plan.name, run_id=run_id, trading_day=trading_day,
                         ticker=intent.ticker, side=intent.side, quantity=float(intent.quantity),
                         order_type=intent.order_type, broker=broker,
                         status=OrderStatus.REHEARSAL if rehearsal else OrderStatus.PENDING_SUBMIT,
                         tick_at=tick_at, commit_sha=commit_sha, plan_digest=plan_digest,
                         conid=instrument.conid if instrument is not None else None))
    return OrderDecision(new=new, kept=kept)


def _rerun_note(plan: str, intent: OrderIntent, this_tick: Sequence[Order]) -> str:
    ids = ", ".join(o.client_id for o in this_tick[:3]) + (" ..." if len(this_tick) > 3 else "")
    return (f"plan {plan}: {intent.side.value} {intent.quantity:g} {intent.ticker} not recorded: this tick "
            f"already recorded order(s) {ids}; a rerun of a tick changes nothing at the broker")


def _kept_note(plan: str, intent: OrderIntent, first: Order, *, same_tick: bool) -> str:
    wanted = f"{intent.side.value} {intent.quantity:g} {intent.ticker}"
    had = f"{first.side.value} {first.quantity:g} {first.ticker}"
    where = "this tick already recorded" if same_tick else f"the signal of {first.trading_day} already has"
    if first.side is intent.side and abs(first.quantity - intent.quantity) <= QUANTITY_TOLERANCE:
        rerun = "; a rerun of a tick changes nothing at the broker" if same_tick else ""
        return (f"plan {plan}: {wanted}: {where} order {first.client_id} ({first.status.value}); "
                f"not recorded again{rerun}")
    return (f"plan {plan}: REFUSED {wanted}: {where} order {first.client_id} for {had} ({first.status.value}); "
            "kept the first order, no second order for one signal")


def orders_to_cancel(existing: Iterable[Order], plan: str | None = None, *,
                     keep_tick: datetime | None = None) -> list[Order]:
    """The open orders (PENDING_SUBMIT, HELD, SUBMITTED, PARTIAL) of `plan` (of all given if None).

    With `keep_tick`, only orders decided by other ticks: a rerun of a tick never cancels the
    orders that very tick placed (incremental mode supersedes earlier ticks' orders only).
    """
    return [o for o in existing if o.status.is_open and (plan is None or o.plan == plan)
            and (keep_tick is None or o.tick_at is None or o.tick_at != keep_tick)]


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


def reserved_book(plan: Plan, orders: Sequence[Order], fills: Sequence[Fill], prices: Mapping[str, float], *,
                  actual: tuple[float, dict[str, float]]) -> tuple[float, dict[str, float]]:
    """The `actual` book (`actual_book` of these orders and fills) less what the plan's open orders
    already claim: shares an open SELL will deliver and cash an open BUY will spend (at `prices`),
    so two ticks never sell one share twice."""
    cash, positions = actual[0], dict(actual[1])
    done: dict[str, float] = {}
    for fill in fills:
        done[fill.client_id] = done.get(fill.client_id, 0.0) + fill.quantity
    for order in orders:
        if order.plan != plan.name or not order.status.is_open:
            continue
        remaining = max(0.0, order.quantity - done.get(order.client_id, 0.0))
        if order.side is Side.SELL:
            positions[order.ticker] = positions.get(order.ticker, 0.0) - remaining
        else:
            cash -= remaining * prices.get(order.ticker, 0.0)
    return cash, positions


@dataclass(frozen=True)
class BookCheck:
    """Orders held against the actual book: what may go to the broker (some clipped) and what not."""

    orders: list[Order]
    refused: list[tuple[Order, str]] = field(default_factory=list)
    clipped: list[tuple[Order, str]] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [note for _, note in self.refused + self.clipped]


def check_book(plan: Plan, new: Sequence[Order], *, cash: float, positions: Mapping[str, float],
               prices: Mapping[str, float], commission: float) -> BookCheck:
    """Clip or refuse orders the plan's actual book cannot carry.

    Sells go first (their cash pays for buys filled at the same auction). A SELL beyond the shares
    held is clipped to them, or refused when none are held, unless the plan has `allow_short`. A
    BUY beyond the cash is clipped to the whole shares the cash pays for at `prices` (the signal
    bar's close) plus commission, or refused when not one share is affordable. Pure.
    """
    held = dict(positions)
    outcome: dict[str, Order | None] = {}
    refused: list[tuple[Order, str]] = []
    clipped: list[tuple[Order, str]] = []
    for order in sorted(new, key=lambda o: o.side is not Side.SELL):
        price = prices.get(order.ticker, float("nan"))
        if order.side is Side.SELL:
            allowed, why = _sellable(plan, order, held.get(order.ticker, 0.0))
        else:
            allowed, why = _affordable(order, cash, price, commission)
        if allowed <= QUANTITY_TOLERANCE:
            refused.append((order, f"plan {plan.name}: REFUSED {_describe(order)}: {why}"))
            outcome[order.client_id] = None
            continue
        kept = order if allowed >= order.quantity - QUANTITY_TOLERANCE else replace(order, quantity=allowed)
        if kept is not order:
            clipped.append((kept, f"plan {plan.name}: CLIPPED {_describe(order)} to {allowed:g}: {why}"))
        outcome[order.client_id] = kept
        signed = kept.quantity if kept.side is Side.BUY else -kept.quantity
        held[order.ticker] = held.get(order.ticker, 0.0) + signed
        cash -= signed * price + abs(signed) * price * commission
    return BookCheck(orders=[o for o in (outcome[n.client_id] for n in new) if o is not None],
                     refused=refused, clipped=clipped)


def _describe(order: Order) -> str:
    return f"{order.side.value} {order.quantity:g} {order.ticker}"


def _sellable(plan: Plan, order: Order, held: float) -> tuple[float, str]:
    if plan.allow_short:
        return order.quantity, ""
    if held <= QUANTITY_TOLERANCE:
        return 0.0, (f"the plan actually holds {max(held, 0.0):g} {order.ticker} (after its open orders), so the "
                     "sale would open a short; set `allow_short: true` in the plan to allow shorts")
    return min(order.quantity, held), f"the plan actually holds only {held:g} {order.ticker} (after its open orders)"


def _affordable(order: Order, cash: float, price: float, commission: float) -> tuple[float, str]:
    if not math.isfinite(price) or price <= 0:
        return 0.0, f"no price for {order.ticker} to check the plan's cash against"
    cost = order.quantity * price * (1 + commission)
    if cost <= cash + 1e-6:
        return order.quantity, ""
    shares = math.floor(max(cash, 0.0) / (price * (1 + commission)) + QUANTITY_TOLERANCE)
    return float(min(shares, order.quantity)), (
        f"it costs about {cost:,.2f} at {price:g} and the plan's actual cash is {cash:,.2f} (after its open orders)")


def divergence(plan: Plan, simulated: Mapping[str, float], actual: Mapping[str, float],
               orders: Sequence[Order]) -> list[str]:
    """Where a strict plan's simulated holdings differ from its fills, each with the likely reason:
    "simulated 127 AAPL, actual 0: BUY of 2013-01-03 EXPIRED"."""
    notes = []
    for ticker in sorted(set(simulated) | set(actual)):
        sim, real = simulated.get(ticker, 0.0), actual.get(ticker, 0.0)
        if abs(sim - real) <= QUANTITY_TOLERANCE:
            continue
        unfilled = [o for o in orders if o.plan == plan.name and o.ticker == ticker
                    and o.status not in (OrderStatus.FILLED, OrderStatus.REHEARSAL)]
        why = (f": {unfilled[-1].side.value} of {unfilled[-1].trading_day} {unfilled[-1].status.value}"
               if unfilled else "")
        notes.append(f"simulated {sim:g} {ticker}, actual {real:g}{why}")
    return notes
