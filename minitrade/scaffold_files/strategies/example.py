"""Example: all in when the fast SMA crosses above the slow one, all out when it crosses below."""

import backtrader as bt

from minitrade import Strategy


class SmaCross(Strategy):
    params = (("fast", 10), ("slow", 30), ("invest", 0.95))

    def __init__(self):
        fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.indicators.CrossOver(fast, slow)

    def next(self):
        if not self.position and self.cross > 0:
            self.rebalance({self.tickers[0]: self.p.invest})  # whole shares, 5% kept in cash
        elif self.position and self.cross < 0:
            self.rebalance({})  # every ticker not named goes to zero
