"""`minitrade replay`: the whole live loop over past sessions on a simulated clock.

Every plan's ticks run in time order through the same `run_plans` the daemon uses (the ticks of
several plans at one simulated instant compute together on the executor), against a separate
state database (`<state_dir>/replay/`), so a rehearsal never mixes with real records.
Orders go to a simulated broker and are filled at the simulated price of their entry type
(`runner.entry`): TOC at the signal day's close, TOO at the next session's open, TRG decided during
the session at once (right after its run, at the signal day's close: the price that run saw, see
below) and TRG decided before the open or after the close at the next session's open. Every plan is
treated as `trading: enabled` here, since nothing can reach a real broker. Bars are whole days: a
15:45 run sees the day's final bar (the real run would see a partial one whose close is the last
price), so a TRG order of a 10:00 run fills at the day's close, recorded at 10:00.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from minitrade.brokers.base import BrokerOrder, SessionState
from minitrade.data.base import DataSource
from minitrade.data.registry import source_for
from minitrade.errors import ConfigError, ConfigIssue
from minitrade.loader import Snapshot
from minitrade.models import OrderType, Plan, Switch
from minitrade.reconciler import apply
from minitrade.records import Fill, Order, OrderStatus, RunStatus
from minitrade.runner.entry import in_session
from minitrade.runner.executor import Executor, InlineExecutor
from minitrade.runner.fills import record_fill
from minitrade.runner.run import RunEnv, RunOutcome, new_run_id, run_plans
from minitrade.scheduler import ticks_on
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.trading_calendar import get_calendar

Progress = Callable[[int, int, str], None]


class SimulatedBroker:
    """Accepts every order; the replay loop fills them at simulated prices."""

    def __init__(self, name: str) -> None:
        self.name = name

    def session(self) -> SessionState:
        return SessionState.READY

    def close(self) -> None:
        """Nothing to release."""

    def submit(self, order: Order) -> BrokerOrder:
        return BrokerOrder(order.client_id, order.client_id, OrderStatus.SUBMITTED, 0.0, order.quantity)

    def find(self, client_id: str) -> BrokerOrder | None:
        return None

    def cancel(self, order: Order) -> None:
        return None

    def fills(self, since: datetime | None = None) -> list[Fill]:
        return []


class MemoSource:
    """A data source read once per ticker and sliced per run (replay runs the same history often)."""

    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.name = source.name
        self._frames: dict[str, pd.DataFrame] = {}

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        if ticker not in self._frames:
            self._frames[ticker] = self.source.daily(ticker, date(1900, 1, 1), None)
        frame = self._frames[ticker]
        return frame.loc[pd.Timestamp(start):pd.Timestamp(end) if end else None]


@dataclass
class ReplaySummary:
    store: Store
    state_dir: Path
    sessions: int = 0
    runs: list[RunOutcome] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)

    @property
    def failed(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.status is not RunStatus.FINISHED]


def replay(snapshot: Snapshot, *, start: date, end: date, plans: list[str] | None = None,
           state_dir: Path | None = None, progress: Progress | None = None,
           keep_results: bool = False, executor: Executor | None = None) -> ReplaySummary:
    """Replay `plans` (default all with backtest enabled) over the sessions from `start` to `end`.

    Runs compute on `executor` (default: in this process, one after another).

    Each run's backtest result (its whole equity curve and positions) is recorded in the store and
    dropped from `summary.runs` unless `keep_results`: kept, they made memory grow with the sessions.
    """
    chosen = _choose(snapshot, plans)
    rehearsal = Snapshot(root=snapshot.root, settings=snapshot.settings, plans=chosen,
                         plan_files=snapshot.plan_files, strategies=snapshot.strategies,
                         sources=snapshot.sources, commit=snapshot.commit, dirty=snapshot.dirty)
    folder = state_dir or snapshot.state_dir / "replay"
    if folder.exists():
        shutil.rmtree(folder)  # a rehearsal starts from nothing, every time
    store = Store(folder / "minitrade.duckdb")
    # the applied state records the plans as their files say (the report's tags and "Plan as
    # applied" must match them); only the runs below trade every plan, through `rehearsal`
    as_written = {n: snapshot.plans[n] for n in chosen}
    apply(Snapshot(root=snapshot.root, settings=snapshot.settings, plans=as_written, plan_files=snapshot.plan_files,
                   strategies=snapshot.strategies, sources=snapshot.sources, commit=snapshot.commit,
                   dirty=snapshot.dirty), store, checks=[], source="replay")
    memo: dict[str, MemoSource] = {}

    def prices(plan: Plan) -> DataSource:
        if plan.data_source not in memo:
            spec = snapshot.settings.data_sources[plan.data_source]
            memo[plan.data_source] = MemoSource(source_for(plan.data_source, spec, root=snapshot.root))
        return memo[plan.data_source]

    summary = ReplaySummary(store, folder)
    clock = {"now": datetime.combine(start, datetime.min.time())}
    env = RunEnv(snapshot=rehearsal, store=store, brokers=SimulatedBroker, prices=prices, kind="replay",
                 clock=lambda: clock["now"], real_clock=lambda: clock["now"],
                 executor=executor or InlineExecutor())
    days = _sessions(chosen, start, end)
    with store.held_open():
        _replay_days(days, chosen, rehearsal, store, env, prices, clock, summary, progress, keep_results)
    summary.sessions = len(days)
    return summary


def _replay_days(days: list[date], chosen: dict[str, Plan], rehearsal: Snapshot, store: Store, env: RunEnv,
                 prices: Callable[[Plan], DataSource], clock: dict[str, datetime], summary: ReplaySummary,
                 progress: Progress | None, keep_results: bool) -> None:
    for i, day in enumerate(days, start=1):
        # Events in time order: a run before the open sees TOO fills only after it, at the open.
        opening, closing = _session_bounds(chosen, day)
        events = [(t, 1, name) for name, plan in chosen.items() for t in ticks_on(plan, day)]
        events += [(opening, 0, OPEN), (closing, 0, CLOSE)]
        for moment, what in _steps(events):
            clock["now"] = moment
            if isinstance(what, str):
                summary.fills += _fill(store, rehearsal, prices, day, at_open=what == OPEN)
                continue
            done = {o.plan: o for o in run_plans(env, [(name, moment, new_run_id(name, moment)) for name in what])}
            for outcome in (done[name] for name in what if name in done):  # in plan order, whatever finished first
                summary.runs.append(outcome)
                summary.fills += _fill_at_once(store, rehearsal, prices, outcome)
                if not keep_results:
                    outcome.result = None
        if progress:
            progress(i, len(days), f"{day}")


def _steps(events: list[tuple[datetime, int, str]]) -> list[tuple[datetime, str | list[str]]]:
    """The day's events in time order: the open and the close alone, plan ticks of one instant together."""
    steps: list[tuple[datetime, str | list[str]]] = []
    for moment, _, what in sorted(events):
        last = steps[-1] if steps else None
        if what in (OPEN, CLOSE):
            steps.append((moment, what))
        elif last is not None and last[0] == moment and isinstance(last[1], list):
            last[1].append(what)
        else:
            steps.append((moment, [what]))
    return steps


