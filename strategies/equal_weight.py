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
        # Trims the overweight tickers before topping up the others, in whole shares.
        self.rebalance({t: self.p.invest / len(self.tickers) for t in self.tickers})
