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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import duckdb
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
from minitrade.runner.executor import Executor, InlineExecutor, Results, UnitFeed
from minitrade.runner.submit import submit_new
from minitrade.scheduler import GRACE, next_run_times, plan_zone
from minitrade.store import Store, plan_state
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.store import suspensions as suspension_sql
from minitrade.store.suspensions import Override
from minitrade.trading_calendar import get_calendar

log = logging.getLogger("minitrade.run")
HOLD_SECONDS = 1.0  # the longest the state file is held for results coming one after another before the CLI gets a turn

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
    prepared: dict[str, _Prepared] = {}
    outcomes: list[RunOutcome] = []
    ends: list[_End] = []
    bugs: list[Exception] = []
    digests = env.snapshot.digests()  # hashes every resource: once per batch, not twice per run

    def commit(batch: list[RunResult]) -> None:
        done, notices, bug = _commit_batch(env, [(prepared.pop(r.run_id), r) for r in batch], on_done)
        outcomes.extend(done)
        bugs.extend([bug] if bug else [])
        _send(env, notices)

    def end(ended: list[_End]) -> None:
        notices, bug = _finish(env, ended, on_done)
        outcomes.extend(e.outcome for e in ended if e.closes)
        bugs.extend([bug] if bug else [])
        _send(env, notices)

    # One open of the state file for the whole: fetches, broker calls and notifications let go of it
    # (Store.released), and so does a wait of IDLE_SECONDS for results, so the CLI gets in between.
    # Workers compute a run as soon as it is prepared; what they finished meanwhile is committed
    # between two prepares, so the first runs' orders do not wait for the last runs' prices.
    feed, waiting = UnitFeed(), _Waiting()
    with env.store.held_open(), Results(env.executor, feed, should_stop=should_stop,
                                        on_idle=env.store.let_go) as results:
        for outcome, digest in _start_all(env, ticks, digests):
            try:
                run = _prepare(env, outcome, outcome.tick_at or env.clock(), digest, should_stop)
            except FetchStopped as e:  # the daemon is stopping: not the plan's failure; its tick is resumed
                ends.append(_interrupted(env, outcome, f"interrupted: {e}"))
            except MinitradeError as e:
                ends.append(_failed(env, outcome, e))
            except Exception as e:  # a bug of ours: record it, run the others, then let it surface
                ends.append(_bug(env, outcome, e))
            else:
                prepared[outcome.run_id] = run
                feed.put(run.input)
            waiting.add(results.ready())
            if waiting.due():
                commit(waiting.take())
        feed.close()
        end(ends)  # the runs that failed to prepare
        for batch in waiting.then(results.batches()):
            commit(batch)
        # runs the executor never reported: it stopped (the daemon is stopping) before they started
        end([_interrupted(env, run.outcome, "interrupted: the daemon stopped before this run started")
             for run in prepared.values()])
    if bugs:
        raise bugs[0]
    return outcomes


class _Waiting:
    """Results that arrived while runs were still being prepared: committed when there is a chunk of
    them or the first has waited COMMIT_WAIT, not one by one (a commit's cost is mostly per statement,
    whatever the number of runs in it), and never later than the last prepare."""

    def __init__(self) -> None:
        self.results: list[RunResult] = []
        self.since = 0.0

    def add(self, results: list[RunResult]) -> None:
        if results and not self.results:
            self.since = time.monotonic()
        self.results += results

    def due(self) -> bool:
        return bool(self.results) and (len(self.results) >= CHUNK or time.monotonic() - self.since > COMMIT_WAIT)

    def take(self) -> list[RunResult]:
        taken, self.results = self.results, []
        return taken

    def then(self, batches: Iterator[list[RunResult]]) -> Iterator[list[RunResult]]:
        """What is waiting, then the executor's next batches."""
        if self.results:
            yield self.take()
        yield from batches


COMMIT_WAIT = 1.0  # seconds a result may wait for the runs still being prepared before it is committed
OnDone = Callable[[duckdb.DuckDBPyConnection, list[RunOutcome]], None]
CHUNK = 16  # runs committed in one transaction at most: the CLI's wait stays short


@dataclass
class _End:
    """How a run ends, to record with the others of its batch in one transaction."""

    outcome: RunOutcome
    record: run_sql.RunEnd
    closes: bool = True  # False: interrupted, or a bug of ours; the caller's on_done does not get it
    notice: messages.Message | None = None
    bug: Exception | None = None


