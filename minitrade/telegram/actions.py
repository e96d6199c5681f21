"""The acting commands of the bot: /fill, /suspend, /resume, /ib_login, as proposals to confirm.

A proposal is checked when it is asked (an unknown order or plan is answered at once, with "did you
mean") and says exactly what will happen; nothing changes until the person presses Yes. Acting
calls the same functions as the CLI (`record_fill`, `suspend_plan`, `resume_plan`, IB `login` and
`send_held`), which check everything again: a fill typed into the phone is refused exactly where
`minitrade fill` would refuse it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path

from minitrade import clock
from minitrade.brokers.ib.login import login
from minitrade.errors import ConfigError, FillRefused, MinitradeError
from minitrade.loader import Snapshot
from minitrade.models import IBBroker, Plan
from minitrade.notify import Notifier, messages
from minitrade.reconcile_pass import applied_snapshot, send_held
from minitrade.runner.fills import record_fill
from minitrade.runner.orders import QUANTITY_TOLERANCE
from minitrade.runner.suspension import describe, resume_plan, suspend_plan, suspended
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store.applied import AppliedState
from minitrade.telegram.views import order_line


@dataclass(frozen=True)
class Desk:
    """Where the bot acts: the trading repo, its state database and folder, the environment of secrets."""

    root: Path
    store: Store
    state_dir: Path
    env: Mapping[str, str] | None = None

    def applied(self) -> Snapshot | None:
        """The applied desired state (None before the first apply, or when its files cannot be read)."""
        try:
            return applied_snapshot(self.root, self.store)
        except ConfigError:
            return None


@dataclass(frozen=True)
class Proposal:
    """An action waiting for Yes: what the person asked, the question shown, and the act itself."""

    command: str
    args: str
    question: str                     # HTML
    act: Callable[[], str]            # returns the HTML outcome; raises MinitradeError when refused


def _number(text: str, what: str) -> float | str:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return f"{what} must be a number, not {escape(text)}"
    if not math.isfinite(value) or value <= 0:
        return f"{what} must be a positive number, not {escape(text)}"
    return value


def _closest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=2, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(f"<code>{escape(c)}</code>" for c in close) + "?"
    return f" (known: {escape(', '.join(choices[:5]) or 'none')})"


def propose_fill(desk: Desk, args: list[str]) -> Proposal | str:
    """/fill ORDER PRICE [QTY]: record an execution of a manual broker's order (all that remains by default)."""
    if len(args) not in (2, 3):
        return "Usage: /fill ORDER PRICE [QTY] (the order id as /orders lists it; QTY defaults to what remains)"
    client_id = args[0]
    price = _number(args[1], "PRICE")
    qty = _number(args[2], "QTY") if len(args) == 3 else None
    for value in (price, qty):
        if isinstance(value, str):
            return value
    assert isinstance(price, float) and (qty is None or isinstance(qty, float))
    with desk.store.transaction() as con:
        order = order_sql.get_order(con, client_id)
        open_ids = [o.client_id for o in order_sql.open_orders(con)]
        done = sum(f.quantity for f in order_sql.fills_of(con, client_id=client_id)) if order else 0.0
    if order is None:
        return f"No order <code>{escape(client_id)}</code>{_closest(client_id, open_ids)} (/orders lists them)"
    if not order.status.is_open:
        return f"Order <code>{escape(client_id)}</code> is {order.status.value}: a fill for it is refused."
    snapshot = desk.applied()
    spec = snapshot.settings.brokers.get(order.broker) if snapshot is not None else None
    if spec is not None and spec.type != "manual":
        return (f"Order <code>{escape(client_id)}</code> went to {spec.type} broker {escape(order.broker)}, which "
                "reports its own executions; a typed fill would count twice.")
    remaining = order.quantity - done
    if qty is not None and qty > remaining + QUANTITY_TOLERANCE:
        return (f"Order <code>{escape(client_id)}</code>: {qty:g} is more than the {remaining:g} that remain "
                f"({done:g} already filled).")
    shares = qty if qty is not None else remaining
    question = (f"Record a fill of\n{order_line(order)}\n→ {order.side.value} {shares:g} {escape(order.ticker)} @ "
                f"{price:g}{' (all that remains)' if qty is None else f' ({remaining:g} remain)'}?")
    plan = snapshot.plans.get(order.plan) if snapshot is not None else None

    def act() -> str:
        fill = record_fill(desk.store, client_id, price=price, quantity=qty, at=clock.now(), plan=plan)
        with desk.store.transaction() as con:
            settled = order_sql.get_order(con, client_id)
            total = sum(f.quantity for f in order_sql.fills_of(con, client_id=client_id))
        assert settled is not None
        if snapshot is not None and snapshot.settings.notifiers:
            Notifier.from_settings(snapshot.settings, store=desk.store, env=desk.env).notify(
                messages.fills_recorded(settled.plan, [fill], orders={client_id: settled}))
        return (f"Recorded fill <code>{escape(fill.fill_id)}</code>: {settled.side.value} {fill.quantity:g} "
                f"{escape(settled.ticker)} @ {fill.price:g}. Order is now {settled.status.value}: {total:g} of "
                f"{settled.quantity:g} filled.")

    return Proposal("fill", " ".join(args), question, act)


