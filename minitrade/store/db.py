"""Opening the DuckDB file: one short transaction at a time, migrations, lock retries.

DuckDB locks the file per process, so no process keeps it open between units of work: each
`transaction()` opens, runs, commits and closes. A lock held by another process is retried
briefly, then reported as StoreLocked naming the holder.

"Open" is an ATTACH of the file to one in-memory DuckDB instance that the process keeps, and
"close" its DETACH, which releases the file's lock as closing a connection does. Creating a DuckDB
instance (what `duckdb.connect(path)` does each time) costs ~30 ms of CPU; an ATTACH and DETACH
~6 ms. A daemon pass opens the file a few times, a command once or twice, so this was a third of
a small plan's bookkeeping.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from minitrade.errors import StoreError, StoreLocked
from minitrade.store.schema import MIGRATIONS

LOCK_RETRY_SECONDS = 5.0
log = logging.getLogger("minitrade.store")
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


class _Attachments:
    """The process's in-memory DuckDB instance and the state files attached to it, counted by users.

    Each user gets its own cursor (a connection of the instance: threads never share one) whose
    default database is the file. The file is detached, and its lock released, when its last user
    closes. A forked child starts an instance of its own rather than touch its parent's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base: duckdb.DuckDBPyConnection | None = None
        self._pid = 0
        self._files: dict[str, tuple[str, int]] = {}  # resolved path -> (alias, users)
        self._aliases = itertools.count(1)

    def open(self, path: Path) -> duckdb.DuckDBPyConnection:
        """A connection whose default database is the file at `path` (attached if no one has it)."""
        key = str(path.resolve())
        with self._lock:
            base = self._instance()
            alias, users = self._files.get(key, ("", 0))
            if not users:
                alias = f"state_{next(self._aliases)}"
                quoted = key.replace("'", "''")
                base.execute(f"ATTACH '{quoted}' AS {alias}")
            self._files[key] = (alias, users + 1)
            cursor = base.cursor()
        try:
            cursor.execute(f"USE {alias}")
        except BaseException:
            self.close(path, cursor)
            raise
        return cursor

    def close(self, path: Path, cursor: duckdb.DuckDBPyConnection) -> None:
        """Done with `cursor`; the last user of the file detaches it."""
        key = str(path.resolve())
        with self._lock:
            cursor.close()
            alias, users = self._files.pop(key, ("", 0))
            if users > 1:
                self._files[key] = (alias, users - 1)
            elif users == 1 and self._base is not None:
                self._base.execute(f"DETACH {alias}")

    def _instance(self) -> duckdb.DuckDBPyConnection:
        if self._base is None or self._pid != os.getpid():
            self._base, self._pid, self._files = duckdb.connect(":memory:"), os.getpid(), {}
        return self._base


_attached = _Attachments()


def _lock_holder(message: str) -> str:
    """'/usr/bin/python3.11 (PID 1234)' out of DuckDB's lock error (the program path has dots in it)."""
    match = re.search(r"Conflicting lock is held in (.+?\(PID \d+\))", message)
    return match.group(1) if match else "unknown process"


class Store:
    """The state database of one trading repo (`state/minitrade.duckdb`)."""

    def __init__(self, path: str | Path, *, lock_timeout: float = LOCK_RETRY_SECONDS) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_since = 0.0
        self._opens = 0
        self._holding = False

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """Share one open of the file among the transactions inside (an open and close cost ~6 ms of CPU):
        opened at the first transaction, closed at the end or by `released()`. Meanwhile no other
        process can open the file, so nothing slow may run inside without `released()`."""
        if self._holding:
            yield
            return
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            self._close_held()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Inside `held_open`: let go of the file for slow work outside it (a network fetch, a broker
        call, a notification), so the CLI is not locked out; the next transaction opens it again."""
        self.let_go()
        yield

    def let_go(self) -> None:
        """Inside `held_open`: close the file now (the CLI gets its turn); the next transaction opens it again."""
        self._close_held()

    def held_token(self) -> int | None:
        """Which open of the held file this is (None when it is not held). What was read under one
        token is still what the file holds while the token stays the same: no other process can
        write to a file this one holds."""
        return self._opens if self._held is not None else None

    def give_turn(self, after: float) -> None:
        """Inside `held_open`: let go if the file has been held `after` seconds, so the CLI gets its turn
        while a long stream of work keeps the file otherwise."""
        if self._held is not None and time.monotonic() - self._held_since > after:
            self._close_held()

    def _close_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            _attached.close(self.path, held)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, yield a connection inside BEGIN, COMMIT on success, always close (unless held)."""
        if self._holding and self._held is None:
            self._held = self._connect()
            self._held_since, self._opens = time.monotonic(), self._opens + 1
            self._migrate(self._held)
        held = self._held
        con = held if held is not None else self._connect()
        try:
            if held is None:  # a held connection was migrated when it was opened
                self._migrate(con)
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException as e:
                with suppress(duckdb.Error):  # a dead connection committed nothing; the first error matters
                    con.execute("ROLLBACK")
                if isinstance(e, duckdb.Error):  # the one place duckdb's errors become ours
                    raise StoreError(f"{self.path}: {e}") from e
                raise
            try:
                con.execute("COMMIT")
            except duckdb.Error as e:
                raise StoreError(f"{self.path}: commit failed: {e}") from e
        finally:
            if held is None:
                _attached.close(self.path, con)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                return _attached.open(self.path)
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise StoreError(f"{self.path}: cannot open the state database: {e}") from e
                if time.monotonic() >= deadline:
                    holder = _lock_holder(str(e))
                    raise StoreLocked(f"{self.path} is in use by another process ({holder}); "
                                      "retry when it finishes, or stop it") from e
                if delay == 0.02:  # once per open: the first conflict, not every 20-250 ms retry
                    log.info("%s is in use by %s; retrying for up to %g s", self.path, _lock_holder(str(e)), self.lock_timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
            except duckdb.Error as e:
                raise StoreError(f"{self.path}: cannot open the state database: {e}") from e

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        key = str(self.path.resolve())
        if key in _migrated and self._at_latest(con):
            return  # a deleted or replaced file (`rm -r state` under a daemon) is migrated again
        with _migrate_lock:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version "
                        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())")
            row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            latest = max(v for v, _ in MIGRATIONS)
            if current > latest:
                raise StoreError(f"{self.path} has schema version {current}, newer than this minitrade "
                                 f"({latest}); upgrade minitrade")
            for version, sql in MIGRATIONS:
                if version <= current:
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
                    con.execute("COMMIT")
                except duckdb.Error as e:
                    con.execute("ROLLBACK")
                    raise StoreError(f"{self.path}: migration {version} failed: {e}") from e
            _migrated.add(key)

    @staticmethod
    def _at_latest(con: duckdb.DuckDBPyConnection) -> bool:
        try:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        except duckdb.CatalogException:
            return False
        return row is not None and row[0] == max(v for v, _ in MIGRATIONS)

    def schema_version(self) -> int:
        with self.transaction() as con:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
            return int(row[0]) if row and row[0] is not None else 0
