"""One run of a plan: load the strategy, backtest it, turn today's decisions into orders."""
