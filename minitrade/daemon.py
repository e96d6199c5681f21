"""The daemon's process lifetime: one per state dir, signals, file-event wake-ups, the pass loop.

The loop is level-triggered: every pass re-reads everything (reconcile_pass), so file events
(watchdog) only wake it early. A `git checkout` produces hundreds of events; they are debounced
into one pass. SIGTERM/SIGINT stop the loop between runs: a run in progress finishes, and
anything it left half-done is resolved by the next start (STARTED ticks, PENDING_SUBMIT orders).
Beside the loop, a thread tickles the IB gateways (minitrade.keepalive), and one serves the Telegram
bot when the applied settings have a `telegram:` section (minitrade.telegram). The daemon's start,
its polling interval and every pass are recorded for `minitrade status --check`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from pydantic import SecretStr

from minitrade import clock
from minitrade.errors import AlreadyRunning, GitError, MinitradeError
from minitrade.keepalive import Keepalive, keepalive_seconds
from minitrade.loader import Snapshot
from minitrade.models import ExecutorSpec
from minitrade.notify import Notifier, messages
from minitrade.reconcile_pass import PassResult, applied_snapshot, reconcile_once
from minitrade.records import ApplyOutcome
from minitrade.runner.executor import ProcessExecutor, executor_for
from minitrade.scheduler import CALENDAR_WARNING_DAYS, EarlyCloseTick, upcoming_early_closes
from minitrade.source import Backoff, RemoteSource
from minitrade.store import Store
from minitrade.store.heartbeat import LOCK_FILE, record_start
from minitrade.telegram.bot import BotThread
from minitrade.trading_calendar import get_calendar

log = logging.getLogger("minitrade.daemon")
DEBOUNCE_SECONDS = 0.5
POLL_SECONDS = 60.0
LOCK_PATIENCE = 1.0  # a health check's momentary probe of the lock must not make a starting daemon fail


@contextmanager
def single_instance(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `state_dir/daemon.lock` for the daemon's lifetime."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 (held for the process lifetime)
    if not _try_lock(handle):
        handle.seek(0)
        holder = handle.read().strip() or "unknown pid"
        handle.close()
        raise AlreadyRunning(f"a daemon already runs on {state_dir} ({holder}); stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _try_lock(handle: TextIO, patience: float = LOCK_PATIENCE) -> bool:
    """Take the exclusive lock, trying again for a moment (`status` probes it with a brief shared lock)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