def _finish(env: RunEnv, ends: list[_End], on_done: OnDone | None
            ) -> tuple[list[messages.Message], Exception | None]:
    """Record runs ended, and the caller's bookkeeping of them, in one transaction; returns their
    notices (sent once the state file is let go) and the first bug of ours among them."""
    if not ends:
        return [], None
    closed = [e.outcome for e in ends if e.closes]
    with env.store.transaction() as con:
        run_sql.finish_runs(con, [e.record for e in ends])
        if on_done is not None and closed:
            on_done(con, closed)
    return [e.notice for e in ends if e.notice is not None], next((e.bug for e in ends if e.bug), None)


def _send(env: RunEnv, notices: list[messages.Message]) -> None:
    for notice in notices:
        _notify(env, notice)


def _commit_batch(env: RunEnv, batch: list[tuple[_Prepared, RunResult]], on_done: OnDone | None
                  ) -> tuple[list[RunOutcome], list[messages.Message], Exception | None]:
    """Commit results that arrived together; returns the outcomes, their notices and a bug of ours.

    In chunks (a plan at most once in each): one transaction records every run's output, orders
    (before any broker call), results, storage and price history; then each run's orders are
    submitted; then one transaction records the runs ended, with the caller's `on_done`. The state
    file is let go of for submission and notifications that go over the network (Store.released),
    and between chunks every HOLD_SECONDS so the CLI gets its turn.
    """
    outcomes: list[RunOutcome] = []
    notices: list[messages.Message] = []
    bug: Exception | None = None
    with env.store.held_open():
        for chunk in _chunks(batch):
            env.store.give_turn(HOLD_SECONDS)
            recorded, ends, suspended = _record_chunk(env, chunk)
            ends += [_submit(env, run, staged, suspended) for run, staged in recorded]
            chunk_notices, chunk_bug = _finish(env, ends, on_done)
            outcomes += [e.outcome for e in ends if e.closes]
            notices += chunk_notices
            bug = bug or chunk_bug
    return outcomes, notices, bug


def _chunks(batch: list[tuple[_Prepared, RunResult]]) -> list[list[tuple[_Prepared, RunResult]]]:
    """At most CHUNK runs each, a plan at most once (its second run decides on its first one's orders)."""
    chunks: list[list[tuple[_Prepared, RunResult]]] = [[]]
    for item in batch:
        if len(chunks[-1]) >= CHUNK or any(run.plan.name == item[0].plan.name for run, _ in chunks[-1]):
            chunks.append([])
        chunks[-1].append(item)
    return [c for c in chunks if c]


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
                  " (rehearsal)" if outcome.rehearsal else "", extra=_about(outcome))
    return runs


def _failed(env: RunEnv, outcome: RunOutcome, error: MinitradeError) -> _End:
    """The plan's own failure: recorded FAILED with its error and notified; its tick closes."""
    outcome.status, outcome.error = RunStatus.FAILED, str(error)
    log.warning("plan %s: run failed: %s", outcome.plan, outcome.error, extra=_about(outcome))
    name, run_id = outcome.plan, outcome.run_id
    notice = (messages.data_changed(name, outcome.error, run_id=run_id) if isinstance(error, DataChanged)
              else messages.run_failed(name, outcome.error, run_id=run_id, commit=env.snapshot.commit,
                                       dirty=env.snapshot.dirty, next_run=_next_run(env, name, outcome.tick_at)))
    return _End(outcome, run_sql.RunEnd(run_id, env.clock(), error=outcome.error, notes=tuple(outcome.notes)),
                notice=notice)


def _interrupted(env: RunEnv, outcome: RunOutcome, error: str) -> _End:
    """The daemon is stopping: not the plan's failure, so recorded and not notified; its tick stays
    open and is resumed within its grace period."""
    outcome.error = error
    log.warning("plan %s: run %s", outcome.plan, error, extra=_about(outcome))
    return _End(outcome, run_sql.RunEnd(outcome.run_id, env.clock(), error=error), closes=False)


def _bug(env: RunEnv, outcome: RunOutcome, error: Exception) -> _End:
    """A bug of ours in this run: recorded FAILED, the others go on, then it is raised."""
    outcome.error = f"internal error: {type(error).__name__}: {error}"
    log.error("plan %s: run failed: %s", outcome.plan, outcome.error, exc_info=error, extra=_about(outcome))
    return _End(outcome, run_sql.RunEnd(outcome.run_id, env.clock(), error=outcome.error), closes=False, bug=error)


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


