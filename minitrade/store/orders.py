"""The order book in DuckDB: orders, their fills, and the durable schedule ticks.

Times are stored as TIMESTAMPTZ and read back in UTC. Writes never decide anything: what to
order, what a fill may be and when a tick may start are decided by the runner; this module
only refuses what would corrupt the record (a second row for one client id or one tick).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from minitrade.errors import StoreError
from minitrade.models import OrderType
from minitrade.records import Fill, Order, OrderStatus, Side, TickStatus
from minitrade.store.frames import insert_rows, update_rows

_ORDER_COLUMNS = ("client_id, plan, run_id, trading_day, ticker, side, quantity, order_type, broker, status, "
                  "tick_at, broker_order_id, commit_sha, plan_digest, conid, note")
_FILL_COLUMNS = "f.fill_id, f.client_id, f.quantity, f.price, f.commission, f.filled_at, f.source"
_TICK_COLUMNS = "plan, scheduled_at, status, run_id, started_at, finished_at, error"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _order(row: tuple[Any, ...]) -> Order:
    (client_id, plan, run_id, day, ticker, side, quantity, order_type, broker, status, tick_at,
     broker_order_id, commit_sha, plan_digest, conid, note) = row
    return Order(client_id=client_id, plan=plan, run_id=run_id, trading_day=day, ticker=ticker, side=Side(side),
                 quantity=float(quantity), order_type=OrderType(order_type), broker=broker,
                 status=OrderStatus(status), tick_at=_utc(tick_at), broker_order_id=broker_order_id,
                 commit_sha=commit_sha, plan_digest=plan_digest, conid=conid, note=note)


def _fill(row: tuple[Any, ...]) -> Fill:
    fill_id, client_id, quantity, price, commission, filled_at, source = row
    return Fill(fill_id=fill_id, client_id=client_id, quantity=float(quantity), price=float(price),
                commission=float(commission), filled_at=filled_at.astimezone(UTC), source=source)


# -- orders ------------------------------------------------------------------------------------

def insert_orders(con: duckdb.DuckDBPyConnection, orders: Iterable[Order], *, now: datetime | None = None) -> None:
    """Record new orders. A client id already recorded is a StoreError: an order is never written twice."""
    at = now or datetime.now(UTC)
    orders_list = list(orders)
    rows = [[o.client_id, o.plan, o.run_id, o.trading_day, o.ticker, o.side.value, o.quantity, o.order_type.value,
             o.broker, o.status.value, o.tick_at, o.broker_order_id, o.commit_sha, o.plan_digest, o.conid, o.note,
             at, at] for o in orders_list]
    if not rows:
        return
    ids: list[str] = [o.client_id for o in orders_list]
    if len(set(ids)) != len(ids):
        raise StoreError(f"orders to record repeat a client id: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    placeholders = ", ".join("?" for _ in ids)
    taken = con.execute(f"SELECT client_id FROM orders WHERE client_id IN ({placeholders})", ids).fetchall()
    if taken:
        raise StoreError(f"order(s) already recorded, not written again: {', '.join(sorted(r[0] for r in taken))}")
    insert_rows(con, "orders", [*(c.strip() for c in _ORDER_COLUMNS.split(",")), "created_at", "updated_at"], rows)


def get_order(con: duckdb.DuckDBPyConnection, client_id: str) -> Order | None:
    row = con.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_id = ?", [client_id]).fetchone()
    return _order(row) if row else None


def orders_of(con: duckdb.DuckDBPyConnection, plan: str | None = None, *,
              statuses: Iterable[OrderStatus] | None = None, trading_day: date | None = None) -> list[Order]:
    """Orders, oldest first, optionally of one plan, in some statuses, on one trading day."""
    wanted = None if statuses is None else [OrderStatus(s).value for s in statuses]
    if wanted == []:
        return []
    sql = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE (? IS NULL OR plan = ?) AND (? IS NULL OR trading_day = ?)"
    params: list[Any] = [plan, plan, trading_day, trading_day]
    if wanted is not None:
        sql += f" AND status IN ({', '.join('?' for _ in wanted)})"
        params += wanted
    rows = con.execute(sql + " ORDER BY created_at, plan, tick_at, client_id", params).fetchall()
    return [_order(r) for r in rows]


def orders_by_plan(con: duckdb.DuckDBPyConnection, plans: Sequence[str]) -> dict[str, list[Order]]:
    """Each of `plans`' orders, oldest first, in one query (a batch of runs decides together)."""
    rows = con.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE list_contains(?, plan) "
                       "ORDER BY created_at, plan, tick_at, client_id", [list(plans)]).fetchall()
    found: dict[str, list[Order]] = {p: [] for p in plans}
    for row in rows:
        found[row[1]].append(_order(row))
    return found


