"""`apply`'s check: backtest every new or changed plan on its data source; orders are never made.

A changed plan with trading enabled is refused when its source cannot serve the current dates
(no bar for the session a run now would need): it would fail every scheduled run with DataStale.
One with trading disabled is applied (the embedded default's sample prices end in 2013 and it
must apply; `replay` rehearses it on past dates); `minitrade plan` warns about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minitrade import clock
from minitrade.data.freshness import stale_plans
from minitrade.errors import MinitradeError
from minitrade.runner.executor import executor_for
from minitrade.runner.research import research_input

if TYPE_CHECKING:
    from minitrade.loader import Snapshot


def plans_to_check(snapshot: Snapshot, changed: set[tuple[str, str]]) -> list[str]:
    """Plans that are new or changed, or whose strategy file or data source changed."""
    names = {name for kind, name in changed if kind == "plan"}
    strategies = {name for kind, name in changed if kind == "strategy"}
    sources = {name for kind, name in changed if kind == "data_source"}
    settings = any(kind == "settings" for kind, _ in changed)
    for name, plan in snapshot.plans.items():
        if plan.strategy in strategies or plan.data_source in sources or settings:
            names.add(name)
    return sorted(n for n in names if n in snapshot.plans)


def dry_run_check(snapshot: Snapshot, changed: set[tuple[str, str]]) -> list[str]:
    """Backtest each affected plan; return one message per failure (empty list = pass).

    The backtests run in worker processes with the plans' deadlines and memory cap, as scheduled
    runs do: a pushed strategy that loops forever is a rejected commit, never a hung daemon.
    """
    errors: list[str] = []
    units = []
    for name in plans_to_check(snapshot, changed):
        try:
            units.append(research_input(snapshot, name, run_id=name))
        except MinitradeError as e:
            errors.append(_named(name, str(e)))
    executor = executor_for(snapshot.settings.executor)
    try:
        for result in executor.run(units):
            if not result.ok:
                errors.append(_named(result.run_id, result.error or "the dry run failed"))
    finally:
        executor.close()
    trading = [n for n in plans_to_check(snapshot, changed) if snapshot.plans[n].trading_enabled]
    for name, why in stale_plans(snapshot, trading, clock.now(), local_only=False).items():
        errors.append(f"plan {name}: trading is enabled but {why}; or set `trading: disabled`")
    return errors


def _named(plan: str, message: str) -> str:
    return message if f"plan {plan}" in message else f"plan {plan}: {message}"
