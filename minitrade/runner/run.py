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
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import pandas as pd

from minitrade import failpoints
from minitrade.brokers.base import Broker
from minitrade.brokers.registry import is_remote
from minitrade.clock import now as real_now
from minitrade.data import changes as price_changes
from minitrade.data import freshness
from minitrade.data.base import DataSource
from minitrade.errors import DataChanged, FetchStopped, MinitradeError, StrategyError
from minitrade.loader import Snapshot
from minitrade.models import Mode, Plan
from minitrade.notify import Notifier, messages
from minitrade.records import Fill, Order, OrderStatus, RunStatus
from minitrade.runner import orders as order_book
from minitrade.runner.backtest import BacktestResult
from minitrade.runner.compute import RunInput, RunResult, raise_for_error
from minitrade.runner.executor import Executor, InlineExecutor, ready_batches
from minitrade.runner.submit import submit_new
from minitrade.scheduler import GRACE, next_run_times, plan_zone
from minitrade.store import Store, plan_state
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.trading_calendar import get_calendar

log = logging.getLogger("minitrade.run")
HOLD_SECONDS = 1.0  # the longest the state file is held for one batch of results before the CLI gets a turn

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


def run_plans(env: RunEnv, ticks: Sequence[tuple[str, datetime, str]], *,
              on_done: Callable[[RunOutcome], None] | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> list[RunOutcome]:
    """Run several (plan, tick, run id) at once: prepare each here, compute them together on the
    executor, commit results in batches as they arrive. Never raises for a plan's own failures; a bug of
    ours in one run is recorded FAILED and raised after the others are committed.

    `should_stop` abandons computations still running (the daemon is stopping): their runs are
    recorded FAILED as interrupted, and `on_done` is not called for them (their ticks stay open
    and are resumed within their grace period).
    """
    prepared: dict[str, _Prepared] = {}
    outcomes: list[RunOutcome] = []
    bug: Exception | None = None
    digests = env.snapshot.digests()  # hashes every resource: once per batch, not twice per run
    # Every run's prepare shares one open of the state file; fetches, broker calls and notifications
    # inside let go of it (Store.released), so the CLI is locked out only while the database works.
    with env.store.held_open():
        for name, tick_at, run_id in ticks:
            digest = digests[("plan", name)]
            outcome = _start(env, name, tick_at, run_id, digest)
            try:
                prepared[run_id] = _prepare(env, outcome, tick_at, digest, should_stop)
            except FetchStopped as e:  # the daemon is stopping: not the plan's failure; its tick is resumed
                _interrupted(env, outcome, f"interrupted: {e}")
            except MinitradeError as e:
                _fail(env, outcome, e)
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(outcome)
            except Exception as e:  # a bug of ours: record it, run the others, then let it surface
                _record_bug(env, outcome, e)
                bug = bug or e
    for batch in ready_batches(env.executor, [p.input for p in prepared.values()], should_stop=should_stop):
        done, notices, batch_bug = _commit_batch(env, [(prepared.pop(r.run_id), r) for r in batch], on_done)
        outcomes += done
        bug = bug or batch_bug
        for notice in notices:  # sent once the state file is let go
            _notify(env, notice)
    if bug is not None:
        raise bug
    return outcomes


def _commit_batch(env: RunEnv, batch: list[tuple[_Prepared, RunResult]],
                  on_done: Callable[[RunOutcome], None] | None
                  ) -> tuple[list[RunOutcome], list[messages.Message], Exception | None]:
    """Commit results that arrived together; returns the outcomes, their closing notices and a bug of ours.

    Their bookkeeping and the caller's (`on_done` closes the tick) share one open of the state file,
    let go of every HOLD_SECONDS so the CLI gets its turn; submission and notifications inside let
    go of it too (Store.released).
    """
    outcomes: list[RunOutcome] = []
    notices: list[messages.Message] = []
    bug: Exception | None = None
    with env.store.held_open():
        opened = time.monotonic()
        for run, result in batch:
            if time.monotonic() - opened > HOLD_SECONDS:
                env.store.let_go()
                opened = time.monotonic()
            if result.interrupted:
                _interrupted(env, run.outcome, result.error or "interrupted")
                continue
            try:
                notice = _commit(env, run, result)
            except MinitradeError as e:
                _fail(env, run.outcome, e)
                notice = None
            except Exception as e:  # a bug of ours: recorded, the others committed, then raised
                _record_bug(env, run.outcome, e)
                bug = bug or e
                continue
            notices += [notice] if notice is not None else []
            outcomes.append(run.outcome)
            if on_done is not None:
                on_done(run.outcome)
    return outcomes, notices, bug


@dataclass
class _Prepared:
    """A run between its prepare and commit phases: what commit needs, and the compute input."""

    outcome: RunOutcome
    plan: Plan
    digest: str
    tick_at: datetime
    prices: dict[str, pd.DataFrame]
    commission: float
    input: RunInput


def _start(env: RunEnv, name: str, tick_at: datetime, run_id: str, digest: str) -> RunOutcome:
    snapshot = env.snapshot
    rehearsal = env.is_rehearsal(tick_at)
    with env.store.transaction() as con:
        run_sql.start_run(con, run_id=run_id, plan=name, kind="rehearsal" if rehearsal else env.kind,
                          commit_sha=snapshot.commit, plan_digest=digest,
                          tick_at=tick_at, started_at=env.clock())
    outcome = RunOutcome(run_id, name, RunStatus.FAILED, rehearsal=rehearsal, tick_at=tick_at)
    log.debug("plan %s: run started for the tick %s%s", name, tick_at.isoformat(), " (rehearsal)" if rehearsal else "",
              extra=_about(outcome))
    if rehearsal:
        outcome.notes.append(f"rehearsal: the tick {tick_at.isoformat()} is not the present (now "
                             f"{env.real_clock():%Y-%m-%d %H:%M} UTC): orders are recorded REHEARSAL, never "
                             "submitted, and nothing at the broker changes")
    return outcome


def _fail(env: RunEnv, outcome: RunOutcome, error: MinitradeError) -> None:
    outcome.status, outcome.error = RunStatus.FAILED, str(error)
    with env.store.transaction() as con:
        run_sql.finish_run(con, outcome.run_id, error=outcome.error, finished_at=env.clock(), notes=outcome.notes)
    log.warning("plan %s: run failed: %s", outcome.plan, outcome.error, extra=_about(outcome))
    name, run_id = outcome.plan, outcome.run_id
    _notify(env, messages.data_changed(name, outcome.error, run_id=run_id) if isinstance(error, DataChanged)
            else messages.run_failed(name, outcome.error, run_id=run_id, commit=env.snapshot.commit,
                                     dirty=env.snapshot.dirty, next_run=_next_run(env, name, outcome.tick_at)))


def _interrupted(env: RunEnv, outcome: RunOutcome, error: str) -> None:
    """The daemon is stopping: not the plan's failure, so recorded and not notified; its tick stays
    open and is resumed within its grace period."""
    outcome.error = error
    with env.store.transaction() as con:
        run_sql.finish_run(con, outcome.run_id, error=error, finished_at=env.clock())
    log.warning("plan %s: run %s", outcome.plan, error, extra=_about(outcome))


def _record_bug(env: RunEnv, outcome: RunOutcome, error: Exception) -> None:
    outcome.error = f"internal error: {type(error).__name__}: {error}"
    with env.store.transaction() as con:
        run_sql.finish_run(con, outcome.run_id, error=outcome.error, finished_at=env.clock())
    log.error("plan %s: run failed: %s", outcome.plan, outcome.error, exc_info=error, extra=_about(outcome))


def _prepare(env: RunEnv, outcome: RunOutcome, tick_at: datetime, digest: str,
             should_stop: Callable[[], bool] = lambda: False) -> _Prepared:
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
        price_changes.check_unchanged(store, plan.name, prices, source=plan.data_source)

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
    return _Prepared(outcome, plan, digest, tick_at, prices, commission,
                     run_input)


def _commit(env: RunEnv, run: _Prepared, computed: RunResult) -> messages.Message | None:
    """Record the compute phase's output, then orders (before any broker call), submit, notify;
    returns the run's closing notice, sent by the caller once the state file is let go."""
    store, outcome, plan, rehearsal = env.store, run.outcome, run.plan, run.outcome.rehearsal
    with store.held_open():  # the caller's, when it holds one: the database part up to the broker
        new, book_notes, result, data_digest = _record_computed(env, run, computed)

    to_send = [o for o in new if o.status is OrderStatus.PENDING_SUBMIT]
    if book_notes:
        _notify(env, messages.book_checked(plan.name, book_notes, run_id=outcome.run_id))
    if rehearsal:
        outcome.orders = new
    elif to_send:
        _notify(env, messages.orders_generated(plan.name, to_send, trading_enabled=plan.trading_enabled))
        with store.released() if _submission_is_slow(env, plan) else nullcontext():
            outcome.orders = submit_new(env.store, plan, to_send, env.brokers, notify=env.notifier,
                                        now=env.real_clock())
    outcome.orders += [o for o in new if o.status is OrderStatus.REJECTED]
    with store.transaction() as con:
        first = pd.DatetimeIndex(result.equity.index)[0].date() if len(result.equity) else None
        run_sql.finish_run(con, outcome.run_id, stats=result.stats, start_date=first, end_date=result.last_date,
                           data_digest=data_digest, finished_at=env.clock(), notes=outcome.notes)
    outcome.status = RunStatus.FINISHED
    log.info("plan %s: run finished for %s: %d order(s)", plan.name, outcome.signal_day, len(outcome.orders),
             extra=_about(outcome))
    if rehearsal:
        return None
    return messages.run_finished(plan.name, run_id=outcome.run_id, stats=result.stats, orders=outcome.orders,
                                 commit=env.snapshot.commit, dirty=env.snapshot.dirty,
                                 next_run=_next_run(env, plan.name, run.tick_at))


def _submission_is_slow(env: RunEnv, plan: Plan) -> bool:
    """Whether submitting goes over the network (a remote broker, or someone to notify), so the
    state file must be let go first; a manual broker with nobody to tell is local bookkeeping."""
    has_listeners = env.notifier is not None and bool(env.notifier.notifiers)
    return has_listeners or is_remote(env.snapshot.settings.brokers.get(plan.broker))


def _next_run(env: RunEnv, name: str, tick_at: datetime | None) -> datetime | None:
    """The plan's next scheduled run after this one (and after the clock: a late run's next is
    still ahead), in its exchange's time; None when its schedule is off or its calendar ends."""
    plan = env.snapshot.plans.get(name)
    if plan is None or not plan.backtest_enabled:
        return None
    after = env.clock() if tick_at is None else max(tick_at, env.clock())
    upcoming = next_run_times(plan, after, 1)
    return upcoming[0] if upcoming else None


def _record_computed(env: RunEnv, run: _Prepared, computed: RunResult
                     ) -> tuple[list[Order], list[str], BacktestResult, str]:
    """The commit's database part: output, then orders (checked against the book), results, storage,
    price history. Returns the new orders, the book notes, the backtest and the data digest."""
    store, snapshot, outcome, plan = env.store, env.snapshot, run.outcome, run.plan
    rehearsal, day, tick_at = outcome.rehearsal, outcome.signal_day, run.tick_at
    assert day is not None
    if computed.output_bytes:
        with store.transaction() as con:
            run_sql.record_output(con, outcome.run_id, computed.output, computed.output_bytes)
    result = raise_for_error(computed)
    outcome.result = result
    intents = result.intents
    if intents and result.last_date != day:
        outcome.notes.append(f"no bar for {day} yet (last bar {result.last_date}): no orders")
        intents = []

    with store.transaction() as con:
        existing = order_sql.orders_of(con, plan.name)
        decision = order_book.decide_orders(plan, intents, run_id=outcome.run_id, trading_day=day,
                                            tick_at=tick_at, existing=existing, commit_sha=snapshot.commit,
                                            plan_digest=run.digest, broker=plan.broker, rehearsal=rehearsal)
        new, book_notes = decision.new, list[str]()
        outcome.notes += [note for _, note in decision.kept]
        if plan.trading_enabled and not rehearsal:
            new, book_notes = _check_against_book(plan, new, existing, order_sql.fills_of(con, plan.name),
                                                  result, closes=_last_closes(run.prices),
                                                  commission=run.commission)
            outcome.notes += book_notes
        order_sql.insert_orders(con, new, now=env.clock())
        for o in new:
            log.log(logging.WARNING if o.status is OrderStatus.REJECTED else logging.INFO, "order %s recorded %s: %s %g %s "
                    "%s%s", o.client_id, o.status.value, o.side.value, o.quantity, o.ticker, o.order_type.value,
                    f" ({o.note})" if o.note else "", extra=_about(outcome))
        run_sql.write_results(con, outcome.run_id, equity=result.equity, positions=result.positions,
                              trades=result.trades, fills=result.fills, plan=plan.name)
        if computed.storage is not None and not rehearsal:
            plan_state.save_storage(con, plan.name, computed.storage)
    failpoints.hit("order-recorded")
    if plan.mode is Mode.STRICT and not rehearsal:
        data_digest = price_changes.record_history(store, plan.name, outcome.run_id, run.prices)
    else:
        data_digest = price_changes.history_digest(run.prices)

    return new, book_notes, result, data_digest


def _last_closes(prices: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    return {t: float(f["close"].iloc[-1]) for t, f in prices.items() if len(f)}


def _check_against_book(plan: Plan, new: list[Order], existing: list[Order], fills: list[Fill],
                        result: BacktestResult, *, closes: Mapping[str, float], commission: float
                        ) -> tuple[list[Order], list[str]]:
    """Hold new orders against the plan's actual book (its fills, less its open orders' claims).

    Returns the orders to record (clipped ones carry a note; refused ones are recorded REJECTED,
    never sent, so the decision stays on the record) and the notes to show and notify. A strict
    plan also reports where its simulated holdings differ from the fills.
    """
    notes: list[str] = []
    actual = order_book.actual_book(plan, existing, fills)
    if plan.mode is Mode.STRICT and len(result.positions):
        simulated = {str(t): float(q) for t, q in result.positions.iloc[-1].items() if q}
        notes += [f"plan {plan.name}: {line}"
                  for line in order_book.divergence(plan, simulated, actual[1], existing)]
    if not new:
        return new, notes
    cash, held = order_book.reserved_book(plan, existing, fills, closes, actual=actual)
    check = order_book.check_book(plan, new, cash=cash, positions=held, prices=closes, commission=commission)
    notes += check.notes
    clipped = {o.client_id: note for o, note in check.clipped}
    recorded = [replace(o, note=clipped[o.client_id]) if o.client_id in clipped else o for o in check.orders]
    recorded += [replace(o, status=OrderStatus.REJECTED, note=f"refused by minitrade: {why}")
                 for o, why in check.refused]
    return recorded, notes


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


def _about(outcome: RunOutcome) -> dict[str, str]:
    """The `extra` of a run's log lines: its plan and run id."""
    return {"plan": outcome.plan, "run_id": outcome.run_id}


def _notify(env: RunEnv, message: messages.Message) -> None:
    if env.notifier is None or not env.notifier.notifiers:
        return  # nobody to tell: no need to let go of the state file (reopening it costs ~6 ms)
    with env.store.released():  # a notification goes over the network
        env.notifier.notify(message)