@dataclass(frozen=True)
class _Suspended:
    """The plans suspended, as a chunk's transaction read them, and the open of the file it read them under."""

    plans: Mapping[str, Override]
    token: int | None

    def current(self, store: Store) -> Mapping[str, Override] | None:
        """The reading while the file was held ever since (nobody else could suspend), else None."""
        return self.plans if self.token is not None and store.held_token() == self.token else None


@dataclass
class _Staged:
    """A run's commit decided, before it is written: what its transaction records, then submits."""

    result: BacktestResult
    new: list[Order]
    book_notes: list[str]
    notes: list[str]
    storage: str | None
    data_digest: str


def _record_chunk(env: RunEnv, chunk: list[tuple[_Prepared, RunResult]]
                  ) -> tuple[list[tuple[_Prepared, _Staged]], list[_End], _Suspended | None]:
    """The commit's database part for a chunk, in one transaction; a transaction that fails (a bug
    of ours, a full disk) is tried again run by run, so one run cannot keep the others' orders out.
    Returns the runs recorded with what to submit, the runs ended here, and the plans suspended as
    the transaction read them (None when unknown: submission reads them again)."""
    ends = [_interrupted(env, run.outcome, computed.error or "interrupted") for run, computed in chunk
            if computed.interrupted]
    items = [(run, computed) for run, computed in chunk if not computed.interrupted]
    if not items:
        return [], ends, None
    try:
        staged, failed, suspended = _write_chunk(env, items)
    except Exception as e:
        if len(items) > 1:
            log.warning("recording %d runs together failed (%s); recording them one by one", len(items), e)
            return _record_one_by_one(env, items, ends)
        failed, staged, suspended = [(items[0][0], e)], [], None
    if staged:
        failpoints.hit("order-recorded")
    for run, error in failed:
        ends.append(_failed(env, run.outcome, error) if isinstance(error, MinitradeError) else _bug(env, run.outcome, error))
    return staged, ends, suspended


def _record_one_by_one(env: RunEnv, items: list[tuple[_Prepared, RunResult]], ends: list[_End]
                       ) -> tuple[list[tuple[_Prepared, _Staged]], list[_End], None]:
    """Each run in a transaction of its own; the suspended plans are read again at submission."""
    recorded: list[tuple[_Prepared, _Staged]] = []
    for item in items:
        one, one_ends, _ = _record_chunk(env, [item])
        recorded += one
        ends += one_ends
    return recorded, ends, None


def _write_chunk(env: RunEnv, items: list[tuple[_Prepared, RunResult]]
                 ) -> tuple[list[tuple[_Prepared, _Staged]], list[tuple[_Prepared, Exception]], _Suspended]:
    """One transaction: every run's output, orders (checked against the book), results, storage and
    strict price history, one statement per table for them all; the runs whose commit failed before
    anything was written (a strategy's error) come back apart."""
    staged: list[tuple[_Prepared, _Staged]] = []
    failed: list[tuple[_Prepared, Exception]] = []
    with env.store.transaction() as con:
        plans = [run.plan.name for run, _ in items]
        existing = order_sql.orders_by_plan(con, plans)
        fills = order_sql.fills_by_plan(con, plans)
        suspended = _Suspended(suspension_sql.suspended(con), env.store.held_token())
        for run, computed in items:
            try:
                staged.append((run, _stage(env, run, computed, existing[run.plan.name], fills[run.plan.name])))
            except Exception as e:  # the run's own error (MinitradeError) or a bug of ours: the others go on
                failed.append((run, e))
        for run, computed in items:
            if computed.output_bytes:
                run_sql.record_output(con, run.outcome.run_id, computed.output, computed.output_bytes)
        order_sql.insert_orders(con, [o for _, st in staged for o in st.new], now=env.clock())
        run_sql.write_many(con, [run_sql.Results(run.outcome.run_id, run.plan.name, st.result.equity,
                                                 st.result.positions, st.result.trades, st.result.fills)
                                 for run, st in staged])
        plan_state.save_encoded(con, {run.plan.name: st.storage for run, st in staged if st.storage is not None})
        strict = [(run, st) for run, st in staged if run.plan.mode is Mode.STRICT and not run.outcome.rehearsal]
        digests = price_changes.record_histories(con, [(run.plan.name, run.outcome.run_id, run.prices)
                                                       for run, _ in strict])
    for run, st in strict:
        st.data_digest = digests[run.outcome.run_id]
    return staged, failed, suspended


