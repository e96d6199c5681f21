"""The schedule's messages: skipped runs, runs missed while the daemon was away, early closes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

from minitrade.models import EVENTS, EventName
from minitrade.notify import messages

NY = ZoneInfo("America/New_York")


def test_the_two_event_lists_agree_and_know_the_schedule_events() -> None:
    assert set(EVENTS) == set(get_args(EventName))
    assert {"ticks.skipped", "ticks.missed", "calendar.early_close"} <= set(EVENTS)


def test_ticks_skipped_names_each_run_and_its_reason() -> None:
    m = messages.ticks_skipped("alt", [(datetime(2026, 11, 25, 15, 45, tzinfo=NY), "could not start within 0:03:00")])
    assert m.event == "ticks.skipped" and m.notify_type == "warning"
    assert m.title == "alt: 1 run(s) SKIPPED"
    assert "2026-11-25 15:45 EST: could not start within 0:03:00" in m.body
    assert "`minitrade run alt`" in m.body


def test_ticks_missed_is_one_summary_with_counts_per_plan_and_the_capped_marker() -> None:
    start, end = datetime(2026, 11, 20, 16, 0, tzinfo=NY), datetime(2026, 11, 25, 16, 0, tzinfo=NY)
    ticks = [datetime(2026, 11, 23, 15, 45, tzinfo=NY) + timedelta(days=d) for d in range(3)]
    m = messages.ticks_missed(start, end, {"alt": ticks, "b": ticks[:1]},
                              not_recorded={"old": datetime(2026, 9, 1, 15, 45, tzinfo=NY)})
    assert m.event == "ticks.missed" and m.title == "daemon was away: 4 run(s) missed"
    assert "not running from 2026-11-20 16:00 EST to 2026-11-25 16:00 EST" in m.body
    assert "alt: 3 (2026-11-23 15:45 EST to 2026-11-25 15:45 EST)" in m.body and "b: 1 (" in m.body
    assert "more than 31 days old are not recorded one by one" in m.body and "old from 2026-09-01" in m.body


def test_early_close_says_when_and_what_each_run_does() -> None:
    close = datetime(2026, 11, 27, 13, 0, tzinfo=NY)
    m = messages.early_close(date(2026, 11, 27), close, close.replace(hour=16), [
        ("alt", close.replace(hour=15, minute=45), close.replace(hour=12, minute=45)),
        ("b", close.replace(hour=15, minute=45), None)], ahead=True)
    assert m.event == "calendar.early_close" and m.title == "early close 2026-11-27: 2 run(s) change"
    assert "will close early on 2026-11-27, at 13:00 instead of 16:00 (EST)" in m.body
    assert "alt: 15:45 runs at 12:45 instead" in m.body and "b: 15:45 is skipped (early_close: skip)" in m.body
