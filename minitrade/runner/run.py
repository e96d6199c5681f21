"""One run of one plan at one tick: the code path shared by the daemon, `minitrade run` and `replay`.

prices (read-through cache) -> [strict: past prices unchanged?] -> [incremental: actual positions
from fills, cancel earlier ticks' open orders] -> backtest -> today's decisions become orders,
checked against the actual book (no short nobody asked for, no buy beyond the cash), recorded as
PENDING_SUBMIT with deterministic client ids *before* any broker call -> submit or hold ->
results, equity and stats recorded -> notifications. Every step is recorded; a failure marks
the run FAILED with its error and never damages what was recorded before.

Only the real present trades: a run whose tick is not within `GRACE` of the real clock
(`run --at` a past or future time, `daemon --once --at`) is a *rehearsal*. It reads what a real
run reads but changes nothing outside its own records: no broker call (no fill sync, no cancel, no
submit), orders recorded REHEARSAL under their own ids, incremental storage and strict price
history left as they were. Replay's present is its simulated clock: it rehearses by construction,
in its own state folder with a simulated broker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from minitrade.data import changes as price_changes
from minitrade.data import freshness
from minitrade.errors import FetchStopped, MinitradeError, StrategyError
from minitrade.models import Mode, Plan
from minitrade.records import RunStatus
from minitrade.runner import orders as order_book
from minitrade.runner.commit import (
    CHUNK,
    End,
    OnDone,
    bug_end,
    commit_batch,
    failed_end,
    finish,
    interrupted_end,
    send_notices,
)
from minitrade.runner.compute import RunInput, RunResult
from minitrade.runner.executor import Results, UnitFeed
from minitrade.runner.run_env import Prepared, RunEnv, RunOutcome, about
from minitrade.scheduler import plan_zone
from minitrade.store import orders as order_sql
from minitrade.store import plan_state
from minitrade.store import runs as run_sql
from minitrade.trading_calendar import get_calendar

if TYPE_CHECKING:
    import pandas as pd

    from minitrade.data.base import DataSource

__all__ = ["OnDone", "RunEnv", "RunOutcome", "new_run_id", "run_plan", "run_plans", "signal_day"]
log = logging.getLogger("minitrade.run")


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
    (outcome,) = run_plans(env, [(name, tick_at, run_id or new_run_id(name, tick_at))])
    return outcome


def run_plans(env: RunEnv, ticks: Sequence[tuple[str, datetime, str]], *, on_done: OnDone | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> list[RunOutcome]:
    """Run several (plan, tick, run id) at once: prepare each here, compute them together on the
    executor, commit results in batches as they arrive. Never raises for a plan's own failures; a bug of
    ours in one run is recorded FAILED and raised after the others are committed.

    `on_done` gets the runs that ended (finished or failed), inside the transaction that records them
    ended: the caller's bookkeeping (the daemon closes their ticks) commits with theirs.
    `should_stop` abandons computations still running (the daemon is stopping): their runs are
    recorded FAILED as interrupted, and `on_done` does not get them (their ticks stay open and are
    resumed within their grace period).
    """
    prepared: dict[str, Prepared] = {}
    outcomes: list[RunOutcome] = []
    ends: list[End] = []
    bugs: list[Exception] = []
    digests = env.snapshot.digests()  # hashes every resource: once per batch, not twice per run

    def commit(batch: list[RunResult]) -> None:
        items = [(prepared.pop(r.run_id), r) for r in batch]
        reads.committed([run.plan.name for run, _ in items])
        done, notices, bug = commit_batch(env, items, on_done)
        outcomes.extend(done)
        bugs.extend([bug] if bug else [])
        send_notices(env, notices)

    def end(ended: list[End]) -> None:
        notices, bug = finish(env, ended, on_done)
        outcomes.extend(e.outcome for e in ended if e.closes)
        bugs.extend([bug] if bug else [])
        send_notices(env, notices)

    # One open of the state file for the whole: fetches, broker calls and notifications let go of it
    # (Store.released), and so does a wait of IDLE_SECONDS for results, so the CLI gets in between.
    # Workers compute a run as soon as it is prepared; what they finished meanwhile is committed
    # between two prepares, so the first runs' orders do not wait for the last runs' prices.
    feed, reads = UnitFeed(), _Reads()
    with env.store.held_open(), Results(env.executor, feed, should_stop=should_stop,
                                        on_idle=env.store.let_go) as results:
        starts = _start_all(env, ticks, digests)
        try:
            for group in (starts[i:i + PRELOAD] for i in range(0, len(starts), PRELOAD)):
                reads.load(env, group)
                for outcome, digest in group:
                    try:
                        run = _prepare(env, outcome, outcome.tick_at or env.clock(), digest, should_stop, reads)
                    except FetchStopped as e:  # the daemon is stopping: not the plan's failure; resumed later
                        ends.append(interrupted_end(env, outcome, f"interrupted: {e}"))
                    except MinitradeError as e:
                        ends.append(failed_end(env, outcome, e))
                    except Exception as e:  # a bug of ours: record it, run the others, then let it surface
                        ends.append(bug_end(env, outcome, e))
                    else:
                        prepared[outcome.run_id] = run
                        feed.put(run.input)
                    batch = results.due(CHUNK, COMMIT_WAIT)
                    if batch:
                        commit(batch)
        finally:
            reads.forget()
        feed.close()
        end(ends)  # the runs that failed to prepare
        for batch in results.batches(gather=CHUNK, linger=COMMIT_WAIT):
            commit(batch)
        # runs the executor never reported: it stopped (the daemon is stopping) before they started
        end([interrupted_end(env, run.outcome, "interrupted: the daemon stopped before this run started")
             for run in prepared.values()])
    if bugs:
        raise bugs[0]
    return outcomes


COMMIT_WAIT = 1.0  # seconds a result may wait for others before it is committed (a commit's cost is mostly per statement)
PRELOAD = 32  # runs whose prepares read their prices and histories together: memory stays at a group's


class _Reads:
    """The reads of a group of prepares, made at once: each price cache's bars of the group's
    tickers (PriceCache.preload) and the strict plans' recorded histories, one query each instead
    of a few per run. A plan's history is read again once one of its runs was committed."""

    def __init__(self) -> None:
        self.histories: dict[str, pd.DataFrame] = {}
        self.sources: dict[int, DataSource] = {}

    def load(self, env: RunEnv, group: Sequence[tuple[RunOutcome, str]]) -> None:
        self.histories = {}
        wanted: dict[int, tuple[dict[str, date], list[date]]] = {}
        strict: list[str] = []
        try:
            for outcome, _ in group:
                plan = env.snapshot.plans[outcome.plan]
                source = env.prices(plan)
                self.sources[id(source)] = source
                requests, ends = wanted.setdefault(id(source), ({}, []))
                for ticker in plan.tickers:
                    requests[ticker] = min(requests.get(ticker, plan.backtest_start), plan.backtest_start)
                ends.append(signal_day(plan, outcome.tick_at or env.clock()))
                strict += [plan.name] if plan.mode is Mode.STRICT else []
            for key, (requests, ends) in wanted.items():
                freshness.preload(self.sources[key], requests, max(ends))
            self.histories = price_changes.recorded_histories(env.store, list(dict.fromkeys(strict)))
        except Exception as e:  # only a shortcut: each prepare then reads, and reports, on its own
            log.debug("reading a group of prepares at once failed (%s); each reads on its own", e)

    def history(self, plan: str) -> pd.DataFrame | None:
        return self.histories.get(plan)

    def committed(self, plans: Sequence[str]) -> None:
        for plan in plans:
            self.histories.pop(plan, None)

    def forget(self) -> None:
        for source in self.sources.values():
            freshness.forget(source)


