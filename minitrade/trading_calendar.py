"""Trading sessions per exchange (exchange_calendars), cached, with their open and close times.

exchange_calendars fails loudly past the years whose holidays it knows (XSHG: 2026), which is
safer than silently treating every weekday as a session; we ask for as far ahead as each
calendar knows and report when that end comes near.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from minitrade.errors import ConfigError, ConfigIssue

_lock = threading.Lock()


@dataclass(frozen=True)
class Session:
    """One trading day: its date and its open/close as aware datetimes in the exchange tz."""

    day: date
    open: datetime
    close: datetime
    early_close: bool


class TradingCalendar:
    """Sessions of one exchange, precomputed for fast lookups."""

    def __init__(self, code: str, cal: Any) -> None:
        self.code = code
        self.tz = ZoneInfo(str(cal.tz))
        self._days: list[date] = [d.date() for d in cal.sessions]
        self._index = {d: i for i, d in enumerate(self._days)}
        opens = cal.opens.dt.tz_convert(str(cal.tz))
        closes = cal.closes.dt.tz_convert(str(cal.tz))
        self._opens = [ts.to_pydatetime() for ts in opens]
        self._closes = [ts.to_pydatetime() for ts in closes]
        early = getattr(cal, "early_closes", pd.DatetimeIndex([]))
        self._early = {ts.date() for ts in early}
        regular = [c.time() for d, c in zip(self._days, self._closes, strict=True) if d not in self._early]
        self.regular_close = max(set(regular), key=regular.count)

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
    """The calendar for an exchange_calendars code, as far ahead as its holiday data goes."""
    import exchange_calendars as xcals

    with _lock, warnings.catch_warnings():
        # exchange_calendars trips pandas 3 deprecations internally; they are not ours to fix.
        warnings.simplefilter("ignore")
        start = pd.Timestamp(date.today() - timedelta(days=366 * 30))
        end = pd.Timestamp(date.today() + timedelta(days=366 * 3))
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
        return TradingCalendar(code, cal)
