"""Suspend and resume a plan: an operator's emergency override of the applied state (`flux suspend`).

A suspension is recorded in DuckDB with who, when and why; nothing in git changes. While a plan is
suspended the daemon records each of its due ticks SKIPPED ("suspended at T: reason"), sends none
of its held orders, and a hand-started run records its orders CANCELLED, never sent. `plan` and
`status` show it as drift from the files until `resume`, or until an applied commit says the plan
itself is disabled (`trading: disabled`, `backtest: disabled`) or deletes it: then the suspension is
cleared, because the files now say what the override said.

The CLI and any other front end (a chat bot) call these functions; none writes the table itself.
"""

from __future__ import annotations

import difflib
import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb

from minitrade.errors import PlanUnknown
from minitrade.models import Plan
from minitrade.store import Store
from minitrade.store import suspensions as sql
from minitrade.store.applied import applied_resources
from minitrade.store.suspensions import Override

__all__ = ["Override", "SuspendOutcome", "clear_disabled", "describe", "drift", "operator", "resume_plan",
           "skip_reason", "suspend_plan", "suspended"]


@dataclass(frozen=True)
class SuspendOutcome:
    suspension: Override   # the suspension in force (an earlier one when `already`)
    already: bool          # the plan was suspended before; the earlier suspension stands
    trading: str           # what the applied plan file says: enabled | disabled


def operator() -> str:
    """Who acts from this shell: user@host (recorded with the override)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def suspended(store: Store) -> dict[str, Override]:
    """The plans suspended now."""
    with store.transaction() as con:
        return sql.suspended(con)


def _applied_trading(con: duckdb.DuckDBPyConnection, plan: str) -> str:
    resources = applied_resources(con)
    spec = resources.get(("plan", plan))
    if spec is None:
        names = sorted(n for k, n in resources if k == "plan")
        close = difflib.get_close_matches(plan, names, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (applied plans: {', '.join(names) or 'none'})"
        raise PlanUnknown(f"no applied plan {plan!r}{hint}")
    return "enabled" if Plan.model_validate(spec.spec).trading_enabled else "disabled"


def suspend_plan(store: Store, plan: str, *, reason: str | None, by: str, now: datetime) -> SuspendOutcome:
    """Suspend an applied plan from `now`; a plan already suspended keeps its first suspension.

    Example: ``suspend_plan(store, "sma-aapl", reason="earnings tonight", by=operator(), now=clock.now())``
    """
    with store.transaction() as con:
        trading = _applied_trading(con, plan)
        current = sql.suspended(con).get(plan)
        if current is not None:
            return SuspendOutcome(current, True, trading)
        made = sql.record(con, plan, sql.SUSPEND, at=now, by=by, reason=(reason or "").strip() or None)
    return SuspendOutcome(made, False, trading)


def resume_plan(store: Store, plan: str, *, by: str, now: datetime) -> Override | None:
    """End a plan's suspension; returns the suspension that ended (None: it was not suspended).

    A plan no longer applied can still be resumed (its suspension is cleared).
    """
    with store.transaction() as con:
        current = sql.suspended(con).get(plan)
        if current is None:
            _applied_trading(con, plan)  # an unknown name is an error, a known running plan is no news
            return None
        sql.record(con, plan, sql.RESUME, at=now, by=by)
    return current


def clear_disabled(con: duckdb.DuckDBPyConnection, plans: Mapping[str, Plan], *, at: datetime,
                   by: str) -> list[tuple[Override, str]]:
    """At an apply: clear the suspensions of plans the new files disable or delete (the files now say
    it). Returns each cleared suspension with why, for the person to be told."""
    cleared: list[tuple[Override, str]] = []
    for name, current in sorted(sql.suspended(con).items()):
        plan = plans.get(name)
        if plan is None:
            why = "the plan file is deleted"
        elif not plan.trading_enabled:
            why = "the plan file says trading: disabled"
        elif not plan.backtest_enabled:
            why = "the plan file says backtest: disabled"
        else:
            continue
        sql.record(con, name, sql.CLEARED, at=at, by=by, reason=why)
        cleared.append((current, why))
    return cleared


def _stamp(at: datetime, zone: ZoneInfo | None) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if zone else at.strftime("%Y-%m-%d %H:%M %Z")


def describe(s: Override, zone: ZoneInfo | None = None) -> str:
    """'suspended at 2013-01-03 15:40 EST by ann@desk (earnings tonight)'."""
    return f"suspended at {_stamp(s.at, zone)} by {s.by}{f' ({s.reason})' if s.reason else ''}"


def skip_reason(s: Override, zone: ZoneInfo | None = None) -> str:
    """Why the daemon skips a suspended plan's tick: 'suspended at T: reason'."""
    return f"suspended at {_stamp(s.at, zone)}: {s.reason or 'no reason given'}"


def drift(s: Override, trading: str | None, zone: ZoneInfo | None = None) -> str:
    """The suspension as drift from the files, with the way out."""
    says = "the plan file is deleted" if trading is None else f"the file says trading: {trading}"
    return f"plan {s.plan}: {describe(s, zone)}; {says}. `minitrade resume {s.plan}` ends it"
