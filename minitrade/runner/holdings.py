"""What the plans hold: their fills and the cached closes read from DuckDB, handed to `positions`.

The reading half of `minitrade positions` (and of any other front end): one short transaction,
no network (marks are the price cache's latest closes, never fetched here). A plan no longer
applied that still has fills keeps a book (deleting a plan leaves its positions alone), starting
from no cash and no positions. Comparing with a broker's own positions is the caller's network call.
"""

from __future__ import annotations

from collections.abc import Mapping

from minitrade.models import Plan
from minitrade.records import Order
from minitrade.runner.positions import Mark, PlanBook, PlanStart, plan_book
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import prices as price_sql


def read_books(store: Store, plans: Mapping[str, Plan], *, only: str | None = None) -> list[PlanBook]:
    """Each applied plan's book (and each former plan's with fills), or only plan `only`'s."""
    with store.transaction() as con:
        orders = order_sql.orders_of(con, only)
        fills = order_sql.fills_of(con, only)
        with_fills = {f.client_id for f in fills}
        filled = {o.plan for o in orders if o.client_id in with_fills}
        names = sorted((set(plans) | filled) if only is None else {only})
        starts = {n: _start(n, plans.get(n), orders) for n in names}
        tickers: dict[str, set[str]] = {}
        for name in names:
            tickers.setdefault(_source(plans.get(name)), set()).update(
                [*starts[name].positions, *(o.ticker for o in orders if o.plan == name)])
        marks: dict[str, dict[str, Mark]] = {
            source: price_sql.closes_as_of(con, source, sorted(ts)) for source, ts in tickers.items() if source}
        start_marks = {n: {t: m[1] for t, m in price_sql.closes_as_of(
            con, plans[n].data_source, sorted(plans[n].positions), plans[n].trade_start).items()}
            for n in names if n in plans and plans[n].positions}
    return [plan_book(starts[n], orders, fills, marks=marks.get(_source(plans.get(n)), {}),
                      start_marks=start_marks.get(n)) for n in names]


def _source(plan: Plan | None) -> str:
    return plan.data_source if plan is not None else ""


def _start(name: str, plan: Plan | None, orders: list[Order]) -> PlanStart:
    if plan is not None:
        return PlanStart(name, plan.broker, float(plan.cash), {t: float(q) for t, q in plan.positions.items()})
    broker = next((o.broker for o in orders if o.plan == name), "")
    return PlanStart(name, broker, 0.0, {}, applied=False)
