"""The commit phase of runs (see runner/run.py): results that arrived together, recorded in batches.

In chunks (a plan at most once in each): one transaction records every run's output, orders
(checked against the plan's actual book, *before* any broker call), results, storage and strict
price history, one statement per table for them all; then each run's orders are submitted; then
one transaction records the runs ended, with the caller's bookkeeping (the daemon closes the ticks).
A chunk whose transaction fails is recorded again run by run, so one run cannot keep the others'
orders out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace

import duckdb
import pandas as pd

from minitrade import failpoints
from minitrade.brokers.registry import is_remote
from minitrade.data import changes as price_changes
from minitrade.errors import DataChanged, MinitradeError
from minitrade.models import Mode, Plan
from minitrade.notify import messages
from minitrade.records import Fill, Order, OrderStatus, RunStatus
from minitrade.runner import orders as order_book
from minitrade.runner.backtest import BacktestResult
from minitrade.runner.compute import RunResult, raise_for_error
from minitrade.runner.run_env import Prepared, RunEnv, RunOutcome, about, next_run, notify
from minitrade.runner.submit import submit_new
from minitrade.store import Store, plan_state
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.store import suspensions as suspension_sql
from minitrade.store.suspensions import Override

log = logging.getLogger("minitrade.run")
HOLD_SECONDS = 1.0  # the longest the state file is held for results coming one after another before the CLI gets a turn


OnDone = Callable[[duckdb.DuckDBPyConnection, list[RunOutcome]], None]


CHUNK = 16  # runs committed in one transaction at most: the CLI's wait stays short


@dataclass
class End:
    """How a run ends, to record with the others of its batch in one transaction."""

    outcome: RunOutcome
    record: run_sql.RunEnd
    closes: bool = True  # False: interrupted, or a bug of ours; the caller's on_done does not get it
    notice: messages.Message | None = None
    bug: Exception | None = None


def finish(env: RunEnv, ends: list[End], on_done: OnDone | None, submitted: list[Order] | None = None
           ) -> tuple[list[messages.Message], Exception | None]:
    """Record runs ended, the statuses their orders got at a local broker (`submitted`, see
    submit_new's `later`) and the caller's bookkeeping of them, in one transaction; returns their
    notices (sent once the state file is let go) and the first bug of ours among them."""
    if not ends:
        return [], None
    closed = [e.outcome for e in ends if e.closes]
    with env.store.transaction() as con:
        order_sql.save_statuses(con, submitted or [])
        run_sql.finish_runs(con, [e.record for e in ends])
        if on_done is not None and closed:
            on_done(con, closed)
    return [e.notice for e in ends if e.notice is not None], next((e.bug for e in ends if e.bug), None)


def send_notices(env: RunEnv, notices: list[messages.Message]) -> None:
    for notice in notices:
        notify(env, notice)


def commit_batch(env: RunEnv, batch: list[tuple[Prepared, RunResult]], on_done: OnDone | None
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
            submitted: list[Order] = []  # statuses at a local broker, written with the ends
            ends += [_submit(env, run, staged, suspended, submitted) for run, staged in recorded]
            chunk_notices, chunk_bug = finish(env, ends, on_done, submitted)
            outcomes += [e.outcome for e in ends if e.closes]
            notices += chunk_notices
            bug = bug or chunk_bug
    return outcomes, notices, bug


def _chunks(batch: list[tuple[Prepared, RunResult]]) -> list[list[tuple[Prepared, RunResult]]]:
    """At most CHUNK runs each, a plan at most once (its second run decides on its first one's orders)."""
    chunks: list[list[tuple[Prepared, RunResult]]] = [[]]
    for item in batch:
        if len(chunks[-1]) >= CHUNK or any(run.plan.name == item[0].plan.name for run, _ in chunks[-1]):
            chunks.append([])
        chunks[-1].append(item)
    return [c for c in chunks if c]


def failed_end(env: RunEnv, outcome: RunOutcome, error: MinitradeError) -> End:
    """The plan's own failure: recorded FAILED with its error and notified; its tick closes."""
    outcome.status, outcome.error = RunStatus.FAILED, str(error)
    log.warning("plan %s: run failed: %s", outcome.plan, outcome.error, extra=about(outcome))
    name, run_id = outcome.plan, outcome.run_id
    notice = (messages.data_changed(name, outcome.error, run_id=run_id) if isinstance(error, DataChanged)
              else messages.run_failed(name, outcome.error, run_id=run_id, commit=env.snapshot.commit,
                                       dirty=env.snapshot.dirty, next_run=next_run(env, name, outcome.tick_at)))
    return End(outcome, run_sql.RunEnd(run_id, env.clock(), error=outcome.error, notes=tuple(outcome.notes)),
                notice=notice)


def interrupted_end(env: RunEnv, outcome: RunOutcome, error: str) -> End:
    """The daemon is stopping: not the plan's failure, so recorded and not notified; its tick stays
    open and is resumed within its grace period."""
    outcome.error = error
    log.warning("plan %s: run %s", outcome.plan, error, extra=about(outcome))
    return End(outcome, run_sql.RunEnd(outcome.run_id, env.clock(), error=error), closes=False)


def bug_end(env: RunEnv, outcome: RunOutcome, error: Exception) -> End:
    """A bug of ours in this run: recorded FAILED, the others go on, then it is raised."""
    outcome.error = f"internal error: {type(error).__name__}: {error}"
    log.error("plan %s: run failed: %s", outcome.plan, outcome.error, exc_info=error, extra=about(outcome))
    return End(outcome, run_sql.RunEnd(outcome.run_id, env.clock(), error=outcome.error), closes=False, bug=error)


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
    data_digest: str | None  # None until its transaction records its price history (strict, not a rehearsal)


def _record_chunk(env: RunEnv, chunk: list[tuple[Prepared, RunResult]]
                  ) -> tuple[list[tuple[Prepared, _Staged]], list[End], _Suspended | None]:
    """The commit's database part for a chunk, in one transaction; a transaction that fails (a bug
    of ours, a full disk) is tried again run by run, so one run cannot keep the others' orders out.
    Returns the runs recorded with what to submit, the runs ended here, and the plans suspended as
    the transaction read them (None when unknown: submission reads them again)."""
    ends = [interrupted_end(env, run.outcome, computed.error or "interrupted") for run, computed in chunk
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
        ends.append(failed_end(env, run.outcome, error) if isinstance(error, MinitradeError) else bug_end(env, run.outcome, error))
    return staged, ends, suspended


def _record_one_by_one(env: RunEnv, items: list[tuple[Prepared, RunResult]], ends: list[End]
                       ) -> tuple[list[tuple[Prepared, _Staged]], list[End], None]:
    """Each run in a transaction of its own; the suspended plans are read again at submission."""
    recorded: list[tuple[Prepared, _Staged]] = []
    for item in items:
        one, one_ends, _ = _record_chunk(env, [item])
        recorded += one
        ends += one_ends
    return recorded, ends, None


def _write_chunk(env: RunEnv, items: list[tuple[Prepared, RunResult]]
                 ) -> tuple[list[tuple[Prepared, _Staged]], list[tuple[Prepared, Exception]], _Suspended]:
    """One transaction: every run's output, orders (checked against the book), results, storage and
    strict price history, one statement per table for them all; the runs whose commit failed before
    anything was written (a strategy's error) come back apart."""
    staged: list[tuple[Prepared, _Staged]] = []
    failed: list[tuple[Prepared, Exception]] = []
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
        strict = [(run, st) for run, st in staged if st.data_digest is None]
        digests = price_changes.record_histories(con, [(run.plan.name, run.outcome.run_id, run.prices)
                                                       for run, _ in strict])
    for run, st in strict:
        st.data_digest = digests[run.outcome.run_id]
    return staged, failed, suspended


def _stage(env: RunEnv, run: Prepared, computed: RunResult, existing: list[Order], fills: list[Fill]) -> _Staged:
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
    # a strict run's digest comes with its recorded history (computed there once, not here as well)
    keeps_history = plan.mode is Mode.STRICT and not rehearsal
    return _Staged(result, new, book_notes, notes, storage,
                   None if keeps_history else price_changes.history_digest(run.prices))


def _submit(env: RunEnv, run: Prepared, staged: _Staged, suspended: _Suspended | None,
            submitted: list[Order]) -> End:
    """After the chunk's transaction: submit the run's orders (or hold them) and say how it ended;
    the statuses orders get at a local broker are added to `submitted`, for `finish` to write."""
    outcome, plan, new = run.outcome, run.plan, staged.new
    outcome.result = staged.result
    outcome.notes += staged.notes
    for o in new:
        log.log(logging.WARNING if o.status is OrderStatus.REJECTED else logging.INFO, "order %s recorded %s: %s %g %s "
                "%s%s", o.client_id, o.status.value, o.side.value, o.quantity, o.ticker, o.order_type.value,
                f" ({o.note})" if o.note else "", extra=about(outcome))
    try:
        outcome.orders = _send_orders(env, run, staged, suspended, submitted)
    except MinitradeError as e:
        return failed_end(env, outcome, e)
    except Exception as e:  # a bug of ours: recorded, the others committed, then raised
        return bug_end(env, outcome, e)
    result = staged.result
    outcome.status = RunStatus.FINISHED
    log.info("plan %s: run finished for %s: %d order(s)", plan.name, outcome.signal_day, len(outcome.orders),
             extra=about(outcome))
    first = pd.DatetimeIndex(result.equity.index)[0].date() if len(result.equity) else None
    record = run_sql.RunEnd(outcome.run_id, env.clock(), stats=result.stats, start_date=first,
                            end_date=result.last_date, data_digest=staged.data_digest, notes=tuple(outcome.notes))
    notice = None if outcome.rehearsal else messages.run_finished(
        plan.name, run_id=outcome.run_id, stats=result.stats, orders=outcome.orders, commit=env.snapshot.commit,
        dirty=env.snapshot.dirty, next_run=next_run(env, plan.name, run.tick_at))
    return End(outcome, record, notice=notice)


def _send_orders(env: RunEnv, run: Prepared, staged: _Staged, suspended: _Suspended | None,
                 submitted: list[Order]) -> list[Order]:
    """The run's new orders after submission (a rehearsal's as recorded); refused ones stay as they are.

    The chunk's reading of the suspended plans stands only while the state file stayed held since:
    once it was let go (a broker call, a notification), `minitrade suspend` may have come in between.
    """
    plan, new = run.plan, staged.new
    to_send = [o for o in new if o.status is OrderStatus.PENDING_SUBMIT]
    if staged.book_notes:
        notify(env, messages.book_checked(plan.name, staged.book_notes, run_id=run.outcome.run_id))
    if run.outcome.rehearsal:
        return list(new)
    sent: list[Order] = []
    if to_send:
        notify(env, messages.orders_generated(plan.name, to_send, trading_enabled=plan.trading_enabled))
        slow = _submission_is_slow(env, plan)
        with env.store.released() if slow else nullcontext():
            sent = submit_new(env.store, plan, to_send, env.brokers, notify=env.notifier, now=env.real_clock(),
                              suspended=None if slow or suspended is None else suspended.current(env.store),
                              later=None if slow else submitted)
    return sent + [o for o in new if o.status is OrderStatus.REJECTED]


def _submission_is_slow(env: RunEnv, plan: Plan) -> bool:
    """Whether submitting goes over the network (a remote broker, or someone to notify), so the
    state file must be let go first; a manual broker with nobody to tell is local bookkeeping."""
    has_listeners = env.notifier is not None and bool(env.notifier.notifiers)
    return has_listeners or is_remote(env.snapshot.settings.brokers.get(plan.broker))


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
