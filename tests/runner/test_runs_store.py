"""Runs and their results round-trip through a real DuckDB file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from minitrade.runner.backtest import run_backtest
from minitrade.runner.strategy import load_strategy
from minitrade.store import Store
from minitrade.store import runs as store_runs
from minitrade.store.frames import SMALL_INSERT

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


def results_of(store: Store, run_id: str) -> tuple[list[float], list[str], list[float], list[float]]:
    with store.transaction() as con:
        equity = store_runs.read_equity(con, run_id)
        trades = store_runs.read_trades(con, run_id)
        fills = store_runs.read_fills(con, run_id)
    return equity["equity"].tolist(), equity["positions"].tolist(), trades["pnl"].tolist(), fills["price"].tolist()


def expected(result) -> tuple[list[float], list[str], list[float], list[float]]:
    positions = [json.dumps({t: float(v) for t, v in row.items() if v}) for row in result.positions.to_dict("records")]
    return (result.equity["equity"].tolist(), positions, result.trades["pnl"].tolist(),
            result.fills["price"].tolist())


def write(store: Store, run_id: str, result, plan: str = "p") -> int:
    """Record `result` as run `run_id` of `plan`; returns how many equity rows the run stored itself."""
    with store.transaction() as con:
        store_runs.start_run(con, run_id=run_id, plan=plan, kind="replay")
        store_runs.write_results(con, run_id, equity=result.equity, positions=result.positions,
                                 trades=result.trades, fills=result.fills)
        return int(con.execute("SELECT count(*) FROM equity WHERE run_id = ?", [run_id]).fetchone()[0])  # type: ignore[index]


def test_a_run_that_replays_its_plans_previous_run_stores_only_the_days_after_it(tmp_path: Path) -> None:
    plan = make_plan(backtest_start=date(2020, 1, 1))
    prices = random_walk(400, seed=7)
    sma = load_strategy(SMA_SOURCE, "strategies/sma.py")
    results = [run_backtest(plan, {"AAA": prices.iloc[:n]}, sma, commission=0.001) for n in (380, 381, 390)]
    other = run_backtest(plan, {"AAA": prices.iloc[:390]}, sma, commission=0.002)  # another past
    store = Store(tmp_path / "db.duckdb")
    assert write(store, "r1", results[0]) == 380
    assert write(store, "r2", results[1]) == 2       # r1's last day again (it may have been partial) and one new
    assert write(store, "r3", results[2]) == 10
    assert write(store, "r4", other) == 390          # the past differs: stored whole
    assert write(store, "q1", results[2], plan="q") == 390  # another plan never continues this one
    for run_id, result in (("r1", results[0]), ("r2", results[1]), ("r3", results[2]), ("r4", other),
                           ("q1", results[2])):
        assert results_of(store, run_id) == expected(result), run_id
    assert len(results[2].trades) > len(results[0].trades) > 0 and len(results[2].fills) > len(results[0].fills)


def test_a_chain_of_results_is_cut_after_max_chain_runs(tmp_path: Path) -> None:
    plan = make_plan(backtest_start=date(2020, 1, 1))
    result = run_backtest(plan, {"AAA": random_walk(60, seed=3)}, load_strategy(SMA_SOURCE, "strategies/sma.py"),
                          commission=0.001)
    store = Store(tmp_path / "db.duckdb")
    stored = [write(store, f"r{i:03d}", result) for i in range(store_runs.MAX_CHAIN + 1)]
    assert stored[0] == stored[store_runs.MAX_CHAIN] == 60 and set(stored[1:store_runs.MAX_CHAIN]) == {1}
    assert results_of(store, f"r{store_runs.MAX_CHAIN - 1:03d}") == expected(result)


@pytest.mark.parametrize("rows", [3, SMALL_INSERT + 8], ids=["as-parameters", "as-a-frame-scan"])
def test_a_few_rows_and_many_store_missing_values_alike(tmp_path: Path, rows: int) -> None:
    """A tick's few new rows go in as parameters, a history as a DataFrame scan: NaN and NaT are NULL both ways."""
    import pandas as pd

    days = pd.bdate_range("2024-01-02", periods=rows)
    equity = pd.DataFrame({"equity": 100.0, "cash": 100.0}, index=days)
    trades = pd.DataFrame({"ticker": "AAA", "size": 1.0, "entry_date": days, "exit_date": days,
                           "entry_price": 10.0, "exit_price": 11.0, "pnl": 1.0, "return_pct": 10.0})
    trades.loc[rows - 1, ["exit_date", "exit_price", "pnl", "return_pct"]] = [pd.NaT, float("nan"), float("nan"),
                                                                              float("nan")]  # still open
    store = Store(tmp_path / "minitrade.duckdb")
    with store.transaction() as con:
        store_runs.start_run(con, run_id="r1", plan="p", kind="backtest", commit_sha="abc", plan_digest="d1")
        store_runs.write_results(con, "r1", equity=equity, trades=trades)
    with store.transaction() as con:
        nulls = con.execute("SELECT count(*) FILTER (exit_date IS NULL), count(*) FILTER (pnl IS NULL), "
                            "count(*) FILTER (isnan(pnl)), count(*) FROM backtest_trades").fetchone()
        back = store_runs.read_trades(con, "r1")
    assert nulls == (1, 1, 0, rows)
    assert back["pnl"].iloc[:-1].tolist() == [1.0] * (rows - 1) and back["exit_date"].isna().tolist()[-1]