def _choose(snapshot: Snapshot, names: list[str] | None) -> dict[str, Plan]:
    unknown = sorted(set(names or []) - set(snapshot.plans))
    if unknown:
        raise ConfigError([ConfigIssue("plans", None, "", f"no plan named {n!r}",
                                       f"plans: {', '.join(sorted(snapshot.plans))}") for n in unknown])
    picked = {n: p for n, p in snapshot.plans.items() if (n in names if names else p.backtest_enabled)}
    return {n: p.model_copy(update={"trading": Switch.ENABLED}) for n, p in picked.items()}


OPEN, CLOSE = "\0open", "\0close"  # cannot clash with plan names


def _session_bounds(plans: dict[str, Plan], day: date) -> tuple[datetime, datetime]:
    """The earliest open and latest close among the plans' sessions on `day`."""
    sessions = [cal.session(day) for cal in {get_calendar(p.calendar) for p in plans.values()}
                if cal.is_session(day)]
    return min(s.open for s in sessions), max(s.close for s in sessions)


def _sessions(plans: dict[str, Plan], start: date, end: date) -> list[date]:
    days: set[date] = set()
    for plan in plans.values():
        days.update(s.day for s in get_calendar(plan.calendar).sessions(start, end))
    return sorted(days)


def _fill(store: Store, snapshot: Snapshot, prices: Callable[[Plan], DataSource], day: date, *,
          at_open: bool) -> list[Fill]:
    """Fill submitted orders whose simulated price is known on `day`: the open for TOO orders and
    after-hours TRG orders of earlier days, the close for TOC orders of this day."""
    with store.transaction() as con:
        waiting = order_sql.orders_of(con, None, statuses=[OrderStatus.SUBMITTED, OrderStatus.PARTIAL])
    out = []
    for order in waiting:
        plan = snapshot.plans.get(order.plan)
        if plan is None:
            continue
        is_toc = order.order_type is OrderType.TOC
        if at_open == is_toc or (is_toc and order.trading_day != day) or (not is_toc and order.trading_day >= day):
            continue
        bar = prices(plan).daily(order.ticker, day, day)
        if bar.empty:
            continue
        price = float(bar["open" if at_open else "close"].iloc[0])
        session = get_calendar(plan.calendar).session(day)
        out.append(_record(store, snapshot, plan, order, price, session.open if at_open else session.close))
    return out


def _fill_at_once(store: Store, snapshot: Snapshot, prices: Callable[[Plan], DataSource],
                  run: RunOutcome) -> list[Fill]:
    """Fill the run's TRG orders decided during the session at once: at the signal day's close (the
    price the run saw, as near as daily bars get), at the run's time. Others wait for `_fill`."""
    out = []
    for order in run.orders:
        plan = snapshot.plans.get(order.plan)
        if (plan is None or order.order_type is not OrderType.TRG or order.status is not OrderStatus.SUBMITTED
                or order.tick_at is None or not in_session(plan, order.tick_at)):
            continue
        bar = prices(plan).daily(order.ticker, order.trading_day, order.trading_day)
        if bar.empty:
            continue  # no price for the day: it fills at the next open like an after-hours order
        out.append(_record(store, snapshot, plan, order, float(bar["close"].iloc[0]), order.tick_at))
    return out


def _record(store: Store, snapshot: Snapshot, plan: Plan, order: Order, price: float, at: datetime) -> Fill:
    rate = plan.commission if plan.commission is not None else snapshot.settings.commission
    # replay never fills partially, so the whole quantity fills here, charged like the backtest
    return record_fill(store, order.client_id, price=price, commission=rate * order.quantity * price,
                       at=at, source="replay")

