"""Runs of plans (backtests, dry runs, scheduled runs) and their results: equity, trades, fills.

A run row is written RUNNING before the work and FINISHED/FAILED after, so a crash leaves a trace.
Results are bulk-inserted from DataFrames (never row by row): a ten-year equity curve is one insert,
and a run that replays its plan's previous run's past stores only what follows it (`write_results`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from minitrade.store.frames import insert_frame

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
                  fills: pd.DataFrame | None = None, plan: str | None = None) -> None:
    """Store a run's daily equity/cash (+ positions as JSON), closed trades and simulated fills.

    `equity` is indexed by date with columns equity, cash; `positions` has one column per ticker;
    `trades` has ticker, size, entry_date, exit_date, entry_price, exit_price, pnl, return_pct;
    `fills` has date, ticker, size, price, commission.

    A strict plan replays the same past every tick, so when this run's results before the plan's
    previous run's last date are that run's exactly (checked by digest), only the rest is written,
    continuing that run (`run_results`); the read_* functions join the chain back together. The
    cost of a tick then follows what changed, not the length of the history.
    """
    frame = pd.DataFrame({"date": pd.DatetimeIndex(equity.index).date,
                          "equity": equity["equity"].to_numpy(float), "cash": equity["cash"].to_numpy(float)})
    held = positions if positions is not None and not positions.empty else None
    trade_rows = _dated(trades, ["entry_date", "exit_date"])
    fill_rows = _dated(fills, ["date"])
    if plan is None:  # the run's own row says (a caller that knows passes it: one query less a tick)
        plan_rows = con.execute("SELECT plan FROM runs WHERE run_id = ?", [run_id]).fetchall()
        plan = str(plan_rows[0][0]) if plan_rows else run_id
    link = _continue(con, plan, frame, held, trade_rows, fill_rows)
    own = frame["date"] >= link.equity_from if link.equity_from is not None else frame["date"] == frame["date"]
    rows = frame[own].assign(run_id=run_id)
    rows["positions"] = (None if held is None else
                         [json.dumps({t: float(v) for t, v in row.items() if v})
                          for row in held[own.to_numpy()].to_dict("records")])
    insert_frame(con, "equity", rows, ["run_id", "date", "equity", "cash", "positions"])
    if len(trade_rows) > link.trades_from:
        insert_frame(con, "backtest_trades", trade_rows.iloc[link.trades_from:].assign(run_id=run_id),
                     ["run_id", "seq", "ticker", "size", "entry_date", "exit_date", "entry_price", "exit_price",
                      "pnl", "return_pct"])
    if len(fill_rows) > link.fills_from:
        insert_frame(con, "backtest_fills", fill_rows.iloc[link.fills_from:].assign(run_id=run_id),
                     ["run_id", "seq", "date", "ticker", "size", "price", "commission"])
    last = frame["date"].iloc[-1] if len(frame) else None
    trades_before = _leading(trade_rows, "exit_date", last)
    fills_before = _leading(fill_rows, "date", last)
    con.execute("INSERT INTO run_results (run_id, plan, base_run, equity_from, trades_from, fills_from, depth, "
                "last_date, trades_before, fills_before, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, plan, link.base_run, link.equity_from, link.trades_from, link.fills_from, link.depth,
                 last, trades_before, fills_before,
                 _digest(frame, held, trade_rows, fill_rows, last, trades_before, fills_before)])
    # an UPDATE, and an INSERT for a plan's first results: a third of DuckDB's INSERT OR REPLACE
    if con.execute("UPDATE result_heads SET run_id = ? WHERE plan = ? RETURNING plan", [run_id, plan]).fetchone() is None:
        con.execute("INSERT INTO result_heads (plan, run_id) VALUES (?, ?)", [plan, run_id])


# A full write every so many runs keeps the chain a report reads short (amortised: one in 200 ticks).
MAX_CHAIN = 200
TRADE_COLUMNS = ["ticker", "size", "entry_date", "exit_date", "entry_price", "exit_price", "pnl", "return_pct"]
FILL_COLUMNS = ["date", "ticker", "size", "price", "commission"]


@dataclass(frozen=True)
class _Link:
    """Where a run's own rows start, and the run that holds the rows before that."""

    base_run: str | None = None
    equity_from: date | None = None
    trades_from: int = 0
    fills_from: int = 0
    depth: int = 0


