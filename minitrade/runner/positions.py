"""Positions and performance from recorded fills: per plan, per ticker, and in total. Pure.

A plan's book starts with its `cash` and `positions` (what it held at `trade_start`) and moves only
by the fills of its own orders (manual `minitrade fill` and broker executions alike; partial fills
count, open orders do not). Rehearsal orders (status REHEARSAL) never count.

The method, for a position of signed quantity q at average cost c (per share):
- a fill in the position's direction (or from flat) adds to it: c becomes the quantity-weighted
  average of c and the fill price;
- a fill against it closes min(|fill|, |q|) shares, realising (price - c) per share for a long and
  (c - price) for a short; c stays. What exceeds |q| opens the other side at the fill price.
- commissions are fees: they are paid from cash and reported per ticker, never folded into c, so
  realised P&L is before fees and the net result is realised + unrealised - fees.
- unrealised P&L is q x (mark - c), the mark being the latest cached close (`None` when the price
  cache has no bar for the ticker: nothing is fetched to compute a book).
- a preexisting position (plan `positions`) enters at the cached close on or before `trade_start`;
  without one its cost is unknown and so are that ticker's P&L figures (reported as None).
Cash is the plan's `cash` minus buys, plus sells, minus fees: `runner.orders.actual_book`'s.

    book = plan_book(PlanStart("alt", "manual", 100_000.0, {}), orders, fills, marks={"AAPL": (day, 76.0)})
    book.cash, book.tickers[0].realized
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from minitrade.records import Fill, Order, OrderStatus, Side

TOLERANCE = 1e-9  # shares: below this a position is flat (fractional fills sum with rounding)
Mark = tuple[date, float]


@dataclass(frozen=True)
class PlanStart:
    """Where a plan's book starts: its broker account, cash and preexisting positions."""

    plan: str
    broker: str
    cash: float
    positions: Mapping[str, float] = field(default_factory=dict)
    applied: bool = True   # False: the plan is no longer applied; its book starts from nothing


@dataclass(frozen=True)
class TickerBook:
    ticker: str
    quantity: float               # signed: negative is short
    avg_cost: float | None        # per share; None when flat or unknown
    realized: float | None        # before fees; None when the cost of what was closed is unknown
    unrealized: float | None      # quantity x (mark - avg_cost); None without a mark or a cost
    fees: float
    mark: float | None
    mark_date: date | None
    market_value: float | None    # quantity x mark
    fills: int


@dataclass(frozen=True)
class PlanBook:
    plan: str
    broker: str
    applied: bool
    start_cash: float
    cash: float
    tickers: list[TickerBook]

    @property
    def fees(self) -> float:
        return sum(t.fees for t in self.tickers)

    @property
    def realized(self) -> float | None:
        return _sum(t.realized for t in self.tickers)

    @property
    def unrealized(self) -> float | None:
        return _sum(t.unrealized for t in self.tickers)

    @property
    def market_value(self) -> float | None:
        return _sum(t.market_value for t in self.tickers)

    @property
    def equity(self) -> float | None:
        value = self.market_value
        return None if value is None else self.cash + value

    def held(self) -> dict[str, float]:
        return {t.ticker: t.quantity for t in self.tickers if abs(t.quantity) > TOLERANCE}


