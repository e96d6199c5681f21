"""When plans run: ticks per session from a plan's run_at specs and its exchange calendar. Pure.

A tick is (plan, scheduled time). Ticks fall only on sessions of the plan's calendar, at the
plan's clock times in the plan's timezone (DST-safe: clock times are combined with each day's own
UTC offset). A `{cron: "45 15 * * FRI"}` entry adds, on each session, the times its expression
names for that date in the plan's timezone (evaluated on the wall clock, like fixed times); a
time it names on a day that is not a session is skipped, never moved to another day.

Early closes (e.g. XNYS at 13:00 instead of 16:00, regular close C, early close E). A run time is
*touched* by the early close when its order could no longer be placed as on a regular day:
- TOC: after E's closing-auction cutoff (E - 10 min) and no later than C;
- TRG: after E and no later than C;
- TOO: never (a run after the early close makes an order for the next open, as intended).
Every other run time is kept: runs before that window, and evening runs after C. A touched run
follows the plan's `early_close`:
- `shift` (default): it runs earlier, keeping its distance to the close (t - (C - E): a TOC run
  at 15:45 becomes 12:45 on a 13:00 close, 13:30 becomes 10:30), but no later than 5 minutes
  before the window (TOC: 12:45, so 15:55 and 12:55 become 12:45; TRG: 12:55). A moved run that
  lands on another run time of the plan is one tick.
- `skip`: it does not run; the daemon records the tick SKIPPED at its regular time with the reason.
The daemon notifies both, and `minitrade plan` and the daemon warn 14 days ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from minitrade.models import CronSchedule, EarlyClose, OrderType, Plan, RunAtEntry, parse_run_at
from minitrade.trading_calendar import Session, TradingCalendar, get_calendar

GRACE = timedelta(minutes=3)  # a tick runs within this of its time or not at all; also what "the present" means
CLOSE_AUCTION_CUTOFF = timedelta(minutes=10)  # NYSE MOC entry closes 15:50 for a 16:00 close
RUN_LEAD = timedelta(minutes=5)  # time a moved run gets before the auction cutoff (15:45 for 15:50)
CALENDAR_WARNING_DAYS = 60
EARLY_CLOSE_WARNING_DAYS = 14


@dataclass(frozen=True)
class EarlyCloseTick:
    """One run time an early close touches: where it moves (shift) or that it is skipped."""

    plan: str
    planned: datetime            # the tick as on a regular day
    moved_to: datetime | None    # shift: when it runs instead; skip: None
    close: datetime              # the early close, in the exchange's timezone
    regular_close: datetime

    @property
    def reason(self) -> str:
        """Why the tick moved or is skipped, for the tick record and notifications."""
        day, close = self.close.date().isoformat(), self.close.strftime("%H:%M")
        regular = self.regular_close.strftime("%H:%M")
        if self.moved_to is None:
            return (f"early close on {day} ({close} instead of {regular}): run time "
                    f"{self.planned.strftime('%H:%M:%S')} skipped (plan early_close: skip)")
        return (f"early close on {day} ({close} instead of {regular}): run time "
                f"{self.planned.strftime('%H:%M:%S')} moved to {self.moved_to.strftime('%H:%M:%S')} "
                "(plan early_close: shift)")


def plan_zone(plan: Plan, cal: TradingCalendar) -> ZoneInfo:
    return ZoneInfo(plan.timezone) if plan.timezone else cal.tz


def ticks_on(plan: Plan, day: date, cal: TradingCalendar | None = None) -> list[datetime]:
    """The plan's ticks on `day` (empty if `day` is not a session), as aware datetimes, oldest first.

    On an early-close day, touched run times are moved (early_close: shift) or left out (skip);
    see the module docstring.
    """
    cal = cal or get_calendar(plan.calendar)
    if not cal.is_session(day):
        return []
    session = cal.session(day)
    tz = plan_zone(plan, cal)
    out = [datetime.combine(day, t, tzinfo=tz) for t in _times_on(tuple(plan.run_at), day)]
    if not session.early_close:
        return out
    touched = {c.planned: c.moved_to for c in _touched(plan, session, cal, out)}
    kept = {touched.get(t, t) for t in out}
    return sorted(t for t in kept if t is not None)


def early_close_ticks(plan: Plan, day: date, cal: TradingCalendar | None = None) -> list[EarlyCloseTick]:
    """The plan's run times on `day` that its early close moves or skips (none on a regular day)."""
    cal = cal or get_calendar(plan.calendar)
    if not cal.is_session(day):
        return []
    session = cal.session(day)
    if not session.early_close:
        return []
    tz = plan_zone(plan, cal)
    return _touched(plan, session, cal, [datetime.combine(day, t, tzinfo=tz)
                                         for t in _times_on(tuple(plan.run_at), day)])


def _touched(plan: Plan, session: Session, cal: TradingCalendar, ticks: list[datetime]) -> list[EarlyCloseTick]:
    close = session.close
    regular = datetime.combine(session.day, cal.regular_close, tzinfo=cal.tz)
    if close >= regular or plan.order_type is OrderType.TOO:
        return []  # a TOO run after the early close makes an order for the next open, as intended
    # a TOC order must be in before the closing auction's cutoff; a TRG order before the close
    start = close - CLOSE_AUCTION_CUTOFF if plan.order_type is OrderType.TOC else close
    latest = start - RUN_LEAD
    out = []
    for t in ticks:
        if not start < t <= regular:
            continue
        moved: datetime | None = None
        if plan.early_close is EarlyClose.SHIFT:
            # in UTC: aware arithmetic within one ZoneInfo is wall-clock arithmetic
            kept_distance = t.astimezone(UTC) - (regular - close) if t > close else latest
            moved = min(kept_distance, latest).astimezone(t.tzinfo)
        out.append(EarlyCloseTick(plan.name, t, moved, close, regular))
    return out


