"""apply(): checks gate the applied state; every attempt is recorded once, with its commit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.diff import Key
from minitrade.loader import Snapshot, load_commit
from minitrade.reconciler import NOTIFY_CHECK, Check, apply, strategy_compile_check
from minitrade.store import Store
from minitrade.store.applied import applied_resources, last_applied, last_attempt


class Recorder:
    """A check that records what it was asked about and answers with fixed errors."""

    def __init__(self, errors: list[str] | None = None) -> None:
        self.errors = errors or []
        self.calls: list[set[Key]] = []

    def __call__(self, snapshot: Snapshot, changed: set[Key]) -> list[str]:
        self.calls.append(set(changed))
        return list(self.errors)


def passing() -> list[tuple[str, Check]]:
    return [("strategy code", strategy_compile_check)]


def reconciliations(store: Store) -> list[tuple[str | None, str]]:
    with store.transaction() as con:
        return [(r[0], r[1]) for r in con.execute("SELECT commit_sha, outcome FROM reconciliations ORDER BY id")
                .fetchall()]


def test_failing_check_records_a_rejection_and_keeps_the_applied_state(trading_repo) -> None:
    good = load_commit(trading_repo.path)
    store = good.store()
    assert apply(good, store, checks=passing()).outcome == "applied"
    with store.transaction() as con:
        before = applied_resources(con)

    trading_repo.edit("plans/sma-aapl.yaml", "fast: 20", "fast: 5")
    trading_repo.commit("too fast")
    bad = load_commit(trading_repo.path)
    failing = Recorder(["plans/sma-aapl.yaml: dry run lost everything"])
    result = apply(bad, store, checks=[("dry-run backtests", failing)])

    assert result.outcome == "rejected" and result.errors == ["plans/sma-aapl.yaml: dry run lost everything"]
    assert failing.calls == [{("plan", "sma-aapl")}]  # only what changed is checked
    with store.transaction() as con:
        assert applied_resources(con) == before
        attempt, applied = last_attempt(con), last_applied(con)
    assert attempt is not None and attempt.outcome == "rejected" and attempt.commit_sha == bad.commit
    assert attempt.error == "plans/sma-aapl.yaml: dry run lost everything"
    assert applied is not None and applied.commit_sha == good.commit


def test_notifications_are_not_tested_when_an_earlier_check_failed(trading_repo) -> None:
    snap = load_commit(trading_repo.path)
    notify = Recorder()
    result = apply(snap, snap.store(), checks=[("strategy code", Recorder(["boom"])), (NOTIFY_CHECK, notify)])
    assert result.outcome == "rejected" and notify.calls == []


def test_notifications_are_tested_last_when_everything_passed(trading_repo) -> None:
    snap = load_commit(trading_repo.path)
    order: list[str] = []

    def named(name: str) -> Check:
        def check(snapshot: Snapshot, changed: set[Key]) -> list[str]:
            order.append(name)
            return []
        return check

    checks = [("strategy code", named("code")), ("dry-run backtests", named("dry")), (NOTIFY_CHECK, named("ping"))]
    assert apply(snap, snap.store(), checks=checks).outcome == "applied"
    assert order == ["code", "dry", "ping"]


def test_a_notifier_failure_rejects_the_apply(trading_repo) -> None:
    snap = load_commit(trading_repo.path)
    result = apply(snap, snap.store(), checks=[(NOTIFY_CHECK, Recorder(["notifier phone: 401"]))])
    assert result.outcome == "rejected"
    with snap.store().transaction() as con:
        assert applied_resources(con) == {}


def test_applying_the_same_commit_twice_records_once(trading_repo) -> None:
    snap = load_commit(trading_repo.path)
    store = snap.store()
    check = Recorder()
    assert apply(snap, store, checks=[("strategy code", check)]).outcome == "applied"
    again = apply(load_commit(trading_repo.path), store, checks=[("strategy code", check)])
    assert again.outcome == "unchanged" and again.changes.empty
    assert len(check.calls) == 1  # nothing changed, nothing to check
    assert reconciliations(store) == [(snap.commit, "applied")]


def test_a_new_commit_without_changes_is_recorded_as_unchanged(trading_repo) -> None:
    store = load_commit(trading_repo.path).store()
    first = trading_repo.head
    assert apply(load_commit(trading_repo.path), store, checks=passing()).outcome == "applied"
    trading_repo.write("README.md", "notes only\n")
    second = trading_repo.commit("docs")
    assert apply(load_commit(trading_repo.path), store, checks=passing()).outcome == "unchanged"
    assert reconciliations(store) == [(first, "applied"), (second, "unchanged")]
    with store.transaction() as con:
        assert {r.commit_sha for r in applied_resources(con).values()} == {first}


def test_the_record_carries_commit_sha_author_time_and_message(
        trading_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2024-03-04T05:06:07+02:00")
    trading_repo.edit("plans/sma-aapl.yaml", "cash: 10000", "cash: 12000")
    sha = trading_repo.commit("raise cash\n\nmore room for the crossover")
    snap = load_commit(trading_repo.path)
    assert apply(snap, snap.store(), checks=passing()).outcome == "applied"
    with snap.store().transaction() as con:
        record = last_applied(con)
        resources = applied_resources(con)
    assert record is not None
    assert record.commit_sha == sha and not record.dirty and record.source == "apply"
    assert record.author_time == datetime(2024, 3, 4, 3, 6, 7, tzinfo=UTC)
    assert record.message == "raise cash\n\nmore room for the crossover"
    assert {r.commit_sha for r in resources.values()} == {sha}
    assert resources[("plan", "sma-aapl")].spec["cash"] == 12000


def test_a_strategy_change_rechecks_the_plans_that_use_it(trading_repo) -> None:
    store = load_commit(trading_repo.path).store()
    assert apply(load_commit(trading_repo.path), store, checks=passing()).outcome == "applied"
    path = "strategies/sma_crossover.py"
    trading_repo.write(path, trading_repo.read(path) + "\n# tuned\n")
    trading_repo.commit("tune")
    check = Recorder()
    assert apply(load_commit(trading_repo.path), store, checks=[("dry-run backtests", check)]).outcome == "applied"
    users = {("plan", n) for n, p in load_commit(trading_repo.path).plans.items() if p.strategy == path}
    assert users and check.calls == [{("strategy", path)} | users]


def test_an_older_revision_applies_that_commit(trading_repo) -> None:
    old = trading_repo.head
    trading_repo.edit("plans/sma-aapl.yaml", "cash: 10000", "cash: 20000")
    new = trading_repo.commit("more cash")
    store = load_commit(trading_repo.path).store()
    assert apply(load_commit(trading_repo.path), store, checks=passing()).outcome == "applied"

    rolled = load_commit(trading_repo.path, old)
    assert rolled.commit == old
    assert apply(rolled, store, checks=passing()).outcome == "applied"
    with store.transaction() as con:
        record = last_applied(con)
        plan = applied_resources(con)[("plan", "sma-aapl")]
    assert record is not None and record.commit_sha == old and record.message == "initial"
    assert plan.spec["cash"] == 10000 and plan.commit_sha == old
    assert reconciliations(store) == [(new, "applied"), (old, "applied")]


def test_apply_rev_on_the_command_line_applies_that_commit(trading_repo) -> None:
    old = trading_repo.head
    trading_repo.edit("plans/sma-aapl.yaml", "cash: 10000", "cash: 20000")
    trading_repo.commit("more cash")
    result = CliRunner().invoke(app, ["apply", "--yes", "--rev", old[:10], "--repo", str(trading_repo.path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Applied commit {old[:8]}" in result.output
    with load_commit(trading_repo.path).store().transaction() as con:
        assert applied_resources(con)[("plan", "sma-aapl")].spec["cash"] == 10000
