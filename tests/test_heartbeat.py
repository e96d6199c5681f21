"""The daemon's heartbeat and health: migration v8 keeps the last pass, a start is not a pass, the lock
decides whether the daemon runs, and the lag is measured from its latest sign of life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from minitrade.daemon import single_instance
from minitrade.store import Store
from minitrade.store.heartbeat import allowed_lag, daemon_health, last_pass, record_pass, record_start
from minitrade.store.schema import MIGRATIONS
from tests.conftest import present

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "minitrade.duckdb")


def test_a_v7_file_with_a_heartbeat_migrates_keeping_its_last_pass(store: Store) -> None:
    store.path.parent.mkdir(parents=True)
    con = duckdb.connect(str(store.path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())")
    for version, sql in MIGRATIONS:
        if version <= 7:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    con.execute("INSERT INTO daemon_heartbeat VALUES (1, ?, 4242, 7, ?)", [T0, T0])
    con.close()

    with store.transaction() as con:
        assert last_pass(con) == T0
        health = daemon_health(con, store.path.parent, T0 + timedelta(days=2))
    assert store.schema_version() == max(v for v, _ in MIGRATIONS)   # migrated to the latest
    assert (health.running, health.pid, health.passes, health.last_pass) == (False, 4242, 7, T0)
    assert health.poll_seconds == 60.0 and health.started_at is None and health.lag == timedelta(days=2)
    assert health.problem == ("daemon not running (last pass 2026-11-23 15:00:00 UTC, 2d 0h ago); "
                              "start it: `minitrade daemon`")


def test_a_start_is_not_a_pass_and_a_new_daemon_is_not_late_for_its_predecessors_pass(store: Store) -> None:
    with store.transaction() as con, present(T0):
        record_pass(con, T0)
    started = T0 + timedelta(days=3)
    with single_instance(store.path.parent), present(started), store.transaction() as con:
        record_start(con, 30.0)
        assert last_pass(con) == T0, "the first pass still finds what was missed since the old one"
        fresh = daemon_health(con, store.path.parent, started + timedelta(seconds=20))
        stuck = daemon_health(con, store.path.parent, started + timedelta(minutes=10))
        forgiven = daemon_health(con, store.path.parent, started + timedelta(minutes=10),
                                 max_lag=timedelta(minutes=15))
    assert fresh.running and fresh.pid is not None and fresh.ok, fresh.problem
    assert fresh.last_pass == T0 and fresh.started_at == started and fresh.lag == timedelta(seconds=20)
    assert stuck.max_lag == allowed_lag(30.0) == timedelta(minutes=5, seconds=30)
    assert stuck.problem == (f"daemon pid {stuck.pid} is lagging: started, no pass since 10m 0s ago, more than "
                             "the 5m 30s allowed (poll 30s); see its log")
    assert forgiven.ok

    with store.transaction() as con:  # the lock went with the process: not running, whatever the row says
        gone = daemon_health(con, store.path.parent, started)
    assert not gone.running and gone.started_at is None and gone.lag == timedelta(days=3)


def test_a_daemon_that_only_started_has_no_pass_on_record(store: Store) -> None:
    with store.transaction() as con, present(T0):
        record_start(con, 60.0)
        assert last_pass(con) is None
        health = daemon_health(con, store.path.parent, T0)
    assert health.last_pass is None and health.lag is None and health.passes == 0
    assert health.problem == "daemon not running (no pass on record); start it: `minitrade daemon`"


@pytest.mark.parametrize(("poll", "allowed"), [
    pytest.param(1.0, timedelta(minutes=5, seconds=1), id="short-poll-gets-five-minutes-slack"),
    pytest.param(60.0, timedelta(minutes=6), id="default-poll"),
    pytest.param(600.0, timedelta(minutes=30), id="long-poll-three-polls"),
])
def test_allowed_lag_is_three_polls_and_at_least_a_poll_plus_five_minutes(poll: float, allowed: timedelta) -> None:
    assert allowed_lag(poll) == allowed
