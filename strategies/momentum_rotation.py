"""Monthly momentum rotation: on the first session of each month hold the `top` tickers with the
best return over `lookback` sessions (if positive), equally weighted; sell before buying."""

import backtrader as bt

from minitrade import Strategy


class MomentumRotation(Strategy):
    params = (("lookback", 63), ("top", 2), ("invest", 0.95))

    def __init__(self):
        self.momentum = {t: bt.ind.RateOfChange(self.data_of(t).close, period=self.p.lookback)
                         for t in self.tickers}
        self.month = None

    def next(self):
        if self.now.month == self.month:
            return
        self.month = self.now.month
        ranked = sorted(self.tickers, key=lambda t: self.momentum[t][0], reverse=True)
        winners = [t for t in ranked[: self.p.top] if self.momentum[t][0] > 0]
        # Whole shares of equal weights; the others are sold first, paying for the buys at the same close.
        self.rebalance({t: self.p.invest / len(winners) for t in winners})