def open_orders(con: duckdb.DuckDBPyConnection, plan: str | None = None) -> list[Order]:
    """Orders still waiting for the broker or the person: PENDING_SUBMIT, HELD, SUBMITTED, PARTIAL."""
    return orders_of(con, plan, statuses=[s for s in OrderStatus if s.is_open])


def set_status(con: duckdb.DuckDBPyConnection, client_id: str, status: OrderStatus, *,
               broker_order_id: str | None = None, note: str | None = None, clear_note: bool = False,
               now: datetime | None = None) -> Order:
    """Move an order to `status`; a given broker id or note replaces the stored one, None keeps it.
    Returns the order as it is now (one statement: the UPDATE returns it).

    `clear_note` drops the stored note (e.g. a hold reason once the order reached the broker).
    """
    row = con.execute("UPDATE orders SET status = ?, broker_order_id = coalesce(?, broker_order_id), "
                      "note = CASE WHEN ? THEN NULL ELSE coalesce(?, note) END, updated_at = ? "
                      f"WHERE client_id = ? RETURNING {_ORDER_COLUMNS}",
                      [OrderStatus(status).value, broker_order_id, clear_note and note is None, note,
                       now or datetime.now(UTC), client_id]).fetchone()
    if row is None:
        raise StoreError(f"no order {client_id!r} to set {OrderStatus(status).value}")
    return _order(row)


def with_status(order: Order, status: OrderStatus, *, broker_order_id: str | None = None, note: str | None = None,
                clear_note: bool = False) -> Order:
    """`order` as `set_status` (same arguments) would leave it, without the database: changes made
    this way are written together by `save_statuses`."""
    kept = None if clear_note and note is None else (note if note is not None else order.note)
    return replace(order, status=OrderStatus(status), note=kept,
                   broker_order_id=broker_order_id if broker_order_id is not None else order.broker_order_id)


def save_statuses(con: duckdb.DuckDBPyConnection, orders: Sequence[Order], *, now: datetime | None = None) -> None:
    """Write the status, broker id and note of orders changed by `with_status`, in one statement (the
    last change of an order stands)."""
    last = {o.client_id: o for o in orders}
    when = now or datetime.now(UTC)
    updated = update_rows(con, "orders", [("client_id", "VARCHAR")],
                          [("status", "VARCHAR"), ("broker_order_id", "VARCHAR"), ("note", "VARCHAR"),
                           ("updated_at", "TIMESTAMPTZ")],
                          [[o.client_id, o.status.value, o.broker_order_id, o.note, when] for o in last.values()])
    if len(updated) != len(last):
        missing = sorted(set(last) - {str(row[0]) for row in updated})
        raise StoreError(f"no order {missing[0]!r} to set {last[missing[0]].status.value}")


# -- fills -------------------------------------------------------------------------------------

def insert_fill(con: duckdb.DuckDBPyConnection, fill: Fill, *, commit_sha: str | None,
                plan_digest: str | None, now: datetime | None = None) -> bool:
    """Record a fill; False if that fill id is already recorded with the same facts.

    Broker executions are read again on every pass, so seeing one twice is normal and ignored;
    the same id with a different quantity, price or order is a StoreError, never overwritten.
    """
    old = con.execute(f"SELECT {_FILL_COLUMNS} FROM fills f WHERE fill_id = ?", [fill.fill_id]).fetchone()
    if old is not None:
        known = _fill(old)
        if (known.client_id, known.quantity, known.price) != (fill.client_id, fill.quantity, fill.price):
            raise StoreError(f"fill {fill.fill_id} is already recorded as {known.quantity:g} @ {known.price:g} "
                             f"for {known.client_id}; refusing {fill.quantity:g} @ {fill.price:g} "
                             f"for {fill.client_id}")
        return False
    con.execute("INSERT INTO fills (fill_id, client_id, quantity, price, commission, filled_at, source, "
                "commit_sha, plan_digest, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [fill.fill_id, fill.client_id, fill.quantity, fill.price, fill.commission, fill.filled_at,
                 fill.source, commit_sha, plan_digest, now or datetime.now(UTC)])
    return True


def fills_of(con: duckdb.DuckDBPyConnection, plan: str | None = None, client_id: str | None = None) -> list[Fill]:
    """Fills in time order, optionally of one plan's orders or of one order."""
    rows = con.execute(f"SELECT {_FILL_COLUMNS} FROM fills f LEFT JOIN orders o ON o.client_id = f.client_id "
                       "WHERE (? IS NULL OR o.plan = ?) AND (? IS NULL OR f.client_id = ?) "
                       "ORDER BY f.filled_at, f.fill_id", [plan, plan, client_id, client_id]).fetchall()
    return [_fill(r) for r in rows]


