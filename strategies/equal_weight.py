"""Equal-weight buy and hold, rebalanced on the first session of each quarter."""

from minitrade import Strategy


class EqualWeightQuarterly(Strategy):
    params = (("invest", 0.98),)

    def __init__(self):
        self.quarter = None

    def next(self):
        quarter = (self.now.year, (self.now.month - 1) // 3)
        if quarter == self.quarter:
            return
        self.quarter = quarter
        weight = self.p.invest / len(self.tickers)
        # Trim the overweight tickers before topping up the others.
        values = {t: self.position_of(t) * self.data_of(t).close[0] for t in self.tickers}
        for ticker in sorted(self.tickers, key=lambda t: -values[t]):
            self.order_target_percent(data=self.data_of(ticker), target=weight)