@lru_cache(maxsize=1024)
def _run_times(run_at: tuple[RunAtEntry, ...]) -> tuple[tuple[time, ...], tuple[str, ...]]:
    """The fixed clock times and the cron expressions of run_at specs: parsed once, not per plan
    per day per pass."""
    fixed = {t for spec in run_at if not isinstance(spec, CronSchedule) for t in parse_run_at(spec)}
    return tuple(sorted(fixed)), tuple(spec.cron for spec in run_at if isinstance(spec, CronSchedule))


def _times_on(run_at: tuple[RunAtEntry, ...], day: date) -> tuple[time, ...]:
    """Clock times of `day` the specs name: every fixed time, and what each cron names for that date."""
    fixed, crons = _run_times(run_at)
    if not crons:
        return fixed
    return tuple(sorted(set(fixed).union(*(_cron_times(expr, day) for expr in crons))))


@lru_cache(maxsize=8192)
def _cron_times(expr: str, day: date) -> tuple[time, ...]:
    """The wall-clock times `expr` names on `day` (day-of-month and day-of-week must both match)."""
    from croniter import croniter

    it = croniter(expr, datetime.combine(day, time.min) - timedelta(seconds=1), day_or=False)
    out: list[time] = []
    while (at := it.get_next(datetime)).date() == day:
        out.append(at.time())
    return tuple(out)


def schedule_key(plan: Plan) -> tuple[str, str | None, tuple[RunAtEntry, ...], OrderType, EarlyClose]:
    """What a plan's ticks depend on: plans with equal keys tick at the same moments (the order
    type and early_close policy decide what an early close does)."""
    return plan.calendar, plan.timezone, tuple(plan.run_at), plan.order_type, plan.early_close


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


def early_close_changes(plan: Plan, since: datetime, now: datetime) -> list[EarlyCloseTick]:
    """Touched run times whose tick (the moved time, or the regular time when skipped) falls in
    since < tick <= now, oldest first."""
    cal = get_calendar(plan.calendar)
    tz = plan_zone(plan, cal)
    out: list[EarlyCloseTick] = []
    day = cal.next_session_day(since.astimezone(tz).date())
    last = now.astimezone(tz).date()
    while day is not None and day <= last:
        out += [c for c in early_close_ticks(plan, day, cal) if since < (c.moved_to or c.planned) <= now]
        day = cal.next_session_day(day + timedelta(days=1))
    return out


def upcoming_early_closes(plan: Plan, today: date, days: int = EARLY_CLOSE_WARNING_DAYS) -> list[EarlyCloseTick]:
    """Run times of the plan touched by early closes from `today` to `days` days ahead."""
    cal = get_calendar(plan.calendar)
    out: list[EarlyCloseTick] = []
    day = cal.next_session_day(today)
    while day is not None and day <= today + timedelta(days=days):
        out += early_close_ticks(plan, day, cal)
        day = cal.next_session_day(day + timedelta(days=1))
    return out


def skipped_cron_days(plan: Plan, today: date, days: int = EARLY_CLOSE_WARNING_DAYS) -> list[tuple[date, str]]:
    """(day, cron) for weekdays from `today` to `days` ahead a cron entry names but the calendar has
    no session on (holidays): those runs are skipped (never moved), and `plan` says so beforehand."""
    _, crons = _run_times(tuple(plan.run_at))
    if not crons:
        return []
    cal = get_calendar(plan.calendar)
    out = []
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        # holidays only: a weekend is no news (a daily cron would warn every Saturday)
        if day.weekday() < 5 and day <= cal.last_day and not cal.is_session(day):
            out += [(day, expr) for expr in crons if _cron_times(expr, day)]
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
    if plan.order_type is OrderType.TOO:
        out += _too_in_session(plan, cal, today)
    out += [c.reason for c in upcoming_early_closes(plan, today)]
    out += [f"cron run {expr!r} on {day:%a} {day} is skipped: not a {plan.calendar} session"
            for day, expr in skipped_cron_days(plan, today)]
    if (cal.last_day - today).days <= CALENDAR_WARNING_DAYS:
        out.append(f"calendar {plan.calendar} has sessions only until {cal.last_day}; upgrade "
                   "exchange-calendars before then or the plan stops running")
    return out


def _too_in_session(plan: Plan, cal: TradingCalendar, today: date) -> list[str]:
    """TOO orders are for runs outside market hours (the guide's advice): one made during the
    session trades at the next open on a decision the day's later prices may contradict."""
    day = cal.next_session_day(today) or cal.previous_session_day(today)
    if day is None:
        return []
    session = cal.session(day)
    if session.early_close:  # judge by a regular day's hours
        later = cal.next_session_day(day + timedelta(days=1))
        session = cal.session(later) if later is not None else session
    tz = plan_zone(plan, cal)
    inside = [t for t in plan.run_times()
              if session.open <= datetime.combine(session.day, t, tzinfo=tz) < session.close]
    if not inside:
        return []
    hours = f"{session.open.strftime('%H:%M')}-{session.close.strftime('%H:%M')} {cal.tz.key}"
    return [f"TOO run time {inside[0].isoformat()} is inside {plan.calendar} market hours ({hours}); "
            "a TOO order executes at the next open, so run TOO plans before the open or after the close"]
