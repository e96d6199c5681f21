"""Short, phone-sized messages per event: the plan, what happened, the numbers, the next step.

Each function returns a `Message`; `Notifier.notify(message)` delivers it. They take plain values
and records, never touch I/O, so the wording is tested directly and stays the same everywhere.

Each function also sets the message's `key`: the identity of the event it reports (the run id, the
client ids of the orders, the commit, the calendar and day...). Dedup compares keys, never the
text: two new orders whose notices read alike are two events and both are sent; the same event
reported twice (a run's failure seen by two passes) is one.
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
    "orders.pending": "warning", "orders.refused": "warning", "broker.login_needed": "warning",
    "broker.session_lost": "warning", "broker.session_restored": "success",
    "calendar.ending": "warning", "daemon.stopped": "warning", "ticks.skipped": "warning",
    "ticks.missed": "warning", "calendar.early_close": "warning", "source.failing": "warning",
    "source.force_pushed": "warning", "source.recovered": "success",
    "run.finished": "success", "config.applied": "success", "fills.recorded": "success",
}


@dataclass(frozen=True)
class Message:
    """One notification: the event it belongs to, a title, a plain-text body and the event's identity.

    `key` names the event, not its wording (e.g. ``run:spy-20261125T204500-1a2b3c``,
    ``orders:<client ids>``); the notifier's dedup suppresses a second message only when event
    and key are equal.
    """

    event: str
    title: str
    body: str
    key: str

    @property
    def notify_type(self) -> str:
        """Apprise's notification type (info, success, warning, failure) for this event."""
        return _TYPES.get(self.event, "info")


def _message(event: str, title: str, lines: Iterable[str], *, key: str) -> Message:
    body = "\n".join(line for line in lines if line)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 16].rstrip() + "\n... (truncated)"
    return Message(event, title, body, key)


def _ids(kind: str, ids: Iterable[str]) -> str:
    """An identity made of record ids (orders, fills), independent of their order."""
    return f"{kind}:{','.join(sorted(set(ids)))}"


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


def _applied(commit: str | None, dirty: bool) -> str:
    """The applied state a run ran from: its commit, and whether uncommitted files were applied with it."""
    if commit is None:
        return "uncommitted files"
    return f"{commit[:7]}{' with uncommitted changes' if dirty else ''}"


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


def run_finished(plan: str, *, run_id: str, stats: Mapping[str, Any], orders: Sequence[Order] = (),
                 equity: float | None = None, next_run: datetime | None = None,
                 commit: str | None = None, dirty: bool = False) -> Message:
    """A run finished; one notice per run (`run_id`)."""
    count = len(orders)
    return _message("run.finished", f"{plan}: run finished", [
        f"Plan {plan} finished (commit {_applied(commit, dirty)}).",
        stats_line(stats),
        f"Equity {equity:,.2f}." if equity is not None else "",
        f"{count} order{'s' if count != 1 else ''}:" if count else "No orders today.",
        *_capped([_order(o) for o in orders]),
        f"Next run: {_when(next_run)}.",
    ], key=f"run:{run_id}")


def run_failed(plan: str, error: str, *, run_id: str, next_run: datetime | None = None,
               commit: str | None = None, dirty: bool = False) -> Message:
    """A run failed; one notice per run (`run_id`), however often it is reported."""
    return _message("run.failed", f"{plan}: run FAILED", [
        f"Plan {plan} failed (commit {_applied(commit, dirty)}):",
        error.strip().splitlines()[0][:300] if error.strip() else "unknown error",
        "No orders were sent by this run.",
        f"Next: fix the cause, then `minitrade run {plan}`. Next scheduled run: {_when(next_run)}.",
    ], key=f"run:{run_id}")


