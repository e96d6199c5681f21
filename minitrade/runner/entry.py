"""When an order of each entry type executes in a simulation (backtests and replay), on daily bars.

- TOC: at the signal day's close (the closing auction).
- TOO: at the next session's open.
- TRG, a market order placed when the run decides: a run during the session trades at once, at
  the price the run saw; a run before the open or after the close trades at the next open (the
  guide: "a TRG order placed during market hours executes immediately").

The approximation, with daily bars. A live run at 10:00 sees today's partial bar, whose close is
the last price at 10:00, and its market order fills at about that price. A simulation has only the
day's final bar, so a TRG order decided during the session fills at the *signal bar's close*. That
is the price the strategy decided on: filling at it never uses a price the decision could not have
known, and it is the same price whichever run time of the day decided. The day's open would be a
price from before the decision, and a strategy deciding on the whole bar and then buying at its
open would trade on the future (look-ahead); the next open would be the TOO order the guide says
TRG is not. The cost of the approximation is the move between the run's time and the close.
"""

from __future__ import annotations

from datetime import date, datetime

from minitrade.models import Plan
from minitrade.scheduler import ticks_on
from minitrade.trading_calendar import get_calendar


def in_session(plan: Plan, at: datetime) -> bool:
    """Whether `at` falls inside a regular session of the plan's exchange (open <= at < close)."""
    cal = get_calendar(plan.calendar)
    day = at.astimezone(cal.tz).date()
    if not cal.is_session(day):
        return False
    session = cal.session(day)
    return session.open <= at < session.close


def trg_fills_at_once(plan: Plan, day: date) -> bool:
    """Whether the plan's TRG decision on session `day` fills on that day's bar (a run during the session).

    A daily backtest makes one decision per bar, so the plan's run times on that day decide: any
    run inside the session trades at once. A day that is not a session of the plan's calendar
    (prices and calendar disagree, or the calendar does not reach back that far) is judged by the
    run times against the nearest session's hours.
    """
    cal = get_calendar(plan.calendar)
    if not cal.is_session(day):
        day = cal.next_session_day(day) or cal.last_day
    return any(in_session(plan, t) for t in ticks_on(plan, day, cal))
