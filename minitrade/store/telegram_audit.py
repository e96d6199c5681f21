"""SQL of the Telegram bot's audit (`telegram_audit`): what each chat asked and what came of it.

Rows are only appended. The bot writes one row per command it answers, per confirmation asked and
per outcome (done, declined, failed, expired), and one per message from a chat it does not obey.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from minitrade.errors import StoreError

OUTCOMES = ("answered", "asked", "done", "declined", "failed", "expired", "refused")
MAX_ARGS = 200
_COLUMNS = "acted_at, chat_id, user_name, command, args, outcome, detail"


@dataclass(frozen=True)
class AuditRow:
    """One thing the bot was told, and what came of it."""

    at: datetime
    chat_id: int
    user_name: str | None
    command: str
    args: str | None
    outcome: str
    detail: str | None


def record(con: duckdb.DuckDBPyConnection, row: AuditRow) -> None:
    """Append one row (arguments cut at 200 characters: a stranger's text is not worth more)."""
    if row.outcome not in OUTCOMES:
        raise StoreError(f"unknown telegram audit outcome {row.outcome!r}")
    args = row.args[:MAX_ARGS] if row.args is not None else None
    con.execute(f"INSERT INTO telegram_audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [row.at, row.chat_id, row.user_name, row.command, args, row.outcome, row.detail])


def _row(values: tuple[Any, ...]) -> AuditRow:
    at, chat_id, user, command, args, outcome, detail = values
    return AuditRow(at.astimezone(UTC), int(chat_id), user, command, args, outcome, detail)


def history(con: duckdb.DuckDBPyConnection, chat_id: int | None = None) -> list[AuditRow]:
    """Every row, oldest first, optionally of one chat."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM telegram_audit WHERE (? IS NULL OR chat_id = ?) ORDER BY id",
                       [chat_id, chat_id]).fetchall()
    return [_row(r) for r in rows]
