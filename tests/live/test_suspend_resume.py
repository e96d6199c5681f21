"""`minitrade suspend` / `resume` through real daemon passes: a suspended plan's next tick is recorded
SKIPPED with the reason, its held orders are not sent, `status` and `plan` show the drift; resume
restarts the following tick; an applied commit that disables the plan clears the suspension.
Real git, DuckDB, CLI, Apprise's json:// sender to a local sink, and the fake IB gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.reconcile_pass import reconcile_once
from minitrade.records import OrderStatus, TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.apprise_sink import AppriseSink
from minitrade.testing.ib_gateway import FakeGateway
from tests.conftest import present, present_env
from tests.live.conftest import trade_alt_through_ib

NY = ZoneInfo("America/New_York")
DAY3 = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
DAY4 = datetime(2013, 1, 4, 15, 45, tzinfo=NY)
DAY7 = datetime(2013, 1, 7, 15, 45, tzinfo=NY)   # Monday
runner = CliRunner()


def cli(*args: str, at: datetime):
    return runner.invoke(app, list(args), env=present_env(at), catch_exceptions=False)


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as running:
        yield running


def daemon_pass(repo, at: datetime):
    """One daemon pass with the clock (and the machine's present) at `at`."""
    with present(at):
        return reconcile_once(repo.path, Store(repo.path / "state" / "minitrade.duckdb"), now=lambda: at)


def ticks(repo) -> dict[datetime, tuple[TickStatus, str | None]]:
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return {t.scheduled_at.astimezone(NY): (t.status, t.error) for t in order_sql.ticks_of(con, "alt")}


def test_suspend_skips_the_next_tick_and_resume_restarts_the_following_one(live_repo, sink) -> None:
    live_repo.edit("minitrade.yaml", "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n")
    live_repo.commit("notify the phone")
    path = str(live_repo.path)
    first = daemon_pass(live_repo, DAY3 + timedelta(seconds=30))
    assert [r.plan for r in first.runs] == ["alt"]

    morning = datetime(2013, 1, 4, 10, 0, tzinfo=NY)
    done = cli("suspend", "alt", "--reason", "earnings tonight", "--json", "--repo", path, at=morning)
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert (doc["kind"], doc["plan"], doc["already"], doc["trading"]) == ("suspend", "alt", False, "enabled")
    assert doc["suspension"]["reason"] == "earnings tonight" and doc["suspension"]["by"]
    again = cli("suspend", "alt", "--reason", "other", "--repo", path, at=morning + timedelta(minutes=5))
    assert again.exit_code == 0 and "already suspended at 2013-01-04 10:00 EST" in again.stdout

    status = json.loads(cli("status", "--json", "--repo", path, at=morning).stdout)
    (row,) = status["plans"]
    assert row["suspended"]["drift"].startswith("plan alt: suspended at 2013-01-04 10:00 EST by ")
    assert row["suspended"]["drift"].endswith("(earnings tonight); the file says trading: enabled. "
                                              "`minitrade resume alt` ends it")
    shown = cli("status", "--repo", path, at=morning).stdout
    assert "drift: plan alt: suspended at 2013-01-04 10:00 EST" in shown and "SUSPEND" in shown  # (the table may cut it)
    planned = cli("plan", "--json", "--repo", path, at=morning)
    assert planned.exit_code == 0, planned.output   # nothing to apply: a suspension is not a change
    assert any(w.startswith("drift: plan alt: suspended at 2013-01-04 10:00 EST")
               for w in json.loads(planned.stdout)["warnings"])

    sink.clear()
    skipped = daemon_pass(live_repo, DAY4 + timedelta(seconds=30))
    assert skipped.runs == [] and skipped.skipped == [("alt", DAY4)]
    assert ticks(live_repo)[DAY4] == (TickStatus.SKIPPED, "suspended at 2013-01-04 10:00 EST: earnings tonight")
    assert not [p for p in sink.posts if "SKIPPED" in p.title], "the operator suspended it: no alarm per tick"

    weekend = datetime(2013, 1, 6, 12, 0, tzinfo=NY)
    resumed = cli("resume", "alt", "--json", "--repo", path, at=weekend)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["ended"]["reason"] == "earnings tonight"
    assert "is not suspended; nothing to do" in cli("resume", "alt", "--repo", path, at=weekend).stdout
    assert json.loads(cli("status", "--json", "--repo", path, at=weekend).stdout)["plans"][0]["suspended"] is None

    following = daemon_pass(live_repo, DAY7 + timedelta(seconds=30))
    assert [(r.plan, r.status) for r in following.runs] == [("alt", "FINISHED")]
    assert ticks(live_repo)[DAY7] == (TickStatus.FINISHED, None)


def test_suspend_of_an_unknown_plan_is_refused_with_did_you_mean(live_repo) -> None:
    path = str(live_repo.path)
    daemon_pass(live_repo, DAY3 - timedelta(minutes=5))  # applies
    refused = cli("suspend", "alts", "--repo", path, at=DAY3)
    assert refused.exit_code == 1 and "no applied plan 'alts'; did you mean alt?" in refused.output


def test_a_commit_that_disables_the_plan_clears_its_suspension_and_tells(live_repo, sink) -> None:
    live_repo.edit("minitrade.yaml", "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n")
    live_repo.commit("notify the phone")
    path = str(live_repo.path)
    daemon_pass(live_repo, DAY3 - timedelta(minutes=5))
    assert cli("suspend", "alt", "--reason", "halt", "--repo", path, at=DAY3 - timedelta(minutes=4)).exit_code == 0
    live_repo.edit("plans/alt.yaml", "trading: enabled", "trading: disabled")
    head = live_repo.commit("stop trading alt")
    result = daemon_pass(live_repo, DAY3 + timedelta(seconds=30))
    assert result.outcome == "applied"
    (told,) = [p.message for p in sink.posts if p.title == "alt: suspension cleared"]
    assert f"commit {head[:7]} is applied and the plan file says trading: disabled" in told
    status = json.loads(cli("status", "--json", "--repo", path, at=DAY3).stdout)
    assert status["plans"][0]["suspended"] is None
    assert [(r.plan, r.status) for r in result.runs] == [("alt", "FINISHED")], "runs as its file says (records only)"


def test_held_orders_of_a_suspended_plan_are_not_sent(live_repo, start_gateway,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    gateway: FakeGateway = start_gateway("expired", DAY3)
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass")
    trade_alt_through_ib(live_repo, gateway)
    path = str(live_repo.path)
    daemon_pass(live_repo, DAY3 + timedelta(seconds=30))   # no session: the order is held
    with Store(live_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        (held,) = order_sql.orders_of(con, "alt")
    assert held.status is OrderStatus.HELD
    assert cli("suspend", "alt", "--repo", path, at=DAY3 + timedelta(minutes=1)).exit_code == 0
    gateway.set_state("authenticated")
    daemon_pass(live_repo, DAY3 + timedelta(minutes=2))
    assert gateway.orders == [], "a suspended plan's held order never reaches the broker"
    with Store(live_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        assert order_sql.get_order(con, held.client_id).status is OrderStatus.HELD  # type: ignore[union-attr]
    assert cli("resume", "alt", "--repo", path, at=DAY3 + timedelta(minutes=3)).exit_code == 0
    daemon_pass(live_repo, DAY3 + timedelta(minutes=3))
    assert [o.coid for o in gateway.orders] == [held.client_id], "resumed: sent while still valid"
