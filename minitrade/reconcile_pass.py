"""One level-triggered pass of the daemon: apply a new commit, resolve leftovers, run due ticks.

Each pass re-reads desired state (the tracked branch's HEAD) and observed state (DuckDB, brokers),
so a missed file event or a crash does no harm:
1. HEAD differs from the last *attempted* commit -> attempt it once, exactly like `apply`; a
   rejection is recorded and notified once, and the last *applied* state keeps running.
2. Ticks left STARTED by a crash or a stop are resumed while within their grace period (once:
   a tick interrupted twice is closed FAILED; a late one is closed FAILED at once); orders left
   PENDING_SUBMIT are looked up at the broker by client id before anything is sent again; HELD
   orders go out once a session is live.
3. Due ticks of the applied plans are recorded STARTED (so a tick never runs twice, also across
   restarts), prepared here one by one (scheduled time first, then the earliest broker cutoff),
   computed side by side on the executor's worker processes, and committed here as each finishes.
   A tick that cannot start within the grace period (3 minutes) of its time is recorded SKIPPED
   with its reason, never run late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from minitrade import failpoints, gitrepo
from minitrade.brokers.registry import BrokerPool, reports_fills
from minitrade.clock import now as real_now
from minitrade.data.base import DataSource
from minitrade.data.cache import PriceCache
from minitrade.data.registry import source_for
from minitrade.errors import BrokerError, ConfigError, GitError, MalformedResponse, MinitradeError
from minitrade.loader import Snapshot, load_commit, load_worktree
from minitrade.models import OrderType, Plan
from minitrade.notify import Notifier, messages, settings_secrets
from minitrade.reconciler import apply, begin_load, end_load
from minitrade.records import ApplyOutcome, Order, OrderStatus, RunStatus, TickStatus
from minitrade.runner.executor import Executor, executor_for
from minitrade.runner.run import RunEnv, RunOutcome, new_run_id, run_plans
from minitrade.runner.submit import resolve_pending, sync_from_broker
from minitrade.runner.suspension import Override, skip_reason
from minitrade.scheduler import (
    GRACE,
    EarlyCloseTick,
    due_ticks,
    early_close_changes,
    next_run_times,
    schedule_key,
)
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from minitrade.store import suspensions as suspension_sql
from minitrade.store.applied import LOADING, applied_times, last_applied, last_attempt
from minitrade.store.heartbeat import last_pass, record_pass

log = logging.getLogger("minitrade.daemon")
UNFINISHED_LOAD = ("the load of this commit did not finish (the daemon crashed or was killed while loading it); "
                   "fix it and push a new commit, or run `minitrade apply` to try it once more")
LOOKBACK = timedelta(days=1)  # a simulated clock before the apply time looks back this far only
MISSED_CAP = timedelta(days=31)  # missed ticks older than this get one SKIPPED marker, not a row each


@dataclass
class PassResult:
    attempted: str | None = None        # commit attempted in this pass, if any
    outcome: ApplyOutcome | None = None
    applied_commit: str | None = None
    runs: list[RunOutcome] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)
    skip_reasons: dict[tuple[str, datetime], str] = field(default_factory=dict)
    next_tick: datetime | None = None


def brokers_for(snapshot: Snapshot) -> BrokerPool:
    """Broker adapters by account name, built once per pass (closed with the pool)."""
    return BrokerPool(snapshot.settings.brokers)


def cached_prices(snapshot: Snapshot, store: Store) -> Callable[[Plan], DataSource]:
    sources: dict[str, DataSource] = {}

    def get(plan: Plan) -> DataSource:
        if plan.data_source not in sources:
            spec = snapshot.settings.data_sources[plan.data_source]
            sources[plan.data_source] = PriceCache(store, source_for(plan.data_source, spec, root=snapshot.root))
        return sources[plan.data_source]

    return get


def live_env(snapshot: Snapshot, *, kind: str, clock: Callable[[], datetime] | None = None) -> RunEnv:
    store = snapshot.store()
    return RunEnv(snapshot=snapshot, store=store, brokers=brokers_for(snapshot),
                  prices=cached_prices(snapshot, store),
                  notifier=Notifier.from_settings(snapshot.settings, store=store),
                  kind=kind, clock=clock or real_now, executor=executor_for(snapshot.settings.executor))


# A commit's content never changes, so its Snapshot is loaded once per process: re-reading 500
# plan files through `git show` on every pass cost seconds (nobody mutates a Snapshot).
_COMMIT_SNAPSHOTS: dict[tuple[Path, str], Snapshot] = {}
_COMMIT_SNAPSHOTS_KEPT = 4


def snapshot_of_commit(root: Path, sha: str) -> Snapshot:
    """`load_commit(root, sha)` for a full SHA, cached in-process."""
    key = (root.resolve(), sha)
    snap = _COMMIT_SNAPSHOTS.get(key)
    if snap is None:
        snap = load_commit(root, sha)
        remember_snapshot(snap)
    return snap


def remember_snapshot(snap: Snapshot) -> None:
    if snap.commit is None or snap.dirty:
        return
    while len(_COMMIT_SNAPSHOTS) >= _COMMIT_SNAPSHOTS_KEPT:
        del _COMMIT_SNAPSHOTS[next(iter(_COMMIT_SNAPSHOTS))]  # oldest first (dicts keep insertion order)
    _COMMIT_SNAPSHOTS[(snap.root.resolve(), snap.commit)] = snap


def applied_snapshot(root: Path, store: Store) -> Snapshot | None:
    """The desired state that is applied now (its commit; the working tree if applied dirty)."""
    with store.transaction() as con:
        applied = last_applied(con)
    if applied is None:
        return None
    if applied.dirty or applied.commit_sha is None:
        return load_worktree(root)
    return snapshot_of_commit(root, applied.commit_sha)


def attempt_head(root: Path, store: Store, *, branch: str | None, result: PassResult,
                 notifier: Callable[[messages.Message], None],
                 before_apply: Callable[[], None] = lambda: None) -> None:
    head = gitrepo.resolve(root, branch or "HEAD")
    with store.transaction() as con:
        attempt = last_attempt(con)
    if attempt is not None and attempt.outcome == LOADING:  # the process died loading it: never again
        end_load(store, attempt.id, UNFINISHED_LOAD)
        log.warning("commit %s rejected: %s", (attempt.commit_sha or "")[:8], UNFINISHED_LOAD, extra={"commit": attempt.commit_sha})
        notifier(messages.config_rejected(attempt.commit_sha, UNFINISHED_LOAD))
        if attempt.commit_sha == head:
            result.attempted, result.outcome = head, ApplyOutcome.REJECTED
            return
    if head is None or (attempt is not None and attempt.commit_sha == head):
        return
    before_apply()
    result.attempted = head
    log.info("commit %s attempted (last attempted %s)", head[:8], attempt.commit_sha[:8] if attempt and attempt.commit_sha
             else "none", extra={"commit": head})
    # Recorded before the load: a commit whose load kills the process (memory, a crash, a kill after
    # a hang) is found `loading` by the next pass and rejected, instead of loaded again forever.
    loading = begin_load(root, store, head, "daemon")
    try:
        failpoints.hit("commit-loading")
        snapshot = snapshot_of_commit(root, head)
    except Exception as e:  # any failure to load is this commit's rejection, never a loop
        error = str(e) if isinstance(e, (ConfigError, GitError)) else (
            f"loading the commit failed: {type(e).__name__} (a bug in minitrade: please report it); "
            "fix or revert the commit")
        end_load(store, loading, error)
        result.outcome = ApplyOutcome.REJECTED
        log.warning("commit %s rejected, the last applied state keeps running: %s", head[:8], error,
                    extra={"commit": head})
        notifier(messages.config_rejected(head, error))
        return
    end_load(store, loading, None)
    settings_secrets(snapshot.settings)  # resolved now, so every log handler masks them before a check can echo one
    outcome = apply(snapshot, store, source="daemon")
    result.outcome = outcome.outcome
    log.log(logging.WARNING if outcome.outcome is ApplyOutcome.REJECTED else logging.INFO, "commit %s %s: %s", head[:8],
            outcome.outcome, "; ".join(outcome.errors) or f"{len(outcome.changes.changes)} change(s)", extra={"commit": head})
    if outcome.outcome is ApplyOutcome.REJECTED:
        notifier(messages.config_rejected(head, outcome.errors))
    elif outcome.outcome is ApplyOutcome.APPLIED:
        notifier(messages.config_applied(head, [f"{c.action.symbol} {c.kind} {c.name}"
                                               for c in outcome.changes.changes]))
    for gone, why in outcome.cleared:
        notifier(messages.suspension_cleared(gone.plan, gone.at, why, commit=head))


def reconcile_once(root: Path, store: Store, *, now: Callable[[], datetime] | None = None,
                   branch: str | None = None, executor: Executor | None = None,
                   should_stop: Callable[[], bool] = lambda: False, publish_site: bool = True) -> PassResult:
    """One pass; see the module docstring. `now` is the clock (tests and `--at` pass their own);
    runs compute on `executor` (default: worker processes as minitrade.yaml says); `should_stop`
    abandons runs still computing (their ticks are resumed by the next pass within their grace).
    `publish_site=False` leaves the report site to the caller (`publish`)."""
    clock = now or real_now
    result = PassResult()
    log.debug("pass started at %s", clock().isoformat())
    # The pass's bookkeeping shares one open of the state file: an open costs ~6 ms and an idle
    # pass made five. It is released before anything slow (an apply, a broker call, a run), so the
    # CLI is never locked out for longer than before.
    hold = ExitStack()
    hold.enter_context(store.held_open())
    brokers: BrokerPool | None = None
    try:
        current = applied_snapshot(root, store)
        notify_settings = current.settings if current is not None else None

        def notify(message: messages.Message) -> None:
            if notify_settings is not None:
                Notifier.from_settings(notify_settings, store=store).notify(message)

        attempt_head(root, store, branch=branch, result=result, notifier=notify, before_apply=hold.close)
        snapshot = applied_snapshot(root, store) if result.attempted else current
        if snapshot is None:
            _beat(store, clock())
            log.info("pass finished: nothing applied (commit %s %s)", (result.attempted or "none")[:8],
                     result.outcome or "not attempted")
            return result
        result.applied_commit = snapshot.commit
        brokers = brokers_for(snapshot)  # closed with the pass (hold lets go of the file earlier)
        env = RunEnv(snapshot=snapshot, store=store, brokers=brokers,
                     prices=cached_prices(snapshot, store),
                     notifier=Notifier.from_settings(snapshot.settings, store=store), kind="scheduled",
                     clock=clock, executor=executor or executor_for(snapshot.settings.executor))
        if brokers_ahead(env):  # else both steps below would find nothing to do
            hold.close()
            # held orders are real: their validity is judged by the real present, never a simulated one
            resolve_pending(store, snapshot.plans, env.brokers, now=env.real_clock(), notify=env.notifier)
            collect_fills(env)
        run_due_ticks(env, result, before_run=hold.close, should_stop=should_stop)
        _beat(store, clock())
    finally:
        hold.close()
        if brokers is not None:
            brokers.close()
    if publish_site and (result.runs or result.outcome is ApplyOutcome.APPLIED):
        publish(snapshot, store, [r.plan for r in result.runs])
    at = clock()
    upcoming: dict[tuple[object, ...], list[datetime]] = {}  # per distinct schedule (500 plans share a few)
    for p in snapshot.plans.values():
        if p.backtest_enabled and schedule_key(p) not in upcoming:
            upcoming[schedule_key(p)] = next_run_times(p, at, 1)
    result.next_tick = min((t for ticks in upcoming.values() for t in ticks), default=None)
    log.info("pass finished: commit %s %s, %d run(s), %d tick(s) skipped, next tick %s",
             (result.attempted or snapshot.commit or "(working tree)")[:8], result.outcome or "unchanged",
             len(result.runs), len(result.skipped), result.next_tick.isoformat() if result.next_tick else "none",
             extra={"commit": snapshot.commit})
    return result


def _beat(store: Store, at: datetime) -> None:
    """The pass is over: remember when, so the next one knows how long the daemon was away."""
    with store.transaction() as con:
        record_pass(con, at)


def brokers_ahead(env: RunEnv) -> bool:
    """Whether this pass may talk to a broker: IB executions to collect, or orders waiting to go out."""
    settings = env.snapshot.settings
    if any(reports_fills(settings.brokers.get(p.broker)) for p in env.snapshot.plans.values()):
        return True
    with env.store.transaction() as con:
        return bool(order_sql.orders_of(con, None, statuses=[OrderStatus.PENDING_SUBMIT, OrderStatus.HELD]))


def publish(snapshot: Snapshot, store: Store, plans: list[str]) -> None:
    """Rewrite the report site (the index and the pages of the plans that ran); a failure is logged,
    never allowed to break the loop that trades."""
    from minitrade.runner.publish import write_site

    try:
        write_site(store, snapshot.state_dir / "reports", plans=sorted(set(plans)) or None,
                   secrets=settings_secrets(snapshot.settings))
    except (MinitradeError, OSError) as e:
        log.error("report site not written: %s", e)


def send_held(root: Path, store: Store, *, now: datetime | None = None) -> list[Order]:
    """Submit the applied plans' held and unconfirmed orders that are still valid (after a login)."""
    snapshot = applied_snapshot(root, store)
    if snapshot is None:
        return []
    notifier = Notifier.from_settings(snapshot.settings, store=store)
    with closing(brokers_for(snapshot)) as brokers:
        return resolve_pending(store, snapshot.plans, brokers, now=now or real_now(), notify=notifier)


