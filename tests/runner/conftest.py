"""Fixtures of the runner tests: plans built in code, hand-made and random-walk price frames."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from minitrade.models import Plan


def make_plan(**overrides: Any) -> Plan:
    spec: dict[str, Any] = {
        "name": "test-plan", "strategy": "strategies/test.py", "universe": ["AAA"],
        "data_source": "samples", "backtest_start": date(2024, 1, 1), "run_at": ["15:45"],
        "order_type": "TOC", "cash": 10_000,
    }
    spec.update(overrides)
    return Plan.model_validate(spec)


def bars(opens: list[float], closes: list[float], start: str = "2024-01-02",
         dates: list[str] | None = None) -> pd.DataFrame:
    """A daily frame with the given opens and closes (high/low bracket them)."""
    index = pd.DatetimeIndex(dates) if dates else pd.bdate_range(start, periods=len(opens))
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) + 0.5, "low": np.minimum(o, c) - 0.5,
                         "close": c, "volume": 1000.0}, index=index)


def random_walk(n: int, seed: int, start: str = "2020-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.004, n)))
    index = pd.bdate_range(start, periods=n)
    return pd.DataFrame({"open": open_.round(4), "high": high.round(4), "low": low.round(4),
                         "close": close.round(4), "volume": rng.integers(1_000, 100_000, n).astype(float)},
                        index=index)


# A strategy that buys `size` shares of `ticker` on bar `buy_at` and sells them on bar `sell_at`
# (1-based bar numbers), for proving fill prices by hand.
SCRIPTED = '''
from minitrade import Strategy


class Scripted(Strategy):
    params = (("ticker", "AAA"), ("buy_at", 2), ("sell_at", 4), ("size", 10))

    def next(self):
        data = self.data_of(self.p.ticker)
        if len(self) == self.p.buy_at:
            self.buy(data=data, size=self.p.size)
        if len(self) == self.p.sell_at:
            self.sell(data=data, size=self.p.size)
'''

SMA_SOURCE = '''
import backtrader as bt


class SmaCross(bt.Strategy):
    params = (("fast", 5), ("slow", 15), ("size", 20))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(self.data.close, period=self.p.fast),
                                      bt.ind.SMA(self.data.close, period=self.p.slow))

    def next(self):
        if self.cross > 0 and not self.position:
            self.buy(size=self.p.size)
        elif self.cross < 0 and self.position:
            self.close()
'''


@pytest.fixture
def plan_factory() -> Any:
    return make_plan