def _applied_plan(desk: Desk, name: str) -> Plan | str:
    plans = AppliedState(desk.store).plans
    if name not in plans:
        return f"No applied plan {escape(name)}{_closest(name, sorted(plans))}"
    return plans[name]


def propose_suspend(desk: Desk, args: list[str], *, by: str) -> Proposal | str:
    """/suspend PLAN [reason]: stop a plan at once (its runs skipped, none of its orders sent)."""
    if not args:
        return "Usage: /suspend PLAN [reason]"
    name, reason = args[0], " ".join(args[1:]).strip() or None
    plan = _applied_plan(desk, name)
    if isinstance(plan, str):
        return plan
    current = suspended(desk.store).get(name)
    if current is not None:
        return f"Plan {escape(name)} is already {escape(describe(current))}; that stands. /resume {escape(name)} ends it."
    question = (f"Suspend plan <b>{escape(name)}</b>{f' ({escape(reason)})' if reason else ''}? Its runs are "
                f"skipped and none of its orders are sent until /resume {escape(name)} (its file says trading: "
                f"{plan.trading.value}).")

    def act() -> str:
        done = suspend_plan(desk.store, name, reason=reason, by=by, now=clock.now())
        state = "was already" if done.already else "is now"
        return (f"Plan {escape(name)} {state} {escape(describe(done.suspension))}. The daemon skips its runs. "
                f"Undo: /resume {escape(name)}")

    return Proposal("suspend", " ".join(args), question, act)


def propose_resume(desk: Desk, args: list[str], *, by: str) -> Proposal | str:
    """/resume PLAN: end a suspension; the plan's next scheduled run goes ahead."""
    if len(args) != 1:
        return "Usage: /resume PLAN"
    name = args[0]
    current = suspended(desk.store).get(name)
    if current is None:
        plan = _applied_plan(desk, name)
        return plan if isinstance(plan, str) else f"Plan {escape(name)} is not suspended; nothing to do."
    question = (f"Resume plan <b>{escape(name)}</b> ({escape(describe(current))})? Its next scheduled run goes "
                "ahead as its file says.")

    def act() -> str:
        ended = resume_plan(desk.store, name, by=by, now=clock.now())
        if ended is None:
            return f"Plan {escape(name)} was not suspended any more; nothing done."
        return f"Plan {escape(name)} resumed; its next scheduled run goes ahead."

    return Proposal("resume", " ".join(args), question, act)


def ib_account(desk: Desk, args: list[str]) -> tuple[str, IBBroker, Snapshot] | str:
    """The IB account /ib_login [ACCOUNT] names (the only one when not named), from the applied settings."""
    snapshot = desk.applied()
    if snapshot is None:
        return "Nothing is applied yet: run <code>minitrade apply</code> first."
    brokers = {n: b for n, b in snapshot.settings.brokers.items() if isinstance(b, IBBroker)}
    if len(args) > 1:
        return "Usage: /ib_login [ACCOUNT]"
    if args:
        if args[0] not in brokers:
            return f"No IB broker {escape(args[0])}{_closest(args[0], sorted(brokers))}"
        return args[0], brokers[args[0]], snapshot
    if len(brokers) != 1:
        return ("No broker of type ib in minitrade.yaml." if not brokers else
                f"Several IB brokers ({escape(', '.join(sorted(brokers)))}): /ib_login ACCOUNT")
    name, spec = next(iter(brokers.items()))
    return name, spec, snapshot


def propose_ib_login(desk: Desk, args: list[str], *, say: Callable[[str], None],
                     code: Callable[[], str | None], twofa_timeout: float) -> Proposal | str:
    """/ib_login [ACCOUNT]: the explicit login (2FA approved on the phone), then the held orders go out."""
    found = ib_account(desk, args)
    if isinstance(found, str):
        return found
    name, spec, snapshot = found
    question = (f"Log IB account <b>{escape(name)}</b> in through its gateway at {escape(spec.gateway.url)}? "
                "Approve the IB Key notification on this phone when it comes (or reply with the code IB sends). "
                "Held orders still valid are sent after the login.")

    def act() -> str:
        state = login(name, spec, state_dir=snapshot.state_dir, env=desk.env, twofa_timeout=twofa_timeout,
                      say=say, code=code)
        sent = send_held(desk.root, desk.store)
        lines = [f"IB account {escape(name)}: {escape(state.value)}."]
        if sent:
            lines.append(f"{len(sent)} held order(s) after the login:")
            lines += [f"<code>{escape(o.client_id)}</code>: {o.status.value}"
                      + (f" ({escape(o.note)})" if o.note else "") for o in sent]
        else:
            lines.append("No held orders to send.")
        return "\n".join(lines)

    return Proposal("ib_login", " ".join(args), question, act)


def failure(e: MinitradeError) -> str:
    """A refusal or failure as the bot says it: what happened, from the error's own message."""
    kind = "Refused" if isinstance(e, FillRefused) else "Failed"
    return f"{kind}: {escape(str(e))}"
