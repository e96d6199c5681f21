"""Price data: sources that fetch daily OHLCV, and the DuckDB read-through cache."""