def _sum(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return total


@dataclass
class _Lot:
    """The running average-cost position of one ticker."""

    quantity: float = 0.0
    cost: float | None = 0.0       # None: a preexisting position of unknown cost
    realized: float | None = 0.0
    fees: float = 0.0
    fills: int = 0

    def trade(self, signed: float, price: float) -> None:
        q = self.quantity
        if abs(q) <= TOLERANCE or (q > 0) == (signed > 0):   # opens or adds
            total = q + signed
            if abs(q) <= TOLERANCE:
                self.cost = price
            elif self.cost is not None:
                self.cost = (abs(q) * self.cost + abs(signed) * price) / abs(total)
            self.quantity = total
            return
        closed = min(abs(signed), abs(q))
        direction = 1.0 if q > 0 else -1.0
        if self.cost is None or self.realized is None:
            self.realized = None
        else:
            self.realized += direction * closed * (price - self.cost)
        self.quantity = q + signed
        if abs(self.quantity) <= TOLERANCE:
            self.quantity, self.cost = 0.0, (0.0 if self.cost is not None else None)
        elif (self.quantity > 0) != (q > 0):  # flipped: the excess opens the other side at this price
            self.cost = price


def plan_book(start: PlanStart, orders: Iterable[Order], fills: Iterable[Fill], *,
              marks: Mapping[str, Mark], start_marks: Mapping[str, float] | None = None) -> PlanBook:
    """The plan's book from its fills, in the order given (time order), marked to `marks`.

    `start_marks` prices preexisting positions (the close on or before trade_start).
    """
    mine = {o.client_id: o for o in orders if o.plan == start.plan and o.status is not OrderStatus.REHEARSAL}
    lots: dict[str, _Lot] = {}
    for ticker, quantity in start.positions.items():
        if abs(float(quantity)) > TOLERANCE:
            cost = (start_marks or {}).get(ticker)
            lots[ticker] = _Lot(quantity=float(quantity), cost=cost, realized=0.0 if cost is not None else None)
    cash = float(start.cash)
    for fill in fills:
        order = mine.get(fill.client_id)
        if order is None:
            continue
        signed = fill.quantity if order.side is Side.BUY else -fill.quantity
        cash -= signed * fill.price + fill.commission
        lot = lots.setdefault(order.ticker, _Lot())
        lot.trade(signed, fill.price)
        lot.fees += fill.commission
        lot.fills += 1
    return PlanBook(start.plan, start.broker, start.applied, float(start.cash), cash,
                    [_ticker(t, lots[t], marks.get(t)) for t in sorted(lots)])


def _ticker(ticker: str, lot: _Lot, mark: Mark | None) -> TickerBook:
    flat = abs(lot.quantity) <= TOLERANCE
    quantity = 0.0 if flat else lot.quantity
    price = mark[1] if mark is not None and math.isfinite(mark[1]) else None
    value = 0.0 if flat else (quantity * price if price is not None else None)
    if flat:
        unrealized: float | None = 0.0
    elif price is None or lot.cost is None:
        unrealized = None
    else:
        unrealized = quantity * (price - lot.cost)
    return TickerBook(ticker, quantity, None if flat else lot.cost, lot.realized, unrealized, lot.fees, price,
                      mark[0] if mark is not None else None, value, lot.fills)


@dataclass(frozen=True)
class Totals:
    """Every plan's book summed; positions per ticker over all plans."""

    start_cash: float
    cash: float
    fees: float
    realized: float | None
    unrealized: float | None
    market_value: float | None
    equity: float | None
    positions: dict[str, float]


def totals(books: Sequence[PlanBook]) -> Totals:
    positions: dict[str, float] = {}
    for book in books:
        for ticker, quantity in book.held().items():
            positions[ticker] = positions.get(ticker, 0.0) + quantity
    return Totals(start_cash=sum(b.start_cash for b in books), cash=sum(b.cash for b in books),
                  fees=sum(b.fees for b in books), realized=_sum(b.realized for b in books),
                  unrealized=_sum(b.unrealized for b in books), market_value=_sum(b.market_value for b in books),
                  equity=_sum(b.equity for b in books),
                  positions={t: q for t, q in sorted(positions.items()) if abs(q) > TOLERANCE})


@dataclass(frozen=True)
class Drift:
    """One ticker of a broker account: what the broker holds against the sum of its plans' books."""

    ticker: str
    broker: float
    plans: float

    @property
    def difference(self) -> float:
        return self.broker - self.plans

    @property
    def agrees(self) -> bool:
        return abs(self.difference) <= 1e-6


def account_drift(books: Iterable[PlanBook], account: str, broker: Mapping[str, float]) -> list[Drift]:
    """Per ticker, the broker's position beside the sum of the account's plans (every ticker either holds)."""
    plans: dict[str, float] = {}
    for book in books:
        if book.broker != account:
            continue
        for ticker, quantity in book.held().items():
            plans[ticker] = plans.get(ticker, 0.0) + quantity
    tickers = sorted(set(plans) | {t for t, q in broker.items() if abs(q) > TOLERANCE})
    return [Drift(t, float(broker.get(t, 0.0)), plans.get(t, 0.0)) for t in tickers]