def order_expired(plan: str, order: Order, reason: str) -> Message:
    """A held or unconfirmed order became too late to send (a failure of the plan's trading)."""
    return _message("run.failed", f"{plan}: order EXPIRED unsent", [
        f"Plan {plan}: order {order.client_id} ({_order(order)}) expired unsent: {reason}.",
        "Nothing was sent to the broker for it.",
        "Next: check the broker session (`minitrade ib status`); the plan trades again at its next run.",
    ], key=f"expired:{order.client_id}")


def orders_generated(plan: str, orders: Sequence[Order], *, trading_enabled: bool) -> Message:
    broker = orders[0].broker if orders else "?"
    step = (f"Next: they go to broker {broker}." if trading_enabled else
            "Trading is disabled: place them yourself if you want, record fills with `minitrade fill`.")
    return _message("orders.generated", f"{plan}: {len(orders)} new order(s)", [
        f"Plan {plan} generated {len(orders)} order(s):",
        *_capped([_order(o) for o in orders]),
        step,
    ], key=_ids("orders", (o.client_id for o in orders)))


def book_checked(plan: str, notes: Sequence[str], *, run_id: str) -> Message:
    """Orders refused or clipped against the plan's actual book, and a strict plan's divergence."""
    return _message("orders.refused", f"{plan}: orders checked against the actual book", [
        f"Plan {plan}: what its fills hold differs from what it wanted to trade:",
        *_capped([n.removeprefix(f"plan {plan}: ") for n in notes]),
        "Next: record missing fills with `minitrade fill`, or check the broker; refused orders were not sent.",
    ], key=f"run:{run_id}")


def orders_pending(plan: str, orders: Sequence[Order], *, broker: str, reason: str = "") -> Message:
    why = reason or f"broker {broker} is not logged in"
    return _message("orders.pending", f"{plan}: {len(orders)} order(s) HELD", [
        f"Plan {plan}: {len(orders)} order(s) held, {why}:",
        *_capped([_order(o) for o in orders]),
        f"Next: run `minitrade ib login` for {broker}; held orders are submitted on the next pass."
        if broker != "manual" else "Next: place them yourself, then `minitrade fill ORDER --price P`.",
    ], key=_ids("orders", (o.client_id for o in orders)))


def orders_submitted(plan: str, orders: Sequence[Order], *, broker: str) -> Message:
    return _message("orders.submitted", f"{plan}: {len(orders)} order(s) submitted", [
        f"Plan {plan} submitted {len(orders)} order(s) to {broker}:",
        *_capped([_order(o) for o in orders]),
        "Next: fills are recorded when the broker reports them.",
    ], key=_ids("orders", (o.client_id for o in orders)))


def order_rejected(plan: str, order: Order, *, broker: str, reason: str) -> Message:
    """The broker refused an order (or asked a question minitrade answered no): nothing was placed."""
    return _message("orders.refused", f"{plan}: order REJECTED by {broker}", [
        f"Plan {plan}: {_order(order)} was rejected by {broker}; nothing was placed.",
        reason.strip()[:600],
        f"Order {order.client_id} is recorded REJECTED and not retried. Next: if it should go through, "
        "change what the message names, then let the next run decide again.",
    ], key=f"rejected:{order.client_id}")


def broker_unavailable(plan: str, orders: Sequence[Order], *, broker: str, reason: str) -> Message:
    """Orders held because the broker's gateway did not answer (down or failing): not a login problem."""
    return _message("orders.pending", f"{plan}: {len(orders)} order(s) HELD, {broker} gateway unavailable", [
        f"Plan {plan}: {len(orders)} order(s) held: the gateway of {broker} is unavailable "
        f"({reason.strip()[:300]}).",
        *_capped([_order(o) for o in orders]),
        "Next: check the gateway with `minitrade ib status` (start it with `minitrade ib start`); held orders "
        "are submitted on a later pass once it answers, while still valid.",
    ], key=_ids(f"broker:{broker}:unavailable", (o.client_id for o in orders)))


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
    ], key=_ids("fills", (f.fill_id for f in fills)))


