"""Ticks from calendars: sessions only, early closes, DST both ways, inclusive ranges, warnings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from minitrade.models import Plan, parse_run_at
from minitrade.scheduler import due_ticks, early_close_ticks, next_run_times, ticks_on, warnings_for

NY = ZoneInfo("America/New_York")
SH = ZoneInfo("Asia/Shanghai")


def plan(**overrides: Any) -> Plan:
    spec: dict[str, Any] = dict(name="p", strategy="strategies/s.py", universe=["SPY"], data_source="d",
                                backtest_start="2020-01-01", run_at="15:45", cash=1000)
    spec.update(overrides)
    return Plan.model_validate(spec)


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("15:45", ["15:45:00"], id="single"),
    pytest.param("9:30", ["09:30:00"], id="single-digit-hour"),
    pytest.param("09:30:01-16:00/30min", [f"{h:02d}:{m}:01" for h in range(9, 16) for m in ("00", "30")][1:],
                 id="range-excludes-past-end"),
    pytest.param("10:00-12:00/1h", ["10:00:00", "11:00:00", "12:00:00"], id="hours-inclusive-end"),
])
def test_run_at_expands_inclusively(spec: str, expected: list[str]) -> None:
    assert [t.isoformat() for t in parse_run_at(spec)] == expected


def test_range_every_30_minutes_gives_13_ticks_like_the_original() -> None:
    assert len(parse_run_at("09:30:01-16:00/30min")) == 13


def test_no_ticks_on_holidays_or_weekends() -> None:
    p = plan()
    assert ticks_on(p, date(2026, 11, 26)) == []  # Thanksgiving
    assert ticks_on(p, date(2026, 11, 28)) == []  # Saturday
    assert ticks_on(p, date(2026, 11, 30)) == [datetime(2026, 11, 30, 15, 45, tzinfo=NY)]


def test_early_close_shifts_touched_runs_keeping_their_distance_to_the_close() -> None:
    p = plan(run_at=["12:30", "13:30", "15:45", "17:00"])
    ticks = [t.time() for t in ticks_on(p, date(2026, 11, 27))]  # 13:00 close
    assert ticks == [time(10, 30), time(12, 30), time(12, 45), time(17, 0)]


def test_early_close_skip_leaves_touched_runs_out_and_says_why() -> None:
    p = plan(run_at=["12:30", "13:30", "15:45", "17:00"], early_close="skip")
    assert [t.time() for t in ticks_on(p, date(2026, 11, 27))] == [time(12, 30), time(17, 0)]
    skipped = early_close_ticks(p, date(2026, 11, 27))
    assert [(c.planned.time(), c.moved_to) for c in skipped] == [(time(13, 30), None), (time(15, 45), None)]
    assert skipped[1].reason == ("early close on 2026-11-27 (13:00 instead of 16:00): run time 15:45:00 "
                                 "skipped (plan early_close: skip)")


def test_a_toc_run_after_the_early_auction_cutoff_runs_before_it() -> None:
    (tick,) = ticks_on(plan(run_at="12:55"), date(2026, 11, 27))
    assert tick == datetime(2026, 11, 27, 12, 45, tzinfo=NY), "12:55 is past the 12:50 cutoff of a 13:00 close"


def test_early_close_in_a_plan_timezone_other_than_the_exchange_moves_the_same_instant() -> None:
    p = plan(run_at="21:45", timezone="Europe/London")  # 16:45 New York: after the regular close, kept
    assert ticks_on(p, date(2026, 11, 27)) == [datetime(2026, 11, 27, 21, 45, tzinfo=ZoneInfo("Europe/London"))]
    p = plan(run_at="20:45", timezone="Europe/London")  # 15:45 New York
    assert ticks_on(p, date(2026, 11, 27)) == [datetime(2026, 11, 27, 12, 45, tzinfo=NY)]


def test_early_close_is_not_a_plan_change_until_set() -> None:
    assert "early_close" not in plan().spec(), "a plan's digest stays what it was before the field existed"
    assert plan(early_close="skip").spec()["early_close"] == "skip"


@pytest.mark.parametrize(("day", "offset_hours"), [
    pytest.param(date(2026, 3, 6), -5, id="before-spring-forward"),
    pytest.param(date(2026, 3, 9), -4, id="after-spring-forward"),
    pytest.param(date(2026, 10, 30), -4, id="before-fall-back"),
    pytest.param(date(2026, 11, 2), -5, id="after-fall-back"),
])
def test_clock_time_is_kept_across_dst(day: date, offset_hours: int) -> None:
    (tick,) = ticks_on(plan(run_at="09:30:01"), day)
    assert tick.time() == time(9, 30, 1)
    assert tick.utcoffset().total_seconds() == offset_hours * 3600  # type: ignore[union-attr]


def test_shanghai_plan_runs_in_shanghai_time() -> None:
    p = plan(calendar="XSHG", run_at="14:50")
    (tick,) = ticks_on(p, date(2026, 11, 20))
    assert tick == datetime(2026, 11, 20, 14, 50, tzinfo=SH)
    assert ticks_on(p, date(2026, 10, 1)) == []  # Golden Week


def test_next_run_times_skips_holiday_and_shifts_at_the_early_close() -> None:
    after = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # 16:00 New York
    times = next_run_times(plan(), after, 3)
    assert times == [datetime(2026, 11, 27, 12, 45, tzinfo=NY), datetime(2026, 11, 30, 15, 45, tzinfo=NY),
                     datetime(2026, 12, 1, 15, 45, tzinfo=NY)]
    skipping = next_run_times(plan(early_close="skip"), after, 3)
    assert [t.date() for t in skipping] == [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]


def test_due_ticks_are_those_between_since_and_now() -> None:
    p = plan(run_at="09:30-10:30/30min")
    since = datetime(2026, 11, 20, 9, 30, tzinfo=NY)
    now = datetime(2026, 11, 20, 10, 15, tzinfo=NY)
    assert due_ticks(p, since, now) == [datetime(2026, 11, 20, 10, 0, tzinfo=NY)]


def test_toc_after_auction_cutoff_is_warned() -> None:
    assert any("closing-auction cutoff" in w for w in warnings_for(plan(run_at="15:55"), date(2026, 11, 25)))
    assert not any("cutoff" in w for w in warnings_for(plan(run_at="15:45"), date(2026, 11, 25)))
    assert not any("cutoff" in w for w in warnings_for(plan(run_at="15:55", order_type="TOO"), date(2026, 11, 25)))


def test_early_closes_within_14_days_that_touch_a_run_time_are_warned() -> None:
    assert warnings_for(plan(), date(2026, 11, 13)) == [
        "early close on 2026-11-27 (13:00 instead of 16:00): run time 15:45:00 moved to 12:45:00 "
        "(plan early_close: shift)"]
    assert warnings_for(plan(), date(2026, 11, 12)) == [], "15 days ahead: not yet"
    assert warnings_for(plan(run_at="11:00"), date(2026, 11, 20)) == [], "a morning run is not touched"
    assert any("skipped (plan early_close: skip)" in w
               for w in warnings_for(plan(early_close="skip"), date(2026, 11, 20)))


@pytest.mark.parametrize(("run_at", "warned"), [
    pytest.param("10:00", True, id="mid-session"),
    pytest.param("09:30", True, id="at-the-open"),
    pytest.param("15:59", True, id="just-before-the-close"),
    pytest.param("16:00", False, id="at-the-close"),
    pytest.param("17:00", False, id="evening"),
    pytest.param("08:00", False, id="morning"),
])
def test_too_run_inside_market_hours_is_warned(run_at: str, warned: bool) -> None:
    found = [w for w in warnings_for(plan(run_at=run_at, order_type="TOO"), date(2026, 12, 8))
             if "inside XNYS market hours" in w]
    assert bool(found) == warned
    assert not any("market hours" in w for w in warnings_for(plan(run_at=run_at), date(2026, 12, 8))), \
        "TOC runs belong inside the session"


def test_calendar_ending_soon_is_warned() -> None:
    p = plan(calendar="XSHG")
    from minitrade.trading_calendar import get_calendar

    last = get_calendar("XSHG").last_day
    soon = date.fromordinal(last.toordinal() - 30)
    assert any("sessions only until" in w for w in warnings_for(p, soon))
    assert not any("sessions only until" in w for w in warnings_for(p, date.fromordinal(last.toordinal() - 400)))
