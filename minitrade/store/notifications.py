"""Table `notifications`: one audit row per notification attempt, and the dedup lookup.

Rows hold the notifier's name, the event, the digest of the event's identity (`Message.key`) and the
title; never the Apprise URL or the body, so no secret or personal text lands in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb

from minitrade.errors import StoreError
from minitrade.store.db import Store


@dataclass(frozen=True)
class NotificationRow:
    """One attempt to notify, as recorded."""

    id: int
    notifier: str
    event: str
    digest: str
    title: str
    sent_at: datetime
    outcome: str          # sent | failed | suppressed
    error: str | None


def sent_since(store: Store, notifier: str, event: str, digest: str, since: datetime) -> bool:
    """Whether the event with this digest (event kind and key) went out through `notifier` since `since`."""
    with _guard(store) as con:
        row = con.execute(
            "SELECT count(*) FROM notifications WHERE notifier = ? AND event = ? AND digest = ? "
            "AND outcome = 'sent' AND sent_at >= ?",
            [notifier, event, digest, since],
        ).fetchone()
    return bool(row and row[0])


def record(store: Store, *, notifier: str, event: str, digest: str, title: str,
           sent_at: datetime, outcome: str, error: str | None = None) -> int:
    """Append one audit row; returns its id."""
    with _guard(store) as con:
        row = con.execute(
            "INSERT INTO notifications (id, notifier, event, digest, title, sent_at, outcome, error) "
            "VALUES (nextval('notification_ids'), ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [notifier, event, digest, title, sent_at, outcome, error],
        ).fetchone()
    assert row is not None
    return int(row[0])


def recent(store: Store, *, limit: int = 50,
           notifier: str | None = None) -> list[NotificationRow]:
    """The latest attempts, newest first, optionally for one notifier."""
    where, args = ("WHERE notifier = ?", [notifier]) if notifier else ("", [])
    with _guard(store) as con:
        rows = con.execute(
            f"SELECT id, notifier, event, digest, title, sent_at, outcome, error FROM notifications "
            f"{where} ORDER BY sent_at DESC, id DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
    return [NotificationRow(*r) for r in rows]


@contextmanager
def _guard(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction whose DuckDB errors surface as StoreError (callers never see duckdb)."""
    try:
        with store.transaction() as con:
            yield con
    except duckdb.Error as e:
        raise StoreError(f"{store.path}: notifications: {e}") from e
