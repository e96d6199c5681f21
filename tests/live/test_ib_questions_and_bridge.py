"""IB through the whole loop: order questions answered by the broker's confirm list, the gateway's
"no bridge" state held and retried, and a failing gateway reported as unavailable, not as a login."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.reconcile_pass import reconcile_once
from minitrade.records import OrderStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.apprise_sink import AppriseSink
from minitrade.testing.ib_gateway import FakeGateway
from tests.live.conftest import trade_alt_through_ib

NY = ZoneInfo("America/New_York")
SIGNAL = datetime(2013, 1, 3, 15, 45, tzinfo=NY)        # a TOC tick before the close auction cutoff
MORNING = datetime(2013, 1, 3, 10, 0, tzinfo=NY)        # a TRG tick inside regular trading hours
runner = CliRunner()


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as s:
        yield s


def ib_repo(repo, gateway: FakeGateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch, *,
            at: datetime, trg: bool = False):
    """The `alt` plan trading through the fake gateway, notifying the sink; applied."""
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass")
    monkeypatch.setenv("MINITRADE_NOW", at.isoformat())     # the tick is the real present: it trades
    repo.edit("minitrade.yaml", "notifiers: {}", f"""notifiers:
  phone:
    urls: ["{sink.url('hook')}"]""")
    if trg:
        repo.edit("plans/alt.yaml", "order_type: TOC", "order_type: TRG")
        repo.edit("plans/alt.yaml", 'run_at: "15:45"', 'run_at: "10:00"')
    trade_alt_through_ib(repo, gateway, mode="incremental" if trg else None)
    result = runner.invoke(app, ["apply", "--yes", "--repo", str(repo.path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return repo


def run_at(repo, moment: datetime) -> None:
    result = runner.invoke(app, ["run", "alt", "--at", moment.isoformat(), "--repo", str(repo.path)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output


def store_of(repo) -> Store:
    return Store(repo.path / "state" / "minitrade.duckdb")


def orders(repo) -> list:
    with store_of(repo).transaction() as con:
        return order_sql.orders_of(con, "alt")


def test_a_value_limit_question_is_refused_rejected_with_its_text_and_notified(
        live_repo, start_gateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = start_gateway("authenticated", SIGNAL)
    gateway.value_limit = 100.0             # IB's Total Value Limit: any order of the plan is above it
    repo = ib_repo(live_repo, gateway, sink, monkeypatch, at=SIGNAL)
    run_at(repo, SIGNAL)
    (order,) = orders(repo)
    assert order.status is OrderStatus.REJECTED
    assert "o451" in (order.note or "") and "exceeds the Total Value Limit of 100 USD" in (order.note or "")
    assert gateway.answers == [("o451", False)] and gateway.orders == []
    rejected = [p for p in sink.posts if "REJECTED" in p.title]
    assert rejected and "Total Value Limit" in rejected[0].message, [p.title for p in sink.posts]


def test_an_allowed_question_is_confirmed_logged_and_noted(live_repo, start_gateway, sink: AppriseSink,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    gateway = start_gateway("authenticated", SIGNAL)
    gateway.questions = ["o354"]            # no market data: confirmed by default
    repo = ib_repo(live_repo, gateway, sink, monkeypatch, at=SIGNAL)
    with caplog.at_level(logging.INFO, logger="minitrade.brokers.ib.client"):
        run_at(repo, SIGNAL)
    (order,) = orders(repo)
    assert order.status is OrderStatus.SUBMITTED and gateway.answers == [("o354", True)]
    assert (order.note or "").startswith("confirmed IB question o354: You are submitting an order without")
    (logged,) = [r for r in caplog.records if "o354" in r.getMessage()]
    assert logged.levelno == logging.INFO and "without market data" in logged.getMessage()


@pytest.mark.parametrize("in_post", [pytest.param(False, id="fills-after-the-post"),
                                     pytest.param(True, id="fills-inside-the-post")])
def test_no_bridge_holds_the_order_and_a_later_pass_sends_it_once(
        live_repo, start_gateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch, in_post: bool) -> None:
    gateway = start_gateway("authenticated", MORNING)
    gateway.fill_in_post = in_post
    repo = ib_repo(live_repo, gateway, sink, monkeypatch, at=MORNING, trg=True)
    gateway.inject("POST", r"/iserver/account/.*/orders", "no_bridge")     # the link drops as the order goes
    run_at(repo, MORNING)
    (held,) = orders(repo)
    assert held.status is OrderStatus.HELD and "no link to IB" in (held.note or "")
    assert gateway.orders == [] and gateway.order_posts() == 1

    store = store_of(repo)
    for minutes in (1, 2, 3, 4):            # passes of the daemon: the link is down, then back
        gateway.set_bridge(minutes > 1)
        moment = MORNING + timedelta(minutes=minutes)
        gateway.set_time(moment)
        monkeypatch.setenv("MINITRADE_NOW", moment.isoformat())
        reconcile_once(repo.path, store, now=functools.partial(lambda at: at, moment))
        if minutes == 1:
            assert orders(repo)[0].status is OrderStatus.HELD and gateway.order_posts() == 1
    assert [o.coid for o in gateway.orders] == [held.client_id] and gateway.order_posts() == 2
    (order,) = orders(repo)
    assert order.status is OrderStatus.FILLED
    with store.transaction() as con:
        (fill,) = order_sql.fills_of(con, "alt")
    assert (fill.client_id, fill.quantity, fill.price) == (held.client_id, held.quantity, 75.5)


def test_a_503_from_auth_status_is_reported_as_gateway_unavailable_not_login_needed(
        live_repo, start_gateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = start_gateway("authenticated", SIGNAL)
    repo = ib_repo(live_repo, gateway, sink, monkeypatch, at=SIGNAL)
    for method in ("GET", "POST"):
        gateway.inject(method, "/iserver/auth/status", "503", "503", "503")
    run_at(repo, SIGNAL)
    (order,) = orders(repo)
    assert order.status is OrderStatus.HELD and gateway.order_posts() == 0
    titles = [p.title for p in sink.posts]
    assert any("gateway unavailable" in t for t in titles), titles
    assert not any("login" in p.title.lower() or "minitrade ib login" in p.message for p in sink.posts), titles