def data_changed(plan: str, detail: str, *, run_id: str) -> Message:
    """A strict run stopped on changed history; one notice per run (`run_id`)."""
    return _message("data.changed", f"{plan}: past prices changed, run stopped", [
        f"Plan {plan} (strict mode) stopped: past prices changed.",
        detail.strip()[:400],
        "No orders were sent. Next: check for a split or dividend; start a new plan "
        "(new name or backtest_start) or switch it to incremental mode.",
    ], key=f"run:{run_id}")


def broker_login_needed(broker: str, *, plans: Sequence[str] = (), held: Sequence[Order] = ()) -> Message:
    """The broker has no session; keyed by broker and the held orders (new held orders: a new notice)."""
    count = f" {len(held)} order(s) are held." if held else ""
    return _message("broker.login_needed", f"{broker}: login needed", [
        f"Broker {broker} has no live session.{count}",
        f"Plans waiting: {', '.join(plans)}." if plans else "",
        f"Next: run `minitrade ib login` ({broker}) and approve the 2FA push on your phone.",
    ], key=_ids(f"broker:{broker}:held", (o.client_id for o in held)))


def broker_session_lost(broker: str, state: str, *, at: datetime) -> Message:
    """The daemon's keepalive found a session it had seen authenticated gone; told once per loss."""
    return _message("broker.session_lost", f"IB session lost: {broker}", [
        f"IB session lost for {broker}: run `minitrade ib login {broker}` and approve the 2FA push on your phone.",
        f"The gateway said {state} at {_when(at)}. minitrade never logs in by itself; orders due "
        "meanwhile are held.",
    ], key=f"session:{broker}:lost:{at.isoformat()}")


def broker_session_restored(broker: str, *, at: datetime) -> Message:
    """The session the keepalive told lost is authenticated again."""
    return _message("broker.session_restored", f"IB session back: {broker}", [
        f"IB session back for {broker} at {_when(at)}; held orders still valid are sent by the next pass.",
    ], key=f"session:{broker}:restored:{at.isoformat()}")


# ---------------------------------------------------------------------------------------------
# the schedule: skipped, missed and moved runs


def ticks_skipped(plan: str, skipped: Sequence[tuple[datetime, str]]) -> Message:
    """Runs of one plan the running daemon recorded SKIPPED (late, or an early close with skip)."""
    count = len(skipped)
    return _message("ticks.skipped", f"{plan}: {count} run(s) SKIPPED", [
        f"Plan {plan}: {count} scheduled run(s) did not happen and made no orders:",
        *_capped([f"{_when(at)}: {reason}" for at, reason in skipped]),
        f"Next: if the signal still matters, `minitrade run {plan}` runs the plan now.",
    ], key=f"skipped:{plan}:" + ",".join(sorted(at.isoformat() for at, _ in skipped)))


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
    ], key=f"missed:{start.isoformat() if start else ''}:{end.isoformat()}")


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
    ], key=f"early_close:{day.isoformat()}:{'ahead' if ahead else 'today'}:"
           + ",".join(sorted(f"{p}@{planned.isoformat()}" for p, planned, _ in changes)))


# ---------------------------------------------------------------------------------------------
# configuration, calendars, daemon


def config_applied(commit: str | None, changes: Sequence[str], *, dirty: bool = False) -> Message:
    """A commit was applied; keyed by commit (and by the changes when the tree was dirty)."""
    state = " (with uncommitted changes)" if dirty else ""
    key = f"commit:{commit}" if commit and not dirty else f"tree:{commit}:{chr(10).join(changes)}"
    return _message("config.applied", f"config applied: {_short(commit)}", [
        f"Commit {_short(commit)}{state} is now applied: {len(changes)} change(s).",
        *_capped(list(changes)),
    ], key=key)


def suspension_cleared(plan: str, since: datetime, why: str, *, commit: str | None) -> Message:
    """An applied commit made a plan's suspension moot (the file disables or deletes the plan)."""
    return _message("config.applied", f"{plan}: suspension cleared", [
        f"Plan {plan} was suspended since {_when(since)}; commit {_short(commit)} is applied and {why}, "
        "so the suspension is cleared.",
        "Next: nothing; the plan now does what its file says.",
    ], key=f"suspension:{plan}:{since.isoformat()}")


