"""`apply`'s dry-run check: new or changed plans are backtested; failures come back as messages."""

from __future__ import annotations

from typing import Any

from minitrade.loader import load_commit, load_worktree
from minitrade.runner.dry_run import dry_run_check, plans_to_check


def test_changed_plans_pass_and_nothing_is_written(trading_repo: Any) -> None:
    snapshot = load_commit(trading_repo.path)
    assert dry_run_check(snapshot, {("plan", "sma-aapl"), ("plan", "equal-weight")}) == []
    assert not (trading_repo.path / "state").exists()  # no runs, no orders, no files


def test_unchanged_plans_are_not_backtested(trading_repo: Any) -> None:
    snapshot = load_worktree(trading_repo.path)
    assert plans_to_check(snapshot, {("broker", "manual")}) == []
    assert plans_to_check(snapshot, {("strategy", "strategies/equal_weight.py")}) == ["equal-weight"]
    assert plans_to_check(snapshot, {("data_source", "samples")}) == ["equal-weight", "momentum-rotation", "sma-aapl"]


def test_failing_strategy_is_reported_with_plan_file_and_line(trading_repo: Any) -> None:
    trading_repo.edit("strategies/equal_weight.py", "self.p.invest / len(self.tickers)", "self.p.invest / 0")
    trading_repo.commit("break it")
    errors = dry_run_check(load_commit(trading_repo.path), {("strategy", "strategies/equal_weight.py")})
    assert errors == ["plan equal-weight: strategies/equal_weight.py:18: ZeroDivisionError: float division by zero"]


def test_missing_prices_are_reported(trading_repo: Any) -> None:
    trading_repo.edit("plans/sma-aapl.yaml", "universe: [AAPL]", "universe: [AAPL, NOPE]")
    errors = dry_run_check(load_worktree(trading_repo.path), {("plan", "sma-aapl")})
    assert len(errors) == 1 and errors[0].startswith("plan sma-aapl: samples/NOPE: no price file")
