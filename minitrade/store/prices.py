"""SQL of the price cache (`prices`, `price_ranges`, `price_checks`) and of the history runs used.

Every function takes a connection inside the caller's `Store.transaction()`, so a read-modify-write
of one ticker (the cache's refresh) commits or rolls back as a whole. Bars are written by
registering a DataFrame and `INSERT ... SELECT` (executemany is 1000x slower for bars).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pandas as pd

from minitrade.store.frames import insert_frame, insert_rows

OHLCV = ["open", "high", "low", "close", "volume"]
OHLC = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class CachedRange:
    """Sessions from `first` to `last` are all cached and final for one source and ticker."""

    first: date
    last: date
    adjustment: str
    fetched_at: datetime


def cached_ranges(con: duckdb.DuckDBPyConnection, source: str, tickers: list[str]) -> dict[str, CachedRange]:
    rows = con.execute("SELECT ticker, first_date, last_date, adjustment, fetched_at FROM price_ranges "
                       "WHERE source = ? AND list_contains(?, ticker)", [source, tickers]).fetchall()
    return {row[0]: CachedRange(row[1], row[2], row[3], row[4]) for row in rows}


@dataclass(frozen=True)
class PriceCheck:
    """How the cache last checked one ticker's whole history (see schema V2)."""

    digest: str | None
    verified_at: datetime | None


def price_checks(con: duckdb.DuckDBPyConnection, source: str, tickers: list[str]) -> dict[str, PriceCheck]:
    rows = con.execute("SELECT ticker, digest, verified_at FROM price_checks "
                       "WHERE source = ? AND list_contains(?, ticker)", [source, tickers]).fetchall()
    return {row[0]: PriceCheck(row[1], row[2]) for row in rows}


def write_checks(con: duckdb.DuckDBPyConnection, source: str,
                 items: list[tuple[str, str | None, datetime]]) -> None:
    """Record (ticker, digest, verified_at) after the whole history of each ticker was read again."""
    insert_rows(con, "price_checks", ["source", "ticker", "digest", "verified_at"],
                [[source, t, d, v] for t, (d, v) in {t: (d, v) for t, d, v in items}.items()], verb="INSERT OR REPLACE")


def last_dates(con: duckdb.DuckDBPyConnection, source: str, tickers: list[str]) -> dict[str, date]:
    """The date of each ticker's last cached bar; tickers without bars are absent."""
    rows = con.execute("SELECT ticker, max(date) FROM prices WHERE source = ? AND list_contains(?, ticker) "
                       "GROUP BY ticker", [source, tickers]).fetchall()
    return {row[0]: row[1] for row in rows}


def closes_as_of(con: duckdb.DuckDBPyConnection, source: str, tickers: list[str],
                 day: date | None = None) -> dict[str, tuple[date, float]]:
    """Each ticker's last cached close on or before `day` (None: the latest, a partial bar included),
    with its date; tickers without such a bar are absent."""
    rows = con.execute("SELECT ticker, max(date), arg_max(close, date) FROM prices WHERE source = ? "
                       "AND list_contains(?, ticker) AND (? IS NULL OR date <= ?) GROUP BY ticker",
                       [source, tickers, day, day]).fetchall()
    return {str(r[0]): (r[1], float(r[2])) for r in rows}


def read_many(con: duckdb.DuckDBPyConnection, source: str, tickers: list[str], start: date,
              end: date | None = None) -> dict[str, pd.DataFrame]:
    """Cached bars of `tickers` from start to end inclusive, in one query: per ticker a frame indexed by
    `date` with OHLCV columns and `partial`; tickers without bars are absent."""
    frame = con.execute(
        "SELECT ticker, date, open, high, low, close, volume, partial FROM prices "
        "WHERE source = ? AND list_contains(?, ticker) AND date >= ? AND (? IS NULL OR date <= ?) "
        "ORDER BY ticker, date", [source, tickers, start, end, end]).df()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame = frame.set_index("date")
    return {str(ticker): part.drop(columns="ticker") for ticker, part in frame.groupby("ticker", sort=False)}


