"""The daemon's heartbeat: the clock of its latest pass, one row, rewritten by every pass."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import duckdb

from minitrade import clock


def last_pass(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the latest daemon pass ended (its own clock), or None if no pass was ever recorded."""
    row = con.execute("SELECT last_pass FROM daemon_heartbeat WHERE id = 1").fetchone()
    return None if row is None else row[0].astimezone(UTC)


def record_pass(con: duckdb.DuckDBPyConnection, at: datetime) -> None:
    """Remember that a daemon pass ended at `at` (aware)."""
    con.execute("INSERT INTO daemon_heartbeat (id, last_pass, pid, passes, recorded_at) VALUES (1, ?, ?, 1, ?) "
                "ON CONFLICT (id) DO UPDATE SET last_pass = excluded.last_pass, pid = excluded.pid, "
                "passes = daemon_heartbeat.passes + 1, recorded_at = excluded.recorded_at",
                [at, os.getpid(), clock.now()])
