"""Backtest one plan of a snapshot on its own data source: the research/dry-run path (no orders).

`run.py` (scheduled runs) adds the price cache, strict-mode checks, orders and records on top;
this module is the plain "prices -> strategy -> result" part that `minitrade backtest` and
`apply`'s dry run share.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from minitrade.data.registry import source_for
from minitrade.errors import DataError, StrategyError
from minitrade.runner.backtest import BacktestResult, run_backtest
from minitrade.runner.compute import RunInput, plan_strategy

if TYPE_CHECKING:
    from minitrade.data.base import DataSource
    from minitrade.loader import Snapshot
    from minitrade.models import Plan

# stage ("prices" | "backtest"), done, total
StageProgress = Callable[[str, int, int], None]


def backtest_plan(snapshot: Snapshot, name: str, *, start: date | None = None, end: date | None = None,
                  progress: StageProgress | None = None) -> BacktestResult:
    """Backtest plan `name` from `start` (default backtest_start) to `end` (default: latest prices)."""
    plan, source = _plan_and_source(snapshot, name, start)
    prices: dict[str, pd.DataFrame] = {}
    for i, ticker in enumerate(plan.tickers):
        if progress is not None:
            progress("prices", i, len(plan.tickers))
        prices[ticker] = source.daily(ticker, plan.backtest_start, end)
    cls = load_plan_strategy(snapshot, plan)
    commission = plan.commission if plan.commission is not None else snapshot.settings.commission
    on_bar = (lambda done, total: progress("backtest", done, total)) if progress is not None else None
    return run_backtest(plan, prices, cls, commission=commission, end=end, progress=on_bar)


def research_input(snapshot: Snapshot, name: str, *, run_id: str, start: date | None = None,
                   end: date | None = None) -> RunInput:
    """A research backtest of plan `name` as a compute unit (prices read here), for an executor."""
    plan, source = _plan_and_source(snapshot, name, start)
    code = snapshot.strategies.get(plan.strategy)
    if code is None:
        raise StrategyError(f"strategy file {plan.strategy} not found", plan=plan.name, file=plan.strategy)
    commission = plan.commission if plan.commission is not None else snapshot.settings.commission
    return RunInput(run_id=run_id, plan=plan, strategy_source=code,
                    prices={t: source.daily(t, plan.backtest_start, end) for t in plan.tickers},
                    cash=plan.cash, positions={t: float(q) for t, q in plan.positions.items()},
                    trade_start=plan.trade_start, commission=commission, end=end, frozen_before=None,
                    timeout=plan.timeout or snapshot.settings.executor.timeout)


def _plan_and_source(snapshot: Snapshot, name: str, start: date | None) -> tuple[Plan, DataSource]:
    """The plan (from `start` if given) and its data source, straight from the provider (no cache)."""
    plan = snapshot.plans[name]
    if start is not None:
        plan = plan.model_copy(update={"backtest_start": start})
    spec = snapshot.settings.data_sources.get(plan.data_source)
    if spec is None:
        raise DataError(f"plan {name}: unknown data source {plan.data_source!r}", source=plan.data_source)
    return plan, source_for(plan.data_source, spec, root=snapshot.root)


def load_plan_strategy(snapshot: Snapshot, plan: Plan) -> type:
    """The strategy class `plan` runs, from the snapshot's code; errors name the plan and file:line."""
    code = snapshot.strategies.get(plan.strategy)
    if code is None:
        raise StrategyError(f"strategy file {plan.strategy} not found", plan=plan.name, file=plan.strategy)
    return plan_strategy(plan, code)