def test_runs_written_together_read_back_as_each_written_alone(tmp_path: Path) -> None:
    """`write_many` (a daemon batch: one statement per table) stores what `write_results` stores run by
    run, each run continuing its own plan's previous results."""
    plan = make_plan(backtest_start=date(2020, 1, 1))
    sma = load_strategy(SMA_SOURCE, "strategies/sma.py")
    walks = {name: random_walk(300, seed=seed) for name, seed in (("p", 11), ("q", 12), ("r", 13))}
    first = {name: run_backtest(plan, {"AAA": w.iloc[:290]}, sma, commission=0.001) for name, w in walks.items()}
    then = {name: run_backtest(plan, {"AAA": w.iloc[:291]}, sma, commission=0.001) for name, w in walks.items()}
    alone, together = Store(tmp_path / "alone.duckdb"), Store(tmp_path / "together.duckdb")
    for name in walks:
        write(alone, f"{name}-1", first[name], plan=name)
        write(alone, f"{name}-2", then[name], plan=name)
    write(together, "p-1", first["p"], plan="p")  # q and r start in the batch below
    for batch in ([("q", "-1", first), ("r", "-1", first)], [("p", "-2", then), ("q", "-2", then), ("r", "-2", then)]):
        with together.transaction() as con:
            for name, suffix, _ in batch:
                store_runs.start_run(con, run_id=name + suffix, plan=name, kind="replay")
            store_runs.write_many(con, [store_runs.Results(name + suffix, name, results[name].equity,
                                                           results[name].positions, results[name].trades,
                                                           results[name].fills) for name, suffix, results in batch])
    for run_id in ("p-1", "p-2", "q-1", "q-2", "r-1", "r-2"):
        assert results_of(together, run_id) == results_of(alone, run_id) == expected(
            (first if run_id.endswith("1") else then)[run_id[0]]), run_id
    with together.transaction() as con:
        own = dict(con.execute("SELECT run_id, count(*) FROM equity GROUP BY run_id").fetchall())
        heads = dict(con.execute("SELECT plan, run_id FROM result_heads").fetchall())
    assert own == {"p-1": 290, "q-1": 290, "r-1": 290, "p-2": 2, "q-2": 2, "r-2": 2}  # each continued its plan
    assert heads == {"p": "p-2", "q": "q-2", "r": "r-2"}


def test_write_many_takes_a_plan_once(tmp_path: Path) -> None:
    plan = make_plan(backtest_start=date(2020, 1, 1))
    result = run_backtest(plan, {"AAA": random_walk(40, seed=3)}, load_strategy(SMA_SOURCE, "strategies/sma.py"),
                          commission=0.001)
    twice = [store_runs.Results(f"r{i}", "p", result.equity) for i in (1, 2)]
    with Store(tmp_path / "db.duckdb").transaction() as con, pytest.raises(ValueError, match="one run per plan"):
        store_runs.write_many(con, twice)


def test_runs_start_and_end_together(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 27, 20, 45, tzinfo=UTC)
    store = Store(tmp_path / "db.duckdb")
    ends = [store_runs.RunEnd(f"r{i}", at, stats={"return": float(i)}, start_date=date(2026, 1, 2),
                              end_date=date(2026, 11, 27), data_digest=f"d{i}", notes=(f"note {i}", "second"))
            for i in range(SMALL_INSERT + 2)]  # more than one statement's worth
    ends[1] = store_runs.RunEnd("r1", at, error="plan p: boom")
    with store.transaction() as con:
        store_runs.start_runs(con, [store_runs.RunStart(e.run_id, "p", "scheduled", at, "abc", "pd", at) for e in ends])
        con.execute("UPDATE runs SET data_digest = 'kept' WHERE run_id = 'r1'")
        store_runs.finish_runs(con, ends)
        rows = {r.run_id: r for r in store_runs.list_runs(con, plan="p")}
    assert len(rows) == len(ends)
    assert (rows["r0"].status, rows["r0"].stats, rows["r0"].notes, rows["r0"].data_digest) == (
        "FINISHED", {"return": 0.0}, "note 0\nsecond", "d0")
    assert (rows["r1"].status, rows["r1"].error, rows["r1"].data_digest) == ("FAILED", "plan p: boom", "kept")
    assert rows[f"r{len(ends) - 1}"].end_date == date(2026, 11, 27) and rows["r5"].tick_at == at
