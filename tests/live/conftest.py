"""A trading repo with one fast, deterministic plan for the live-loop tests."""

from __future__ import annotations

import pytest

ALTERNATE = '''import backtrader as bt


class Alternate(bt.Strategy):
    """Holds `size` shares on odd bars and none on even ones: an order every session."""

    params = (("size", 10),)

    def next(self):
        self.order_target_size(target=self.p.size if len(self) % 2 else 0)
'''

PLAN = """name: alt
strategy: strategies/alternate.py
universe: [AAPL]
data_source: samples
calendar: XNYS
backtest_start: 2012-11-01
trade_start: 2013-01-02
run_at: "15:45"
order_type: TOC
mode: strict
broker: manual
cash: 100000
trading: enabled
"""


@pytest.fixture
def live_repo(trading_repo):  # type: ignore[no-untyped-def]
    """Only the `alt` plan (the examples are slower and not needed here), committed."""
    for path in sorted((trading_repo.path / "plans").glob("*.yaml")):
        path.unlink()
    trading_repo.write("strategies/alternate.py", ALTERNATE)
    trading_repo.write("plans/alt.yaml", PLAN)
    trading_repo.commit("alt plan")
    return trading_repo
