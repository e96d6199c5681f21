"""Applied desired state and the history of attempts to apply commits.

An attempt's outcome is applied, unchanged or rejected; the daemon first records a commit it is
about to load as `loading` and closes that row when the load ends, so a row still `loading` is a
load that never finished (the process crashed or was killed in it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    from minitrade.store.db import Store


@dataclass(frozen=True)
class AppliedResource:
    kind: str
    name: str
    digest: str
    spec: dict[str, Any]
    commit_sha: str | None
    applied_at: datetime


@dataclass(frozen=True)
class Reconciliation:
    id: int
    commit_sha: str | None
    dirty: bool
    author_time: datetime | None
    message: str | None
    attempted_at: datetime
    outcome: str
    error: str | None
    source: str


def applied_resources(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], AppliedResource]:
    rows = con.execute("SELECT kind, name, digest, spec, commit_sha, applied_at FROM applied_resources").fetchall()
    return {(r[0], r[1]): AppliedResource(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows}


def applied_times(con: duckdb.DuckDBPyConnection, kind: str) -> dict[str, datetime]:
    """name -> when each applied resource of `kind` last changed (no spec parsing: every daemon pass asks)."""
    rows = con.execute("SELECT name, applied_at FROM applied_resources WHERE kind = ?", [kind]).fetchall()
    return {r[0]: r[1] for r in rows}


def replace_applied(con: duckdb.DuckDBPyConnection, resources: dict[tuple[str, str], tuple[str, dict[str, Any]]],
                    commit_sha: str | None) -> None:
    """Make the applied state exactly `resources` ((kind, name) -> (digest, spec)); unchanged rows keep
    their original commit and time, so each row says when that resource last changed."""
    now = datetime.now(UTC)
    current = applied_resources(con)
    for key in set(current) - set(resources):
        con.execute("DELETE FROM applied_resources WHERE kind = ? AND name = ?", list(key))
    for (kind, name), (digest, spec) in resources.items():
        old = current.get((kind, name))
        if old is not None and old.digest == digest:
            continue
        con.execute("INSERT OR REPLACE INTO applied_resources VALUES (?, ?, ?, ?, ?, ?)",
                    [kind, name, digest, json.dumps(spec, sort_keys=True), commit_sha, now])


def record_reconciliation(con: duckdb.DuckDBPyConnection, *, commit_sha: str | None, dirty: bool,
                          author_time: datetime | None, message: str | None, outcome: str,
                          error: str | None, source: str) -> int:
    row = con.execute(
        "INSERT INTO reconciliations VALUES (nextval('reconciliation_ids'), ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [commit_sha, dirty, author_time, message, datetime.now(UTC), outcome, error, source]).fetchone()
    assert row is not None
    return int(row[0])


LOADING = "loading"


def record_loading(con: duckdb.DuckDBPyConnection, *, commit_sha: str, author_time: datetime | None,
                   message: str | None, source: str) -> int:
    """Record that `commit_sha` is being loaded, before the load starts; returns the row's id."""
    return record_reconciliation(con, commit_sha=commit_sha, dirty=False, author_time=author_time,
                                 message=message, outcome=LOADING, error=None, source=source)


def finish_loading(con: duckdb.DuckDBPyConnection, attempt_id: int, *, error: str | None) -> None:
    """Close a `loading` row: gone when the load succeeded (apply records the outcome), else rejected."""
    if error is None:
        con.execute("DELETE FROM reconciliations WHERE id = ? AND outcome = ?", [attempt_id, LOADING])
    else:
        con.execute("UPDATE reconciliations SET outcome = 'rejected', error = ? WHERE id = ?", [error, attempt_id])


def _reconciliation(row: tuple[Any, ...]) -> Reconciliation:
    return Reconciliation(*row)


_COLUMNS = "id, commit_sha, dirty, author_time, message, attempted_at, outcome, error, source"


def last_attempt(con: duckdb.DuckDBPyConnection) -> Reconciliation | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM reconciliations ORDER BY id DESC LIMIT 1").fetchone()
    return _reconciliation(row) if row else None


def last_applied(con: duckdb.DuckDBPyConnection) -> Reconciliation | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM reconciliations WHERE outcome IN ('applied', 'unchanged') "
                      "ORDER BY id DESC LIMIT 1").fetchone()
    return _reconciliation(row) if row else None


class AppliedState:
    """The applied plans, broker specs and timezone as recorded in DuckDB: what trades, read without
    the repo (the CLI beside a daemon, the Telegram bot)."""

    def __init__(self, store: Store) -> None:
        from zoneinfo import ZoneInfo

        from minitrade.models import Plan

        with store.transaction() as con:
            resources = applied_resources(con)
        self.plans: dict[str, Plan] = {n: Plan.model_validate(r.spec) for (k, n), r in sorted(resources.items())
                                       if k == "plan"}
        self.brokers = {n: r.spec for (k, n), r in resources.items() if k == "broker"}
        settings = resources.get(("settings", "minitrade"))
        self.zone: ZoneInfo = ZoneInfo(str(settings.spec.get("timezone") or "UTC") if settings else "UTC")

