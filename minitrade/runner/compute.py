"""The compute phase of a run: plain data in, plain data out, nothing else touched.

A run has three phases (DESIGN §5): *prepare* (the daemon reads the applied snapshot, cached
prices and the actual book), *compute* (this module: the strategy from its source text, the
backtest, today's intents, equity, trades, stats) and *commit* (the daemon records orders before
any broker call, then results). `compute` is pure: no DuckDB, no broker, no network, no checkout
of the trading repo. `RunInput` and `RunResult` are picklable plain data with a version, so any
executor can carry them: a worker process here, a worker on another machine later.

A failure of the user's code or data is a result (`error_kind` and `error`), never an exception
crossing the boundary, because exceptions with keyword state do not survive pickling intact;
`raise_for_error` turns it back into the typed error on the committing side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from minitrade.errors import DataError, MinitradeError, RunKilled, RunTimedOut, StrategyError
from minitrade.models import Plan
from minitrade.runner.backtest import BacktestResult, run_backtest
from minitrade.runner.strategy import load_strategy

RUN_IO_VERSION = 1

ERROR_TYPES: dict[str, type[MinitradeError]] = {
    "strategy": StrategyError, "data": DataError, "timeout": RunTimedOut, "killed": RunKilled,
    "interrupted": RunKilled, "memory": RunKilled,
}


@dataclass(frozen=True)
class RunInput:
    """Everything the compute phase of one run needs, and nothing it could write to."""

    run_id: str
    plan: Plan
    strategy_source: str
    prices: dict[str, pd.DataFrame]
    cash: float
    positions: dict[str, float]
    trade_start: date | None
    commission: float
    end: date | None
    frozen_before: date | None
    storage: dict[str, Any] | None = None
    timeout: float = 300.0
    version: int = RUN_IO_VERSION


@dataclass(frozen=True)
class RunResult:
    """What the compute phase produced: the backtest, the strategy's storage, its captured output."""

    run_id: str
    backtest: BacktestResult | None = None
    storage: dict[str, Any] | None = None
    error_kind: str | None = None      # strategy | data | memory | timeout | killed | interrupted
    error: str | None = None
    output: str = ""                   # the strategy's stdout/stderr, first and last part kept
    output_bytes: int = 0              # how much it printed in all
    seconds: float = 0.0
    cpu_seconds: float = 0.0           # the worker process's CPU (user + system) for this unit, when it ran in one
    worker: str = "inline"
    version: int = field(default=RUN_IO_VERSION)

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def interrupted(self) -> bool:
        """Abandoned because the daemon is stopping: not the plan's failure, resumed later."""
        return self.error_kind == "interrupted"


def compute(inp: RunInput) -> RunResult:
    """Load the plan's strategy from its source text and backtest it on the given prices."""
    if inp.version != RUN_IO_VERSION:
        return RunResult(inp.run_id, error_kind="killed",
                         error=f"run input version {inp.version}; this worker speaks {RUN_IO_VERSION}")
    started = time.perf_counter()
    storage = dict(inp.storage) if inp.storage is not None else None
    try:
        strategy = plan_strategy(inp.plan, inp.strategy_source)
        result = run_backtest(inp.plan, inp.prices, strategy, cash=inp.cash, positions=inp.positions,
                              trade_start=inp.trade_start, commission=inp.commission, storage=storage,
                              end=inp.end, frozen_before=inp.frozen_before)
    except StrategyError as e:  # a strategy that ran out of memory hit the run's cap, not a bug of its own
        kind = "memory" if isinstance(e.__cause__, MemoryError) else "strategy"
        return RunResult(inp.run_id, error_kind=kind, error=str(e), seconds=time.perf_counter() - started)
    except MemoryError:
        return RunResult(inp.run_id, error_kind="memory", error="out of memory",
                         seconds=time.perf_counter() - started)
    except DataError as e:
        return RunResult(inp.run_id, error_kind="data", error=str(e), seconds=time.perf_counter() - started)
    return RunResult(inp.run_id, backtest=result, storage=storage, seconds=time.perf_counter() - started)


def plan_strategy(plan: Plan, source: str) -> type:
    """The strategy class `plan` runs, compiled from `source`; errors name the plan and file:line."""
    try:
        return load_strategy(source, plan.strategy, plan.class_name, owner=plan.name)
    except StrategyError as e:
        where = f"{e.file}:{e.line}: " if e.file and e.line else (f"{e.file}: " if e.file else "")
        raise StrategyError(str(e).removeprefix(where), plan=plan.name, file=e.file, line=e.line) from e


def raise_for_error(result: RunResult) -> BacktestResult:
    """The result's backtest, or its failure as the typed error it was (StrategyError, RunTimedOut...)."""
    if result.error_kind is not None or result.backtest is None:
        cls = ERROR_TYPES.get(result.error_kind or "killed", RunKilled)
        raise cls(result.error or "the run produced no result")
    return result.backtest
