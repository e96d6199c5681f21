"""Read-only queries for the report site: per plan, its runs, equity, trades, orders and fills.

Rows come back as plain dicts (column -> value) shaped for `minitrade.reports.PlanInput`, so the
report package renders them without knowing SQL:

    with store.transaction() as con:
        plans = [PlanInput(name=n, **reporting.plan_rows(con, n)) for n in reporting.plan_names(con)]

These tables belong to other areas; this module only reads them as schema V1 defines them (a run's
equity, trades and simulated fills through its chain of base runs, schema V6: `runs.chained`).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from minitrade.store.runs import chained

Row = dict[str, Any]

# Runs that are not the plan's live record: research backtests, apply's dry runs, and rehearsals
# (a tick that was not the present). Replay runs are live in their own store (its clock is the present).
NOT_LIVE = ("backtest", "dryrun", "rehearsal")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any] | None = None) -> list[Row]:
    cursor = con.execute(sql, args or [])
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def plan_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every plan that is applied or has history (a deleted plan keeps its page)."""
    rows = con.execute(
        "SELECT name FROM applied_resources WHERE kind = 'plan' "
        "UNION SELECT plan FROM runs UNION SELECT plan FROM orders ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def applied_commit(con: duckdb.DuckDBPyConnection) -> str | None:
    """The commit of the latest successful apply."""
    row = con.execute("SELECT commit_sha FROM reconciliations WHERE outcome = 'applied' "
                      "ORDER BY attempted_at DESC, id DESC LIMIT 1").fetchone()
    return str(row[0]) if row and row[0] else None


def last_reconciliation(con: duckdb.DuckDBPyConnection) -> Row | None:
    rows = _rows(con, "SELECT commit_sha, dirty, attempted_at, outcome, error, source FROM reconciliations "
                      "ORDER BY attempted_at DESC, id DESC LIMIT 1")
    return rows[0] if rows else None


MAX_OUTPUT_PAGES = 100  # runs whose captured output gets a file beside the plan's page


def plan_rows(con: duckdb.DuckDBPyConnection, plan: str) -> dict[str, Any]:
    """Everything the plan's page shows, keyed like `PlanInput`'s fields (except name/next_run/broker_state)."""
    applied = _rows(con, "SELECT spec, commit_sha, applied_at FROM applied_resources "
                         "WHERE kind = 'plan' AND name = ?", [plan])
    spec = json.loads(applied[0]["spec"]) if applied else None
    runs = _rows(con, "SELECT run_id, kind, tick_at, started_at, finished_at, status, error, commit_sha, "
                      "plan_digest, start_date, end_date, stats, notes, coalesce(output_bytes, 0) AS output_bytes "
                      "FROM runs WHERE plan = ? ORDER BY started_at",
                 [plan])
    run_id = _latest_with_equity(con, plan, live=True)
    equity = _rows(con, *chained("equity", "date, equity, cash, positions", run_id)) if run_id else []
    return {
        "spec": spec,
        "applied_commit": applied[0]["commit_sha"] if applied else None,
        "applied_at": applied[0]["applied_at"] if applied else None,
        "runs": runs,
        # what the newest runs' strategies printed (each already cut to its first and last 64 KiB)
        "outputs": {str(r["run_id"]): str(r["output"]) for r in _rows(
            con, "SELECT run_id, output FROM runs WHERE plan = ? AND output IS NOT NULL "
                 "ORDER BY started_at DESC LIMIT ?", [plan, MAX_OUTPUT_PAGES])},
        "equity_run_id": run_id,
        "equity": equity,
        "closes": _closes(con, plan, spec, equity),
        "trades": _rows(con, *chained("backtest_trades", "seq, ticker, size, entry_date, exit_date, entry_price, "
                                      "exit_price, pnl, return_pct", run_id)) if run_id else [],
        "sim_fills": _rows(con, *chained("backtest_fills", "seq, date, ticker, size, price, commission", run_id))
        if run_id else [],
        "orders": _rows(con, "SELECT client_id, trading_day, tick_at, ticker, side, quantity, order_type, broker, "
                             "status, broker_order_id, commit_sha, plan_digest, created_at, updated_at, note "
                             "FROM orders WHERE plan = ? ORDER BY created_at, client_id", [plan]),
        "fills": _rows(con, "SELECT f.fill_id, f.client_id, o.ticker, o.side, f.quantity, f.price, f.commission, "
                            "f.filled_at, f.source, f.commit_sha, f.recorded_at FROM fills f "
                            "JOIN orders o ON o.client_id = f.client_id WHERE o.plan = ? "
                            "ORDER BY f.filled_at, f.fill_id", [plan]),
    }


def _latest_with_equity(con: duckdb.DuckDBPyConnection, plan: str, *, live: bool) -> str | None:
    """The newest finished run with an equity curve: a live one (`live`), else a research backtest."""
    kinds = "r.kind NOT IN (SELECT unnest(?))" if live else "r.kind = 'backtest' AND len(?) > 0"
    chosen = con.execute(
        f"SELECT r.run_id FROM runs r WHERE r.plan = ? AND r.status = 'FINISHED' AND {kinds} "
        "AND (EXISTS (SELECT 1 FROM run_results x WHERE x.run_id = r.run_id AND x.last_date IS NOT NULL) "
        "OR EXISTS (SELECT 1 FROM equity e WHERE e.run_id = r.run_id)) "
        "ORDER BY r.started_at DESC LIMIT 1", [plan, list(NOT_LIVE)]).fetchone()
    return str(chosen[0]) if chosen else None


def backtest_rows(con: duckdb.DuckDBPyConnection, plan: str, spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan's latest research backtest (`minitrade backtest`): its run, equity, trades and closes."""
    run_id = _latest_with_equity(con, plan, live=False)
    if run_id is None:
        return None
    run = _rows(con, "SELECT run_id, kind, started_at, finished_at, commit_sha, start_date, end_date, stats "
                     "FROM runs WHERE run_id = ?", [run_id])[0]
    equity = _rows(con, *chained("equity", "date, equity, cash, positions", run_id))
    return {"run": run, "equity": equity, "closes": _closes(con, plan, spec, equity),
            "trades": _rows(con, *chained("backtest_trades", "seq, ticker, size, entry_date, exit_date, "
                                          "entry_price, exit_price, pnl, return_pct", run_id))}


def first_live_day(con: duckdb.DuckDBPyConnection, plan: str) -> Any:
    """When the plan's live record begins: its first run that was neither research nor a rehearsal."""
    row = con.execute("SELECT min(coalesce(tick_at, started_at)) FROM runs WHERE plan = ? "
                      "AND kind NOT IN (SELECT unnest(?))", [plan, list(NOT_LIVE)]).fetchone()
    return row[0] if row else None


def settings_timezone(con: duckdb.DuckDBPyConnection) -> str | None:
    """minitrade.yaml's `timezone` as applied."""
    row = con.execute("SELECT spec FROM applied_resources WHERE kind = 'settings' LIMIT 1").fetchone()
    zone = json.loads(row[0]).get("timezone") if row and row[0] else None
    return str(zone) if zone else None


def is_replay(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this store is a replay's (its state was applied by `minitrade replay`)."""
    row = con.execute("SELECT count(*) FROM reconciliations WHERE source = 'replay'").fetchone()
    return bool(row and row[0])


def marks(con: duckdb.DuckDBPyConnection, plan: str, source: str | None, tickers: list[str],
          since: Any) -> list[Row]:
    """(ticker, date, close) from `since` on: the price cache's closes, else the bars the plan's runs
    recorded (a replay store has no cache); nothing is fetched."""
    if not tickers:
        return []
    cached = _rows(con, "SELECT ticker, date, close FROM prices WHERE source = ? AND list_contains(?, ticker) "
                        "AND date >= ? ORDER BY date, ticker", [source or "", tickers, since])
    have = {r["ticker"] for r in cached}
    missing = [t for t in tickers if t not in have]
    recorded = _rows(con, "SELECT ticker, date, close FROM price_history WHERE plan = ? "
                          "AND list_contains(?, ticker) AND date >= ? ORDER BY date, ticker",
                     [plan, missing, since]) if missing else []
    return cached + recorded


def marks_as_of(con: duckdb.DuckDBPyConnection, plan: str, source: str | None, tickers: list[str],
                day: Any) -> dict[str, float]:
    """Each ticker's last close on or before `day` (cache first, then the plan's recorded bars)."""
    if not tickers:
        return {}
    out: dict[str, float] = {}
    for table, key in (("prices", "source"), ("price_history", "plan")):
        wanted = [t for t in tickers if t not in out]
        if not wanted:
            break
        rows = con.execute(f"SELECT ticker, arg_max(close, date) FROM {table} WHERE {key} = ? "
                           "AND list_contains(?, ticker) AND date <= ? GROUP BY ticker",
                           [(source or "") if table == "prices" else plan, wanted, day]).fetchall()
        out.update({str(r[0]): float(r[1]) for r in rows})
    return out


def _closes(con: duckdb.DuckDBPyConnection, plan: str, spec: dict[str, Any] | None,
            equity: list[Row]) -> list[Row]:
    """Closes for buy-and-hold over the equity's dates: the history the plan's runs used, else the cache."""
    if not equity:
        return []
    first, last = equity[0]["date"], equity[-1]["date"]
    rows = _rows(con, "SELECT ticker, date, close FROM price_history WHERE plan = ? AND date BETWEEN ? AND ? "
                      "ORDER BY date, ticker", [plan, first, last])
    if rows or not spec:
        return rows
    tickers = list(spec.get("universe") or [])
    source = spec.get("data_source")
    if not tickers or not source:
        return []
    return _rows(con, "SELECT ticker, date, close FROM prices WHERE source = ? AND list_contains(?, ticker) "
                      "AND date BETWEEN ? AND ? ORDER BY date, ticker", [source, tickers, first, last])
