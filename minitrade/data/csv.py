"""Daily prices from a folder of `TICKER.csv` files: offline, and what the embedded default uses.

A file has a `date` column (or the first column) and `open high low close [volume]` in any case.
`path: "package:sample_data"` means the prices shipped inside minitrade (see sample_data/README.md).
"""

from __future__ import annotations

import csv
import hashlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from minitrade.errors import DataError, DataStale
from minitrade.models import CsvSource

if TYPE_CHECKING:  # pandas is imported when prices are read: `plan` probes last bars without it
    import pandas as pd

_cache: dict[tuple[str, int, int], pd.DataFrame] = {}
_digests: dict[tuple[str, int, int], str] = {}
_last_bars: dict[tuple[str, int, int], date | None] = {}


class CsvDataSource:
    """Reads `<folder>/<TICKER>.csv`; the folder is relative to the trading repo root."""

    def __init__(self, name: str, spec: CsvSource, *, root: Path) -> None:
        self.name = name
        self.folder = spec.folder(root)

    def __repr__(self) -> str:
        return f"CsvDataSource({self.name!r}, folder={str(self.folder)!r})"

    def tickers(self) -> list[str]:
        """Tickers that have a file in the folder."""
        return sorted(p.stem for p in self.folder.glob("*.csv"))

    def daily(self, ticker: str, start: date, end: date | None = None) -> pd.DataFrame:
        """Bars of `ticker` from `start` to `end` inclusive (all remaining if None), canonical."""
        frame = self._read(ticker)
        import pandas as pd

        first, last = frame.index[0].date(), frame.index[-1].date()
        window = frame.loc[pd.Timestamp(start):pd.Timestamp(end) if end is not None else None]
        if window.empty:
            message = (f"no prices from {start} to {end or 'the end'} in {self.folder / ticker}.csv "
                       f"(it has {first}..{last})")
            if start > last:  # the file ends before the window: it is behind, not wrong
                raise DataStale(message, source=self.name, ticker=ticker, last_bar=last)
            raise DataError(message, source=self.name, ticker=ticker)
        return window.copy()

    def digest(self, ticker: str) -> str | None:
        """sha256 of the ticker's file (None if there is none): the cache re-reads it whole on a change."""
        path = self.folder / f"{ticker}.csv"
        try:
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in _digests:
                _digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
        return _digests[key]

    def last_bar(self, ticker: str) -> date | None:
        """The date of the file's last bar, read with the csv module (no pandas); None when the file
        is missing or its dates are not ISO (then `daily` is the way to ask, and says what is wrong)."""
        path = self.folder / f"{ticker}.csv"
        try:
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in _last_bars:
                _last_bars[key] = _last_iso_date(path)
        except (OSError, ValueError, csv.Error):  # unreadable, not UTF-8, not csv: `daily` says what
            return None
        return _last_bars[key]

    def _read(self, ticker: str) -> pd.DataFrame:
        path = self.folder / f"{ticker}.csv"
        try:
            stat = path.stat()
        except FileNotFoundError:
            known = ", ".join(self.tickers()[:20]) or "none"
            raise DataError(f"no price file {path} (tickers in that folder: {known})",
                            source=self.name, ticker=ticker) from None
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _cache:
            import pandas as pd  # here, not at the top: a missing file or a last bar needs no pandas

            from minitrade.data.base import canonical

            try:
                raw = pd.read_csv(path)
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read {path}: {e}", source=self.name, ticker=ticker) from e
            lower = {str(c).strip().lower(): c for c in raw.columns}
            date_col = lower.get("date", raw.columns[0] if len(raw.columns) else None)
            if date_col is None:
                raise DataError(f"{path} has no columns", source=self.name, ticker=ticker)
            try:
                index = pd.to_datetime(raw[date_col])
            except (ValueError, TypeError) as e:
                raise DataError(f"{path}: bad dates in column {date_col!r}: {e}",
                                source=self.name, ticker=ticker) from e
            raw = raw.drop(columns=[date_col]).set_index(pd.DatetimeIndex(index))
            _cache[key] = canonical(raw, source=self.name, ticker=ticker)
        return _cache[key]


def _last_iso_date(path: Path) -> date | None:
    """The latest date in the file's `date` column (or its first), or None if one is not ISO."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = [c.strip().lower() for c in next(rows, [])]
        column = header.index("date") if "date" in header else 0
        last: date | None = None
        for row in rows:
            if not row:
                continue
            try:
                day = date.fromisoformat(row[column].strip()[:10])
            except (ValueError, IndexError):
                return None
            last = day if last is None or day > last else last
    return last
