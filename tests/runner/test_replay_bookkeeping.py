"""Strict-mode replay's bookkeeping: the same orders, fills and statistics as before, results that
read back whole, and records that grow by what is new (issue 11, item 4).

`replay_2013-01-29_2013-02-06.json` was recorded by the code before append-only bookkeeping (and
holds on it); regenerate it with `replay_record(...)` below only when a change means to alter what
a replay decides, and say so.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from minitrade.loader import load_worktree
from minitrade.replay import ReplaySummary, replay
from minitrade.store import runs as run_sql
from minitrade.store.reporting import plan_rows

GOLDEN = Path(__file__).parents[1] / "fixtures" / "replay_2013-01-29_2013-02-06.json"


def replay_record(summary: ReplaySummary) -> dict[str, Any]:
    """What a replay decided: its orders, fills and each run's outcome and statistics."""
    with summary.store.transaction() as con:
        orders = con.execute("SELECT client_id, plan, trading_day::VARCHAR, tick_at::VARCHAR, ticker, side, "
                             "quantity, order_type, status FROM orders ORDER BY client_id").fetchall()
        fills = con.execute("SELECT client_id, quantity, price, commission, filled_at::VARCHAR, source FROM fills "
                            "ORDER BY client_id, filled_at").fetchall()
        runs = con.execute("SELECT plan, tick_at::VARCHAR, status, start_date::VARCHAR, end_date::VARCHAR, stats, "
                           "notes FROM runs ORDER BY plan, tick_at").fetchall()
    return json.loads(json.dumps({"orders": orders, "fills": fills, "runs": runs}))


def positions_json(positions: pd.DataFrame) -> list[str]:
    return [json.dumps({t: float(v) for t, v in row.items() if v}) for row in positions.to_dict("records")]


def test_replay_decides_as_before_and_every_run_reads_back_its_whole_results(trading_repo) -> None:
    summary = replay(load_worktree(trading_repo.path), start=date(2013, 1, 29), end=date(2013, 2, 6),
                     keep_results=True)

    assert replay_record(summary) == json.loads(GOLDEN.read_text())
    assert len(summary.runs) == 21 and not summary.failed
    lean = replay(load_worktree(trading_repo.path), start=date(2013, 1, 29), end=date(2013, 1, 30),
                  plans=["sma-aapl"], state_dir=trading_repo.path / "lean")
    assert [r.result for r in lean.runs] == [None, None] and [r.status for r in lean.runs] == ["FINISHED"] * 2
    with summary.store.transaction() as con:
        for run in summary.runs:
            assert run.result is not None
            equity = run_sql.read_equity(con, run.run_id)
            assert pd.DatetimeIndex(equity.index).equals(pd.DatetimeIndex(run.result.equity.index))
            assert equity["equity"].tolist() == run.result.equity["equity"].tolist()
            assert equity["cash"].tolist() == run.result.equity["cash"].tolist()
            assert equity["positions"].tolist() == positions_json(run.result.positions)
            trades = run_sql.read_trades(con, run.run_id)
            assert trades["pnl"].tolist() == run.result.trades["pnl"].tolist()
            assert trades["ticker"].tolist() == run.result.trades["ticker"].tolist()
            fills = run_sql.read_fills(con, run.run_id)
            assert fills[["size", "price", "commission"]].values.tolist() == \
                run.result.fills[["size", "price", "commission"]].values.tolist()
            assert pd.to_datetime(fills["date"]).tolist() == pd.to_datetime(run.result.fills["date"]).tolist()
        stored = con.execute("SELECT count(*) FROM equity").fetchone()[0]  # type: ignore[index]
        page = plan_rows(con, "momentum-rotation")
    whole = sum(len(run.result.equity) for run in summary.runs if run.result is not None)
    # each plan's first run stores its whole curve, every later one only from the previous run's last day on
    assert stored == sum(len(run.result.equity) for run in summary.runs[:3] if run.result is not None) + 2 * 18
    assert stored < whole / 5
    last = [r for r in summary.runs if r.plan == "momentum-rotation"][-1]
    assert last.result is not None and page["equity_run_id"] == last.run_id
    assert [row["equity"] for row in page["equity"]] == last.result.equity["equity"].tolist()
    assert [row["seq"] for row in page["sim_fills"]] == list(range(len(last.result.fills)))


def test_replay_appends_new_bars_to_the_recorded_history_and_never_rewrites_it(trading_repo) -> None:
    summary = replay(load_worktree(trading_repo.path), start=date(2013, 1, 29), end=date(2013, 2, 1),
                     plans=["sma-aapl"], keep_results=True)
    runs = [r.run_id for r in summary.runs]
    with summary.store.transaction() as con:
        recorded = con.execute("SELECT date, run_id FROM price_history WHERE plan = 'sma-aapl' AND ticker = 'AAPL' "
                               "AND date >= DATE '2013-01-25' ORDER BY date").fetchall()
        total = con.execute("SELECT count(*), min(date) FROM price_history").fetchone()
    # a bar keeps the run that first recorded it: the history was appended to, not rewritten
    # (a 15:45 replay run sees its day's final bar)
    assert recorded == [(date(2013, 1, 25), runs[0]), (date(2013, 1, 28), runs[0]), (date(2013, 1, 29), runs[0]),
                        (date(2013, 1, 30), runs[1]), (date(2013, 1, 31), runs[2]), (date(2013, 2, 1), runs[3])]
    assert total == (len(summary.runs[-1].result.equity), date(2003, 1, 2))  # type: ignore[union-attr]


def test_replay_through_worker_processes_decides_exactly_as_in_process(trading_repo) -> None:
    """Plans due at one simulated instant (momentum-rotation and sma-aapl at 15:45) compute together
    in worker processes; what the replay decides is the recorded golden one all the same."""
    from minitrade.runner.executor import ProcessExecutor

    pool = ProcessExecutor(2)
    try:
        summary = replay(load_worktree(trading_repo.path), start=date(2013, 1, 29), end=date(2013, 2, 6),
                         executor=pool)
    finally:
        pool.close()
    assert replay_record(summary) == json.loads(GOLDEN.read_text())
    assert [r.plan for r in summary.runs[:3]] == ["equal-weight", "momentum-rotation", "sma-aapl"]  # time, then name
