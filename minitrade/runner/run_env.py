"""What a run talks to and what it leaves: the environment the daemon, `run` and `replay` build,
a run's outcome, and a run between its prepare and commit phases (see runner/run.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from minitrade.brokers.base import Broker
from minitrade.clock import now as real_now
from minitrade.data.base import DataSource
from minitrade.loader import Snapshot
from minitrade.models import Plan
from minitrade.notify import Notifier, messages
from minitrade.records import Order, RunStatus
from minitrade.runner.backtest import BacktestResult
from minitrade.runner.compute import RunInput
from minitrade.runner.executor import Executor, InlineExecutor
from minitrade.scheduler import GRACE, next_run_times
from minitrade.store import Store


@dataclass
class RunEnv:
    """What a run talks to; the daemon, `run` and `replay` each build one."""

    snapshot: Snapshot
    store: Store
    brokers: Callable[[str], Broker]
    prices: Callable[[Plan], DataSource]
    notifier: Notifier | None = None
    kind: str = "scheduled"
    executor: Executor = field(default_factory=InlineExecutor)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    real_clock: Callable[[], datetime] = real_now  # what tells the present from a rehearsal

    def is_rehearsal(self, tick_at: datetime) -> bool:
        """A tick that is not the real present (replay's present is its simulated clock)."""
        return abs(self.real_clock() - tick_at) > GRACE


@dataclass
class RunOutcome:
    run_id: str
    plan: str
    status: RunStatus
    signal_day: date | None = None
    error: str | None = None
    orders: list[Order] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    result: BacktestResult | None = None
    rehearsal: bool = False
    tick_at: datetime | None = None


@dataclass
class Prepared:
    """A run between its prepare and commit phases: what commit needs, and the compute input."""

    outcome: RunOutcome
    plan: Plan
    digest: str
    tick_at: datetime
    prices: dict[str, pd.DataFrame]
    commission: float
    input: RunInput


def next_run(env: RunEnv, name: str, tick_at: datetime | None) -> datetime | None:
    """The plan's next scheduled run after this one (and after the clock: a late run's next is
    still ahead), in its exchange's time; None when its schedule is off or its calendar ends."""
    plan = env.snapshot.plans.get(name)
    if plan is None or not plan.backtest_enabled:
        return None
    after = env.clock() if tick_at is None else max(tick_at, env.clock())
    upcoming = next_run_times(plan, after, 1)
    return upcoming[0] if upcoming else None


def about(outcome: RunOutcome) -> dict[str, str]:
    """The `extra` of a run's log lines: its plan and run id."""
    return {"plan": outcome.plan, "run_id": outcome.run_id}


def notify(env: RunEnv, message: messages.Message) -> None:
    if env.notifier is None or not env.notifier.notifiers:
        return  # nobody to tell: no need to let go of the state file (reopening it costs ~6 ms)
    with env.store.released():  # a notification goes over the network
        env.notifier.notify(message)
