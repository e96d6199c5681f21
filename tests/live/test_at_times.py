"""One rule for `--at` on every command: naive times are the plan's exchange time (run, fill) or
minitrade.yaml's timezone (daemon --once); `daemon --at` needs --once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.records import TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql

NY = ZoneInfo("America/New_York")
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def book(repo):
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return order_sql.orders_of(con, "alt"), order_sql.fills_of(con), order_sql.ticks_of(con, "alt")


def test_run_and_fill_read_a_naive_at_in_the_plans_exchange_time(live_repo) -> None:
    repo = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", repo).exit_code == 0
    ran = cli("run", "alt", "--at", "2013-01-03 15:45", "--repo", repo)
    assert ran.exit_code == 0, ran.output
    (order,), _, _ = book(live_repo)
    assert order.tick_at == datetime(2013, 1, 3, 15, 45, tzinfo=NY), "15:45 New York, not 15:45 UTC"
    filled = cli("fill", order.client_id, "--price", "75.5", "--at", "2013-01-03 15:59", "--repo", repo)
    assert filled.exit_code == 0, filled.output
    _, (fill,), _ = book(live_repo)
    assert fill.filled_at == datetime(2013, 1, 3, 15, 59, tzinfo=NY)


def test_an_explicit_offset_is_that_instant_everywhere(live_repo) -> None:
    repo = str(live_repo.path)
    cli("apply", "--yes", "--repo", repo)
    assert cli("run", "alt", "--at", "2013-01-03T20:45:00Z", "--repo", repo).exit_code == 0
    (order,), _, _ = book(live_repo)
    assert order.tick_at == datetime(2013, 1, 3, 15, 45, tzinfo=NY)


def test_daemon_once_reads_a_naive_at_in_the_settings_timezone(live_repo) -> None:
    assert "timezone: America/New_York" in live_repo.read("minitrade.yaml")
    result = cli("daemon", "--once", "--at", "2013-01-03 15:45:30", "--repo", str(live_repo.path))
    assert result.exit_code == 0, result.output
    _, _, ticks = book(live_repo)
    assert [(t.scheduled_at, t.status) for t in ticks if t.status is not TickStatus.SKIPPED] == [
        (datetime(2013, 1, 3, 15, 45, tzinfo=NY), TickStatus.FINISHED)], "the 15:45 New York tick ran"


def test_a_bad_at_says_what_a_time_looks_like(live_repo) -> None:
    cli("apply", "--yes", "--repo", str(live_repo.path))
    bad = cli("run", "alt", "--at", "tomorrow", "--repo", str(live_repo.path))
    assert bad.exit_code == 1 and "--at 'tomorrow' is not a time: use e.g. '2026-11-25 15:45'" in bad.output


def test_daemon_at_without_once_is_a_usage_error_not_a_busy_loop(live_repo) -> None:
    """A real process: the daemon used to loop on its frozen clock forever (45% CPU)."""
    done = subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--at", "2013-01-03 15:45",
                           "--repo", str(live_repo.path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 64, done.stdout + done.stderr  # usage error (README: Exit codes), not plan's 2
    assert "add --once" in done.stderr
    assert not (live_repo.path / "state" / "minitrade.duckdb").exists(), "refused before touching anything"


@pytest.mark.parametrize(("command", "rule"), [
    pytest.param("run", "the plan's exchange time", id="run"),
    pytest.param("fill", "the plan's exchange time", id="fill"),
    pytest.param("daemon", "minitrade.yaml's timezone", id="daemon"),
])
def test_each_help_states_the_rule(command: str, rule: str) -> None:
    shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert shown.exit_code == 0
    assert "without a UTC offset" in shown.output and rule in " ".join(shown.output.split())
