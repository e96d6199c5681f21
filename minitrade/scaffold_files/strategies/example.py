"""Example: buy when the fast SMA crosses above the slow one, sell when it crosses below."""

import backtrader as bt


class SmaCross(bt.Strategy):
    params = (("fast", 10), ("slow", 30))

    def __init__(self):
        fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.indicators.CrossOver(fast, slow)

    def next(self):
        if not self.position and self.cross > 0:
            self.buy(size=int(self.broker.getcash() * 0.95 / self.data.close[0]))
        elif self.position and self.cross < 0:
            self.close()