def _stage(env: RunEnv, run: _Prepared, computed: RunResult, existing: list[Order], fills: list[Fill]) -> _Staged:
    """Decide a run's commit from its computed result and its plan's book; writes nothing, so a
    chunk that fails can decide it again."""
    snapshot, outcome, plan = env.snapshot, run.outcome, run.plan
    rehearsal, day, tick_at = outcome.rehearsal, outcome.signal_day, run.tick_at
    assert day is not None
    result = raise_for_error(computed)
    intents, notes = result.intents, list[str]()
    if intents and result.last_date != day:
        notes.append(f"no bar for {day} yet (last bar {result.last_date}): no orders")
        intents = []
    decision = order_book.decide_orders(plan, intents, run_id=outcome.run_id, trading_day=day,
                                        tick_at=tick_at, existing=existing, commit_sha=snapshot.commit,
                                        plan_digest=run.digest, broker=plan.broker, rehearsal=rehearsal)
    new, book_notes = decision.new, list[str]()
    notes += [note for _, note in decision.kept]
    if plan.trading_enabled and not rehearsal:
        new, book_notes = _check_against_book(plan, new, existing, fills, result, closes=_last_closes(run.prices),
                                              commission=run.commission)
        notes += book_notes
    storage = (plan_state.encode_storage(plan.name, computed.storage)
               if computed.storage is not None and not rehearsal else None)
    return _Staged(result, new, book_notes, notes, storage, price_changes.history_digest(run.prices))


def _submit(env: RunEnv, run: _Prepared, staged: _Staged, suspended: _Suspended | None) -> _End:
    """After the chunk's transaction: submit the run's orders (or hold them) and say how it ended."""
    outcome, plan, new = run.outcome, run.plan, staged.new
    outcome.result = staged.result
    outcome.notes += staged.notes
    for o in new:
        log.log(logging.WARNING if o.status is OrderStatus.REJECTED else logging.INFO, "order %s recorded %s: %s %g %s "
                "%s%s", o.client_id, o.status.value, o.side.value, o.quantity, o.ticker, o.order_type.value,
                f" ({o.note})" if o.note else "", extra=_about(outcome))
    try:
        outcome.orders = _send_orders(env, run, staged, suspended)
    except MinitradeError as e:
        return _failed(env, outcome, e)
    except Exception as e:  # a bug of ours: recorded, the others committed, then raised
        return _bug(env, outcome, e)
    result = staged.result
    outcome.status = RunStatus.FINISHED
    log.info("plan %s: run finished for %s: %d order(s)", plan.name, outcome.signal_day, len(outcome.orders),
             extra=_about(outcome))
    first = pd.DatetimeIndex(result.equity.index)[0].date() if len(result.equity) else None
    record = run_sql.RunEnd(outcome.run_id, env.clock(), stats=result.stats, start_date=first,
                            end_date=result.last_date, data_digest=staged.data_digest, notes=tuple(outcome.notes))
    notice = None if outcome.rehearsal else messages.run_finished(
        plan.name, run_id=outcome.run_id, stats=result.stats, orders=outcome.orders, commit=env.snapshot.commit,
        dirty=env.snapshot.dirty, next_run=_next_run(env, plan.name, run.tick_at))
    return _End(outcome, record, notice=notice)


def _send_orders(env: RunEnv, run: _Prepared, staged: _Staged, suspended: _Suspended | None
                 ) -> list[Order]:
    """The run's new orders after submission (a rehearsal's as recorded); refused ones stay as they are.

    The chunk's reading of the suspended plans stands only while the state file stayed held since:
    once it was let go (a broker call, a notification), `minitrade suspend` may have come in between.
    """
    plan, new = run.plan, staged.new
    to_send = [o for o in new if o.status is OrderStatus.PENDING_SUBMIT]
    if staged.book_notes:
        _notify(env, messages.book_checked(plan.name, staged.book_notes, run_id=run.outcome.run_id))
    if run.outcome.rehearsal:
        return list(new)
    sent: list[Order] = []
    if to_send:
        _notify(env, messages.orders_generated(plan.name, to_send, trading_enabled=plan.trading_enabled))
        slow = _submission_is_slow(env, plan)
        with env.store.released() if slow else nullcontext():
            sent = submit_new(env.store, plan, to_send, env.brokers, notify=env.notifier, now=env.real_clock(),
                              suspended=None if slow or suspended is None else suspended.current(env.store))
    return sent + [o for o in new if o.status is OrderStatus.REJECTED]


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