class Wakeup:
    """Debounced wake-ups from file events under the repo (state dir and git objects ignored)."""

    def __init__(self, root: Path, ignore: list[Path]) -> None:
        self.event = threading.Event()
        self._root = root
        self._ignore = [str(p) for p in ignore] + [str(root / ".git" / "objects"), str(root / ".git" / "logs")]
        self._observer: object | None = None

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                path = str(event.src_path)
                if any(path.startswith(prefix) for prefix in wake._ignore):
                    return
                wake.event.set()

        observer = Observer()
        observer.schedule(Handler(), str(self._root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()  # type: ignore[attr-defined]

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Sleep up to `timeout`; on a file event, wait for quiet (debounce) and return early."""
        if not self.event.wait(timeout) or stop.is_set():
            return
        while True:  # debounce: return once no event arrived for DEBOUNCE_SECONDS
            self.event.clear()
            if not self.event.wait(DEBOUNCE_SECONDS) or stop.is_set():
                return


@dataclass
class DaemonRun:
    """How the daemon's passes went: `--once` exits non-zero when its pass failed."""

    passes: int = 0
    failed: int = 0


@dataclass
class Follow:
    """A remote source the daemon fetches before its passes: on its interval (with backoff after
    failures) and at once after a signed webhook push."""

    source: RemoteSource
    backoff: Backoff
    webhook: tuple[tuple[str, int], SecretStr] | None = None
    pushed: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def of(cls, source: RemoteSource, *, webhook: tuple[tuple[str, int], SecretStr] | None = None) -> Follow:
        return cls(source, Backoff(source.spec.interval), webhook)


def run_daemon(root: Path, store: Store, state_dir: Path, *, once: bool = False,
               branch: str | None = None, poll: float = POLL_SECONDS,
               now: Callable[[], datetime] | None = None,
               report: Callable[[PassResult], None] | None = None,
               follow: Follow | None = None, keepalive: float | None = None,
               on_stop: Callable[[str], None] | None = None) -> DaemonRun:
    """Run passes until SIGTERM/SIGINT (or one pass with `once`). With `follow`, `root` is the remote
    source's clone and each pass first fetches when due; a fetch that fails fails the pass's count
    (the pass still runs the applied state).

    `keepalive` is the IB tickle cadence in seconds (default: `MINITRADE_KEEPALIVE_SECONDS`, else 60).
    `on_stop(signal_name)` is called when SIGTERM/SIGINT arrives (the CLI says it on stdout at once).
    An exception that escapes the loop is logged and notified ("daemon stopped after an error"),
    then raised: the process exits non-zero and a service manager restarts it.
    """
    stop = threading.Event()
    stopped_by: list[str] = []  # the signal's name, once one arrived

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.info("%s received: stopping (runs still computing are abandoned and resumed on restart)", name)
        stopped_by.append(name)
        stop.set()
        wake.event.set()
        if on_stop is not None:
            on_stop(name)

    run = DaemonRun()
    executor = _executor(root, store)
    tickler = Keepalive(store, interval=keepalive if keepalive is not None else keepalive_seconds())
    bot = BotThread(root, store, state_dir)   # the applied `telegram:` section's bot (minitrade.telegram)
    with single_instance(state_dir), closing(executor), ExitStack() as services:
        wake = Wakeup(root, [state_dir])
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        told: set[tuple[str, datetime]] = set()  # early-close changes told by this process
        looked: tuple[object, ...] | None = None
        log.info("daemon started on %s (state %s, pid %d, %s)", root, state_dir, os.getpid(), "one pass" if once else f"poll {poll:g} s")
        watched: str | None = None
        crash: BaseException | None = None
        if follow is not None:
            branch = follow.source.spec.tracking_ref
            services.enter_context(_webhook(follow, wake))
        elif not once:
            wake.start()  # a remote source's clone changes only when the daemon fetches
        if not once:
            _record_start(store, poll)
            snapshot = _applied(root, store)
            watched = snapshot.commit if snapshot is not None else None
            tickler.watch(snapshot.settings if snapshot is not None else None)
            tickler.start()
            bot.watch(snapshot.settings.telegram if snapshot is not None else None)
            _announce(root, store, lambda snap: messages.daemon_started(snap.commit, plans=len(snap.plans)))
            _warn_calendars(root, store)
        try:
            while True:
                fetched = follow is None or _fetch_if_due(follow, root, store)
                try:
                    result = reconcile_once(root, store, now=now, branch=branch, executor=executor,
                                            should_stop=stop.is_set)
                except MinitradeError as e:  # e.g. the store is locked by a CLI for a moment
                    log.error("pass failed: %s", e)
                    result = PassResult()
                    run.failed += 1
                else:
                    run.failed += 0 if fetched else 1
                run.passes += 1
                if report is not None:
                    report(result)
                if not once and result.applied_commit is not None and (
                        result.applied_commit != watched or result.outcome is ApplyOutcome.APPLIED):
                    watched = result.applied_commit  # the keepalive follows the brokers of the applied state
                    snapshot = _applied(root, store)
                    tickler.watch(snapshot.settings if snapshot is not None else None)
                    bot.watch(snapshot.settings.telegram if snapshot is not None else None)
                today = (now or clock.now)().date()
                if not once and (today, result.applied_commit, result.outcome) != looked:  # once a day or commit
                    looked = (today, result.applied_commit, result.outcome)
                    _warn_early_closes(root, store, today, told)
                if once or stop.is_set():
                    break
                sleep = poll
                if result.next_tick is not None:
                    sleep = max(0.05, min(poll, (result.next_tick - clock.now()).total_seconds()))
                if follow is not None:
                    sleep = min(sleep, max(0.05, follow.backoff.seconds_left()))
                wake.wait(sleep, stop)
                if stop.is_set():
                    break
        except Exception as e:
            crash = e
            log.exception("the daemon loop failed; stopping")
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            wake.stop()
            tickler.stop()
            bot.stop()
            reason = stopped_by[0] if stopped_by else ""
            log.info("daemon stopped after %d pass(es)%s", run.passes, f" on {reason}" if reason else
                     " after an error" if crash is not None else "")
            if not once:
                error = f"{type(crash).__name__}: {crash}" if crash is not None else None
                _announce_stop(root, store, reason, error)
    return run


def _record_start(store: Store, poll: float) -> None:
    """Write the start and poll interval `status --check` measures the lag against (never fatal)."""
    try:
        with store.transaction() as con:
            record_start(con, poll)
    except MinitradeError as e:
        log.warning("daemon start not recorded (status may call it lagging until the first pass): %s", e)


@contextmanager
def _webhook(follow: Follow, wake: Wakeup) -> Iterator[None]:
    """Serve push webhooks while the daemon runs: a signed push wakes the loop and fetches at once."""
    if follow.webhook is None:
        yield
        return
    from minitrade.webhook import WebhookServer

    def pushed() -> None:
        follow.pushed.set()
        wake.event.set()

    address, secret = follow.webhook
    server = WebhookServer(address, secret, follow.source.spec.branch, pushed)
    server.start()
    try:
        yield
    finally:
        server.stop()


def _fetch_if_due(follow: Follow, root: Path, store: Store) -> bool:
    """Fetch the remote source when its interval came or a push was announced; False when the fetch
    failed (retried with backoff; told once when it starts failing and once when it works again)."""
    if not (follow.pushed.is_set() or follow.backoff.due()):
        return True
    follow.pushed.clear()
    spec, status = follow.source.spec, follow.source.status
    failing_since = status.failing_since
    try:
        fetched = follow.source.fetch()
    except GitError as e:
        error = str(e)
        wait = follow.backoff.failed()
        log.warning("fetch of %s from %s failed (next try in %ss): %s", spec.branch, spec.url,
                    int(wait.total_seconds()), error)
        if failing_since is None:
            _announce(root, store, lambda _snap: messages.source_failing(
                spec.url, spec.branch, error, since=status.failing_since or clock.now()))
        return False
    follow.backoff.succeeded()
    if failing_since is not None:
        log.info("fetch of %s from %s works again", spec.branch, spec.url)
        _announce(root, store, lambda _snap: messages.source_recovered(spec.url, spec.branch, fetched.head,
                                                                       since=failing_since))
    if fetched.moved:
        log.info("fetched %s: %s -> %s%s", spec.branch, (fetched.previous or "nothing")[:8], fetched.head[:8],
                 " (force-push)" if fetched.forced else "")
    if fetched.forced and fetched.previous is not None:
        _announce(root, store, lambda _snap: messages.source_force_pushed(spec.branch, fetched.previous or "",
                                                                          fetched.head))
    return True


def _applied(root: Path, store: Store) -> Snapshot | None:
    """The applied state, or None when there is none or it cannot be read (never fatal here)."""
    try:
        return applied_snapshot(root, store)
    except MinitradeError:
        return None


def _executor(root: Path, store: Store) -> ProcessExecutor:
    """One pool for the daemon's life (its forkserver imports pandas and backtrader once)."""
    snapshot = _applied(root, store)
    return executor_for(snapshot.settings.executor if snapshot is not None else ExecutorSpec.model_validate({}))


def _warn_calendars(root: Path, store: Store) -> None:
    """Calendars whose holiday data ends within 60 days, told once per daemon start."""
    snapshot = _applied(root, store)
    if snapshot is None:
        return
    today = clock.now().date()
    by_calendar: dict[str, list[str]] = {}
    for name, plan in snapshot.plans.items():
        by_calendar.setdefault(plan.calendar, []).append(name)
    notifier = Notifier.from_settings(snapshot.settings, store=store)
    for code, plans in sorted(by_calendar.items()):
        last = get_calendar(code).last_day
        if (last - today).days <= CALENDAR_WARNING_DAYS:
            log.warning("calendar %s has sessions only until %s", code, last)
            notifier.notify(messages.calendar_ending(code, last, today=today, plans=sorted(plans)))


def _warn_early_closes(root: Path, store: Store, today: date, told: set[tuple[str, datetime]]) -> None:
    """Early closes in the next 14 days that move or skip a plan's runs: told once per plan and
    run per daemon process (a notification and the log), like `minitrade plan` shows them."""
    snapshot = _applied(root, store)
    if snapshot is None:
        return
    by_close: dict[datetime, list[EarlyCloseTick]] = {}
    for plan in snapshot.plans.values():
        if not plan.backtest_enabled:
            continue
        for change in upcoming_early_closes(plan, today):
            if (change.plan, change.planned) not in told:
                told.add((change.plan, change.planned))
                by_close.setdefault(change.close, []).append(change)
    if not by_close:
        return
    notifier = Notifier.from_settings(snapshot.settings, store=store)
    for close, changes in sorted(by_close.items()):
        for change in changes:
            log.warning("plan %s: %s", change.plan, change.reason)
        notifier.notify(messages.early_close(close.date(), close, changes[0].regular_close,
                                             [(c.plan, c.planned, c.moved_to) for c in changes], ahead=True))


def _announce(root: Path, store: Store, message: Callable[[Snapshot], messages.Message]) -> None:
    snapshot = _applied(root, store)
    if snapshot is not None:
        Notifier.from_settings(snapshot.settings, store=store).notify(message(snapshot))


def _announce_stop(root: Path, store: Store, reason: str, error: str | None) -> None:
    """Tell that the daemon stopped and why; on the way out after an error this must not raise again."""
    try:
        _announce(root, store, lambda _snap: messages.daemon_stopped(reason, error=error))
    except Exception:
        log.exception("the daemon's stop was not notified")
