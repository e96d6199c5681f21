"""One run of one plan at one tick: the code path shared by the daemon, `minitrade run` and `replay`.

prices (read-through cache) -> [strict: past prices unchanged?] -> [incremental: actual positions
from fills, cancel open orders] -> backtest -> today's decisions become orders, recorded as
PENDING_SUBMIT with deterministic client ids *before* any broker call -> submit or hold ->
results, equity and stats recorded -> notifications. Every step is recorded; a failure marks
the run FAILED with its error and never damages what was recorded before.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from minitrade import failpoints
from minitrade.brokers.base import Broker
from minitrade.data import changes as price_changes
from minitrade.data import freshness
from minitrade.data.base import DataSource
from minitrade.errors import DataChanged, MinitradeError
from minitrade.loader import Snapshot
from minitrade.models import Mode, Plan
from minitrade.notify import Notifier, messages
from minitrade.records import Order
from minitrade.runner import orders as order_book
from minitrade.runner.backtest import BacktestResult, run_backtest
from minitrade.runner.research import load_plan_strategy
from minitrade.runner.submit import submit_new
from minitrade.scheduler import plan_zone
from minitrade.store import Store, plan_state
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.trading_calendar import get_calendar


@dataclass
class RunEnv:
    """What a run talks to; the daemon, `run` and `replay` each build one."""

    snapshot: Snapshot
    store: Store
    brokers: Callable[[str], Broker]
    prices: Callable[[Plan], DataSource]
    notifier: Notifier | None = None
    kind: str = "scheduled"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dataclass
class RunOutcome:
    run_id: str
    plan: str
    status: str                      # FINISHED | FAILED
    signal_day: date | None = None
    error: str | None = None
    orders: list[Order] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    result: BacktestResult | None = None


def signal_day(plan: Plan, at: datetime) -> date:
    """The last session whose bar exists at `at`: today once the session opened, else the previous one.

    A run before the open (e.g. 08:00 for TOO orders) decides on yesterday's bar; it must never
    see a bar that does not exist yet.
    """
    cal = get_calendar(plan.calendar)
    local = at.astimezone(plan_zone(plan, cal))
    today = local.date()
    if cal.is_session(today) and at >= cal.session(today).open:
        return today
    previous = cal.previous_session_day(today)
    if previous is None:
        raise MinitradeError(f"plan {plan.name}: no session of {plan.calendar} before {today}")
    return previous


def new_run_id(plan: str, tick_at: datetime) -> str:
    return f"{plan}-{tick_at.astimezone(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_plan(env: RunEnv, name: str, tick_at: datetime, *, run_id: str | None = None) -> RunOutcome:
    """Run plan `name` for the tick at `tick_at`; never raises for a plan's own failures."""
    snapshot = env.snapshot
    plan = snapshot.plans[name]
    digest = snapshot.digests()[("plan", name)]
    run_id = run_id or new_run_id(name, tick_at)
    with env.store.transaction() as con:
        run_sql.start_run(con, run_id=run_id, plan=name, kind=env.kind, commit_sha=snapshot.commit,
                          plan_digest=digest, tick_at=tick_at, started_at=env.clock())
    outcome = RunOutcome(run_id, name, "FAILED")
    try:
        _execute(env, plan, digest, tick_at, outcome)
    except MinitradeError as e:
        outcome.error = str(e)
        with env.store.transaction() as con:
            run_sql.finish_run(con, run_id, error=outcome.error, finished_at=env.clock())
        _notify(env, messages.data_changed(name, outcome.error) if isinstance(e, DataChanged)
                else messages.run_failed(name, outcome.error))
        return outcome
    except Exception as e:  # a bug of ours: record it, then let it surface
        with env.store.transaction() as con:
            run_sql.finish_run(con, run_id, error=f"internal error: {type(e).__name__}: {e}",
                               finished_at=env.clock())
        raise
    outcome.status = "FINISHED"
    return outcome


