"""Runs of plans (backtests, dry runs, scheduled runs) and their results: equity, trades, fills.

A run row is written RUNNING before the work and FINISHED/FAILED after, so a crash leaves a trace.
Results are bulk-inserted from DataFrames (never row by row): a ten-year equity curve is one insert,
and a run that replays its plan's previous run's past stores only what follows it (`write_results`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from minitrade.store.frames import insert_frame, insert_rows, update_rows

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
    start_runs(con, [RunStart(run_id, plan, kind, started_at or datetime.now(UTC), commit_sha, plan_digest, tick_at)])


@dataclass(frozen=True)
class RunStart:
    """A run as recorded RUNNING before any work is done."""

    run_id: str
    plan: str
    kind: str
    started_at: datetime
    commit_sha: str | None = None
    plan_digest: str | None = None
    tick_at: datetime | None = None


def start_runs(con: duckdb.DuckDBPyConnection, starts: Sequence[RunStart]) -> None:
    """Record runs as RUNNING, in one statement (a daemon pass starts its due runs together)."""
    insert_rows(con, "runs", ["run_id", "plan", "kind", "tick_at", "started_at", "status", "commit_sha", "plan_digest"],
                [[s.run_id, s.plan, s.kind, s.tick_at, s.started_at, "RUNNING", s.commit_sha, s.plan_digest]
                 for s in starts])


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: FAILED when `error` is given, else FINISHED with its statistics."""

    run_id: str
    finished_at: datetime
    error: str | None = None
    stats: dict[str, Any] | None = None
    start_date: date | None = None
    end_date: date | None = None
    data_digest: str | None = None
    notes: tuple[str, ...] = ()


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, *, error: str | None = None,
               stats: dict[str, Any] | None = None, start_date: date | None = None,
               end_date: date | None = None, data_digest: str | None = None,
               finished_at: datetime | None = None, notes: list[str] | None = None) -> None:
    """Mark a run FINISHED (or FAILED when `error` is given) with its statistics and notes."""
    finish_runs(con, [RunEnd(run_id, finished_at or datetime.now(UTC), error, stats, start_date, end_date,
                             data_digest, tuple(notes or ()))])


_END_KEYS = [("run_id", "VARCHAR")]
_END_VALUES = [("status", "VARCHAR"), ("error", "VARCHAR"), ("finished_at", "TIMESTAMPTZ"), ("stats", "JSON"),
               ("start_date", "DATE"), ("end_date", "DATE"), ("data_digest", "VARCHAR"), ("notes", "VARCHAR")]


def finish_runs(con: duckdb.DuckDBPyConnection, ends: Sequence[RunEnd]) -> None:
    """Mark runs FINISHED or FAILED, in one statement (a batch of the daemon's runs ends together)."""
    if not ends:
        return
    rows = [[e.run_id, "FAILED" if e.error else "FINISHED", e.error, e.finished_at,
             None if e.stats is None else json.dumps(_jsonable(e.stats), sort_keys=True),
             e.start_date, e.end_date, e.data_digest, "\n".join(e.notes) if e.notes else None] for e in ends]
    sets = [f"{name} = v.{name}" for name, _ in _END_VALUES if name != "data_digest"]
    update_rows(con, "runs", _END_KEYS, _END_VALUES, rows,
                set_sql=[*sets, "data_digest = coalesce(v.data_digest, runs.data_digest)"])


def record_output(con: duckdb.DuckDBPyConnection, run_id: str, output: str, total: int) -> None:
    """What the run's strategy printed (already cut to its first and last part) and how much in all."""
    con.execute("UPDATE runs SET output = ?, output_bytes = ? WHERE run_id = ?", [output, total, run_id])


