"""The public strategy API: `minitrade.Strategy` and the `@entry_strategy` marker.

A strategy file in `strategies/` subclasses `minitrade.Strategy` (or plain `backtrader.Strategy`)::

    from minitrade import Strategy

    class Rotation(Strategy):
        params = (("lookback", 20),)          # plan.params override these by name

        def next(self):
            if self.now.month == self.last_month:   # rebalance once a month
                return
            ...
            self.order_target_percent(data=self.data_of("SPY"), target=0.5)

The engine puts a `StrategyContext` on the cerebro (`self.env`) before it runs; outside the
engine (a hand-made Cerebro) the helpers fall back to backtrader's own lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import backtrader as bt

from minitrade.errors import StrategyError

T = TypeVar("T", bound=type)
CONTEXT_ATTR = "_minitrade_context"


def entry_strategy(cls: T) -> T:
    """Mark the class a file's plan runs when the file defines several strategies."""
    cls.__entry_strategy__ = True  # type: ignore[attr-defined]
    return cls


@dataclass
class StrategyContext:
    """What the engine hands a strategy: its plan, universe, starting positions and storage."""

    plan: str | None
    tickers: list[str]
    timezone: str | None = None
    positions: dict[str, float] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)


class Strategy(bt.Strategy):  # type: ignore[misc]
    """A backtrader strategy that knows its plan: data by ticker, `now`, positions, storage."""

    @property
    def context(self) -> StrategyContext:
        ctx = getattr(self.env, CONTEXT_ATTR, None)
        if ctx is None:  # run by hand in a plain Cerebro
            ctx = StrategyContext(plan=None, tickers=[d._name for d in self.datas])
            setattr(self.env, CONTEXT_ATTR, ctx)
        assert isinstance(ctx, StrategyContext)
        return ctx

    @property
    def tickers(self) -> list[str]:
        """The plan's universe, in plan order."""
        return list(self.context.tickers)

    @property
    def now(self) -> date:
        """The current bar's date, in the exchange's timezone (bars are dated by their session)."""
        day: date = bt.num2date(self.datetime[0]).date()
        return day

    @property
    def storage(self) -> dict[str, Any]:
        """A dict that the runner persists between runs of the plan (incremental mode)."""
        return self.context.storage

    @property
    def initial_positions(self) -> dict[str, float]:
        """Shares held before the backtest started (the plan's `positions`)."""
        return dict(self.context.positions)

    @property
    def by_ticker(self) -> dict[str, Any]:
        """Data feeds by ticker."""
        return {d._name: d for d in self.datas}

    def data_of(self, ticker: str) -> Any:
        """The data feed of `ticker`; a ticker outside the universe is a StrategyError."""
        for data in self.datas:
            if data._name == ticker:
                return data
        raise StrategyError(f"ticker {ticker!r} is not in the plan's universe "
                            f"({', '.join(self.tickers)})", plan=self.context.plan)

    def position_of(self, ticker: str) -> float:
        """Shares currently held of `ticker` (negative when short)."""
        return float(self.getposition(self.data_of(ticker)).size)
