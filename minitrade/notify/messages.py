"""Short, phone-sized messages per event: the plan, what happened, the numbers, the next step.

Each function returns a `Message`; `Notifier.notify(message)` delivers it. They take plain values
and records, never touch I/O, so the wording is tested directly and stays the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from minitrade.records import Fill, Order

MAX_LINES = 8          # list items shown before "... and N more": a phone screen, not a report
MAX_BODY = 1500        # Telegram allows 4096; shorter reads better and fits every service

_TYPES = {
    "run.failed": "failure", "config.rejected": "failure", "data.changed": "failure",
    "orders.pending": "warning", "broker.login_needed": "warning", "calendar.ending": "warning",
    "daemon.stopped": "warning", "ticks.skipped": "warning", "ticks.missed": "warning",
    "calendar.early_close": "warning",
    "run.finished": "success", "config.applied": "success", "fills.recorded": "success",
}


@dataclass(frozen=True)
class Message:
    """One notification: the event it belongs to, a title and a plain-text body."""

    event: str
    title: str
    body: str

    @property
    def notify_type(self) -> str:
        """Apprise's notification type (info, success, warning, failure) for this event."""
        return _TYPES.get(self.event, "info")


def _message(event: str, title: str, lines: Iterable[str]) -> Message:
    body = "\n".join(line for line in lines if line)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 16].rstrip() + "\n... (truncated)"
    return Message(event, title, body)


def _capped(items: Sequence[str]) -> list[str]:
    shown = [f"- {item}" for item in items[:MAX_LINES]]
    if len(items) > MAX_LINES:
        shown.append(f"... and {len(items) - MAX_LINES} more")
    return shown


