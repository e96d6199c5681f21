"""A run's notice names the commit it ran from and the plan's real next run (it said `commit
uncommitted` and `Next run: not scheduled` whatever happened). Real git, DuckDB, daemon passes and
Apprise's json:// sender to a local sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from minitrade.reconcile_pass import reconcile_once
from minitrade.store import Store
from minitrade.testing.apprise_sink import AppriseSink
from tests.conftest import present

NY = ZoneInfo("America/New_York")


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as running:
        yield running


def daemon_pass(repo, at: datetime) -> None:
    with present(at):
        reconcile_once(repo.path, Store(repo.path / "state" / "minitrade.duckdb"), now=lambda: at)


def test_run_finished_and_failed_name_the_commit_and_the_next_run(live_repo, sink: AppriseSink) -> None:
    live_repo.edit("minitrade.yaml", "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n")
    head = live_repo.commit("notify the phone")
    daemon_pass(live_repo, datetime(2013, 1, 3, 15, 45, 30, tzinfo=NY))   # Thursday
    (finished,) = [p.message for p in sink.posts if p.title == "alt: run finished"]
    assert f"Plan alt finished (commit {head[:7]})." in finished
    assert "Next run: 2013-01-04 15:45 EST." in finished and "uncommitted" not in finished

    # the sample prices end on Friday 2013-03-01: Monday's run has no bar for its day and fails as stale
    monday = datetime(2013, 3, 4, 15, 45, tzinfo=NY)
    daemon_pass(live_repo, monday - timedelta(days=1))   # the daemon is back on Sunday: nothing runs
    daemon_pass(live_repo, monday + timedelta(seconds=30))
    (failed,) = [p.message for p in sink.posts if p.title == "alt: run FAILED"]
    assert f"Plan alt failed (commit {head[:7]}):" in failed
    assert "Next scheduled run: 2013-03-05 15:45 EST." in failed
