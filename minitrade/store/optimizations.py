"""SQL of `minitrade optimize`: one row per optimisation and one per trial (see schema.py, v10).

Only the coordinating process writes here; trials computed elsewhere (worker processes, Dask
workers) come back as plain results first. A trial id is written once: a second result for the
same trial (a lost Dask worker's task run again) is ignored, never counted twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from minitrade.store.frames import insert_rows

OPT_COLUMNS = ("optimization_id, plan, commit_sha, dirty, started_at, finished_at, status, method, metric, "
               "space, constraints, walk_forward, period_start, period_end, executor, best_params")
TRIAL_COLUMNS = ("optimization_id, trial_id, number, phase, window_no, window_start, window_end, params, "
                 "stats, score, error, seconds, worker, recorded_at")


@dataclass(frozen=True)
class OptimizationRow:
    """One optimisation as recorded."""

    optimization_id: str
    plan: str
    commit_sha: str | None
    dirty: bool
    started_at: datetime
    finished_at: datetime | None
    status: str
    method: str
    metric: str
    space: dict[str, list[Any]]
    constraints: list[str]
    walk_forward: str | None
    period_start: date | None
    period_end: date | None
    executor: str
    best_params: dict[str, Any] | None


@dataclass(frozen=True)
class TrialRow:
    """One trial of an optimisation: its parameters, statistics, score and where it ran."""

    optimization_id: str
    trial_id: str
    number: int
    phase: str
    window_no: int | None
    window_start: date | None
    window_end: date | None
    params: dict[str, Any]
    stats: dict[str, Any] | None
    score: float | None
    error: str | None
    seconds: float
    worker: str
    recorded_at: datetime | None = None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def start_optimization(con: duckdb.DuckDBPyConnection, row: OptimizationRow) -> None:
    """Record an optimisation RUNNING before its first trial."""
    con.execute(f"INSERT INTO optimizations ({OPT_COLUMNS}) VALUES ({', '.join('?' * 16)})",
                [row.optimization_id, row.plan, row.commit_sha, row.dirty, row.started_at, row.finished_at,
                 row.status, row.method, row.metric, _json(row.space), _json(row.constraints), row.walk_forward,
                 row.period_start, row.period_end, row.executor,
                 None if row.best_params is None else _json(row.best_params)])


def finish_optimization(con: duckdb.DuckDBPyConnection, optimization_id: str, *, status: str,
                        best_params: dict[str, Any] | None) -> None:
    """Mark an optimisation FINISHED, FAILED or INTERRUPTED with its best parameters."""
    con.execute("UPDATE optimizations SET status = ?, finished_at = ?, best_params = ? WHERE optimization_id = ?",
                [status, datetime.now(UTC), None if best_params is None else _json(best_params), optimization_id])


def record_trials(con: duckdb.DuckDBPyConnection, rows: list[TrialRow]) -> int:
    """Insert trials not recorded yet (a repeated trial id is ignored); how many were new."""
    if not rows:
        return 0
    before = _count(con, rows[0].optimization_id)
    now = datetime.now(UTC)
    # one statement for many rows (executemany ran one a row: ~2.6 ms each, a second per 200 trials)
    insert_rows(con, "optimization_trials", [c.strip() for c in TRIAL_COLUMNS.split(",")],
                [[r.optimization_id, r.trial_id, r.number, r.phase, r.window_no, r.window_start, r.window_end,
                  _json(r.params), None if r.stats is None else _json(r.stats), _finite(r.score), r.error, r.seconds,
                  r.worker, r.recorded_at or now] for r in _first_of_each(rows)],
                verb="INSERT OR IGNORE")
    return _count(con, rows[0].optimization_id) - before


def _first_of_each(rows: list[TrialRow]) -> list[TrialRow]:
    """The first row of each trial id (one statement cannot ignore a row that conflicts with itself)."""
    first: dict[str, TrialRow] = {}
    for row in rows:
        first.setdefault(row.trial_id, row)
    return list(first.values())


def _count(con: duckdb.DuckDBPyConnection, optimization_id: str) -> int:
    row = con.execute("SELECT count(*) FROM optimization_trials WHERE optimization_id = ?",
                      [optimization_id]).fetchone()
    return int(row[0]) if row else 0


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def optimization(con: duckdb.DuckDBPyConnection, optimization_id: str) -> OptimizationRow | None:
    """One optimisation by id, or None."""
    row = con.execute(f"SELECT {OPT_COLUMNS} FROM optimizations WHERE optimization_id = ?",
                      [optimization_id]).fetchone()
    return None if row is None else _optimization(row)


def recent(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[OptimizationRow]:
    """The newest optimisations, newest first."""
    rows = con.execute(f"SELECT {OPT_COLUMNS} FROM optimizations ORDER BY started_at DESC LIMIT ?", [limit]).fetchall()
    return [_optimization(r) for r in rows]


def _optimization(row: tuple[Any, ...]) -> OptimizationRow:
    (oid, plan, commit, dirty, started, finished, status, method, metric, space, constraints, wf, p_start,
     p_end, executor, best) = row
    return OptimizationRow(oid, plan, commit, bool(dirty), started.astimezone(UTC),
                           finished.astimezone(UTC) if finished else None, status, method, metric,
                           json.loads(space), json.loads(constraints), wf, p_start, p_end, executor,
                           json.loads(best) if best else None)


def trials(con: duckdb.DuckDBPyConnection, optimization_id: str) -> list[TrialRow]:
    """Every recorded trial of an optimisation, in phase, window and number order."""
    rows = con.execute(f"SELECT {TRIAL_COLUMNS} FROM optimization_trials WHERE optimization_id = ? "
                       "ORDER BY window_no NULLS FIRST, phase, number", [optimization_id]).fetchall()
    return [TrialRow(oid, tid, int(number), phase, wno, ws, we, json.loads(params),
                     json.loads(stats) if stats else None, score, error, float(seconds or 0.0), worker or "",
                     recorded.astimezone(UTC))
            for (oid, tid, number, phase, wno, ws, we, params, stats, score, error, seconds, worker, recorded)
            in rows]
