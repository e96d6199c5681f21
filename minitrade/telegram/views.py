"""What the bot answers to /status, /positions and /orders: short HTML texts for a phone screen.

Each reads the applied state and the records from DuckDB through the same functions as the CLI's
`status`, `positions` and `orders` (never SQL of its own) and never the network. Every value a
person or a file wrote is escaped: Telegram refuses a message whose HTML it cannot parse.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

from minitrade import clock
from minitrade.records import Order
from minitrade.runner.holdings import read_books
from minitrade.runner.positions import PlanBook, totals
from minitrade.runner.suspension import describe, suspended
from minitrade.scheduler import next_run_times
from minitrade.store import Store
from minitrade.store import runs as run_sql
from minitrade.store.applied import AppliedState, last_applied, last_attempt
from minitrade.store.heartbeat import daemon_health, span
from minitrade.store.orders import open_orders

MAX_MESSAGE = 4000   # Telegram's limit is 4096 UTF-16 units; room for the "more" line


def fit(lines: Iterable[str], limit: int = MAX_MESSAGE) -> str:
    """Whole lines up to Telegram's message size; a last line says how many were left out."""
    kept: list[str] = []
    size = 0
    rest = list(lines)
    for i, line in enumerate(rest):
        if size + len(line) + 1 > limit - 80:
            kept.append(f"… {len(rest) - i} more line(s): the CLI shows everything")
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


def _stamp(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if at is not None else "-"


def status_text(store: Store, state_dir: Path) -> str:
    """/status: the applied commit, a rejected attempt, the daemon, each plan's flags, runs and orders."""
    now = clock.now()
    applied_state = AppliedState(store)
    zone = applied_state.zone
    with store.transaction() as con:
        applied, attempt = last_applied(con), last_attempt(con)
        pending = [o.plan for o in open_orders(con)]
        last_runs = {name: run_sql.list_runs(con, plan=name, limit=1) for name in applied_state.plans}
        health = daemon_health(con, state_dir, now)
    paused = suspended(store)
    lines = ["<b>minitrade status</b>"]
    if applied is None:
        lines.append("Applied: nothing yet (run <code>minitrade apply</code>).")
    else:
        lines.append(f"Applied: commit <code>{escape((applied.commit_sha or '(none)')[:8])}</code>"
                     f"{' (dirty)' if applied.dirty else ''} at {_stamp(applied.attempted_at, zone)}")
    if attempt is not None and attempt.outcome == "rejected":
        first = (attempt.error or "").strip().splitlines()[:1]
        lines.append(f"⚠️ Last attempt rejected: commit <code>{escape((attempt.commit_sha or '(none)')[:8])}"
                     f"</code>{': ' + escape(first[0]) if first else ''}")
    if health.running:
        last = f"last pass {span(health.lag)} ago" if health.last_pass is not None else "no pass yet"
        lines.append(f"Daemon: running (pid {health.pid}), {last}" + (f" ⚠️ {escape(health.problem)}"
                                                                       if health.problem else ""))
    else:
        lines.append(f"Daemon: not running (last pass {_stamp(health.last_pass, zone)})")
    for name, plan in applied_state.plans.items():
        runs = last_runs.get(name) or []
        nxt = next_run_times(plan, now, 1) if plan.backtest_enabled else []
        trading = "SUSPENDED" if name in paused else f"trading {plan.trading.value}"
        ran = f"last run {escape(runs[0].status)} {_stamp(runs[0].started_at, zone)}" if runs else "no run yet"
        lines.append(f"• <b>{escape(name)}</b>: {trading}, {plan.mode.value}, {escape(plan.broker)}; {ran}; "
                     f"next {_stamp(nxt[0], zone) if nxt else 'not scheduled'}; "
                     f"{pending.count(name)} open order(s)")
        if name in paused:
            lines.append(f"   {escape(describe(paused[name], zone))}; /resume {escape(name)} ends it")
    if not applied_state.plans:
        lines.append("No applied plans.")
    return fit(lines)


def _money(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "unknown"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _book_lines(book: PlanBook) -> list[str]:
    gone = "" if book.applied else " (no longer applied)"
    lines = [f"<b>{escape(book.plan)}</b>{gone} on {escape(book.broker)}: cash {_money(book.cash)}, equity "
             f"{_money(book.equity)}, realised {_money(book.realized, signed=True)}, unrealised "
             f"{_money(book.unrealized, signed=True)}, fees {_money(book.fees)}"]
    for t in book.tickers:
        cost = f" @ {_money(t.avg_cost)}" if t.avg_cost is not None else ""
        mark = f", mark {_money(t.mark)} ({t.mark_date})" if t.mark is not None else ", no mark"
        lines.append(f"   {escape(t.ticker)} {t.quantity:g}{cost}{mark}, unrealised {_money(t.unrealized, signed=True)}")
    if not book.tickers:
        lines.append("   no fills yet")
    return lines


def positions_text(store: Store, plan: str | None = None) -> str:
    """/positions [PLAN]: per plan its cash, equity and P&L from the recorded fills, and the total."""
    applied = AppliedState(store)
    if plan is not None and plan not in applied.plans:
        known = ", ".join(applied.plans) or "none"
        return f"No applied plan {escape(plan)} (applied plans: {escape(known)})."
    books = read_books(store, applied.plans, only=plan)
    lines = ["<b>Positions</b> (from recorded fills; marks are the latest cached closes)"]
    for book in books:
        lines += _book_lines(book)
    if plan is None and len(books) > 1:
        total = totals(books)
        held = ", ".join(f"{q:g} {escape(t)}" for t, q in total.positions.items()) or "nothing"
        lines.append(f"<b>Total</b>: cash {_money(total.cash)}, equity {_money(total.equity)}, realised "
                     f"{_money(total.realized, signed=True)}, unrealised {_money(total.unrealized, signed=True)}, "
                     f"fees {_money(total.fees)}; holds {held}")
    if not books:
        lines.append("No applied plans and no fills.")
    return fit(lines)


def order_line(order: Order) -> str:
    """One order as the bot shows it: its id (tap to copy), what, status and plan."""
    note = f" ({escape(order.note)})" if order.note else ""
    return (f"<code>{escape(order.client_id)}</code>\n   {order.side.value} {order.quantity:g} {escape(order.ticker)} "
            f"{order.order_type.value}, {order.status.value}, plan {escape(order.plan)} on "
            f"{escape(order.broker)}{note}")


def orders_text(store: Store, plan: str | None = None) -> str:
    """/orders [PLAN]: the open orders (held, submitted, partly filled), each with its id for /fill."""
    with store.transaction() as con:
        found = open_orders(con, plan)
    if not found:
        return "No open orders" + (f" of plan {escape(plan)}." if plan else ".")
    lines = [f"<b>Open orders</b> ({len(found)}); record a manual fill with /fill ORDER PRICE [QTY]"]
    lines += [order_line(o) for o in found]
    return fit(lines)
