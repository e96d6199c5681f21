"""The daemon as a real process tells about the schedule: runs missed while it was down, and
early closes ahead; `minitrade plan` shows the same warnings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.records import TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.store.applied import last_applied
from minitrade.testing.apprise_sink import AppriseSink
from tests.conftest import at_own_present
from tests.e2e.test_daemon_process import wait_for

NY = ZoneInfo("America/New_York")


def watch(repo, sink: AppriseSink) -> None:
    repo.edit("minitrade.yaml", "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n")
    repo.commit("notify the phone")


def daemon(repo, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minitrade", "daemon", *args, "--repo", str(repo.path)],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, **at_own_present(args), **(env or {})})


def test_daemon_down_for_three_days_records_each_missed_tick_and_sends_one_summary(live_repo) -> None:
    with AppriseSink() as sink:
        watch(live_repo, sink)
        first = daemon(live_repo, "--once", "--at", "2013-01-03T15:45:30-05:00")
        assert first.returncode == 0, first.stderr
        back = daemon(live_repo, "--once", "--at", "2013-01-08T15:50:00-05:00")  # Thu -> Tue
        assert back.returncode == 0, back.stderr
        posts = sink.posts
    with Store(live_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        ticks = {t.scheduled_at.astimezone(NY).day: (t.status, t.error) for t in order_sql.ticks_of(con, "alt")}
    away = (TickStatus.SKIPPED, "daemon not running from 2013-01-03 15:45:30 EST to 2013-01-08 15:50:00 EST")
    assert ticks == {3: (TickStatus.FINISHED, None), 4: away, 7: away, 8: away}
    summaries = [p for p in posts if p.title.startswith("daemon was away")]
    assert [p.title for p in summaries] == ["daemon was away: 3 run(s) missed"]
    assert not [p for p in posts if "SKIPPED" in p.title], "one summary, not a message per missed run"
    assert back.stdout.count("skipped alt") == 3


def test_daemon_warns_once_about_an_early_close_ahead(live_repo) -> None:
    """2012-11-23 closes at 13:00: told on 2012-11-15, and not again on the next passes or commits."""
    with AppriseSink() as sink:
        watch(live_repo, sink)
        store = Store(live_repo.path / "state" / "minitrade.duckdb", lock_timeout=10)

        def applied() -> str | None:
            with store.transaction() as con:
                row = last_applied(con)
            return row.commit_sha if row else None

        def passes_recorded() -> int:
            with store.transaction() as con:
                row = con.execute("SELECT passes FROM daemon_heartbeat").fetchone()
            return int(row[0]) if row else 0

        env = {**os.environ, "MINITRADE_NOW": "2012-11-15T10:00:00-05:00", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--poll", "1",
                                 "--repo", str(live_repo.path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert wait_for(lambda: any(p.title.startswith("early close 2012-11-23") for p in sink.posts))
            live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 120000")
            second = live_repo.commit("more cash")
            assert wait_for(lambda: applied() == second)
            seen = passes_recorded()
            assert wait_for(lambda: passes_recorded() > seen + 1), "passes after the new commit's"
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        warned = [p for p in sink.posts if p.title.startswith("early close")]
    (post,) = warned
    assert post.title == "early close 2012-11-23: 1 run(s) change"
    assert "will close early on 2012-11-23, at 13:00 instead of 16:00 (EST)" in post.message
    assert "alt: 15:45 runs at 12:45 instead" in post.message
    assert "early close on 2012-11-23 (13:00 instead of 16:00): run time 15:45:00 moved to 12:45:00" in err


def test_plan_warns_about_early_closes_and_too_runs_in_market_hours(live_repo) -> None:
    live_repo.write("plans/opener.yaml", live_repo.read("plans/alt.yaml").replace("name: alt", "name: opener")
                    .replace('run_at: "15:45"', 'run_at: "10:00"').replace("order_type: TOC", "order_type: TOO"))
    live_repo.edit("plans/alt.yaml", "mode: strict", "mode: strict\nearly_close: skip")
    shown = CliRunner().invoke(app, ["plan", "--repo", str(live_repo.path)],
                               env={"MINITRADE_NOW": "2012-11-15T10:00:00-05:00", "COLUMNS": "300"})
    assert shown.exit_code == 2, shown.output
    text = " ".join(shown.output.split())
    assert ("plan alt: early close on 2012-11-23 (13:00 instead of 16:00): run time 15:45:00 skipped "
            "(plan early_close: skip)") in text
    assert "plan opener: TOO run time 10:00:00 is inside XNYS market hours" in text
    assert "plan opener: early close" not in text, "a TOO run is not touched by an early close"
