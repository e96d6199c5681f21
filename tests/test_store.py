"""The DuckDB store: versioned idempotent migrations, short transactions, lock retries, rollback."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from minitrade.errors import StoreError, StoreLocked
from minitrade.store import Store
from minitrade.store.applied import applied_resources, record_reconciliation, replace_applied
from minitrade.store.schema import MIGRATIONS

LATEST = max(v for v, _ in MIGRATIONS)

# A second process that opens the file read-write and holds it until told (or until `release` exists).
HOLDER = """
import sys, time, pathlib, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
release = pathlib.Path(sys.argv[2])
while not release.exists():
    time.sleep(0.02)
con.close()
print("released", flush=True)
sys.stdin.readline()
"""

# A second process that opens the file read-write, writes, and reports the schema versions it sees.
WRITER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("INSERT INTO notifications VALUES (99, 'n', 'e', 'd', 't', now(), 'sent', NULL)")
print(con.execute("SELECT count(*) FROM schema_version").fetchone()[0], flush=True)
con.close()
"""

# A fresh process (no in-process migration cache) opening the store through minitrade.
REOPEN = """
import sys
from minitrade.store import Store
with Store(sys.argv[1]).transaction() as con:
    print(con.execute("SELECT count(*), max(version) FROM schema_version").fetchone(), flush=True)
"""


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "minitrade.duckdb")


class Holder:
    """Another process holding the database file open."""

    def __init__(self, path: Path, release: Path) -> None:
        self.release = release
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(release)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def let_go(self) -> None:
        self.release.touch()

    def stop(self) -> None:
        self.release.touch()
        try:
            self.proc.communicate("\n", timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def holder(store: Store, tmp_path: Path) -> Iterator[Holder]:
    with store.transaction():  # create and migrate the file first
        pass
    h = Holder(store.path, tmp_path / "release")
    yield h
    h.stop()


def test_a_new_file_gets_every_migration_once(store: Store) -> None:
    assert store.schema_version() == LATEST
    with store.transaction() as con:
        rows = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert [r[0] for r in rows] == [v for v, _ in MIGRATIONS]
    assert {"reconciliations", "applied_resources", "runs", "orders", "fills", "ticks", "prices"} <= tables


def test_reopening_in_a_fresh_process_does_not_migrate_again(store: Store) -> None:
    assert store.schema_version() == LATEST
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", REOPEN, str(store.path)], capture_output=True, text=True,
                             timeout=60, check=True)
        assert out.stdout.strip() == f"({len(MIGRATIONS)}, {LATEST})"


def test_a_file_newer_than_this_minitrade_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())")
    con.execute("INSERT INTO schema_version (version) VALUES (?)", [LATEST + 1])
    con.close()
    with pytest.raises(StoreError) as err, Store(path).transaction():
        pass
    assert f"schema version {LATEST + 1}" in str(err.value) and "upgrade minitrade" in str(err.value)
    assert str(path) in str(err.value)


def test_no_process_keeps_the_file_open_between_transactions(store: Store) -> None:
    with store.transaction() as con:
        record_reconciliation(con, commit_sha="abc", dirty=False, author_time=None, message="m",
                              outcome="applied", error=None, source="apply")
    # The Store object is still alive here; another process must still be able to write.
    out = subprocess.run([sys.executable, "-c", WRITER, str(store.path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(MIGRATIONS))
    with store.transaction() as con:
        assert con.execute("SELECT count(*) FROM notifications WHERE id = 99").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM reconciliations").fetchone() == (1,)


def test_a_lock_held_by_another_process_is_retried_then_reported(store: Store, holder: Holder) -> None:
    impatient = Store(store.path, lock_timeout=0.3)
    with pytest.raises(StoreLocked) as err, impatient.transaction():
        pass
    message = str(err.value)
    assert str(store.path) in message and "in use by another process" in message
    assert str(holder.proc.pid) in message  # DuckDB names the holder; we pass it on
    assert err.value.retryable


def test_a_lock_released_within_the_timeout_lets_the_transaction_through(store: Store, holder: Holder) -> None:
    with pytest.raises(StoreLocked), Store(store.path, lock_timeout=0).transaction():
        pass  # proves the file is held right now
    timer = threading.Timer(0.3, holder.let_go)
    timer.start()
    try:
        with Store(store.path, lock_timeout=30).transaction() as con:
            record_reconciliation(con, commit_sha="after-wait", dirty=False, author_time=None, message=None,
                                  outcome="applied", error=None, source="apply")
    finally:
        timer.cancel()
    with store.transaction() as con:
        assert con.execute("SELECT commit_sha FROM reconciliations").fetchall() == [("after-wait",)]


def test_a_failing_unit_of_work_leaves_nothing_half_written(store: Store) -> None:
    with store.transaction() as con:
        replace_applied(con, {("plan", "keep"): ("d1", {"cash": 1})}, "c1")
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as con:
        replace_applied(con, {("plan", "new"): ("d2", {"cash": 2})}, "c2")
        record_reconciliation(con, commit_sha="c2", dirty=False, author_time=None, message=None,
                              outcome="applied", error=None, source="apply")
        raise RuntimeError("boom")
    with store.transaction() as con:
        assert set(applied_resources(con)) == {("plan", "keep")}
        assert con.execute("SELECT count(*) FROM reconciliations").fetchone() == (0,)


def test_a_failing_statement_rolls_back_the_whole_unit_as_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError) as err, store.transaction() as con:
        record_reconciliation(con, commit_sha="c1", dirty=False, author_time=None, message=None,
                              outcome="applied", error=None, source="apply")
        con.execute("INSERT INTO reconciliations (id) VALUES (NULL)")  # violates NOT NULL
    assert isinstance(err.value.__cause__, duckdb.Error) and str(store.path) in str(err.value)
    with store.transaction() as con:
        assert con.execute("SELECT count(*) FROM reconciliations").fetchone() == (0,)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "minitrade.duckdb"
    path.write_text("not a database")
    with pytest.raises(StoreError) as err, Store(path).transaction():
        pass
    assert str(path) in str(err.value)


def test_a_deleted_file_is_created_and_migrated_again_in_the_same_process(store: Store) -> None:
    assert store.schema_version() == LATEST
    store.path.unlink()  # `rm -r state` while a daemon keeps running
    with store.transaction() as con:
        assert con.execute("SELECT count(*) FROM reconciliations").fetchone() == (0,)
    assert store.schema_version() == LATEST


def test_a_held_files_token_changes_whenever_another_process_could_have_written(store: Store) -> None:
    """A batch of runs reads the suspended plans once and trusts that reading only while its token
    stands: the same open of the file, so no other process wrote in between."""
    assert store.held_token() is None  # not held: nothing read earlier can be trusted
    with store.held_open():
        assert store.held_token() is None  # held_open opens the file at its first transaction
        with store.transaction():
            pass
        first = store.held_token()
        with store.transaction():
            pass
        assert first is not None and store.held_token() == first
        with store.released():  # a broker call: another process may write meanwhile
            assert store.held_token() is None
            out = subprocess.run([sys.executable, "-c", WRITER, str(store.path)], capture_output=True, text=True,
                                 timeout=60)
            assert out.returncode == 0, out.stderr
        with store.transaction():
            pass
        assert store.held_token() not in (None, first)
    assert store.held_token() is None