def _qty(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _order(order: Order) -> str:
    return f"{order.side.value} {_qty(order.quantity)} {order.ticker} {order.order_type.value}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip() if moment else "not scheduled"


def _short(commit: str | None) -> str:
    return commit[:7] if commit else "uncommitted"


def _pct(stats: Mapping[str, Any], key: str, label: str) -> str:
    value = stats.get(key)
    return f"{label} {float(value):+.1f}%" if isinstance(value, int | float) else ""


def stats_line(stats: Mapping[str, Any]) -> str:
    """Return, drawdown and Sharpe in one line, leaving out what the run did not compute."""
    parts = [_pct(stats, "return_pct", "Return"), _pct(stats, "max_drawdown_pct", "max drawdown")]
    sharpe = stats.get("sharpe")
    if isinstance(sharpe, int | float):
        parts.append(f"Sharpe {float(sharpe):.2f}")
    return ", ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# runs and orders


def run_finished(plan: str, *, stats: Mapping[str, Any], orders: Sequence[Order] = (),
                 equity: float | None = None, next_run: datetime | None = None,
                 commit: str | None = None) -> Message:
    count = len(orders)
    return _message("run.finished", f"{plan}: run finished", [
        f"Plan {plan} finished (commit {_short(commit)}).",
        stats_line(stats),
        f"Equity {equity:,.2f}." if equity is not None else "",
        f"{count} order{'s' if count != 1 else ''}:" if count else "No orders today.",
        *_capped([_order(o) for o in orders]),
        f"Next run: {_when(next_run)}.",
    ])


def run_failed(plan: str, error: str, *, next_run: datetime | None = None,
               commit: str | None = None) -> Message:
    return _message("run.failed", f"{plan}: run FAILED", [
        f"Plan {plan} failed (commit {_short(commit)}):",
        error.strip().splitlines()[0][:300] if error.strip() else "unknown error",
        "No orders were sent by this run.",
        f"Next: fix the cause, then `minitrade run {plan}`. Next scheduled run: {_when(next_run)}.",
    ])


def orders_generated(plan: str, orders: Sequence[Order], *, trading_enabled: bool) -> Message:
    broker = orders[0].broker if orders else "?"
    step = (f"Next: they go to broker {broker}." if trading_enabled else
            "Trading is disabled: place them yourself if you want, record fills with `minitrade fill`.")
    return _message("orders.generated", f"{plan}: {len(orders)} new order(s)", [
        f"Plan {plan} generated {len(orders)} order(s):",
        *_capped([_order(o) for o in orders]),
        step,
    ])


def orders_pending(plan: str, orders: Sequence[Order], *, broker: str, reason: str = "") -> Message:
    why = reason or f"broker {broker} is not logged in"
    return _message("orders.pending", f"{plan}: {len(orders)} order(s) HELD", [
        f"Plan {plan}: {len(orders)} order(s) held, {why}:",
        *_capped([_order(o) for o in orders]),
        f"Next: run `minitrade ib login` for {broker}; held orders are submitted on the next pass."
        if broker != "manual" else "Next: place them yourself, then `minitrade fill ORDER --price P`.",
    ])


def orders_submitted(plan: str, orders: Sequence[Order], *, broker: str) -> Message:
    return _message("orders.submitted", f"{plan}: {len(orders)} order(s) submitted", [
        f"Plan {plan} submitted {len(orders)} order(s) to {broker}:",
        *_capped([_order(o) for o in orders]),
        "Next: fills are recorded when the broker reports them.",
    ])


def fills_recorded(plan: str, fills: Sequence[Fill], *, orders: Mapping[str, Order] | None = None) -> Message:
    known = orders or {}

    def line(fill: Fill) -> str:
        order = known.get(fill.client_id)
        what = f"{order.side.value} {_qty(fill.quantity)} {order.ticker}" if order else \
            f"{_qty(fill.quantity)} of {fill.client_id}"
        fee = f" (commission {fill.commission:,.2f})" if fill.commission else ""
        return f"{what} @ {fill.price:,.4g}{fee}"

    value = sum(f.quantity * f.price for f in fills)
    return _message("fills.recorded", f"{plan}: {len(fills)} fill(s)", [
        f"Plan {plan}: {len(fills)} fill(s) recorded, value {value:,.2f}:",
        *_capped([line(f) for f in fills]),
    ])


def data_changed(plan: str, detail: str) -> Message:
    return _message("data.changed", f"{plan}: past prices changed, run stopped", [
        f"Plan {plan} (strict mode) stopped: past prices changed.",
        detail.strip()[:400],
        "No orders were sent. Next: check for a split or dividend; start a new plan "
        "(new name or backtest_start) or switch it to incremental mode.",
    ])


def broker_login_needed(broker: str, *, plans: Sequence[str] = (), held_orders: int = 0) -> Message:
    held = f" {held_orders} order(s) are held" if held_orders else ""
    return _message("broker.login_needed", f"{broker}: login needed", [
        f"Broker {broker} has no live session.{held}",
        f"Plans waiting: {', '.join(plans)}." if plans else "",
        f"Next: run `minitrade ib login` ({broker}) and approve the 2FA push on your phone.",
    ])


# ---------------------------------------------------------------------------------------------
# the schedule: skipped, missed and moved runs


def ticks_skipped(plan: str, skipped: Sequence[tuple[datetime, str]]) -> Message:
    """Runs of one plan the running daemon recorded SKIPPED (late, or an early close with skip)."""
    count = len(skipped)
    return _message("ticks.skipped", f"{plan}: {count} run(s) SKIPPED", [
        f"Plan {plan}: {count} scheduled run(s) did not happen and made no orders:",
        *_capped([f"{_when(at)}: {reason}" for at, reason in skipped]),
        f"Next: if the signal still matters, `minitrade run {plan}` runs the plan now.",
    ])


def ticks_missed(start: datetime | None, end: datetime, missed: Mapping[str, Sequence[datetime]], *,
                 not_recorded: Mapping[str, datetime] | None = None, cap_days: int = 31) -> Message:
    """One summary when the daemon comes back: every run it missed while it was not running."""
    total = sum(len(ticks) for ticks in missed.values())
    since = f"from {_when(start)}" if start else "before (no earlier pass on record)"

    def line(plan: str, ticks: Sequence[datetime]) -> str:
        span = _when(ticks[0]) if len(ticks) == 1 else f"{_when(ticks[0])} to {_when(ticks[-1])}"
        return f"{plan}: {len(ticks)} ({span})"

    older = sorted((not_recorded or {}).items())
    return _message("ticks.missed", f"daemon was away: {total} run(s) missed", [
        f"The daemon was not running {since} to {_when(end)}. {total} scheduled run(s) of "
        f"{len(missed)} plan(s) are recorded SKIPPED; they made no orders:",
        *_capped([line(p, sorted(t)) for p, t in sorted(missed.items())]),
        (f"Runs more than {cap_days} days old are not recorded one by one (one SKIPPED marker each): "
         + ", ".join(f"{p} from {_when(at)}" for p, at in older[:MAX_LINES]) + ".") if older else "",
        "Next: find out why the daemon stopped; keep it running (e.g. a systemd service).",
    ])


def early_close(day: date, close: datetime, regular_close: datetime,
                changes: Sequence[tuple[str, datetime, datetime | None]], *, ahead: bool) -> Message:
    """Runs an early close moves or skips: told days ahead (`ahead`) and when they happen."""
    def line(plan: str, planned: datetime, moved: datetime | None) -> str:
        return (f"{plan}: {planned:%H:%M} runs at {moved:%H:%M} instead" if moved is not None else
                f"{plan}: {planned:%H:%M} is skipped (early_close: skip)")

    when = "will close" if ahead else "closes"
    return _message("calendar.early_close", f"early close {day.isoformat()}: {len(changes)} run(s) change", [
        f"The exchange {when} early on {day.isoformat()}, at {close:%H:%M} instead of {regular_close:%H:%M} "
        f"({close.tzname()}). Runs that change:",
        *_capped([line(*c) for c in changes]),
        "Next: nothing if that is right; a plan's `early_close: shift | skip` chooses." if ahead else "",
    ])


# ---------------------------------------------------------------------------------------------
# configuration, calendars, daemon


def config_applied(commit: str | None, changes: Sequence[str], *, dirty: bool = False) -> Message:
    state = " (with uncommitted changes)" if dirty else ""
    return _message("config.applied", f"config applied: {_short(commit)}", [
        f"Commit {_short(commit)}{state} is now applied: {len(changes)} change(s).",
        *_capped(list(changes)),
    ])


def config_rejected(commit: str | None, errors: Sequence[str] | str) -> Message:
    problems = [errors] if isinstance(errors, str) else list(errors)
    lines = [p for e in problems for p in str(e).strip().splitlines() if p.strip()]
    return _message("config.rejected", f"config REJECTED: {_short(commit)}", [
        f"Commit {_short(commit)} was rejected; the last applied state keeps running.",
        *_capped([line.strip() for line in lines]),
        "Next: fix these, commit, and check with `minitrade plan`.",
    ])


def calendar_ending(calendar: str, last_day: date, *, today: date, plans: Sequence[str] = ()) -> Message:
    days = (last_day - today).days
    return _message("calendar.ending", f"calendar {calendar} ends in {days} days", [
        f"Trading calendar {calendar} has sessions only until {last_day.isoformat()} ({days} days).",
        f"Plans on it: {', '.join(plans)}." if plans else "",
        "Next: upgrade exchange-calendars before then, or these plans stop running.",
    ])


def daemon_started(commit: str | None, *, plans: int, host: str = "") -> Message:
    where = f" on {host}" if host else ""
    return _message("daemon.started", "minitrade daemon started", [
        f"Daemon started{where} at commit {_short(commit)} with {plans} plan(s).",
    ])


def daemon_stopped(reason: str = "") -> Message:
    return _message("daemon.stopped", "minitrade daemon stopped", [
        f"Daemon stopped{': ' + reason if reason else ''}.",
        "No plan runs until it is started again (`minitrade daemon`).",
    ])


def notifier_test(notifier: str, *, context: str = "") -> Message:
    """What `minitrade notify test` and `apply` send to prove a notifier works."""
    return _message("notify.test", f"minitrade test: {notifier}", [
        f"Test message from minitrade: notifier {notifier} works.",
        context,
    ])
