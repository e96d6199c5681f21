"""When plans run: ticks per session from a plan's run_at specs and its exchange calendar. Pure.

A tick is (plan, scheduled time). Ticks fall only on sessions of the plan's calendar, at the
plan's clock times in the exchange's timezone (DST-safe: clock times are combined with each
day's own UTC offset). On an early-close day, ticks between the early close and the regular
close are dropped; ticks outside regular hours (e.g. evening runs for TOO orders) stay.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from minitrade.models import OrderType, Plan, parse_run_at
from minitrade.trading_calendar import TradingCalendar, get_calendar

CLOSE_AUCTION_CUTOFF = timedelta(minutes=10)  # NYSE MOC entry closes 15:50 for a 16:00 close
CALENDAR_WARNING_DAYS = 60


def plan_zone(plan: Plan, cal: TradingCalendar) -> ZoneInfo:
    return ZoneInfo(plan.timezone) if plan.timezone else cal.tz


def ticks_on(plan: Plan, day: date, cal: TradingCalendar | None = None) -> list[datetime]:
    """The plan's ticks on `day` (empty if `day` is not a session), as aware datetimes."""
    cal = cal or get_calendar(plan.calendar)
    if not cal.is_session(day):
        return []
    session = cal.session(day)
    tz = plan_zone(plan, cal)
    out = []
    for t in _run_times(tuple(plan.run_at)):
        at = datetime.combine(day, t, tzinfo=tz)
        if session.early_close:
            regular_close = datetime.combine(day, cal.regular_close, tzinfo=cal.tz)
            if session.close < at <= regular_close:
                continue
        out.append(at)
    return out


@lru_cache(maxsize=1024)
def _run_times(run_at: tuple[str, ...]) -> tuple[time, ...]:
    """Plan.run_times() by the plan's run_at specs: parsed once, not per plan per day per pass."""
    return tuple(sorted({t for spec in run_at for t in parse_run_at(spec)}))


def schedule_key(plan: Plan) -> tuple[str, str | None, tuple[str, ...]]:
    """What a plan's ticks depend on: plans with equal keys tick at the same moments."""
    return plan.calendar, plan.timezone, tuple(plan.run_at)


def next_run_times(plan: Plan, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` ticks strictly after `after` (fewer if the calendar ends first)."""
    cal = get_calendar(plan.calendar)
    tz = plan_zone(plan, cal)
    day: date | None = after.astimezone(tz).date() - timedelta(days=1)
    out: list[datetime] = []
    while len(out) < count and day is not None:
        day = cal.next_session_day(day + timedelta(days=1))
        if day is None:
            break
        out += [t for t in ticks_on(plan, day, cal) if t > after][: count - len(out)]
    return out


def due_ticks(plan: Plan, since: datetime, now: datetime) -> list[datetime]:
    """Ticks with since < tick <= now, oldest first."""
    cal = get_calendar(plan.calendar)
    tz = plan_zone(plan, cal)
    out: list[datetime] = []
    last = now.astimezone(tz).date()
    # session by session (bisect each): cal.sessions() scans every later day of the calendar
    day = cal.next_session_day(since.astimezone(tz).date())
    while day is not None and day <= last:
        out += [t for t in ticks_on(plan, day, cal) if since < t <= now]
        day = cal.next_session_day(day + timedelta(days=1))
    return out


def warnings_for(plan: Plan, today: date) -> list[str]:
    """Schedule problems worth telling the person before they bite."""
    cal = get_calendar(plan.calendar)
    out = []
    if plan.order_type is OrderType.TOC:
        cutoff = (datetime.combine(today, cal.regular_close) - CLOSE_AUCTION_CUTOFF).time()
        late = [t for t in plan.run_times() if cutoff < t]
        if late:
            out.append(f"TOC run time {late[0].isoformat()} is after the {plan.calendar} closing-auction "
                       f"cutoff ({cutoff.isoformat(timespec='minutes')}); market-on-close orders would be refused")
    if (cal.last_day - today).days <= CALENDAR_WARNING_DAYS:
        out.append(f"calendar {plan.calendar} has sessions only until {cal.last_day}; upgrade "
                   "exchange-calendars before then or the plan stops running")
    return out

