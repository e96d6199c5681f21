"""The public strategy API: `minitrade.Strategy` and the `@entry_strategy` marker.

A strategy file in `strategies/` subclasses `minitrade.Strategy` (or plain `backtrader.Strategy`)::

    from minitrade import Strategy

    class Rotation(Strategy):
        params = (("lookback", 20),)          # plan.params override these by name

        def next(self):
            if self.now.month == self.last_month:   # rebalance once a month
                return
            ...
            self.rebalance({"SPY": 0.6, "TLT": 0.4}, cash_buffer=0.02)

The engine puts a `StrategyContext` on the cerebro (`self.env`) before it runs; outside the
engine (a hand-made Cerebro) the helpers fall back to backtrader's own lookups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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

    def rebalance(self, weights: Mapping[str, float], cash_buffer: float = 0.0) -> dict[str, int]:
        """Hold each ticker at its weight of the portfolio's value, in whole shares; sells first.

        The portfolio's value now (cash plus holdings at this bar's closes) less `cash_buffer`
        (a fraction kept in cash: commissions, and TOO fills at the next open) is split by
        `weights`; each target is `floor(value * (1 - cash_buffer) * weight / close)` shares.
        Universe tickers not named go to zero. Sells are placed before buys, so the cash they free
        pays for the buys at the same fill (backtrader checks cash order by order). The orders are
        market orders, so they become the plan's TOO/TOC/TRG orders like any `buy`/`sell`.
        Weights are >= 0 and sum to at most 1. Returns the target shares by ticker.

        >>> self.rebalance({"SPY": 0.6, "TLT": 0.4}, cash_buffer=0.02)   # doctest: +SKIP
        {'SPY': 11, 'TLT': 43, 'GLD': 0}
        """
        self._check_weights(weights, cash_buffer)
        investable = float(self.broker.getvalue()) * (1.0 - cash_buffer)
        targets: dict[str, int] = {}
        changes: dict[str, float] = {}
        for ticker in [*self.tickers, *(t for t in weights if t not in self.tickers)]:
            data = self.data_of(ticker)  # a ticker outside the universe is a StrategyError here
            weight = float(weights.get(ticker, 0.0))
            targets[ticker] = self._whole_shares(ticker, data, investable * weight) if weight > 0 else 0
            changes[ticker] = targets[ticker] - self.position_of(ticker)
        for ticker, change in changes.items():
            if change < 0:
                self.sell(data=self.data_of(ticker), size=-change)
        for ticker, change in changes.items():
            if change > 0:
                self.buy(data=self.data_of(ticker), size=change)
        return targets

    def _check_weights(self, weights: Mapping[str, float], cash_buffer: float) -> None:
        plan = self.context.plan
        if not (isinstance(cash_buffer, (int, float)) and 0.0 <= cash_buffer < 1.0):
            raise StrategyError(f"rebalance: cash_buffer {cash_buffer!r} must be a fraction from 0 to "
                                "below 1 (0.02 keeps 2% in cash)", plan=plan)
        for ticker, weight in weights.items():
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
                raise StrategyError(f"rebalance: weight {weight!r} of {ticker} must be a number >= 0", plan=plan)
        total = math.fsum(float(w) for w in weights.values())
        if total > 1.0 + 1e-9:
            raise StrategyError(f"rebalance: weights sum to {total:g}; they must sum to at most 1 "
                                "(divide each by their sum)", plan=plan)

    def _whole_shares(self, ticker: str, data: Any, amount: float) -> int:
        price = float(data.close[0]) if len(data) else math.nan
        if not (math.isfinite(price) and price > 0):
            raise StrategyError(f"rebalance: {ticker} has no price on {self.now} to size its weight; give "
                                "it weight 0 until its prices start", plan=self.context.plan)
        return int(math.floor(amount / price + 1e-9))
