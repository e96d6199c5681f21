"""The daemon's signs of life: the lock it holds on its state dir, and the heartbeat row every pass rewrites.

`daemon_health` reads both into a `DaemonHealth` for `minitrade status` and `status --check`.
Whether the daemon runs is asked of the lock (the kernel drops it when the process dies, even on
SIGKILL), never of the pid written in it (pids are reused).
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from minitrade import clock

LOCK_FILE = "daemon.lock"           # under the state dir; holds "pid N" while a daemon runs
DEFAULT_POLL_SECONDS = 60.0         # what a daemon that never said otherwise polls at
LAG_SLACK = timedelta(minutes=5)    # a pass may take this long beyond the poll (runs, fetches, broker calls)


def last_pass(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the latest daemon pass ended (its own clock), or None if no pass was ever recorded."""
    row = con.execute("SELECT last_pass FROM daemon_heartbeat WHERE id = 1").fetchone()
    return None if row is None or row[0] is None else row[0].astimezone(UTC)


def record_pass(con: duckdb.DuckDBPyConnection, at: datetime) -> None:
    """Remember that a daemon pass ended at `at` (aware)."""
    con.execute("INSERT INTO daemon_heartbeat (id, last_pass, pid, passes, recorded_at) VALUES (1, ?, ?, 1, ?) "
                "ON CONFLICT (id) DO UPDATE SET last_pass = excluded.last_pass, pid = excluded.pid, "
                "passes = daemon_heartbeat.passes + 1, recorded_at = excluded.recorded_at",
                [at, os.getpid(), clock.now()])


def record_start(con: duckdb.DuckDBPyConnection, poll_seconds: float) -> None:
    """Remember that this process started a daemon loop now, passing at least every `poll_seconds`.

    The previous daemon's last pass stays: the first pass needs it to tell what was missed meanwhile.
    """
    now = clock.now()
    con.execute("INSERT INTO daemon_heartbeat (id, last_pass, pid, passes, recorded_at, started_at, poll_seconds) "
                "VALUES (1, NULL, ?, 0, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, "
                "started_at = excluded.started_at, poll_seconds = excluded.poll_seconds",
                [os.getpid(), now, now, poll_seconds])


# ---------------------------------------------------------------------------------------------
# health


@dataclass(frozen=True)
class LockState:
    """Whether a process holds the daemon lock of a state dir, and the pid it wrote there."""

    held: bool
    pid: int | None = None


def daemon_lock(state_dir: Path) -> LockState:
    """Ask the kernel whether a daemon holds `state_dir/daemon.lock` (a shared, non-blocking try).

    The try never waits and is let go at once; a daemon starting in that instant retries its
    lock briefly (minitrade.daemon.single_instance), so a health check cannot make it fail.
    """
    try:
        handle = open(state_dir / LOCK_FILE, encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return LockState(False)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            match = re.search(r"pid (\d+)", handle.read())
            return LockState(True, int(match.group(1)) if match else None)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return LockState(False)


@dataclass(frozen=True)
class SourceHealth:
    """The remote the daemon follows: its head against the applied commit, and the last fetch."""

    url: str
    head: str | None = None
    applied: str | None = None
    last_fetch: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class DaemonHealth:
    """What `minitrade status` says about the daemon; `problem` is None when it is healthy.

    `last_pass` is the real time the latest pass ended (None: no pass on record); `lag` is the
    present minus the daemon's latest sign of life (that pass, or its start if later).
    """

    running: bool
    pid: int | None
    started_at: datetime | None
    poll_seconds: float
    last_pass: datetime | None
    passes: int
    lag: timedelta | None
    max_lag: timedelta
    source: SourceHealth | None = None      # set by a daemon that follows a remote

    @property
    def problem(self) -> str | None:
        """One line saying why the daemon is not healthy, or None."""
        if not self.running:
            since = (f"last pass {self.last_pass:%Y-%m-%d %H:%M:%S %Z}, {span(self.lag)} ago"
                     if self.last_pass is not None and self.lag is not None else "no pass on record")
            return f"daemon not running ({since}); start it: `minitrade daemon`"
        if self.lag is not None and self.lag > self.max_lag:
            what = "last pass" if self.last_pass is not None and self.started_at is not None \
                and self.last_pass >= self.started_at else "started, no pass since"
            return (f"daemon pid {self.pid} is lagging: {what} {span(self.lag)} ago, more than the "
                    f"{span(self.max_lag)} allowed (poll {self.poll_seconds:g}s); see its log")
        return None

    @property
    def ok(self) -> bool:
        return self.problem is None


def allowed_lag(poll_seconds: float) -> timedelta:
    """How old the latest sign of life may be: three polls, and at least a poll plus five minutes."""
    poll = timedelta(seconds=poll_seconds)
    return max(3 * poll, poll + LAG_SLACK)


def daemon_health(con: duckdb.DuckDBPyConnection, state_dir: Path, now: datetime, *,
                  max_lag: timedelta | None = None) -> DaemonHealth:
    """The daemon of `state_dir` at `now` (aware): running or not, its last pass and how late it is."""
    lock = daemon_lock(state_dir)
    row = con.execute("SELECT recorded_at, last_pass IS NOT NULL, passes, started_at, poll_seconds, pid "
                      "FROM daemon_heartbeat WHERE id = 1").fetchone()
    recorded, passed, passes, started, poll, pid = row if row is not None else (None, False, 0, None, None, None)
    last = recorded.astimezone(UTC) if recorded is not None and passed else None
    start = started.astimezone(UTC) if started is not None and lock.held else None
    signs = [t for t in (last, start) if t is not None]
    poll_seconds = float(poll) if poll is not None else DEFAULT_POLL_SECONDS
    return DaemonHealth(running=lock.held, pid=lock.pid if lock.held else pid, started_at=start,
                        poll_seconds=poll_seconds, last_pass=last, passes=int(passes),
                        lag=max(timedelta(0), now - max(signs)) if signs else None,
                        max_lag=max_lag if max_lag is not None else allowed_lag(poll_seconds))


def span(delta: timedelta | None) -> str:
    """A duration as people say it: 45s, 12m 5s, 3h 20m, 2d 4h."""
    seconds = int((delta or timedelta(0)).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
