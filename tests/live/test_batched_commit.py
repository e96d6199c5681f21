"""Runs whose results arrive together are committed together: one transaction records their orders and
results, one their ends with the daemon's ticks. A transaction that fails is retried run by run, so
one run cannot keep the others' orders out, and each run's orders are still recorded exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest

from minitrade.data import changes
from minitrade.loader import load_worktree
from minitrade.reconcile_pass import live_env
from minitrade.records import OrderStatus, RunStatus
from minitrade.runner.compute import RunInput, RunResult, compute
from minitrade.runner.run import RunEnv, RunOutcome, new_run_id, run_plans
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store import runs as run_sql
from tests.conftest import present

from .conftest import PLAN

TICK = datetime(2013, 1, 3, 15, 45, tzinfo=ZoneInfo("America/New_York"))
PLANS = ["alt", "beta", "gamma"]


class AllAtOnce:
    """Computes every unit for real, then hands the results over back to back: they reach the
    committing side as one batch."""

    def run(self, inputs: Iterable[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        results = [compute(i) for i in inputs]
        yield from results

    def close(self) -> None:
        """Nothing to release."""


@pytest.fixture
def env(live_repo) -> Iterator[RunEnv]:
    for name in PLANS[1:]:
        live_repo.write(f"plans/{name}.yaml", PLAN.replace("name: alt", f"name: {name}"))
    live_repo.commit("two more plans like alt")
    with present(TICK):
        env = live_env(load_worktree(live_repo.path), kind="scheduled", clock=lambda: TICK)
        env.executor = AllAtOnce()
        yield env


def run_all(env: RunEnv) -> tuple[list[RunOutcome], list[list[str]]]:
    """Run every plan for TICK; returns the outcomes and the plans of each call of `on_done`."""
    ended: list[list[str]] = []

    def on_done(con: duckdb.DuckDBPyConnection, outcomes: list[RunOutcome]) -> None:
        assert con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING' AND list_contains(?, run_id)",
                           [[o.run_id for o in outcomes]]).fetchone() == (0,)  # recorded ended in this transaction
        ended.append(sorted(o.plan for o in outcomes))

    outcomes = run_plans(env, [(name, TICK, new_run_id(name, TICK)) for name in PLANS], on_done=on_done)
    return outcomes, ended


def orders_and_runs(store: Store) -> tuple[dict[str, list[OrderStatus]], dict[str, tuple[str, str | None]]]:
    with store.transaction() as con:
        orders = order_sql.orders_by_plan(con, PLANS)
        runs = {r.plan: (r.status, r.error) for r in run_sql.list_runs(con)}
    return {p: [o.status for o in found] for p, found in orders.items()}, runs


def test_runs_ready_together_are_committed_together(env: RunEnv) -> None:
    outcomes, ended = run_all(env)
    assert sorted(o.plan for o in outcomes) == PLANS and {o.status for o in outcomes} == {RunStatus.FINISHED}
    assert ended == [PLANS]  # one transaction ended all three
    orders, runs = orders_and_runs(env.store)
    assert {p: len(o) for p, o in orders.items()} == {"alt": 1, "beta": 1, "gamma": 1}
    assert {s for statuses in orders.values() for s in statuses} == {OrderStatus.SUBMITTED}
    assert runs == {p: ("FINISHED", None) for p in PLANS}
    with env.store.transaction() as con:  # each strict plan's results and price history are its own
        heads = dict(con.execute("SELECT plan, run_id FROM result_heads").fetchall())
        history = dict(con.execute("SELECT plan, count(*) FROM price_history GROUP BY plan").fetchall())
    assert heads == {o.plan: o.run_id for o in outcomes}
    assert len(set(history.values())) == 1 and set(history) == set(PLANS)


def test_a_failed_transaction_is_retried_run_by_run(env: RunEnv, monkeypatch, caplog) -> None:
    """The database refuses beta's price history (as a full disk would, mid-transaction): the batch's
    transaction rolls back, then alt and gamma are recorded and submitted alone, and beta fails alone."""
    record = changes.record_histories

    def refusing(con: duckdb.DuckDBPyConnection, runs: Sequence[tuple[str, str, Mapping[str, pd.DataFrame]]]
                 ) -> dict[str, str]:
        if any(plan == "beta" for plan, _, _ in runs):
            con.execute("INSERT INTO no_such_table VALUES (1)")  # a real error inside the transaction
        return record(con, runs)

    monkeypatch.setattr(changes, "record_histories", refusing)
    with caplog.at_level(logging.WARNING, logger="minitrade.run"):
        outcomes, ended = run_all(env)
    assert "recording 3 runs together failed" in caplog.text
    by_plan = {o.plan: o for o in outcomes}
    assert (by_plan["alt"].status, by_plan["gamma"].status, by_plan["beta"].status) == (
        RunStatus.FINISHED, RunStatus.FINISHED, RunStatus.FAILED)
    assert "no_such_table" in (by_plan["beta"].error or "")
    assert ended == [PLANS]  # the three ended together all the same
    orders, runs = orders_and_runs(env.store)
    assert orders == {"alt": [OrderStatus.SUBMITTED], "beta": [], "gamma": [OrderStatus.SUBMITTED]}
    assert runs["beta"][0] == "FAILED" and runs["alt"] == runs["gamma"] == ("FINISHED", None)
    with env.store.transaction() as con:  # beta's rolled-back results left nothing behind
        left = con.execute("SELECT count(*) FROM equity e JOIN runs r USING (run_id) WHERE r.plan = 'beta'").fetchone()
    assert left == (0,)


def test_a_plans_two_runs_in_one_batch_are_committed_one_after_the_other(env: RunEnv, caplog) -> None:
    """A plan due twice in one pass (an interrupted tick resumed beside the next one): its two runs
    go in separate transactions, the first before the second, so the second is decided on the first's
    orders and continues its results (one transaction for both would refuse the plan twice)."""
    earlier = TICK - timedelta(days=1)  # Wednesday 2013-01-02, the plan's first trading day
    ticks = [("alt", earlier, new_run_id("alt", earlier)), ("alt", TICK, new_run_id("alt", TICK)),
             ("beta", TICK, new_run_id("beta", TICK))]
    with caplog.at_level(logging.WARNING, logger="minitrade.run"):
        outcomes = run_plans(env, ticks)
    assert "together failed" not in caplog.text  # split into chunks, not rescued by the retry
    assert [o.status for o in outcomes] == [RunStatus.FINISHED] * 3
    with env.store.transaction() as con:
        head = con.execute("SELECT run_id FROM result_heads WHERE plan = 'alt'").fetchone()
        base = con.execute("SELECT base_run FROM run_results WHERE run_id = ?", [ticks[1][2]]).fetchone()
    assert head == (ticks[1][2],) and base == (ticks[0][2],)  # the later run continues the earlier one
