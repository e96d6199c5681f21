"""Every tick that does not run is recorded and told: late, missed while the daemon was away, or
moved or skipped by an early close. Real git, DuckDB and Apprise's json:// sender to a local sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from minitrade.reconcile_pass import MISSED_CAP, reconcile_once
from minitrade.records import TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.apprise_sink import AppriseSink

NY = ZoneInfo("America/New_York")


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as running:
        yield running


def watch(repo, sink: AppriseSink) -> None:
    """Every event of the repo goes to the sink."""
    repo.edit("minitrade.yaml", "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n")
    repo.commit("notify the phone")


def ticks(repo) -> dict[datetime, tuple[TickStatus, str | None]]:
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return {t.scheduled_at.astimezone(NY): (t.status, t.error) for t in order_sql.ticks_of(con, "alt")}


def titled(sink: AppriseSink, start: str) -> list[str]:
    return [p.message for p in sink.posts if p.title.startswith(start)]


def test_ticks_missed_while_the_daemon_was_away_are_each_recorded_with_one_summary(live_repo, sink) -> None:
    watch(live_repo, sink)
    store = Store(live_repo.path / "state" / "minitrade.duckdb")
    first = datetime(2013, 1, 3, 15, 45, 30, tzinfo=NY)
    reconcile_once(live_repo.path, store, now=lambda: first)
    back = datetime(2013, 1, 8, 15, 50, tzinfo=NY)  # Thursday to Tuesday: Fri, Mon and Tue missed
    result = reconcile_once(live_repo.path, store, now=lambda: back)
    reason = "daemon not running from 2013-01-03 15:45:30 EST to 2013-01-08 15:50:00 EST"
    assert ticks(live_repo) == {
        datetime(2013, 1, 3, 15, 45, tzinfo=NY): (TickStatus.FINISHED, None),
        datetime(2013, 1, 4, 15, 45, tzinfo=NY): (TickStatus.SKIPPED, reason),
        datetime(2013, 1, 7, 15, 45, tzinfo=NY): (TickStatus.SKIPPED, reason),
        datetime(2013, 1, 8, 15, 45, tzinfo=NY): (TickStatus.SKIPPED, reason),
    }
    assert len(result.skipped) == 3 and result.runs == []
    (summary,) = titled(sink, "daemon was away")
    assert "not running from 2013-01-03 15:45 EST to 2013-01-08 15:50 EST" in summary
    assert "alt: 3 (2013-01-04 15:45 EST to 2013-01-08 15:45 EST)" in summary
    assert titled(sink, "alt: ") and not titled(sink, "alt: 1 run(s) SKIPPED"), "no message per missed run"
    again = reconcile_once(live_repo.path, store, now=lambda: back + timedelta(seconds=20))
    assert again.skipped == [] and len(titled(sink, "daemon was away")) == 1, "told once"


def test_an_outage_longer_than_the_cap_leaves_one_marker_and_each_recent_tick(live_repo, sink) -> None:
    watch(live_repo, sink)
    store = Store(live_repo.path / "state" / "minitrade.duckdb")
    reconcile_once(live_repo.path, store, now=lambda: datetime(2013, 1, 3, 15, 45, 30, tzinfo=NY))
    back = datetime(2013, 2, 28, 15, 50, tzinfo=NY)
    reconcile_once(live_repo.path, store, now=lambda: back)
    recorded = ticks(live_repo)
    marker = recorded[datetime(2013, 1, 4, 15, 45, tzinfo=NY)]
    assert marker[0] is TickStatus.SKIPPED and "not recorded one by one (more than 31 days)" in (marker[1] or "")
    one_by_one = sorted(t for t, (_, why) in recorded.items() if why and "one by one" not in why)
    assert one_by_one[0] == datetime(2013, 1, 29, 15, 45, tzinfo=NY), "the first tick within 31 days"
    assert one_by_one[-1] == datetime(2013, 2, 28, 15, 45, tzinfo=NY)
    assert all(back - t <= MISSED_CAP for t in one_by_one)
    assert len(one_by_one) == 22  # XNYS sessions Jan 29-31 (3) and February 2013 (20 weekdays - Presidents Day)
    (summary,) = titled(sink, "daemon was away")
    assert "alt: 22 (" in summary and "not recorded one by one" in summary


def test_a_tick_late_while_the_daemon_runs_is_skipped_and_told_once(live_repo, sink) -> None:
    """`alt` at 15:45, `alt2` at 15:46: the pass that runs `alt` lasts until 15:50 (the ticks due at
    a pass's start compute together; one due while a pass is busy waits for the next pass), so the
    next pass finds `alt2`'s tick past its grace period."""
    live_repo.write("plans/alt2.yaml", live_repo.read("plans/alt.yaml").replace("name: alt", "name: alt2")
                    .replace('run_at: "15:45"', 'run_at: "15:46"'))
    watch(live_repo, sink)
    store = Store(live_repo.path / "state" / "minitrade.duckdb")
    tick = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
    reconcile_once(live_repo.path, store, now=lambda: tick - timedelta(minutes=1))  # applied, nothing due
    sink.clear()

    def clock() -> datetime:  # the pass's clock moves on once `alt` has run (it told the phone)
        return tick + (timedelta(minutes=5) if titled(sink, "alt: run finished") else timedelta(seconds=30))

    busy = reconcile_once(live_repo.path, store, now=clock)
    assert [r.plan for r in busy.runs] == ["alt"] and busy.skipped == []
    result = reconcile_once(live_repo.path, store, now=lambda: tick + timedelta(minutes=5, seconds=10))
    late_tick = tick + timedelta(minutes=1)
    assert result.runs == [] and result.skipped == [("alt2", late_tick)]
    with store.transaction() as con:
        (late,) = [t for t in order_sql.ticks_of(con, "alt2") if t.scheduled_at == late_tick]
    assert late.status is TickStatus.SKIPPED and late.error == "could not start within 0:03:00 of its time"
    (told,) = titled(sink, "alt2: 1 run(s) SKIPPED")
    assert "2013-01-03 15:46 EST: could not start within 0:03:00 of its time" in told
    assert not titled(sink, "daemon was away"), "the daemon was running: no away summary"


def test_early_close_shift_runs_earlier_records_that_tick_and_tells(live_repo, sink) -> None:
    watch(live_repo, sink)
    store = Store(live_repo.path / "state" / "minitrade.duckdb")
    moved = datetime(2012, 11, 23, 12, 45, tzinfo=NY)  # XNYS closes 13:00 the day after Thanksgiving
    result = reconcile_once(live_repo.path, store, now=lambda: moved + timedelta(seconds=20))
    assert [(r.plan, r.status) for r in result.runs] == [("alt", "FINISHED")]
    assert ticks(live_repo) == {moved: (TickStatus.FINISHED, None)}
    (told,) = titled(sink, "early close 2012-11-23")
    assert "at 13:00 instead of 16:00" in told and "alt: 15:45 runs at 12:45 instead" in told
    later = reconcile_once(live_repo.path, store, now=lambda: datetime(2012, 11, 23, 15, 46, tzinfo=NY))
    assert later.runs == [] and later.skipped == [], "the 15:45 run happened at 12:45: nothing more that day"


def test_early_close_skip_records_the_tick_skipped_with_its_reason_and_tells(live_repo, sink) -> None:
    live_repo.edit("plans/alt.yaml", "mode: strict", "mode: strict\nearly_close: skip")
    watch(live_repo, sink)
    store = Store(live_repo.path / "state" / "minitrade.duckdb")
    reconcile_once(live_repo.path, store, now=lambda: datetime(2012, 11, 23, 12, 0, tzinfo=NY))
    result = reconcile_once(live_repo.path, store, now=lambda: datetime(2012, 11, 23, 16, 30, tzinfo=NY))
    planned = datetime(2012, 11, 23, 15, 45, tzinfo=NY)
    reason = ("early close on 2012-11-23 (13:00 instead of 16:00): run time 15:45:00 skipped "
              "(plan early_close: skip)")
    assert result.skipped == [("alt", planned)] and result.runs == []
    assert ticks(live_repo) == {planned: (TickStatus.SKIPPED, reason)}
    (told,) = titled(sink, "alt: 1 run(s) SKIPPED")
    assert reason in told
