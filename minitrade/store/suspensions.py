"""SQL of plan suspensions (`plan_overrides`): suspend, resume, clear, and which plans are suspended.

Rows are only appended, so every suspend and resume stays on record with who, when and why. A plan
is suspended while its latest row says `suspend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from minitrade.errors import StoreError

SUSPEND, RESUME, CLEARED = "suspend", "resume", "cleared"
_COLUMNS = "plan, action, acted_at, actor, reason"


@dataclass(frozen=True)
class Override:
    """One row of `plan_overrides`: a plan suspended, resumed, or its suspension cleared."""

    plan: str
    action: str
    at: datetime
    by: str
    reason: str | None


def _row(row: tuple[Any, ...]) -> Override:
    plan, action, at, by, reason = row
    return Override(plan, action, at.astimezone(UTC), by, reason)


def suspended(con: duckdb.DuckDBPyConnection) -> dict[str, Override]:
    """The plans suspended now, each with the `suspend` row that did it."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM plan_overrides "
                       "QUALIFY row_number() OVER (PARTITION BY plan ORDER BY id DESC) = 1").fetchall()
    return {o.plan: o for o in map(_row, rows) if o.action == SUSPEND}


def record(con: duckdb.DuckDBPyConnection, plan: str, action: str, *, at: datetime, by: str,
           reason: str | None = None) -> Override:
    """Append one override row (the caller decided it is due: see minitrade/runner/suspension.py)."""
    if action not in (SUSPEND, RESUME, CLEARED):
        raise StoreError(f"unknown override action {action!r}")
    con.execute(f"INSERT INTO plan_overrides ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                [plan, action, at, by, reason])
    return Override(plan, action, at.astimezone(UTC), by, reason)


def history(con: duckdb.DuckDBPyConnection, plan: str | None = None) -> list[Override]:
    """Every override, oldest first, optionally of one plan."""
    rows = con.execute(f"SELECT {_COLUMNS} FROM plan_overrides WHERE (? IS NULL OR plan = ?) ORDER BY id",
                       [plan, plan]).fetchall()
    return [_row(r) for r in rows]