def fills_by_plan(con: duckdb.DuckDBPyConnection, plans: Sequence[str]) -> dict[str, list[Fill]]:
    """Each of `plans`' fills in time order, in one query."""
    rows = con.execute(f"SELECT o.plan, {_FILL_COLUMNS} FROM fills f JOIN orders o ON o.client_id = f.client_id "
                       "WHERE list_contains(?, o.plan) ORDER BY f.filled_at, f.fill_id", [list(plans)]).fetchall()
    found: dict[str, list[Fill]] = {p: [] for p in plans}
    for row in rows:
        found[row[0]].append(_fill(row[1:]))
    return found


def filled_quantities(con: duckdb.DuckDBPyConnection, plan: str | None = None) -> dict[str, float]:
    """Filled quantity per client id (orders without fills are absent)."""
    rows = con.execute("SELECT f.client_id, sum(f.quantity) FROM fills f LEFT JOIN orders o "
                       "ON o.client_id = f.client_id WHERE (? IS NULL OR o.plan = ?) GROUP BY f.client_id",
                       [plan, plan]).fetchall()
    return {r[0]: float(r[1]) for r in rows}


# -- ticks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TickRow:
    plan: str
    scheduled_at: datetime
    status: TickStatus
    run_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


def _tick(row: tuple[Any, ...]) -> TickRow:
    plan, scheduled_at, status, run_id, started_at, finished_at, error = row
    return TickRow(plan, scheduled_at.astimezone(UTC), TickStatus(status), run_id, _utc(started_at),
                   _utc(finished_at), error)


def start_tick(con: duckdb.DuckDBPyConnection, plan: str, scheduled_at: datetime, run_id: str, *,
               now: datetime | None = None) -> bool:
    """Record the tick STARTED; False (and nothing written) if it has a row already: a tick never runs twice."""
    return bool(start_ticks(con, [(plan, scheduled_at, run_id)], now=now))


def start_ticks(con: duckdb.DuckDBPyConnection, ticks: Sequence[tuple[str, datetime, str]], *,
                now: datetime | None = None) -> list[tuple[str, datetime, str]]:
    """Record ticks (plan, scheduled time, run id) STARTED in one statement; returns those recorded.

    A tick that has a row already is left as it is and not returned: a tick never runs twice. They
    are looked up before a plain INSERT, which costs half of DuckDB's INSERT ... ON CONFLICT DO NOTHING;
    the primary key still refuses a second row, and the file's lock keeps other processes out between.
    """
    for _, at, _ in ticks:
        _aware(at)
    if not ticks:
        return []
    taken = _ticks_recorded(con, [(plan, at) for plan, at, _ in ticks])
    new = [t for t in ticks if (t[0], t[1].astimezone(UTC)) not in taken]
    if len(set((p, at.astimezone(UTC)) for p, at, _ in new)) != len(new):
        raise StoreError(f"ticks to start repeat a tick: {sorted((p, at.isoformat()) for p, at, _ in new)}")
    at = now or datetime.now(UTC)
    insert_rows(con, "ticks", ["plan", "scheduled_at", "status", "run_id", "started_at"],
                [[plan, scheduled, TickStatus.STARTED.value, run_id, at] for plan, scheduled, run_id in new])
    return new