def _execute(env: RunEnv, plan: Plan, digest: str, tick_at: datetime, outcome: RunOutcome) -> None:
    store, snapshot = env.store, env.snapshot
    day = signal_day(plan, tick_at)
    outcome.signal_day = day
    source = env.prices(plan)
    # a source without the bar this tick needs fails the run (DataStale), never serves old prices
    delay = snapshot.settings.data_sources[plan.data_source].delay
    needed = freshness.needed_day(plan.calendar, tick_at, delay, latest=day)
    prices = freshness.fresh_prices(source, plan.tickers, plan.backtest_start, day, needed=needed, at=tick_at)
    if plan.mode is Mode.STRICT:
        price_changes.check_unchanged(store, plan.name, prices, source=plan.data_source)

    cash, trade_start, storage = plan.cash, plan.trade_start, None
    positions: dict[str, float] = {t: float(q) for t, q in plan.positions.items()}
    if plan.mode is Mode.INCREMENTAL:
        cash, positions = _incremental_book(env, plan, outcome)
        trade_start = day
        with store.transaction() as con:
            storage = plan_state.load_storage(con, plan.name)

    # Live runs trade nothing before trade_start in the simulation either: the real account starts
    # there with the plan's cash and positions, so strict mode's simulated book must start there too
    # (backtest_start is indicator lead time). Research backtests (`minitrade backtest`) trade it all.
    strategy = load_plan_strategy(snapshot, plan)
    commission = plan.commission if plan.commission is not None else snapshot.settings.commission
    result = run_backtest(plan, prices, strategy, cash=cash, positions=positions, trade_start=trade_start,
                          commission=commission, storage=storage, end=day,
                          frozen_before=day if plan.mode is Mode.INCREMENTAL else plan.trade_start)
    outcome.result = result
    intents = result.intents
    if intents and result.last_date != day:
        outcome.notes.append(f"no bar for {day} yet (last bar {result.last_date}): no orders")
        intents = []

    with store.transaction() as con:
        existing = order_sql.orders_of(con, plan.name, trading_day=day)
        decision = order_book.decide_orders(plan, intents, run_id=outcome.run_id, trading_day=day,
                                            tick_at=tick_at, existing=existing, commit_sha=snapshot.commit,
                                            plan_digest=digest, broker=plan.broker)
        order_sql.insert_orders(con, decision.new, now=env.clock())
        run_sql.write_results(con, outcome.run_id, equity=result.equity, positions=result.positions,
                              trades=result.trades, fills=result.fills)
        if storage is not None:
            plan_state.save_storage(con, plan.name, storage)
    failpoints.hit("order-recorded")
    outcome.notes += [note for _, note in decision.kept]
    data_digest = (price_changes.record_history(store, plan.name, outcome.run_id, prices)
                   if plan.mode is Mode.STRICT else price_changes.history_digest(prices))

    if decision.new:
        _notify(env, messages.orders_generated(plan.name, decision.new, trading_enabled=plan.trading_enabled))
        outcome.orders = submit_new(env.store, plan, decision.new, env.brokers, notify=env.notifier,
                                    now=env.clock())
    with store.transaction() as con:
        first = pd.DatetimeIndex(result.equity.index)[0].date() if len(result.equity) else None
        run_sql.finish_run(con, outcome.run_id, stats=result.stats, start_date=first, end_date=result.last_date,
                           data_digest=data_digest, finished_at=env.clock())
    _notify(env, messages.run_finished(plan.name, stats=result.stats, orders=outcome.orders))


def _incremental_book(env: RunEnv, plan: Plan, outcome: RunOutcome) -> tuple[float, dict[str, float]]:
    """Steps 1-3 of incremental mode: sync fills, actual cash and positions, cancel open orders."""
    from minitrade.runner.submit import cancel_open, sync_from_broker

    sync_from_broker(env.store, plan, env.brokers)
    cancelled = cancel_open(env.store, plan, env.brokers, reason=f"superseded by run {outcome.run_id}")
    if cancelled:
        outcome.notes.append(f"cancelled {len(cancelled)} open order(s) of the previous run")
    with env.store.transaction() as con:
        orders = order_sql.orders_of(con, plan.name)
        fills = order_sql.fills_of(con, plan.name)
    return order_book.actual_book(plan, orders, fills)


def _notify(env: RunEnv, message: messages.Message) -> None:
    if env.notifier is not None:
        env.notifier.notify(message)