def _start_all(env: RunEnv, ticks: Sequence[tuple[str, datetime, str]],
               digests: Mapping[tuple[str, str], str]) -> list[tuple[RunOutcome, str]]:
    """Record every run RUNNING in one transaction; returns each run's outcome-to-be and plan digest."""
    snapshot, started_at = env.snapshot, env.clock()
    starts, runs = [], []
    for name, tick_at, run_id in ticks:
        rehearsal = env.is_rehearsal(tick_at)
        digest = digests[("plan", name)]
        starts.append(run_sql.RunStart(run_id, name, "rehearsal" if rehearsal else env.kind, started_at,
                                       snapshot.commit, digest, tick_at))
        outcome = RunOutcome(run_id, name, RunStatus.FAILED, rehearsal=rehearsal, tick_at=tick_at)
        if rehearsal:
            outcome.notes.append(f"rehearsal: the tick {tick_at.isoformat()} is not the present (now "
                                 f"{env.real_clock():%Y-%m-%d %H:%M} UTC): orders are recorded REHEARSAL, never "
                                 "submitted, and nothing at the broker changes")
        runs.append((outcome, digest))
    with env.store.transaction() as con:
        run_sql.start_runs(con, starts)
    for outcome, _ in runs:
        log.debug("plan %s: run started for the tick %s%s", outcome.plan, outcome.tick_at and outcome.tick_at.isoformat(),
                  " (rehearsal)" if outcome.rehearsal else "", extra=about(outcome))
    return runs


