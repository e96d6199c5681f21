"""Convert bokeh-sampledata's daily stock prices into minitrade/sample_data/TICKER.csv (run once).

The embedded default trading repo backtests offline on these files. They were made with:

    pip install bokeh-sampledata        # only to run this script; not a minitrade dependency
    python scripts/make_sample_data.py  # or: python scripts/make_sample_data.py PATH/stocks.csv.gz

Source: bokeh_sampledata/_data/stocks.csv.gz (Quandl WIKI Prices, declared public domain by Quandl).
Open/high/low/close in the source are unadjusted; we scale them by adj_close/close so splits and
dividends do not show up as price jumps, and scale volume the other way (shares in today's terms).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

TICKERS = ("AAPL", "IBM", "MSFT", "GOOG")
OUT = Path(__file__).resolve().parent.parent / "minitrade" / "sample_data"


def source_file() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    import bokeh_sampledata  # type: ignore[import-not-found]

    return Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz"


def convert(raw: pd.DataFrame, ticker: str) -> pd.DataFrame:
    rows = raw[raw["Ticker"] == ticker].copy()
    rows["Date"] = pd.to_datetime(rows["Date"])
    rows = rows.sort_values("Date").drop_duplicates("Date")
    factor = rows["Adj Close"] / rows["Close"]
    out = pd.DataFrame({"date": rows["Date"].dt.strftime("%Y-%m-%d")})
    for col in ("Open", "High", "Low", "Close"):
        out[col.lower()] = (rows[col] * factor).round(4)
    out["volume"] = (rows["Volume"] / factor).round().astype("int64")
    return out


def main() -> None:
    raw = pd.read_csv(source_file())
    OUT.mkdir(parents=True, exist_ok=True)
    for ticker in TICKERS:
        frame = convert(raw, ticker)
        frame.to_csv(OUT / f"{ticker}.csv", index=False)
        print(f"{ticker}: {len(frame)} rows {frame['date'].iloc[0]}..{frame['date'].iloc[-1]}")


if __name__ == "__main__":
    main()
