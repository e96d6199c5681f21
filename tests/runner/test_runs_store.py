"""Runs and their results round-trip through a real DuckDB file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from minitrade.runner.backtest import run_backtest
from minitrade.runner.strategy import load_strategy
from minitrade.store import Store
from minitrade.store import runs as store_runs

from .conftest import SMA_SOURCE, make_plan, random_walk


def test_backtest_results_round_trip(tmp_path: Path) -> None:
    plan = make_plan(backtest_start=date(2020, 1, 1), positions={"AAA": 5})
    result = run_backtest(plan, {"AAA": random_walk(300, seed=5)}, load_strategy(SMA_SOURCE, "strategies/sma.py"),
                          commission=0.001)
    store = Store(tmp_path / "state" / "minitrade.duckdb")
    with store.transaction() as con:
        store_runs.start_run(con, run_id="r1", plan=plan.name, kind="backtest", commit_sha="abc", plan_digest="d1")
        assert store_runs.get_run(con, "r1").status == "RUNNING"  # type: ignore[union-attr]
    with store.transaction() as con:
        store_runs.write_results(con, "r1", equity=result.equity, positions=result.positions,
                                 trades=result.trades, fills=result.fills)
        store_runs.finish_run(con, "r1", stats=result.stats, start_date=date(2020, 1, 1), end_date=result.last_date)
    with store.transaction() as con:
        run = store_runs.get_run(con, "r1")
        equity = store_runs.read_equity(con, "r1")
        trades = store_runs.read_trades(con, "r1")
        fills = store_runs.read_fills(con, "r1")
        listed = store_runs.list_runs(con, plan=plan.name, kind="backtest")
    assert run is not None and run.status == "FINISHED" and run.commit_sha == "abc" and run.plan_digest == "d1"
    assert run.stats == result.stats and run.end_date == result.last_date
    assert [r.run_id for r in listed] == ["r1"]
    assert equity["equity"].tolist() == pytest.approx(result.equity["equity"].tolist())
    assert equity["positions"].iloc[0] == '{"AAA": 5.0}'
    assert len(trades) == len(result.trades) > 0 and trades["pnl"].tolist() == pytest.approx(result.trades["pnl"].tolist())
    assert fills["price"].tolist() == result.fills["price"].tolist()


def test_failed_run_keeps_its_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    with store.transaction() as con:
        store_runs.start_run(con, run_id="r2", plan="p", kind="dryrun")
        store_runs.finish_run(con, "r2", error="plan p: strategies/x.py:3: boom")
        run = store_runs.get_run(con, "r2")
    assert run is not None and (run.status, run.error, run.stats) == ("FAILED", "plan p: strategies/x.py:3: boom", None)
