"""SMA crossover on one asset: all in when the fast average crosses above the slow one, out below."""

import backtrader as bt

from minitrade import Strategy


class SmaCrossover(Strategy):
    params = (("fast", 20), ("slow", 50), ("invest", 0.95))

    def __init__(self):
        fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow)

    def next(self):
        if self.cross > 0 and not self.position:
            self.order_target_percent(target=self.p.invest)
        elif self.cross < 0 and self.position:
            self.close()
