"""The DataSource protocol and the canonical daily OHLCV frame every source returns.

Canonical frame, one per ticker: index `date` (tz-naive midnight `datetime64`, one row per
session, ascending, unique), float columns `open high low close volume`. Exchanges' dates are
local dates: a Shanghai bar dated 2020-01-02 is labelled 2020-01-02, never shifted through UTC.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd

from minitrade.errors import DataError

COLUMNS = ["open", "high", "low", "close", "volume"]
RANGE_RTOL = 1e-6  # relative slack when checking low <= open, close <= high


class DataSource(Protocol):
    """Anything that can fetch daily bars for one ticker.

    Optional, read by the price cache: `digest(ticker) -> str | None` (a local source: its file is
    read whole again when the digest changes) and `verify_every: timedelta` (a remote source: its
    whole history is fetched again that often). A window with no bars after the source's last one
    raises DataStale (its `last_bar` when known), any other failure DataError.
    """

    name: str

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Daily bars of `ticker` from `start` to `end` (inclusive; today if None), canonical."""
        ...


def canonical(frame: pd.DataFrame, *, source: str, ticker: str) -> pd.DataFrame:
    """Check and normalise a frame to the canonical shape, or raise DataError naming the ticker.

    Accepts any column case (`Open`, `open`); drops timezone without shifting dates.
    """
    if frame is None or len(frame) == 0:
        raise DataError("no prices returned", source=source, ticker=ticker)
    renamed = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    missing = [c for c in COLUMNS if c not in renamed.columns]
    if "volume" in missing:
        renamed["volume"] = 0.0
        missing.remove("volume")
    if missing:
        raise DataError(f"missing columns {missing}", source=source, ticker=ticker)
    out = renamed[COLUMNS].apply(pd.to_numeric, errors="coerce").astype("float64")
    index = pd.DatetimeIndex(out.index)
    if index.tz is not None:
        index = index.tz_localize(None)  # keep the local wall date: no shift through UTC
    out.index = index.normalize().as_unit("ns")
    out.index.name = "date"
    if out.index.has_duplicates:
        dups = sorted({d.date().isoformat() for d in out.index[out.index.duplicated()]})
        raise DataError(f"duplicated dates {', '.join(dups[:5])}", source=source, ticker=ticker)
    if not out.index.is_monotonic_increasing:
        out = out.sort_index()
    prices = out[["open", "high", "low", "close"]]
    bad = prices.isna().any(axis=1) | ~np.isfinite(prices).all(axis=1)
    if bad.any():
        days = ", ".join(d.date().isoformat() for d in out.index[bad][:5])
        raise DataError(f"{int(bad.sum())} bars with missing prices (e.g. {days})", source=source, ticker=ticker)
    nonpositive = (prices <= 0).any(axis=1)
    if nonpositive.any():
        days = ", ".join(d.date().isoformat() for d in out.index[nonpositive][:5])
        raise DataError(f"zero or negative prices on {days}", source=source, ticker=ticker)
    _check_ranges(out, source=source, ticker=ticker)
    out["volume"] = out["volume"].fillna(0.0)
    return out


def _check_ranges(out: pd.DataFrame, *, source: str, ticker: str) -> None:
    """Refuse bars whose high is below their low, open or close, or whose low is above open or close."""
    o, h, lo, c = (out[col].to_numpy() for col in ("open", "high", "low", "close"))
    slack = np.abs(h) * RANGE_RTOL  # float noise of adjusted prices, never a real inversion
    bad = (h + slack < np.maximum.reduce([lo, o, c])) | (lo - slack > np.minimum(o, c))
    if bad.any():
        first = int(np.argmax(bad))
        days = ", ".join(d.date().isoformat() for d in out.index[bad][:5])
        raise DataError(f"{int(bad.sum())} bar(s) with high below low/open/close or low above open/close "
                        f"on {days} (first: open {o[first]:g} high {h[first]:g} low {lo[first]:g} close "
                        f"{c[first]:g}); fix the source's data", source=source, ticker=ticker)
