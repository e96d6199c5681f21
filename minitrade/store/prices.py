"""SQL of the price cache (`prices`, `price_ranges`) and of the history runs used (`price_history`).

Every function takes a connection inside the caller's `Store.transaction()`, so a read-modify-write
of one ticker (the cache's refresh) commits or rolls back as a whole. Bars are written by
registering a DataFrame and `INSERT ... SELECT` (executemany is 1000x slower for bars).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pandas as pd

OHLCV = ["open", "high", "low", "close", "volume"]
OHLC = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class CachedRange:
    """Sessions from `first` to `last` are all cached and final for one source and ticker."""

    first: date
    last: date
    adjustment: str
    fetched_at: datetime


def cached_range(con: duckdb.DuckDBPyConnection, source: str, ticker: str) -> CachedRange | None:
    row = con.execute("SELECT first_date, last_date, adjustment, fetched_at FROM price_ranges "
                      "WHERE source = ? AND ticker = ?", [source, ticker]).fetchone()
    return CachedRange(row[0], row[1], row[2], row[3]) if row else None


def read_bars(con: duckdb.DuckDBPyConnection, source: str, ticker: str, start: date,
              end: date | None = None) -> pd.DataFrame:
    """Cached bars from start to end inclusive: index `date`, OHLCV columns and `partial`."""
    frame = con.execute(
        "SELECT date, open, high, low, close, volume, partial FROM prices "
        "WHERE source = ? AND ticker = ? AND date >= ? AND (? IS NULL OR date <= ?) ORDER BY date",
        [source, ticker, start, end, end]).df()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame.set_index("date")


def write_bars(con: duckdb.DuckDBPyConnection, source: str, ticker: str, bars: pd.DataFrame, *,
               replace_from: date | None, replace_to: date | None, adjustment: str,
               covered: tuple[date, date] | None, fetched_at: datetime) -> None:
    """Replace the cached bars of one ticker between two dates (all of them if both are None).

    `bars` has a date index, OHLCV columns and an optional bool `partial`. `covered` is the new
    complete-and-final range recorded in price_ranges (None leaves it unchanged).
    """
    con.execute("DELETE FROM prices WHERE source = ? AND ticker = ? AND (? IS NULL OR date >= ?) "
                "AND (? IS NULL OR date <= ?)",
                [source, ticker, replace_from, replace_from, replace_to, replace_to])
    if len(bars):
        rows = bars[OHLCV].copy()
        rows["partial"] = bars["partial"].astype(bool) if "partial" in bars else False
        rows.insert(0, "date", pd.DatetimeIndex(bars.index).date)
        con.register("new_bars", rows)
        try:
            con.execute("INSERT INTO prices (source, ticker, date, open, high, low, close, volume, "
                        "adjustment, partial, fetched_at) "
                        "SELECT ?, ?, date, open, high, low, close, volume, ?, partial, ? FROM new_bars",
                        [source, ticker, adjustment, fetched_at])
        finally:
            con.unregister("new_bars")
    if covered is not None:
        con.execute("INSERT OR REPLACE INTO price_ranges (source, ticker, first_date, last_date, adjustment, "
                    "fetched_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [source, ticker, covered[0], covered[1], adjustment, fetched_at])


def forget(con: duckdb.DuckDBPyConnection, source: str, ticker: str | None = None) -> int:
    """Drop cached bars of a source (or one ticker of it); returns how many bars went."""
    where, args = ("source = ?", [source]) if ticker is None else ("source = ? AND ticker = ?", [source, ticker])
    row = con.execute(f"SELECT count(*) FROM prices WHERE {where}", args).fetchone()
    con.execute(f"DELETE FROM prices WHERE {where}", args)
    con.execute(f"DELETE FROM price_ranges WHERE {where}", args)
    return int(row[0]) if row else 0


# -- price_history: what each plan's last run used --------------------------------------------

def read_history(con: duckdb.DuckDBPyConnection, plan: str) -> pd.DataFrame:
    """The bars a plan's previous run recorded: columns ticker, date, open, high, low, close, run_id."""
    frame = con.execute("SELECT ticker, date, open, high, low, close, run_id FROM price_history "
                        "WHERE plan = ? ORDER BY ticker, date", [plan]).df()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame


def write_history(con: duckdb.DuckDBPyConnection, plan: str, run_id: str, rows: pd.DataFrame) -> None:
    """Replace a plan's recorded history; `rows` has columns ticker, date, open, high, low, close."""
    con.execute("DELETE FROM price_history WHERE plan = ?", [plan])
    if not len(rows):
        return
    table = rows[["ticker", "date", *OHLC]].copy()
    table["date"] = pd.DatetimeIndex(table["date"]).date
    con.register("used_bars", table)
    try:
        con.execute("INSERT INTO price_history (plan, ticker, date, open, high, low, close, run_id) "
                    "SELECT ?, ticker, date, open, high, low, close, ? FROM used_bars", [plan, run_id])
    finally:
        con.unregister("used_bars")


def forget_history(con: duckdb.DuckDBPyConnection, plan: str) -> None:
    """Drop a plan's recorded history (a new plan, or the person accepted the changed prices)."""
    con.execute("DELETE FROM price_history WHERE plan = ?", [plan])
