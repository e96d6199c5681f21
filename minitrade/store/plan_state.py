"""A plan's strategy `storage` dict, kept between incremental runs (JSON, never pickle: no code runs on load)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from minitrade.errors import StrategyError


def load_storage(con: duckdb.DuckDBPyConnection, plan: str) -> dict[str, Any]:
    row = con.execute("SELECT data FROM plan_storage WHERE plan = ?", [plan]).fetchone()
    return dict(json.loads(row[0])) if row else {}


def save_storage(con: duckdb.DuckDBPyConnection, plan: str, storage: dict[str, Any]) -> None:
    try:
        text = json.dumps(storage, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise StrategyError(f"strategy storage must hold JSON values (numbers, strings, lists, dicts): {e}",
                            plan=plan) from e
    con.execute("INSERT OR REPLACE INTO plan_storage VALUES (?, ?, ?)", [plan, text, datetime.now(UTC)])
