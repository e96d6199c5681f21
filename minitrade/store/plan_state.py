"""A plan's strategy `storage` dict, kept between incremental runs (JSON, never pickle: no code runs on load)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from minitrade.errors import StrategyError
from minitrade.store.frames import insert_rows


def load_storage(con: duckdb.DuckDBPyConnection, plan: str) -> dict[str, Any]:
    row = con.execute("SELECT data FROM plan_storage WHERE plan = ?", [plan]).fetchone()
    return dict(json.loads(row[0])) if row else {}


def encode_storage(plan: str, storage: dict[str, Any]) -> str:
    """The storage as JSON; a value JSON cannot hold is the strategy's error (raised before anything is written)."""
    try:
        return json.dumps(storage, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise StrategyError(f"strategy storage must hold JSON values (numbers, strings, lists, dicts): {e}",
                            plan=plan) from e


def save_encoded(con: duckdb.DuckDBPyConnection, storages: dict[str, str]) -> None:
    """Replace plans' storage by the given JSON texts, in one statement."""
    at = datetime.now(UTC)
    insert_rows(con, "plan_storage", ["plan", "data", "updated_at"], [[p, text, at] for p, text in storages.items()],
                verb="INSERT OR REPLACE")