def collect_fills(env: RunEnv) -> None:
    """Record what brokers executed for every plan trading through one (manual fills come from
    `minitrade fill`); a broker that cannot be asked now is asked again next pass."""
    for plan in env.snapshot.plans.values():
        spec = env.snapshot.settings.brokers.get(plan.broker)
        if not reports_fills(spec):
            continue
        try:
            new = sync_from_broker(env.store, plan, env.brokers)
        except BrokerError as e:  # asked again next pass; an unreadable answer is worth a warning
            log.log(logging.WARNING if isinstance(e, MalformedResponse) else logging.INFO,
                    "fills of %s not collected now: %s", plan.name, e, extra={"plan": plan.name})
            continue
        if new and env.notifier is not None:
            env.notifier.notify(messages.fills_recorded(plan.name, new))


def run_due_ticks(env: RunEnv, result: PassResult, *, before_run: Callable[[], None] = lambda: None,
                  should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run due ticks oldest first. A tick left STARTED by a crash is resumed while within the grace
    period (safe: client ids are deterministic per tick, so nothing is recorded twice), else closed
    FAILED. A tick too late to start is SKIPPED with its reason: missed while the daemon was not
    running (since its last pass: one summary notification), or late while it ran (one per plan).
    An early close's skipped runs are SKIPPED with theirs; its moved runs are notified."""
    store, now = env.store, env.clock()
    with store.transaction() as con:
        since_applied = applied_times(con, "plan")
        ticks = order_sql.latest_and_started_ticks(con)
        away_since = last_pass(con)
        paused = suspension_sql.suspended(con)
    last: dict[str, datetime] = {}
    for t in ticks:
        last[t.plan] = max(last.get(t.plan, t.scheduled_at), t.scheduled_at)
    resumed = [(t.scheduled_at, t.plan) for t in ticks if t.status is TickStatus.STARTED]
    found = _due(env, since_applied, last, now)
    book = _SkipBook(away_since, now, zone=ZoneInfo(env.snapshot.settings.timezone))
    resumed = _close_suspended(env, resumed, paused, book.zone)
    for name, first in found.not_recorded.items():
        book.add(name, first, f"{book.gap_reason}; this and every later run until "
                 f"{_stamp(now - MISSED_CAP, book.zone)} not recorded one by one (more than "
                 f"{MISSED_CAP.days} days)", _Skip.OLDER)
    for change in found.skipped:
        book.add(change.plan, change.planned, change.reason)
    due: list[tuple[datetime, str, bool]] = [(t, n, True) for t, n in resumed]
    for tick, name in found.ticks:
        if now - tick <= GRACE and name in paused:  # an operator's suspension: recorded, never run
            book.add(name, tick, skip_reason(paused[name], book.zone), _Skip.SUSPENDED)
        elif now - tick <= GRACE:
            due.append((tick, name, False))
        elif away_since is None or tick > away_since:
            book.add(name, tick, book.gap_reason, _Skip.AWAY)
        else:  # the last pass ended after this tick's time without running it: busy with other runs
            book.add(name, tick, f"could not start within {GRACE} of its time")
    if due or book.entries:
        before_run()
    book.record(store, result)
    _notify_moves(env, [m for m in found.moved if any(m.moved_to == t and m.plan == n for t, n, _ in due)])
    late: list[tuple[str, datetime, str]] = []
    with store.held_open():  # admitting every due tick: one open of the state file, one statement for the new ones
        decided = [(name, tick, was_started, _admit(env, result, tick, name, was_started, late))
                   for tick, name, was_started in sorted(due, key=lambda d: _work_order(env, d))]
        started = _start_ticks(env, [(name, tick, run_id) for name, tick, was_started, run_id in decided
                                     if run_id is not None and not was_started])
    admitted = [(name, tick, run_id) for name, tick, was_started, run_id in decided
                if run_id is not None and (was_started or (name, tick, run_id) in started)]
    _run_admitted(env, result, admitted, should_stop)
    book.notify(env, late)


def _close_suspended(env: RunEnv, resumed: list[tuple[datetime, str]], paused: dict[str, Override],
                     zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """A run interrupted before its plan was suspended is not resumed: its tick is closed FAILED."""
    stopped = [(tick, name) for tick, name in resumed if name in paused]
    if stopped:
        with env.store.transaction() as con:
            for tick, name in stopped:
                order_sql.finish_tick(con, name, tick, TickStatus.FAILED,
                                      error=f"interrupted, then not resumed: {skip_reason(paused[name], zone)}")
    return [(tick, name) for tick, name in resumed if name not in paused]


def _work_order(env: RunEnv, due: tuple[datetime, str, bool]) -> tuple[datetime, timedelta]:
    """Scheduled time first; at one time, the earliest broker cutoff first (a TOC due at 15:45 goes
    before a TOO due at 15:45: its close auction stops taking orders at 15:50)."""
    tick, name, _ = due
    plan = env.snapshot.plans.get(name)
    cutoff = {OrderType.TOC: timedelta(0), OrderType.TRG: timedelta(minutes=1)}.get(
        plan.order_type, timedelta(hours=1)) if plan is not None else timedelta(hours=2)
    return tick, cutoff


@dataclass
class _Found:
    ticks: list[tuple[datetime, str]] = field(default_factory=list)
    skipped: list[EarlyCloseTick] = field(default_factory=list)
    moved: list[EarlyCloseTick] = field(default_factory=list)
    not_recorded: dict[str, datetime] = field(default_factory=dict)  # plan -> first run past the cap


def _due(env: RunEnv, since_applied: dict[str, datetime], last: dict[str, datetime], now: datetime) -> _Found:
    """Every applied plan's ticks since its last recorded one (at most MISSED_CAP back), and the
    runs an early close moved or skipped in that window."""
    found = _Found()
    computed: dict[tuple[object, ...], tuple[list[datetime], list[EarlyCloseTick]]] = {}
    for name, plan in env.snapshot.plans.items():
        if not plan.backtest_enabled:
            continue
        since, first_uncounted = _since(plan, last.get(name), since_applied.get(name), now)
        if first_uncounted is not None:
            found.not_recorded[name] = first_uncounted
        key = (*schedule_key(plan), since)
        if key not in computed:
            computed[key] = (due_ticks(plan, since, now), early_close_changes(plan, since, now))
        due, changes = computed[key]
        found.ticks += [(t, name) for t in due]
        found.skipped += [replace(c, plan=name) for c in changes if c.moved_to is None]
        found.moved += [replace(c, plan=name) for c in changes if c.moved_to is not None]
    return found


def _since(plan: Plan, last_tick: datetime | None, applied_at: datetime | None,
           now: datetime) -> tuple[datetime, datetime | None]:
    """Where the plan's due window starts, and the first run older than MISSED_CAP that will not
    be recorded one by one (None when the window reaches back to the last recorded tick)."""
    if applied_at is not None and applied_at > now:
        applied_at = None  # a simulated clock (`daemon --once --at`) runs before the apply time
    known = max((t for t in (last_tick, applied_at) if t is not None), default=None)
    if known is None:  # nothing recorded since this simulated moment: nothing to catch up
        return now - LOOKBACK, None
    floor = now - MISSED_CAP
    if known >= floor:
        return known, None
    first = next_run_times(plan, known, 1)
    return floor, (first[0] if first and first[0] <= floor else None)


def _admit(env: RunEnv, result: PassResult, tick: datetime, name: str, resumed: bool,
           late: list[tuple[str, datetime, str]]) -> str | None:
    """The run id a due tick runs under (a new tick is recorded STARTED by `_start_ticks`); None when
    it must not run (too late, or an interrupted tick that may not be retried)."""
    store = env.store
    is_late = env.clock() - tick > GRACE
    tries = _tries(env, name, tick) if resumed else 0
    if resumed and (is_late or name not in env.snapshot.plans or tries >= MAX_TRIES):
        why = ("interrupted: the daemon stopped or crashed during this run" if is_late or name not in env.snapshot.plans
               else f"interrupted {MAX_TRIES} times (the daemon stopped or crashed during each run); not retried")
        with store.transaction() as con:
            order_sql.finish_tick(con, name, tick, TickStatus.FAILED, error=why)
        log.warning("plan %s: tick %s FAILED: %s", name, tick.isoformat(), why, extra={"plan": name})
        return None
    if is_late:  # the runs before it in this pass took too long
        reason = f"could not start within {GRACE} of its time"
        with store.transaction() as con:
            if order_sql.skip_tick(con, name, tick, reason):
                late.append((name, tick, reason))
        result.skipped.append((name, tick))
        result.skip_reasons[(name, tick)] = reason
        log.warning("plan %s: tick %s SKIPPED: %s", name, tick.isoformat(), reason, extra={"plan": name})
        return None
    run_id = new_run_id(name, tick)
    if resumed:
        if tries:
            log.warning("plan %s: retrying the run of %s once: the daemon stopped during it", name, tick)
        log.info("plan %s: tick %s resumed as run %s", name, tick.isoformat(), run_id,
                 extra={"plan": name, "run_id": run_id})
    return run_id


def _start_ticks(env: RunEnv, fresh: list[tuple[str, datetime, str]]) -> set[tuple[str, datetime, str]]:
    """Record the new due ticks STARTED in one statement; the ones that already had a row (run by
    another pass, or before a restart) are left out and never run twice."""
    if not fresh:
        return set()
    with env.store.transaction() as con:
        started = order_sql.start_ticks(con, fresh)
    failpoints.hit("tick-started")
    for name, tick, run_id in started:
        log.info("plan %s: tick %s started as run %s", name, tick.isoformat(), run_id,
                 extra={"plan": name, "run_id": run_id})
    return set(started)


MAX_TRIES = 2  # runs of one tick: the first, and one retry after an interruption within the grace


def _tries(env: RunEnv, name: str, tick: datetime) -> int:
    """How many runs this tick already had (each interrupted one left a run row)."""
    with env.store.transaction() as con:
        return run_sql.count_runs(con, plan=name, tick_at=tick)


def _run_admitted(env: RunEnv, result: PassResult, admitted: list[tuple[str, datetime, str]],
                  should_stop: Callable[[], bool]) -> None:
    """Run the admitted ticks together (compute in parallel on the executor), closing each tick as
    its run is committed. A tick whose run was interrupted stays STARTED: the next pass resumes it."""
    if not admitted:
        return
    ticks = {run_id: (name, tick) for name, tick, run_id in admitted}

    def close(con: duckdb.DuckDBPyConnection, outcomes: list[RunOutcome]) -> None:
        """Close the runs' ticks, in the transaction that records the runs ended."""
        ends = []
        for outcome in outcomes:
            name, tick = ticks[outcome.run_id]
            status = TickStatus.FINISHED if outcome.status is RunStatus.FINISHED else TickStatus.FAILED
            ends.append((name, tick, status, outcome.error))
        order_sql.finish_ticks(con, ends)
        for (name, tick, status, _), outcome in zip(ends, outcomes, strict=True):
            log.log(logging.INFO if status is TickStatus.FINISHED else logging.WARNING, "plan %s: tick %s %s%s", name,
                    tick.isoformat(), status.value, f": {outcome.error}" if outcome.error else "",
                    extra={"plan": name, "run_id": outcome.run_id})
        result.runs += outcomes

    try:
        run_plans(env, admitted, on_done=close, should_stop=should_stop)
    except Exception:  # a bug must not stop the other plans' ticks; its run is recorded FAILED
        log.exception("internal error in a run of this pass")
        with env.store.transaction() as con:
            for run_id, (name, tick) in ticks.items():
                if run_id not in {r.run_id for r in result.runs} and not should_stop():
                    order_sql.finish_tick(con, name, tick, TickStatus.FAILED, error="internal error")


def _stamp(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


class _Skip(Enum):
    AWAY = "away"        # missed while the daemon was not running: one summary notification
    OLDER = "older"      # the marker for runs beyond MISSED_CAP, in the same summary
    OTHER = "other"      # late while running, or an early close's skip: one message per plan
    SUSPENDED = "suspended"  # the plan is suspended (`minitrade suspend`): logged, not notified (the operator knows)


class _SkipBook:
    """The ticks a pass skips before running anything: recorded in bulk, then notified."""

    def __init__(self, away_since: datetime | None, now: datetime, zone: ZoneInfo) -> None:
        self.away_since, self.now, self.zone = away_since, now, zone
        self.entries: list[tuple[str, datetime, str, _Skip]] = []
        self.recorded: list[tuple[str, datetime, str, _Skip]] = []
        self.gap_reason = (f"daemon not running from {_stamp(away_since, zone)} to {_stamp(now, zone)}"
                           if away_since is not None else
                           f"daemon not running before {_stamp(now, zone)} (no earlier daemon pass on record)")

    def add(self, plan: str, tick: datetime, reason: str, kind: _Skip = _Skip.OTHER) -> None:
        self.entries.append((plan, tick, reason, kind))

    def record(self, store: Store, result: PassResult) -> None:
        """One statement per plan and reason; a tick that has a row already keeps it (and was told)."""
        groups: dict[tuple[str, str, _Skip], list[datetime]] = {}
        for plan, tick, reason, kind in self.entries:
            groups.setdefault((plan, reason, kind), []).append(tick)
        if not groups:
            return
        with store.transaction() as con:
            for (plan, reason, kind), ticks in groups.items():
                for tick in order_sql.skip_ticks(con, plan, ticks, reason):
                    self.recorded.append((plan, tick, reason, kind))
                    result.skipped.append((plan, tick))
                    result.skip_reasons[(plan, tick)] = reason

    def notify(self, env: RunEnv, late: list[tuple[str, datetime, str]]) -> None:
        """One summary of the runs missed while the daemon was away; one message per plan for the rest."""
        missed: dict[str, list[datetime]] = {}
        older: dict[str, datetime] = {}
        per_plan: dict[str, list[tuple[datetime, str]]] = {}
        for plan, tick, reason, kind in self.recorded:
            if kind is _Skip.AWAY:
                missed.setdefault(plan, []).append(tick)
            elif kind is _Skip.OLDER:
                older[plan] = tick
            elif kind is _Skip.SUSPENDED:
                log.info("plan %s: run of %s skipped: %s", plan, tick, reason)
            else:
                per_plan.setdefault(plan, []).append((tick, reason))
        for plan, tick, reason in late:
            per_plan.setdefault(plan, []).append((tick, reason))
        if missed or older:
            log.warning("%s: %d run(s) of %d plan(s) recorded SKIPPED", self.gap_reason,
                        sum(map(len, missed.values())), len(missed.keys() | older.keys()))
            if env.notifier is not None:
                away = self.away_since.astimezone(self.zone) if self.away_since else None
                env.notifier.notify(messages.ticks_missed(
                    away, self.now.astimezone(self.zone), {p: [t.astimezone(self.zone) for t in ts] for p, ts in missed.items()},
                    not_recorded={p: t.astimezone(self.zone) for p, t in older.items()}, cap_days=MISSED_CAP.days))
        for plan, skipped in sorted(per_plan.items()):
            log.warning("plan %s: %d run(s) skipped: %s", plan, len(skipped), skipped[0][1], extra={"plan": plan})
            if env.notifier is not None:
                env.notifier.notify(messages.ticks_skipped(plan, [(t.astimezone(self.zone), r)
                                                                  for t, r in sorted(skipped)]))


def _notify_moves(env: RunEnv, moved: list[EarlyCloseTick]) -> None:
    """Tell that an early close moves runs of this pass (told days ahead too, by the daemon)."""
    by_close: dict[datetime, list[EarlyCloseTick]] = {}
    for change in moved:
        by_close.setdefault(change.close, []).append(change)
    for close, changes in sorted(by_close.items()):
        log.info("early close %s: %d run(s) moved", close, len(changes))
        if env.notifier is not None:
            env.notifier.notify(messages.early_close(close.date(), close, changes[0].regular_close,
                                                     [(c.plan, c.planned, c.moved_to) for c in changes],
                                                     ahead=False))