def config_rejected(commit: str | None, errors: Sequence[str] | str) -> Message:
    problems = [errors] if isinstance(errors, str) else list(errors)
    lines = [p for e in problems for p in str(e).strip().splitlines() if p.strip()]
    key = f"commit:{commit}" if commit else f"tree:{chr(10).join(lines)}"
    return _message("config.rejected", f"config REJECTED: {_short(commit)}", [
        f"Commit {_short(commit)} was rejected; the last applied state keeps running.",
        *_capped([line.strip() for line in lines]),
        "Next: fix these, commit, and check with `minitrade plan`.",
    ], key=key)


def calendar_ending(calendar: str, last_day: date, *, today: date, plans: Sequence[str] = ()) -> Message:
    days = (last_day - today).days
    return _message("calendar.ending", f"calendar {calendar} ends in {days} days", [
        f"Trading calendar {calendar} has sessions only until {last_day.isoformat()} ({days} days).",
        f"Plans on it: {', '.join(plans)}." if plans else "",
        "Next: upgrade exchange-calendars before then, or these plans stop running.",
    ], key=f"calendar:{calendar}:{today.isoformat()}")


def daemon_started(commit: str | None, *, plans: int, host: str = "") -> Message:
    where = f" on {host}" if host else ""
    return _message("daemon.started", "minitrade daemon started", [
        f"Daemon started{where} at commit {_short(commit)} with {plans} plan(s).",
    ], key=f"daemon:{host}:{commit}")  # a restart loop at one commit is one notice per window


def daemon_stopped(reason: str = "", *, error: str | None = None) -> Message:
    """The daemon loop ended: `reason` names the signal; `error` the exception that ended it instead."""
    why = f" after an error: {error.strip().splitlines()[0][:300]}" if error else (f": {reason}" if reason else "")
    return _message("daemon.stopped", "minitrade daemon stopped" + (" after an ERROR" if error else ""), [
        f"Daemon stopped{why}.",
        "Next: read its log for the traceback; a service manager restarts it." if error else "",
        "No plan runs until it is started again (`minitrade daemon`).",
    ], key=f"daemon:stopped:{reason}:{error or ''}")


def source_failing(url: str, branch: str, error: str, *, since: datetime) -> Message:
    """Fetching the remote source fails (told once until it recovers)."""
    return _message("source.failing", f"fetch failing: {branch}", [
        f"Fetching {branch} from {url} fails: {error}",
        "The last applied state keeps running; new commits are not seen until a fetch succeeds.",
        "Next: check the URL, the network and the token or key; the daemon keeps retrying with backoff.",
    ], key=f"source:failing:{url}:{since.isoformat()}")


def source_recovered(url: str, branch: str, head: str, *, since: datetime) -> Message:
    return _message("source.recovered", f"fetch works again: {branch}", [
        f"Fetching {branch} from {url} works again (failing since {_when(since)}); head {_short(head)}.",
    ], key=f"source:recovered:{url}:{since.isoformat()}")


def source_force_pushed(branch: str, previous: str, head: str) -> Message:
    """The branch moved to a commit that does not descend from the one fetched before."""
    return _message("source.force_pushed", f"force-push on {branch}", [
        f"Branch {branch} was force-pushed: {_short(previous)} -> {_short(head)} (not a descendant).",
        "It is applied like any new commit, against the applied state.",
    ], key=f"source:forced:{previous}:{head}")


def notifier_test(notifier: str, *, context: str = "") -> Message:
    """What `minitrade notify test` and `apply` send to prove a notifier works."""
    return _message("notify.test", f"minitrade test: {notifier}", [
        f"Test message from minitrade: notifier {notifier} works.",
        context,
    ], key=f"test:{notifier}")