def read_output(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[str | None, int]:
    row = con.execute("SELECT output, coalesce(output_bytes, 0) FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return (row[0], int(row[1])) if row else (None, 0)


def write_results(con: duckdb.DuckDBPyConnection, run_id: str, *, equity: pd.DataFrame,
                  positions: pd.DataFrame | None = None, trades: pd.DataFrame | None = None,
                  fills: pd.DataFrame | None = None, plan: str | None = None) -> None:
    """Store one run's results (see `write_many`); its plan is looked up when not given."""
    if plan is None:
        plan_rows = con.execute("SELECT plan FROM runs WHERE run_id = ?", [run_id]).fetchall()
        plan = str(plan_rows[0][0]) if plan_rows else run_id
    write_many(con, [Results(run_id, plan, equity, positions, trades, fills)])


@dataclass(frozen=True)
class Results:
    """A run's daily equity/cash (+ positions), closed trades and simulated fills.

    `equity` is indexed by date with columns equity, cash; `positions` has one column per ticker;
    `trades` has ticker, size, entry_date, exit_date, entry_price, exit_price, pnl, return_pct;
    `fills` has date, ticker, size, price, commission.
    """

    run_id: str
    plan: str
    equity: pd.DataFrame
    positions: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    fills: pd.DataFrame | None = None


EQUITY_COLUMNS = ["run_id", "date", "equity", "cash", "positions"]
RESULT_COLUMNS = ["run_id", "plan", "base_run", "equity_from", "trades_from", "fills_from", "depth", "last_date",
                  "trades_before", "fills_before", "digest"]


def write_many(con: duckdb.DuckDBPyConnection, results: Sequence[Results]) -> None:
    """Store runs' results (equity as JSON positions, trades, fills): one statement per table for
    them all, as a daemon pass commits its runs together. One run per plan: each continues its plan's head.

    A strict plan replays the same past every tick, so when a run's results before the plan's
    previous run's last date are that run's exactly (checked by digest), only the rest is written,
    continuing that run (`run_results`); the read_* functions join the chain back together. The
    cost of a tick then follows what changed, not the length of the history.
    """
    plans = [r.plan for r in results]
    if len(set(plans)) != len(plans):
        raise ValueError(f"write_many takes one run per plan, got {sorted(plans)}")
    heads = _heads(con, plans)
    equity, trades, fills, links = [], [], [], []
    for r in results:
        rows = _result_rows(r, heads.get(r.plan))
        equity.append(rows.equity)
        trades.append(rows.trades)
        fills.append(rows.fills)
        links.append(rows.link)
    insert_frame(con, "equity", _joined(equity), EQUITY_COLUMNS)
    insert_frame(con, "backtest_trades", _joined(trades), ["run_id", "seq", *TRADE_COLUMNS])
    insert_frame(con, "backtest_fills", _joined(fills), ["run_id", "seq", *FILL_COLUMNS])
    insert_rows(con, "run_results", RESULT_COLUMNS, links)
    # an UPDATE of the plans' heads, and an INSERT for a plan's first results (a third of INSERT OR REPLACE)
    moved = [[r.plan, r.run_id] for r in results if r.plan in heads]
    update_rows(con, "result_heads", [("plan", "VARCHAR")], [("run_id", "VARCHAR")], moved)
    insert_rows(con, "result_heads", ["plan", "run_id"], [[r.plan, r.run_id] for r in results if r.plan not in heads])


@dataclass(frozen=True)
class _Rows:
    """One run's rows to insert: its own equity, trades and fills, and its `run_results` row."""

    equity: pd.DataFrame
    trades: pd.DataFrame
    fills: pd.DataFrame
    link: list[Any]


class _Book:
    """A run's results as arrays, for the digests and row selection (pandas per-row work cost ~6 ms a run)."""

    def __init__(self, r: Results) -> None:
        self.dates = np.array(pd.DatetimeIndex(r.equity.index).date, dtype="datetime64[D]")
        self.values = np.column_stack([r.equity["equity"].to_numpy(float), r.equity["cash"].to_numpy(float)])
        held = r.positions if r.positions is not None and not r.positions.empty else None
        self.held_columns = None if held is None else [str(c) for c in held.columns]
        self.held = None if held is None else held.to_numpy(float)
        self.trades = _dated(r.trades, ["entry_date", "exit_date"])
        self.fills = _dated(r.fills, ["date"])
        self.trade_columns = _columns(self.trades, TRADE_COLUMNS)
        self.fill_columns = _columns(self.fills, FILL_COLUMNS)

    @property
    def last(self) -> date | None:
        return self.dates[-1].astype(object) if len(self.dates) else None

    def leading(self, last: date | None) -> tuple[int, int]:
        """How many leading trades (by exit date) and fills are dated before `last`."""
        return _leading(self.trades, "exit_date", last), _leading(self.fills, "date", last)


def _columns(rows: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray | list[str]]:
    """The digest's view of each column: numbers as float64, anything else as its text (NaT for a missing date)."""
    if not len(rows):
        return {}
    return {name: rows[name].to_numpy("float64") if pd.api.types.is_numeric_dtype(rows[name].dtype)
            else [str(v) for v in rows[name].tolist()] for name in names}


def _result_rows(r: Results, head: tuple[Any, ...] | None) -> _Rows:
    book = _Book(r)
    link = _continue(head, book)
    own = book.dates >= np.datetime64(link.equity_from, "D") if link.equity_from is not None \
        else np.ones(len(book.dates), bool)
    rows = pd.DataFrame({"run_id": r.run_id, "date": book.dates[own].astype(object),
                         "equity": book.values[own, 0], "cash": book.values[own, 1]})
    rows["positions"] = (None if book.held is None or book.held_columns is None else
                         [json.dumps({t: float(v) for t, v in zip(book.held_columns, row, strict=True) if v})
                          for row in book.held[own]])
    last = book.last
    trades_before, fills_before = book.leading(last)
    return _Rows(rows, book.trades.iloc[link.trades_from:].assign(run_id=r.run_id),
                 book.fills.iloc[link.fills_from:].assign(run_id=r.run_id),
                 [r.run_id, r.plan, link.base_run, link.equity_from, link.trades_from, link.fills_from, link.depth,
                  last, trades_before, fills_before, _digest(book, last, trades_before, fills_before)])


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    kept = [f for f in frames if len(f)]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def _heads(con: duckdb.DuckDBPyConnection, plans: Sequence[str]) -> dict[str, tuple[Any, ...] | None]:
    """Each plan's latest results (run, last date, leading trades and fills, digest, depth); None for a
    head whose run has no `run_results` row."""
    if not plans:
        return {}
    rows = con.execute("SELECT h.plan, r.run_id, r.last_date, r.trades_before, r.fills_before, r.digest, r.depth "
                       "FROM result_heads h LEFT JOIN run_results r ON r.run_id = h.run_id "
                       "WHERE list_contains(?, h.plan)", [list(plans)]).fetchall()
    # fetchall: a join's half-read result would block the next statement
    return {str(row[0]): (None if row[1] is None else tuple(row[1:])) for row in rows}


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


def _continue(head: tuple[Any, ...] | None, book: _Book) -> _Link:
    """Continue the plan's latest results (`head`) if this run's leading rows are theirs exactly."""
    if head is None or head[1] is None or head[5] + 1 >= MAX_CHAIN:
        return _Link()
    base, last, trades_before, fills_before, digest, depth = head
    if (len(book.trades) < trades_before or len(book.fills) < fills_before or not len(book.dates)
            or book.dates[-1] < np.datetime64(last, "D")
            or _digest(book, last, trades_before, fills_before) != digest):
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


def _digest(book: _Book, last: date | None, trades_before: int, fills_before: int) -> str:
    """sha256 of the equity, cash and positions dated before `last` and the leading trades and fills."""
    digest = hashlib.sha256()
    before = book.dates < np.datetime64(last, "D") if last is not None else np.zeros(len(book.dates), bool)
    # seconds since the epoch: what the digests recorded so far hold (pandas 3 reads dates as seconds)
    digest.update(book.dates[before].astype("datetime64[s]").view(np.int64).tobytes())
    digest.update(book.values[before].tobytes())
    if book.held is not None and book.held_columns is not None:
        digest.update("\0".join(book.held_columns).encode())
        digest.update(book.held[before].tobytes())
    for columns, count, names in ((book.trade_columns, trades_before, TRADE_COLUMNS),
                                  (book.fill_columns, fills_before, FILL_COLUMNS)):
        digest.update(b"|%d|" % count)
        for name in names if count else ():
            values = columns[name]
            if isinstance(values, np.ndarray):
                digest.update(values[:count].tobytes())
            else:  # tickers and dates: their text (NaT for a missing date)
                digest.update("\x1f".join(values[:count]).encode())
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