def _continue(con: duckdb.DuckDBPyConnection, plan: str, frame: pd.DataFrame, held: pd.DataFrame | None,
              trades: pd.DataFrame, fills: pd.DataFrame) -> _Link:
    """Continue the plan's latest results if this run's leading rows are theirs exactly."""
    heads = con.execute("SELECT r.run_id, r.last_date, r.trades_before, r.fills_before, r.digest, r.depth "
                        "FROM result_heads h JOIN run_results r ON r.run_id = h.run_id WHERE h.plan = ?",
                        [plan]).fetchall()  # fetchall: a join's half-read result would block the next statement
    if not heads or heads[0][1] is None or heads[0][5] + 1 >= MAX_CHAIN:
        return _Link()
    base, last, trades_before, fills_before, digest, depth = heads[0]
    if (len(trades) < trades_before or len(fills) < fills_before or not len(frame)
            or frame["date"].iloc[-1] < last
            or _digest(frame, held, trades, fills, last, trades_before, fills_before) != digest):
        return _Link()
    return _Link(str(base), last, int(trades_before), int(fills_before), int(depth) + 1)


def _dated(frame: pd.DataFrame | None, dates: list[str]) -> pd.DataFrame:
    """A trades/fills frame numbered by `seq`, its date columns as dates (an empty one if None)."""
    if frame is None or frame.empty:
        return pd.DataFrame({"seq": pd.Series(dtype="int64")})
    rows = frame.reset_index(drop=True).assign(seq=range(len(frame)))
    for col in dates:
        rows[col] = pd.to_datetime(rows[col]).dt.date
    return rows


def _leading(rows: pd.DataFrame, column: str, last: date | None) -> int:
    """How many leading rows are dated before `last` (a missing date ends the run of them)."""
    if last is None or not len(rows):
        return 0
    before = (pd.to_datetime(rows[column]) < pd.Timestamp(last)).to_numpy(bool)  # NaT compares False
    return int(before.argmin()) if not before.all() else len(rows)


def _digest(frame: pd.DataFrame, held: pd.DataFrame | None, trades: pd.DataFrame, fills: pd.DataFrame,
            last: date | None, trades_before: int, fills_before: int) -> str:
    """sha256 of the equity, cash and positions dated before `last` and the leading trades and fills."""
    digest = hashlib.sha256()
    before = (frame["date"] < last).to_numpy(bool) if last is not None else np.zeros(len(frame), bool)
    digest.update(pd.DatetimeIndex(frame["date"][before]).asi8.tobytes())
    digest.update(frame[["equity", "cash"]][before].to_numpy(float).tobytes())
    if held is not None:
        digest.update("\0".join(map(str, held.columns)).encode())
        digest.update(held[before].to_numpy(float).tobytes())
    for rows, count, columns in ((trades, trades_before, TRADE_COLUMNS), (fills, fills_before, FILL_COLUMNS)):
        digest.update(b"|%d|" % count)
        for column in columns if count else ():
            values = rows[column].iloc[:count]
            if pd.api.types.is_numeric_dtype(values.dtype):
                digest.update(values.to_numpy("float64").tobytes())
            else:  # tickers and dates: their text (NaT for a missing date)
                digest.update("\x1f".join(map(str, values.tolist())).encode())
    return digest.hexdigest()


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
    frame = con.execute(*chained("equity", "date, equity, cash, positions", run_id)).df()
    return frame.set_index(pd.DatetimeIndex(frame["date"], name="date")).drop(columns=["date"])


def read_trades(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    return con.execute(*chained("backtest_trades", ", ".join(TRADE_COLUMNS), run_id)).df()


def read_fills(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    return con.execute(*chained("backtest_fills", ", ".join(FILL_COLUMNS), run_id)).df()


_KEYS = {"equity": ("date", "equity_from"), "backtest_trades": ("seq", "trades_from"),
         "backtest_fills": ("seq", "fills_from")}


def chained(table: str, columns: str, run_id: str) -> tuple[str, list[Any]]:
    """SQL and arguments reading a run's whole `table` rows, in order, through its chain of base runs.

    Each run in the chain gives its rows from its own bound up to the lowest bound of the runs after it
    (see schema V6); a run without a `run_results` row gives all of its rows.
    """
    key, bound = _KEYS[table]
    columns = ", ".join(f"t.{c.strip()}" for c in columns.split(","))
    sql = f"""
        WITH RECURSIVE chain(run_id, base_run, lo, depth) AS (
            SELECT CAST(? AS VARCHAR), r.base_run, r.{bound}, 0
            FROM (SELECT 1) AS one LEFT JOIN run_results r ON r.run_id = ?
            UNION ALL
            SELECT r.run_id, r.base_run, r.{bound}, c.depth + 1
            FROM chain c JOIN run_results r ON r.run_id = c.base_run),
        bounds AS (SELECT run_id, lo, min(lo) OVER (ORDER BY depth ROWS BETWEEN UNBOUNDED PRECEDING
                                                    AND 1 PRECEDING) AS hi FROM chain)
        SELECT {columns} FROM {table} t JOIN bounds b ON t.run_id = b.run_id
        WHERE (b.lo IS NULL OR t.{key} >= b.lo) AND (b.hi IS NULL OR t.{key} < b.hi)
        ORDER BY t.{key}"""
    return sql, [run_id, run_id]


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
