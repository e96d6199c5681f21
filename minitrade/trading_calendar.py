"""Trading sessions per exchange (exchange_calendars), cached, with their open and close times.

exchange_calendars fails loudly past the years whose holidays it knows (XSHG: 2026), which is
safer than silently treating every weekday as a session; we ask for as far ahead as each
calendar knows and report when that end comes near.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from minitrade.errors import ConfigError, ConfigIssue

_lock = threading.Lock()
CACHE_FORMAT = 1  # bump when the cached shape changes


@dataclass(frozen=True)
class Session:
    """One trading day: its date and its open/close as aware datetimes in the exchange tz."""

    day: date
    open: datetime
    close: datetime
    early_close: bool


class TradingCalendar:
    """Sessions of one exchange, precomputed for fast lookups."""

    def __init__(self, code: str, tz: str, days: list[date], opens: list[datetime], closes: list[datetime],
                 early: set[date]) -> None:
        self.code = code
        self.tz = ZoneInfo(tz)
        self._days, self._opens, self._closes, self._early = days, opens, closes, early
        self._index = {d: i for i, d in enumerate(self._days)}
        regular = [c.time() for d, c in zip(self._days, self._closes, strict=True) if d not in self._early]
        self.regular_close = max(set(regular), key=regular.count)

    @classmethod
    def from_exchange_calendar(cls, code: str, cal: Any) -> TradingCalendar:
        import pandas as pd

        tz = str(cal.tz)
        opens = cal.opens.dt.tz_convert(tz)
        closes = cal.closes.dt.tz_convert(tz)
        early = getattr(cal, "early_closes", pd.DatetimeIndex([]))
        return cls(code, tz, [d.date() for d in cal.sessions], [ts.to_pydatetime() for ts in opens],
                   [ts.to_pydatetime() for ts in closes], {ts.date() for ts in early})

    def to_json(self) -> str:
        return json.dumps({"format": CACHE_FORMAT, "code": self.code, "tz": str(self.tz),
                           "days": [d.isoformat() for d in self._days],
                           "opens": [t.isoformat() for t in self._opens],
                           "closes": [t.isoformat() for t in self._closes],
                           "early": sorted(d.isoformat() for d in self._early)})

    @classmethod
    def from_json(cls, text: str) -> TradingCalendar:
        raw = json.loads(text)
        if raw.get("format") != CACHE_FORMAT:
            raise ValueError("another cache format")
        return cls(raw["code"], raw["tz"], [date.fromisoformat(d) for d in raw["days"]],
                   [datetime.fromisoformat(t) for t in raw["opens"]],
                   [datetime.fromisoformat(t) for t in raw["closes"]], {date.fromisoformat(d) for d in raw["early"]})

    @property
    def first_day(self) -> date:
        return self._days[0]

    @property
    def last_day(self) -> date:
        """The last session this calendar knows; beyond it nothing can be scheduled."""
        return self._days[-1]

    def is_session(self, day: date) -> bool:
        return day in self._index

    def session(self, day: date) -> Session:
        i = self._index[day]
        return Session(day, self._opens[i], self._closes[i], day in self._early)

    def sessions(self, start: date, end: date) -> list[Session]:
        """Sessions from `start` to `end`, both inclusive."""
        return [self.session(d) for d in self._days[self._first_at_or_after(start):] if d <= end]

    def next_session_day(self, day: date) -> date | None:
        """The first session on or after `day`, or None past the calendar's end."""
        i = self._first_at_or_after(day)
        return self._days[i] if i < len(self._days) else None

    def previous_session_day(self, day: date) -> date | None:
        """The last session strictly before `day`."""
        i = self._first_at_or_after(day) - 1
        return self._days[i] if i >= 0 else None

    def _first_at_or_after(self, day: date) -> int:
        import bisect

        return bisect.bisect_left(self._days, day)


@lru_cache(maxsize=64)
def get_calendar(code: str) -> TradingCalendar:
    """The calendar for an exchange_calendars code, as far ahead as its holiday data goes.

    Building one costs about a second (importing exchange_calendars and computing 30 years of
    sessions), paid by every command that shows a next run. So a built calendar is kept in the
    user's cache folder, keyed by exchange_calendars' version and the years it covers, and read
    back in milliseconds; anything wrong with a cached file only means building it again.
    """
    today = date.today()
    start, end = date(today.year - 30, 1, 1), date(today.year + 3, 12, 31)
    path = _cache_file(code, start, end)
    if path is not None:
        try:
            return TradingCalendar.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    calendar = _build(code, start, end)
    if path is not None:
        _write_cache(path, calendar.to_json())
    return calendar


@lru_cache(maxsize=1)
def calendar_names() -> frozenset[str]:
    """Every exchange_calendars code and alias (for validating a plan's `calendar`), kept in the
    cache folder beside the calendars: `validate` and `plan` need the list, not the library's
    400 ms import."""
    path = _cached("names-{version}")
    if path is not None:
        try:
            names = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return frozenset(names)
        except (OSError, ValueError):
            pass
    import exchange_calendars as xcals

    found = frozenset(xcals.get_calendar_names(include_aliases=True))
    if path is not None:
        _write_cache(path, json.dumps(sorted(found)))
    return found


def _cache_file(code: str, start: date, end: date) -> Path | None:
    """Where the calendar `code` for these years is cached (None when it cannot be told)."""
    return _cached(f"{code}-{{version}}-{start.year}-{end.year}")


def _cached(template: str) -> Path | None:
    """The calendar cache's file named by `template`, exchange_calendars' version put in for
    `{version}` (a new version builds anew); None when that version cannot be told."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        xcals_version = version("exchange_calendars")
    except PackageNotFoundError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minitrade" / "calendars"
    return root / f"{template.format(version=xcals_version)}-v{CACHE_FORMAT}.json"


def _write_cache(path: Path, text: str) -> None:
    """Written whole or not at all (a rename), so a concurrent reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: every process builds its own, as before


def _build(code: str, first: date, last: date) -> TradingCalendar:
    import exchange_calendars as xcals
    import pandas as pd

    with _lock, warnings.catch_warnings():
        # exchange_calendars trips pandas 3 deprecations internally; they are not ours to fix.
        warnings.simplefilter("ignore")
        start, end = pd.Timestamp(first), pd.Timestamp(last)
        try:
            cal = xcals.get_calendar(code, start=start, end=end)
        except xcals.errors.InvalidCalendarName as e:
            raise ConfigError(ConfigIssue("calendar", None, code, "unknown exchange calendar")) from e
        except ValueError:
            # Outside the years this calendar knows (XTKS starts in 1997, XSHG ends in 2026):
            # clamp to its bounds, read from its class.
            try:
                kind = type(xcals.get_calendar(code))
                low, high = kind.bound_min(), kind.bound_max()
                cal = xcals.get_calendar(code, start=max(start, low) if low is not None else start,
                                         end=min(end, high) if high is not None else end)
            except Exception as e:
                raise ConfigError(ConfigIssue("calendar", None, code, f"cannot build calendar: {e}")) from e
        return TradingCalendar.from_exchange_calendar(code, cal)
