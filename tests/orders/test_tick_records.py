"""Durable ticks: STARTED before work, FINISHED/FAILED/SKIPPED after, never run twice, across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from minitrade.errors import StoreError
from minitrade.records import TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql

AT = datetime(2026, 11, 25, 15, 45, tzinfo=ZoneInfo("America/New_York"))


def test_a_tick_starts_once(store: Store) -> None:
    with store.transaction() as con:
        assert order_sql.start_tick(con, "p", AT, "run-1") is True
    with store.transaction() as con:
        assert order_sql.start_tick(con, "p", AT.astimezone(UTC), "run-2") is False
        assert order_sql.skip_tick(con, "p", AT, "late") is False
        [tick] = order_sql.ticks_of(con, "p")
    assert (tick.status, tick.run_id, tick.scheduled_at) == (TickStatus.STARTED, "run-1", AT)


def test_a_tick_never_runs_twice_across_processes(store: Store) -> None:
    with store.transaction() as con:
        assert order_sql.start_tick(con, "p", AT, "run-1")
    script = textwrap.dedent(f"""
        from datetime import datetime
        from minitrade.store import Store
        from minitrade.store import orders as order_sql
        with Store({str(store.path)!r}).transaction() as con:
            again = order_sql.start_tick(con, "p", datetime.fromisoformat({AT.isoformat()!r}), "run-2")
            other = order_sql.start_tick(con, "p", datetime.fromisoformat({(AT + timedelta(minutes=30)).isoformat()!r}),
                                         "run-3")
        print(again, other)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
    with store.transaction() as con:
        assert [(t.run_id, t.status) for t in order_sql.ticks_of(con, "p")] == [
            ("run-1", TickStatus.STARTED), ("run-3", TickStatus.STARTED)]


def test_finish_fail_and_skip_are_recorded(store: Store) -> None:
    later = AT + timedelta(minutes=30)
    with store.transaction() as con:
        order_sql.start_tick(con, "p", AT, "run-1")
        order_sql.finish_tick(con, "p", AT, TickStatus.FINISHED)
        order_sql.start_tick(con, "q", AT, "run-2")
        order_sql.finish_tick(con, "q", AT, TickStatus.FAILED, "prices unavailable")
        assert order_sql.skip_tick(con, "p", later, "could not start within 3 minutes") is True
        ticks = order_sql.ticks_of(con)
        assert [(t.plan, t.status, t.error) for t in ticks] == [
            ("p", TickStatus.FINISHED, None), ("q", TickStatus.FAILED, "prices unavailable"),
            ("p", TickStatus.SKIPPED, "could not start within 3 minutes")]
        assert all(t.finished_at is not None for t in ticks)
        assert [t.plan for t in order_sql.ticks_of(con, statuses=[TickStatus.FAILED])] == ["q"]
        assert order_sql.ticks_of(con, statuses=[]) == []
        assert order_sql.last_tick_time(con, "p") == later
        assert order_sql.last_tick_time(con, "nobody") is None


def test_only_a_started_tick_can_finish(store: Store) -> None:
    with store.transaction() as con:
        with pytest.raises(StoreError, match="no STARTED tick"):
            order_sql.finish_tick(con, "p", AT, TickStatus.FINISHED)
        order_sql.start_tick(con, "p", AT, "run-1")
        order_sql.finish_tick(con, "p", AT, TickStatus.FINISHED)
        with pytest.raises(StoreError, match="no STARTED tick"):
            order_sql.finish_tick(con, "p", AT, TickStatus.FAILED, "again")
        with pytest.raises(StoreError, match="FINISHED or FAILED"):
            order_sql.finish_tick(con, "p", AT, TickStatus.SKIPPED)


def test_a_tick_time_without_timezone_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="no timezone"), store.transaction() as con:
        order_sql.start_tick(con, "p", datetime(2026, 11, 25, 15, 45), "run-1")


def test_ticks_start_and_finish_together(store: Store) -> None:
    """A daemon pass starts its due ticks in one statement and closes a batch's in another; a tick
    that has a row already is not started again, and only STARTED ticks close."""
    ticks = [(f"p{i}", AT, f"run-{i}") for i in range(3)]
    with store.transaction() as con:
        assert order_sql.start_tick(con, "p1", AT, "earlier") is True
    with store.transaction() as con:
        started = order_sql.start_ticks(con, ticks)
    assert started == [ticks[0], ticks[2]]
    with store.transaction() as con:
        order_sql.finish_ticks(con, [("p0", AT, TickStatus.FINISHED, None), ("p2", AT, TickStatus.FAILED, "boom")])
        rows = {t.plan: t for t in order_sql.ticks_of(con)}
    assert (rows["p0"].status, rows["p1"].status, rows["p2"].status, rows["p2"].error) == (
        TickStatus.FINISHED, TickStatus.STARTED, TickStatus.FAILED, "boom")
    assert rows["p1"].run_id == "earlier"
    with pytest.raises(StoreError, match="no STARTED tick"), store.transaction() as con:
        order_sql.finish_ticks(con, [("p1", AT, TickStatus.FINISHED, None), ("p0", AT, TickStatus.FINISHED, None)])
    with store.transaction() as con:  # the refused batch changed nothing
        assert order_sql.ticks_of(con, "p1")[0].status is TickStatus.STARTED
