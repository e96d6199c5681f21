"""Scheduler truth tables for XNYS and XSHG, 2024-2026, checked against exchange_calendars itself.

Every expectation is computed twice: once by minitrade.scheduler (ticks_on, next_run_times,
due_ticks) and once from the raw exchange_calendars calendar (sessions, opens, closes, breaks),
so a wrong table row or a calendar upgrade that moves a holiday shows up as a disagreement.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from minitrade.models import Plan
from minitrade.scheduler import due_ticks, early_close_changes, early_close_ticks, next_run_times, ticks_on

NY = ZoneInfo("America/New_York")
SH = ZoneInfo("Asia/Shanghai")
ZONES = {"XNYS": NY, "XSHG": SH}
RANGE = "09:30:01-16:00/30min"


@dataclass(frozen=True)
class Facts:
    """What exchange_calendars says about one exchange, 2024-2026, as plain Python values."""

    sessions: frozenset[date]
    opens: dict[date, datetime]     # aware, UTC
    closes: dict[date, datetime]    # aware, UTC
    breaks: dict[date, tuple[datetime, datetime]]  # lunch break start/end, aware, UTC

    def per_year(self, year: int) -> int:
        return sum(1 for d in self.sessions if d.year == year)


def _facts(code: str) -> Facts:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exchange_calendars trips pandas deprecations internally
        cal = xcals.get_calendar(code, start="2024-01-01", end="2026-12-31")
        days = [ts.date() for ts in cal.sessions]
        opens = [ts.to_pydatetime().astimezone(UTC) for ts in cal.opens]
        closes = [ts.to_pydatetime().astimezone(UTC) for ts in cal.closes]
        breaks: dict[date, tuple[datetime, datetime]] = {}
        for day, start, end in zip(days, cal.break_starts, cal.break_ends, strict=True):
            if not (pd.isna(start) or pd.isna(end)):
                breaks[day] = (start.to_pydatetime().astimezone(UTC), end.to_pydatetime().astimezone(UTC))
    return Facts(frozenset(days), dict(zip(days, opens, strict=True)), dict(zip(days, closes, strict=True)),
                 breaks)


_FACTS: dict[str, Facts] = {}


def facts(code: str) -> Facts:
    if code not in _FACTS:
        _FACTS[code] = _facts(code)
    return _FACTS[code]


def plan(calendar: str = "XNYS", run_at: str | list[str] = "15:45", **overrides: Any) -> Plan:
    spec: dict[str, Any] = dict(name="p", strategy="strategies/s.py", universe=["SPY"], data_source="d",
                                backtest_start="2020-01-01", run_at=run_at, cash=1000, calendar=calendar)
    spec.update(overrides)
    return Plan.model_validate(spec)


def local(day: date, clock: str, code: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=ZONES[code])


# --- DST: the clock time is kept, the UTC offset changes (US only; China has no DST) ----------

DST = [
    # (code, last session before the change, first session after, offset before, offset after)
    pytest.param("XNYS", date(2024, 3, 8), date(2024, 3, 11), -5, -4, id="XNYS-2024-spring-forward"),
    pytest.param("XNYS", date(2024, 11, 1), date(2024, 11, 4), -4, -5, id="XNYS-2024-fall-back"),
    pytest.param("XNYS", date(2025, 3, 7), date(2025, 3, 10), -5, -4, id="XNYS-2025-spring-forward"),
    pytest.param("XNYS", date(2025, 10, 31), date(2025, 11, 3), -4, -5, id="XNYS-2025-fall-back"),
    pytest.param("XNYS", date(2026, 3, 6), date(2026, 3, 9), -5, -4, id="XNYS-2026-spring-forward"),
    pytest.param("XNYS", date(2026, 10, 30), date(2026, 11, 2), -4, -5, id="XNYS-2026-fall-back"),
    pytest.param("XSHG", date(2026, 3, 6), date(2026, 3, 9), 8, 8, id="XSHG-no-dst-in-march"),
    pytest.param("XSHG", date(2026, 10, 30), date(2026, 11, 2), 8, 8, id="XSHG-no-dst-in-november"),
]


@pytest.mark.parametrize(("code", "before", "after", "off_before", "off_after"), DST)
def test_dst_keeps_the_clock_time_and_moves_the_utc_offset(code: str, before: date, after: date,
                                                           off_before: int, off_after: int) -> None:
    f = facts(code)
    assert before in f.sessions and after in f.sessions
    p = plan(code, ["09:30", "14:50"])
    for day, offset in ((before, off_before), (after, off_after)):
        ticks = ticks_on(p, day)
        assert [t.time() for t in ticks] == [time(9, 30), time(14, 50)]
        assert {t.utcoffset() for t in ticks} == {timedelta(hours=offset)}
        assert ticks[0] == f.opens[day], "the 09:30 tick is the exchange's own open instant"
    # the scheduler walks across the change: the next two ticks after the last one before it
    last_before = ticks_on(p, before)[-1]
    assert next_run_times(p, last_before, 2) == ticks_on(p, after)
    # a due-window spanning the weekend of the change holds exactly the sessions' ticks
    window = due_ticks(p, last_before - timedelta(seconds=1), ticks_on(p, after)[-1])
    assert window == [last_before, *ticks_on(p, after)]
    assert (ticks_on(p, after)[0].astimezone(UTC).time() != ticks_on(p, before)[0].astimezone(UTC).time()) \
        == (off_before != off_after)


# --- early closes: touched run times move (shift) or are skipped; earlier and evening runs stay ----

EARLY = [
    pytest.param(date(2024, 7, 3), id="2024-independence-eve"),
    pytest.param(date(2024, 11, 29), id="2024-day-after-thanksgiving"),
    pytest.param(date(2024, 12, 24), id="2024-christmas-eve"),
    pytest.param(date(2025, 7, 3), id="2025-independence-eve"),
    pytest.param(date(2025, 11, 28), id="2025-day-after-thanksgiving"),
    pytest.param(date(2025, 12, 24), id="2025-christmas-eve"),
    pytest.param(date(2026, 11, 27), id="2026-day-after-thanksgiving"),
    pytest.param(date(2026, 12, 24), id="2026-christmas-eve"),
]

# (order type, run time, where it runs with early_close: shift, whether skip drops it) on a 13:00 close
EARLY_RULES = [
    ("TOC", "15:45", "12:45", True),   # keeps its 15 min to the close
    ("TOC", "13:30", "10:30", True),   # keeps its 2.5 h to the close
    ("TOC", "15:55", "12:45", True),   # 12:55 would miss the 12:50 auction cutoff
    ("TOC", "12:55", "12:45", True),   # after the 12:50 cutoff: would expire unsent
    ("TOC", "13:00", "12:45", True),
    ("TOC", "16:00", "12:45", True),   # the regular close itself
    ("TOC", "12:50", "12:50", False),  # at the cutoff: still in time
    ("TOC", "12:30", "12:30", False),
    ("TOC", "16:00:01", "16:00:01", False),  # after the regular close: an evening run stays
    ("TOC", "17:00", "17:00", False),
    ("TRG", "15:45", "12:45", True),
    ("TRG", "15:58", "12:55", True),   # a market order needs the market open: 5 min before the close
    ("TRG", "12:55", "12:55", False),  # before the close: executes at once, as on any day
    ("TOO", "15:45", "15:45", False),  # after the early close: an order for the next open, as intended
    ("TOO", "17:00", "17:00", False),
    ("TOO", "08:00", "08:00", False),
]


@pytest.mark.parametrize("day", EARLY)
@pytest.mark.parametrize(("kind", "planned", "shifted", "skipped"),
                         [pytest.param(*r, id=f"{r[0]}-{r[1]}") for r in EARLY_RULES])
def test_early_close_moves_or_skips_the_run_times_it_breaks(day: date, kind: str, planned: str, shifted: str,
                                                            skipped: bool) -> None:
    f = facts("XNYS")
    close = f.closes[day].astimezone(NY)
    assert close.time() == time(13, 0), "exchange_calendars: a 13:00 early close"
    mode = "incremental" if kind == "TRG" else "strict"
    shift = plan("XNYS", planned, order_type=kind, mode=mode)
    skip = plan("XNYS", planned, order_type=kind, mode=mode, early_close="skip")
    assert ticks_on(shift, day) == [local(day, shifted, "XNYS")]
    assert ticks_on(skip, day) == ([] if skipped else [local(day, planned, "XNYS")])
    touched = early_close_ticks(skip, day)
    assert [(c.planned, c.moved_to) for c in touched] == ([(local(day, planned, "XNYS"), None)] if skipped else [])
    if skipped:
        assert f"early close on {day.isoformat()} (13:00 instead of 16:00)" in touched[0].reason
        assert "skipped" in touched[0].reason
        # the skipped tick is reported in the due window of its regular time, the moved one in its own
        window = (local(day, "00:00", "XNYS"), local(day, "23:59", "XNYS"))
        assert [c.planned for c in early_close_changes(skip, *window)] == [local(day, planned, "XNYS")]
        assert [c.moved_to for c in early_close_changes(shift, *window)] == [local(day, shifted, "XNYS")]
        assert due_ticks(skip, *window) == []
        assert due_ticks(shift, *window) == [local(day, shifted, "XNYS")]


@pytest.mark.parametrize("day", EARLY)
def test_early_close_range_keeps_its_morning_ticks_and_shifted_ones_merge(day: date) -> None:
    f = facts("XNYS")
    close = f.closes[day].astimezone(NY)
    morning = ["09:30:01", "10:00:01", "10:30:01", "11:00:01", "11:30:01", "12:00:01", "12:30:01"]
    for policy in ("shift", "skip"):
        ticks = ticks_on(plan("XNYS", RANGE, early_close=policy), day)
        assert [t.strftime("%H:%M:%S") for t in ticks] == morning, policy
        assert all(t <= close - timedelta(minutes=10) for t in ticks)
    # shift: the six afternoon runs land on morning run times (one tick each); skip: six SKIPPED
    touched = early_close_ticks(plan("XNYS", RANGE, early_close="skip"), day)
    assert [c.planned.strftime("%H:%M:%S") for c in touched] == [
        "13:00:01", "13:30:01", "14:00:01", "14:30:01", "15:00:01", "15:30:01"]
    # the 15:45 run's next tick after that morning is that day at 12:45 (shift), else the next session
    nxt = min(d for d in f.sessions if d > day)
    assert next_run_times(plan("XNYS", "15:45"), local(day, "09:00", "XNYS"), 1) == [local(day, "12:45", "XNYS")]
    assert next_run_times(plan("XNYS", "15:45", early_close="skip"), local(day, "09:00", "XNYS"), 1) == \
        [local(nxt, "15:45", "XNYS")]
    assert ticks_on(plan("XNYS", "17:00"), day) == [local(day, "17:00", "XNYS")], "evening run still happens"


def test_every_early_close_in_the_table_is_exactly_exchange_calendars_list() -> None:
    f = facts("XNYS")
    early = {d for d in f.sessions if f.closes[d].astimezone(NY).time() != time(16, 0)}
    assert early == {p.values[0] for p in EARLY}
    assert not {d for d in facts("XSHG").sessions if facts("XSHG").closes[d].astimezone(SH).time() != time(15, 0)}


# --- holidays: no ticks at all; the next tick is on the next session ---------------------------

HOLIDAYS = [
    pytest.param("XNYS", date(2024, 1, 1), id="XNYS-2024-new-year"),
    pytest.param("XNYS", date(2025, 1, 1), id="XNYS-2025-new-year"),
    pytest.param("XNYS", date(2026, 1, 1), id="XNYS-2026-new-year"),
    pytest.param("XNYS", date(2024, 3, 29), id="XNYS-2024-good-friday"),
    pytest.param("XNYS", date(2025, 4, 18), id="XNYS-2025-good-friday"),
    pytest.param("XNYS", date(2026, 4, 3), id="XNYS-2026-good-friday"),
    pytest.param("XNYS", date(2024, 7, 4), id="XNYS-2024-independence-day"),
    pytest.param("XNYS", date(2025, 7, 4), id="XNYS-2025-independence-day"),
    pytest.param("XNYS", date(2026, 7, 3), id="XNYS-2026-independence-day-observed-friday"),
    pytest.param("XNYS", date(2024, 11, 28), id="XNYS-2024-thanksgiving"),
    pytest.param("XNYS", date(2025, 11, 27), id="XNYS-2025-thanksgiving"),
    pytest.param("XNYS", date(2026, 11, 26), id="XNYS-2026-thanksgiving"),
    pytest.param("XNYS", date(2024, 12, 25), id="XNYS-2024-christmas"),
    pytest.param("XNYS", date(2025, 12, 25), id="XNYS-2025-christmas"),
    pytest.param("XNYS", date(2026, 12, 25), id="XNYS-2026-christmas"),
    pytest.param("XSHG", date(2024, 2, 12), id="XSHG-2024-spring-festival"),
    pytest.param("XSHG", date(2025, 1, 29), id="XSHG-2025-spring-festival"),
    pytest.param("XSHG", date(2026, 2, 17), id="XSHG-2026-spring-festival"),
    pytest.param("XSHG", date(2024, 10, 1), id="XSHG-2024-golden-week"),
    pytest.param("XSHG", date(2025, 10, 8), id="XSHG-2025-golden-week-last-day"),
    pytest.param("XSHG", date(2026, 10, 7), id="XSHG-2026-golden-week-last-day"),
]


@pytest.mark.parametrize(("code", "day"), HOLIDAYS)
def test_holidays_have_no_ticks_and_the_next_run_is_the_next_session(code: str, day: date) -> None:
    f = facts(code)
    assert day.weekday() < 5 and day not in f.sessions, "exchange_calendars: a weekday holiday"
    p = plan(code, RANGE)
    assert ticks_on(p, day) == []
    assert due_ticks(p, local(day, "00:00", code), local(day, "23:59:59", code)) == []
    nxt = min(d for d in f.sessions if d > day)
    assert next_run_times(p, local(day, "00:00", code), 1) == [local(nxt, "09:30:01", code)]


@pytest.mark.parametrize(("code", "start", "end"), [
    pytest.param("XSHG", date(2024, 2, 8), date(2024, 2, 19), id="XSHG-2024-spring-festival-week"),
    pytest.param("XSHG", date(2025, 1, 27), date(2025, 2, 5), id="XSHG-2025-spring-festival-week"),
    pytest.param("XSHG", date(2026, 2, 13), date(2026, 2, 24), id="XSHG-2026-spring-festival-week"),
    pytest.param("XSHG", date(2024, 9, 30), date(2024, 10, 8), id="XSHG-2024-golden-week"),
    pytest.param("XSHG", date(2025, 9, 30), date(2025, 10, 9), id="XSHG-2025-golden-week"),
    pytest.param("XSHG", date(2026, 9, 30), date(2026, 10, 8), id="XSHG-2026-golden-week"),
])
def test_a_closed_week_has_ticks_only_on_its_sessions(code: str, start: date, end: date) -> None:
    f = facts(code)
    p = plan(code, "14:50")
    got = due_ticks(p, local(start, "00:00", code), local(end, "23:59", code))
    expected = sorted(d for d in f.sessions if start <= d <= end)
    assert [t.date() for t in got] == expected
    assert len(expected) <= 3, "the holiday week really is (mostly) closed"


# --- a full day of the 30-minute range, and sessions per year ----------------------------------

@pytest.mark.parametrize(("code", "day"), [
    pytest.param("XNYS", date(2024, 6, 3), id="XNYS-2024"),
    pytest.param("XNYS", date(2025, 6, 2), id="XNYS-2025"),
    pytest.param("XNYS", date(2026, 11, 25), id="XNYS-2026-before-thanksgiving"),
    pytest.param("XSHG", date(2026, 11, 25), id="XSHG-2026"),
])
def test_the_30_minute_range_gives_13_ticks_on_a_full_day(code: str, day: date) -> None:
    ticks = ticks_on(plan(code, RANGE), day)
    assert len(ticks) == 13
    assert ticks[0] == local(day, "09:30:01", code) and ticks[-1] == local(day, "15:30:01", code)
    assert all(b - a == timedelta(minutes=30) for a, b in zip(ticks, ticks[1:], strict=False))


@pytest.mark.parametrize(("code", "year", "sessions"), [
    pytest.param("XNYS", 2024, 252, id="XNYS-2024"),
    pytest.param("XNYS", 2025, 250, id="XNYS-2025"),
    pytest.param("XNYS", 2026, 251, id="XNYS-2026"),
    pytest.param("XSHG", 2024, 242, id="XSHG-2024"),
    pytest.param("XSHG", 2025, 243, id="XSHG-2025"),
    pytest.param("XSHG", 2026, 242, id="XSHG-2026"),
])
def test_one_daily_run_ticks_once_per_session_of_the_year(code: str, year: int, sessions: int) -> None:
    f = facts(code)
    assert f.per_year(year) == sessions, "the table agrees with exchange_calendars"
    p = plan(code, "11:00")
    days = [date(year, 1, 1) + timedelta(days=n) for n in range(366)]
    ticked = [d for d in days if d.year == year and ticks_on(p, d)]
    assert len(ticked) == sessions
    assert set(ticked) == {d for d in f.sessions if d.year == year}
    whole_year = due_ticks(p, local(date(year - 1, 12, 31), "23:59", code), local(date(year, 12, 31), "23:59", code))
    assert [t.date() for t in whole_year] == sorted(ticked)


# --- XSHG lunch break (11:30-13:00): a run_at inside it still runs --------------------------------

@pytest.mark.parametrize("clock", [
    pytest.param("11:30:01", id="just-after-the-morning-close"),
    pytest.param("12:00", id="mid-break"),
    pytest.param("12:59:59", id="just-before-the-afternoon-open"),
])
def test_xshg_run_inside_the_lunch_break_is_scheduled(clock: str) -> None:
    """The scheduler knows sessions and early closes, not breaks: a tick inside the break is kept,
    like an evening run. The order it makes waits at the broker until 13:00."""
    day = date(2026, 11, 25)
    f = facts("XSHG")
    start, end = f.breaks[day]
    assert (start.astimezone(SH).time(), end.astimezone(SH).time()) == (time(11, 30), time(13, 0))
    p = plan("XSHG", clock)
    (tick,) = ticks_on(p, day)
    assert tick == local(day, clock, "XSHG") and start < tick < end, "the tick is inside the exchange's break"
    assert due_ticks(p, local(day, "11:00", "XSHG"), local(day, "13:30", "XSHG")) == [tick]