def _prepare(env: RunEnv, outcome: RunOutcome, tick_at: datetime, digest: str,
             should_stop: Callable[[], bool] = lambda: False, reads: _Reads | None = None) -> Prepared:
    """Prices, the strict guard, the actual book and storage: everything compute needs, read here."""
    store, snapshot = env.store, env.snapshot
    plan = snapshot.plans[outcome.plan]
    day = signal_day(plan, tick_at)
    outcome.signal_day = day
    source = env.prices(plan)
    # a source without the bar this tick needs fails the run (DataStale), never serves old prices
    delay = snapshot.settings.data_sources[plan.data_source].delay
    needed = freshness.needed_day(plan.calendar, tick_at, delay, latest=day)
    prices = freshness.fresh_prices(source, plan.tickers, plan.backtest_start, day, needed=needed, at=tick_at,
                                    should_stop=should_stop)
    if plan.mode is Mode.STRICT:
        price_changes.check_unchanged(store, plan.name, prices, source=plan.data_source,
                                      previous=reads.history(plan.name) if reads is not None else None)

    cash, trade_start, storage = plan.cash, plan.trade_start, None
    positions: dict[str, float] = {t: float(q) for t, q in plan.positions.items()}
    if plan.mode is Mode.INCREMENTAL:
        cash, positions = _incremental_book(env, plan, outcome, tick_at)
        trade_start = day
        with store.transaction() as con:
            storage = plan_state.load_storage(con, plan.name)
    code = snapshot.strategies.get(plan.strategy)
    if code is None:
        raise StrategyError(f"strategy file {plan.strategy} not found", plan=plan.name, file=plan.strategy)
    commission = plan.commission if plan.commission is not None else snapshot.settings.commission
    # Live runs trade nothing before trade_start in the simulation either: the real account starts
    # there with the plan's cash and positions, so strict mode's simulated book must start there too
    # (backtest_start is indicator lead time). Research backtests (`minitrade backtest`) trade it all.
    run_input = RunInput(run_id=outcome.run_id, plan=plan, strategy_source=code, prices=prices, cash=cash,
                         positions=positions, trade_start=trade_start, commission=commission, end=day,
                         frozen_before=day if plan.mode is Mode.INCREMENTAL else plan.trade_start,
                         storage=storage, timeout=plan.timeout or snapshot.settings.executor.timeout)
    return Prepared(outcome, plan, digest, tick_at, prices, commission,
                     run_input)


def _incremental_book(env: RunEnv, plan: Plan, outcome: RunOutcome, tick_at: datetime
                      ) -> tuple[float, dict[str, float]]:
    """Steps 1-3 of incremental mode: sync fills, actual cash and positions, cancel earlier ticks' open orders.

    A rehearsal reads the recorded book only: it never talks to the broker.
    """
    from minitrade.runner.submit import cancel_open, sync_from_broker

    if not outcome.rehearsal:
        with env.store.released():  # broker calls: never while holding the state file
            sync_from_broker(env.store, plan, env.brokers)
            cancelled = cancel_open(env.store, plan, env.brokers, keep_tick=tick_at,
                                    reason=f"superseded by run {outcome.run_id}")
        if cancelled:
            outcome.notes.append(f"cancelled {len(cancelled)} open order(s) of an earlier tick")
    with env.store.transaction() as con:
        orders = order_sql.orders_of(con, plan.name)
        fills = order_sql.fills_of(con, plan.name)
    return order_book.actual_book(plan, orders, fills)
