"""Runs of plans (backtests, dry runs, scheduled runs) and their results: equity, trades, fills.

A run row is written RUNNING before the work and FINISHED/FAILED after, so a crash leaves a trace.
Results are bulk-inserted from DataFrames (never row by row): a ten-year equity curve is one insert.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pandas as pd

RUN_COLUMNS = ("run_id, plan, kind, tick_at, started_at, finished_at, status, error, commit_sha, plan_digest, "
               "data_digest, start_date, end_date, stats, notes")


@dataclass(frozen=True)
class RunRow:
    run_id: str
    plan: str
    kind: str
    tick_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    error: str | None
    commit_sha: str | None
    plan_digest: str | None
    data_digest: str | None
    start_date: date | None
    end_date: date | None
    stats: dict[str, Any] | None
    notes: str | None = None


def start_run(con: duckdb.DuckDBPyConnection, *, run_id: str, plan: str, kind: str,
              commit_sha: str | None = None, plan_digest: str | None = None,
              tick_at: datetime | None = None, started_at: datetime | None = None) -> None:
    """Record a run as RUNNING before any work is done."""
    con.execute("INSERT INTO runs (run_id, plan, kind, tick_at, started_at, status, commit_sha, plan_digest) "
                "VALUES (?, ?, ?, ?, ?, 'RUNNING', ?, ?)",
                [run_id, plan, kind, tick_at, started_at or datetime.now(UTC), commit_sha, plan_digest])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, *, error: str | None = None,
               stats: dict[str, Any] | None = None, start_date: date | None = None,
               end_date: date | None = None, data_digest: str | None = None,
               finished_at: datetime | None = None, notes: list[str] | None = None) -> None:
    """Mark a run FINISHED (or FAILED when `error` is given) with its statistics and notes."""
    con.execute("UPDATE runs SET status = ?, error = ?, finished_at = ?, stats = ?, start_date = ?, "
                "end_date = ?, data_digest = coalesce(?, data_digest), notes = ? WHERE run_id = ?",
                ["FAILED" if error else "FINISHED", error, finished_at or datetime.now(UTC),
                 None if stats is None else json.dumps(_jsonable(stats), sort_keys=True),
                 start_date, end_date, data_digest, "\n".join(notes) if notes else None, run_id])


def record_output(con: duckdb.DuckDBPyConnection, run_id: str, output: str, total: int) -> None:
    """What the run's strategy printed (already cut to its first and last part) and how much in all."""
    con.execute("UPDATE runs SET output = ?, output_bytes = ? WHERE run_id = ?", [output, total, run_id])


def read_output(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[str | None, int]:
    row = con.execute("SELECT output, coalesce(output_bytes, 0) FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return (row[0], int(row[1])) if row else (None, 0)


def write_results(con: duckdb.DuckDBPyConnection, run_id: str, *, equity: pd.DataFrame,
                  positions: pd.DataFrame | None = None, trades: pd.DataFrame | None = None,
                  fills: pd.DataFrame | None = None) -> None:
    """Store a run's daily equity/cash (+ positions as JSON), closed trades and simulated fills.

    `equity` is indexed by date with columns equity, cash; `positions` has one column per ticker;
    `trades` has ticker, size, entry_date, exit_date, entry_price, exit_price, pnl, return_pct;
    `fills` has date, ticker, size, price, commission.
    """
    frame = pd.DataFrame({"run_id": run_id, "date": pd.DatetimeIndex(equity.index).date,
                          "equity": equity["equity"].to_numpy(float), "cash": equity["cash"].to_numpy(float)})
    if positions is not None and not positions.empty:
        frame["positions"] = [json.dumps({t: float(v) for t, v in row.items() if v})
                              for row in positions.to_dict("records")]
    else:
        frame["positions"] = None
    _insert(con, "equity", frame, ["run_id", "date", "equity", "cash", "positions"])
    if trades is not None and not trades.empty:
        rows = trades.reset_index(drop=True).assign(run_id=run_id, seq=range(len(trades)))
        for col in ("entry_date", "exit_date"):
            rows[col] = pd.to_datetime(rows[col]).dt.date
        _insert(con, "backtest_trades", rows, ["run_id", "seq", "ticker", "size", "entry_date", "exit_date",
                                               "entry_price", "exit_price", "pnl", "return_pct"])
    if fills is not None and not fills.empty:
        rows = fills.reset_index(drop=True).assign(run_id=run_id, seq=range(len(fills)))
        rows["date"] = pd.to_datetime(rows["date"]).dt.date
        _insert(con, "backtest_fills", rows, ["run_id", "seq", "date", "ticker", "size", "price", "commission"])


def count_runs(con: duckdb.DuckDBPyConnection, *, plan: str, tick_at: datetime) -> int:
    """How many runs a plan's tick had (an interrupted run leaves its row)."""
    row = con.execute("SELECT count(*) FROM runs WHERE plan = ? AND tick_at = ?", [plan, tick_at]).fetchone()
    return int(row[0]) if row else 0


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRow | None:
    row = con.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return _run(row) if row else None


def list_runs(con: duckdb.DuckDBPyConnection, *, plan: str | None = None, kind: str | None = None,
              limit: int = 100) -> list[RunRow]:
    """Newest first."""
    rows = con.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE (? IS NULL OR plan = ?) AND (? IS NULL OR kind = ?) "
                       "ORDER BY started_at DESC LIMIT ?", [plan, plan, kind, kind, limit]).fetchall()
    return [_run(r) for r in rows]


def read_equity(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    frame = con.execute("SELECT date, equity, cash, positions FROM equity WHERE run_id = ? ORDER BY date",
                        [run_id]).df()
    return frame.set_index(pd.DatetimeIndex(frame["date"], name="date")).drop(columns=["date"])


def read_trades(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    return con.execute("SELECT ticker, size, entry_date, exit_date, entry_price, exit_price, pnl, return_pct "
                       "FROM backtest_trades WHERE run_id = ? ORDER BY seq", [run_id]).df()


def read_fills(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    return con.execute("SELECT date, ticker, size, price, commission FROM backtest_fills WHERE run_id = ? "
                       "ORDER BY seq", [run_id]).df()


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: list[str]) -> None:
    view = f"_minitrade_{table}"
    con.register(view, frame[columns])
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {view}")
    finally:
        con.unregister(view)


def _run(row: tuple[Any, ...]) -> RunRow:
    values = list(row)
    values[-2] = json.loads(values[-2]) if values[-2] else None
    return RunRow(*values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value