def _ticks_recorded(con: duckdb.DuckDBPyConnection, ticks: Sequence[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
    """Which of the ticks (plan, scheduled time) have a row, as (plan, time in UTC)."""
    pairs = ", ".join("(?::VARCHAR, ?::TIMESTAMPTZ)" for _ in ticks)
    rows = con.execute(f"SELECT t.plan, t.scheduled_at FROM ticks t JOIN (VALUES {pairs}) v(plan, scheduled_at) "
                       "ON t.plan = v.plan AND t.scheduled_at = v.scheduled_at",
                       [value for tick in ticks for value in tick]).fetchall()
    return {(str(plan), at.astimezone(UTC)) for plan, at in rows}


def _has_tick(con: duckdb.DuckDBPyConnection, plan: str, scheduled_at: datetime) -> bool:
    """Whether the tick has a row (see start_ticks)."""
    return con.execute("SELECT 1 FROM ticks WHERE plan = ? AND scheduled_at = ?", [plan, scheduled_at]).fetchone() is not None


def finish_tick(con: duckdb.DuckDBPyConnection, plan: str, scheduled_at: datetime, status: TickStatus,
                error: str | None = None, *, now: datetime | None = None) -> None:
    """Close a STARTED tick as FINISHED or FAILED."""
    finish_ticks(con, [(plan, scheduled_at, TickStatus(status), error)], now=now)


def finish_ticks(con: duckdb.DuckDBPyConnection, ends: Sequence[tuple[str, datetime, TickStatus, str | None]], *,
                 now: datetime | None = None) -> None:
    """Close STARTED ticks (plan, scheduled time, FINISHED or FAILED, error) in one statement."""
    for _, _, status, _ in ends:
        if TickStatus(status) not in (TickStatus.FINISHED, TickStatus.FAILED):
            raise StoreError(f"a started tick ends FINISHED or FAILED, not {TickStatus(status).value}")
    at = now or datetime.now(UTC)
    rows = [[plan, scheduled, TickStatus(status).value, error, at] for plan, scheduled, status, error in ends]
    closed = {(str(p), t.astimezone(UTC)) for p, t in update_rows(
        con, "ticks", [("plan", "VARCHAR"), ("scheduled_at", "TIMESTAMPTZ")],
        [("status", "VARCHAR"), ("error", "VARCHAR"), ("finished_at", "TIMESTAMPTZ")], rows,
        where="ticks.status = 'STARTED'")}
    missing = [(p, t, s) for p, t, s, _ in ends if (p, t.astimezone(UTC)) not in closed]
    if missing:
        plan, scheduled, status = missing[0]
        raise StoreError(f"plan {plan}: no STARTED tick at {scheduled.isoformat()} to mark {TickStatus(status).value}")


def skip_tick(con: duckdb.DuckDBPyConnection, plan: str, scheduled_at: datetime, reason: str, *,
              now: datetime | None = None) -> bool:
    """Record a tick that will not run (e.g. could not start within 3 minutes); False if it has a row already."""
    _aware(scheduled_at)
    if _has_tick(con, plan, scheduled_at):
        return False
    con.execute("INSERT INTO ticks (plan, scheduled_at, status, finished_at, error) VALUES (?, ?, ?, ?, ?)",
                [plan, scheduled_at, TickStatus.SKIPPED.value, now or datetime.now(UTC), reason])
    return True


def skip_ticks(con: duckdb.DuckDBPyConnection, plan: str, scheduled: list[datetime], reason: str, *,
               now: datetime | None = None) -> list[datetime]:
    """Record many ticks SKIPPED with one reason in one statement (a long outage misses hundreds);
    ticks that have a row already keep it. Returns the ones recorded now (UTC)."""
    if not scheduled:
        return []
    for at in scheduled:
        _aware(at)
    rows = con.execute("INSERT INTO ticks (plan, scheduled_at, status, finished_at, error) "
                       "SELECT ?, unnest(?::TIMESTAMPTZ[]), ?, ?, ? ON CONFLICT DO NOTHING RETURNING scheduled_at",
                       [plan, scheduled, TickStatus.SKIPPED.value, now or datetime.now(UTC), reason]).fetchall()
    return sorted(r[0].astimezone(UTC) for r in rows)


def ticks_of(con: duckdb.DuckDBPyConnection, plan: str | None = None,
             statuses: Iterable[TickStatus] | None = None) -> list[TickRow]:
    """Ticks in scheduled order, optionally of one plan and in some statuses."""
    wanted = None if statuses is None else [TickStatus(s).value for s in statuses]
    if wanted == []:
        return []
    sql = f"SELECT {_TICK_COLUMNS} FROM ticks WHERE (? IS NULL OR plan = ?)"
    params: list[Any] = [plan, plan]
    if wanted is not None:
        sql += f" AND status IN ({', '.join('?' for _ in wanted)})"
        params += wanted
    return [_tick(r) for r in con.execute(sql + " ORDER BY scheduled_at, plan", params).fetchall()]


def latest_and_started_ticks(con: duckdb.DuckDBPyConnection) -> list[TickRow]:
    """Each plan's latest tick plus every STARTED one, in scheduled order: what a daemon pass needs,
    read without scanning the whole tick history (it grows by hundreds of rows a day)."""
    sql = (f"SELECT {_TICK_COLUMNS} FROM ticks "
           "QUALIFY status = 'STARTED' OR scheduled_at = max(scheduled_at) OVER (PARTITION BY plan) "
           "ORDER BY scheduled_at, plan")
    return [_tick(r) for r in con.execute(sql).fetchall()]


def last_tick_time(con: duckdb.DuckDBPyConnection, plan: str) -> datetime | None:
    """The latest scheduled time recorded for `plan` in any status (where catch-up resumes)."""
    row = con.execute("SELECT max(scheduled_at) FROM ticks WHERE plan = ?", [plan]).fetchone()
    return None if row is None or row[0] is None else row[0].astimezone(UTC)


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise StoreError(f"tick time {at.isoformat()} has no timezone; ticks are instants")