def write_many(con: duckdb.DuckDBPyConnection, source: str,
               items: list[tuple[str, pd.DataFrame, date | None, tuple[date, date] | None]], *,
               adjustment: str, fetched_at: datetime) -> None:
    """Replace cached bars of several tickers with three statements, whatever their number.

    Each item is (ticker, bars, replace_from, covered): the ticker's bars from `replace_from` on
    (all of them if None) are replaced by `bars` (date index, OHLCV, optional bool `partial`);
    `covered` is its new complete-and-final range for price_ranges (None leaves it unchanged).
    """
    if not items:
        return
    cuts = pd.DataFrame({"ticker": [t for t, _, _, _ in items],
                         "cut_from": pd.Series([f for _, _, f, _ in items], dtype="object")})
    parts = []
    for ticker, bars, _, _ in items:
        rows = bars[OHLCV].copy()
        rows["partial"] = bars["partial"].astype(bool) if "partial" in bars else False
        rows.insert(0, "date", pd.DatetimeIndex(bars.index).date)
        rows.insert(0, "ticker", ticker)
        parts.append(rows.reset_index(drop=True))
    ranges = pd.DataFrame([(t, c[0], c[1]) for t, _, _, c in items if c is not None],
                          columns=["ticker", "first_date", "last_date"])
    con.register("cuts", cuts)
    con.register("new_bars", pd.concat(parts, ignore_index=True))
    con.register("new_ranges", ranges)
    try:
        con.execute("DELETE FROM prices WHERE source = ? AND EXISTS (SELECT 1 FROM cuts "
                    "WHERE cuts.ticker = prices.ticker AND (cuts.cut_from IS NULL "
                    "OR prices.date >= CAST(cuts.cut_from AS DATE)))", [source])
        con.execute("INSERT INTO prices (source, ticker, date, open, high, low, close, volume, adjustment, "
                    "partial, fetched_at) SELECT ?, ticker, date, open, high, low, close, volume, ?, partial, ? "
                    "FROM new_bars", [source, adjustment, fetched_at])
        con.execute("INSERT OR REPLACE INTO price_ranges (source, ticker, first_date, last_date, adjustment, "
                    "fetched_at) SELECT ?, ticker, first_date, last_date, ?, ? FROM new_ranges",
                    [source, adjustment, fetched_at])
    finally:
        for name in ("cuts", "new_bars", "new_ranges"):
            con.unregister(name)


# -- price_history: the final bars each plan's runs used -----------------------------------------

def read_histories(con: duckdb.DuckDBPyConnection, plans: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The bars each plan's runs recorded, in one query: columns ticker, date, open, high, low, close,
    run_id (the run that first recorded the bar); a plan with nothing recorded gets an empty frame."""
    frame = con.execute("SELECT plan, ticker, date, open, high, low, close, run_id FROM price_history "
                        "WHERE list_contains(?, plan) ORDER BY plan, ticker, date", [list(plans)]).df()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    parts = {str(plan): part.drop(columns="plan").reset_index(drop=True)
             for plan, part in frame.groupby("plan", sort=False)}
    empty = frame.drop(columns="plan").iloc[:0]
    return {plan: parts.get(plan, empty) for plan in plans}


def history_spans(con: duckdb.DuckDBPyConnection, plans: Sequence[str]) -> dict[str, dict[str, tuple[date, date, int]]]:
    """Per plan and ticker of the plans' recorded history: its first and last date and how many bars."""
    rows = con.execute("SELECT plan, ticker, min(date), max(date), count(*) FROM price_history "
                       "WHERE list_contains(?, plan) GROUP BY plan, ticker", [list(plans)]).fetchall()
    spans: dict[str, dict[str, tuple[date, date, int]]] = {p: {} for p in plans}
    for plan, ticker, first, last, count in rows:
        spans[str(plan)][str(ticker)] = (first, last, int(count))
    return spans


def append_history(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, *, fill_gaps: pd.DataFrame | None = None,
                   drop: Sequence[tuple[str, str]] = ()) -> None:
    """Add bars to plans' recorded history without rewriting what is there, in one insert for them all.

    `rows` (plan, ticker, date, OHLC, run_id) must be new to the history; `fill_gaps` may hold bars
    some of which are recorded already (those are left as they are); the (plan, ticker) in `drop`
    are forgotten.
    """
    for plan, ticker in drop:
        con.execute("DELETE FROM price_history WHERE plan = ? AND ticker = ?", [plan, ticker])
    for frame, verb in ((rows, "INSERT"), (fill_gaps, "INSERT OR IGNORE")):
        if frame is None or not len(frame):
            continue
        table = frame[["plan", "ticker", "date", *OHLC, "run_id"]].copy()
        table["date"] = pd.DatetimeIndex(table["date"]).date
        insert_frame(con, "price_history", table, ["plan", "ticker", "date", *OHLC, "run_id"], verb=verb)


def forget_history(con: duckdb.DuckDBPyConnection, plan: str) -> None:
    """Drop a plan's recorded history (a new plan, or the person accepted the changed prices)."""
    con.execute("DELETE FROM price_history WHERE plan = ?", [plan])
