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
        budget = self.broker.getvalue() * self.p.invest / max(len(winners), 1)
        change = {}
        for ticker in self.tickers:
            price = self.data_of(ticker).close[0]
            target = int(budget // price) if ticker in winners else 0
            change[ticker] = target - self.position_of(ticker)
        # Sells first, so the cash they free pays for the buys at the same close.
        for ticker in sorted(change, key=change.get):
            if change[ticker] < 0:
                self.sell(data=self.data_of(ticker), size=-change[ticker])
            elif change[ticker] > 0:
                self.buy(data=self.data_of(ticker), size=change[ticker])
