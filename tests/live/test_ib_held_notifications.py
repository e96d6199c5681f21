"""What the person hears about held orders: held at submit (a 401 on the order POST), sent later after
a login, and the sent order's note no longer saying why it was once held.

Real fake gateway over HTTPS, real Apprise sink, real DuckDB and git; `MINITRADE_NOW` makes the
tick the real present, so the run is a live one (never a rehearsal).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.reconcile_pass import send_held
from minitrade.records import OrderStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.apprise_sink import AppriseSink
from minitrade.testing.ib_gateway import FakeGateway
from tests.live.conftest import trade_alt_through_ib

NY = ZoneInfo("America/New_York")
SIGNAL = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
ORDER_POSTS = r"/iserver/account/.*/orders"
runner = CliRunner()


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as s:
        yield s


def ib_repo(repo, gateway: FakeGateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass-Secret-42")
    monkeypatch.setenv("MINITRADE_NOW", SIGNAL.isoformat())
    repo.edit("minitrade.yaml", "notifiers: {}", f"""notifiers:
  phone:
    urls: ["{sink.url('hook')}"]""")
    trade_alt_through_ib(repo, gateway)
    result = runner.invoke(app, ["apply", "--yes", "--repo", str(repo.path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return repo


def run_alt(repo) -> None:
    result = runner.invoke(app, ["run", "alt", "--at", SIGNAL.isoformat(), "--repo", str(repo.path)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output


def the_order(repo):
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        (order,) = order_sql.orders_of(con, "alt")
    return order


def titles(sink: AppriseSink) -> list[str]:
    return [p.title for p in sink.posts]


def test_an_order_held_by_a_401_at_submit_is_announced_and_its_later_sending_too(
        live_repo, start_gateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = start_gateway("authenticated", SIGNAL)  # the session check passes...
    repo = ib_repo(live_repo, gateway, sink, monkeypatch)
    gateway.inject("POST", ORDER_POSTS, "401")         # ...then IB answers the order POST 401

    run_alt(repo)

    held = the_order(repo)
    assert held.status is OrderStatus.HELD and gateway.orders == []
    assert "alt: 1 order(s) HELD" in titles(sink), titles(sink)
    assert "ib: login needed" in titles(sink), titles(sink)
    (pending,) = [p for p in sink.posts if p.title == "alt: 1 order(s) HELD"]
    assert "BUY" in pending.message and "AAPL" in pending.message and "minitrade ib login" in pending.message

    store = Store(repo.path / "state" / "minitrade.duckdb")
    (sent,) = send_held(repo.path, store, now=SIGNAL.replace(minute=46))

    assert sent.status is OrderStatus.SUBMITTED and [o.coid for o in gateway.orders] == [held.client_id]
    assert titles(sink)[-1] == "alt: 1 order(s) submitted", titles(sink)
    assert sent.note is None and the_order(repo).note is None  # "no brokerage session" is no longer true


def test_an_order_held_by_an_expired_session_is_sent_after_login_announced_and_its_note_cleared(
        live_repo, start_gateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = start_gateway("expired", SIGNAL)
    repo = ib_repo(live_repo, gateway, sink, monkeypatch)

    run_alt(repo)
    held = the_order(repo)
    assert held.status is OrderStatus.HELD and held.note == "broker session: expired"
    assert "alt: 1 order(s) HELD" in titles(sink)

    gateway.set_state("authenticated")  # the person logged in
    store = Store(repo.path / "state" / "minitrade.duckdb")
    send_held(repo.path, store, now=SIGNAL.replace(minute=46))

    sent = the_order(repo)
    assert sent.status is OrderStatus.SUBMITTED
    assert "broker session" not in (sent.note or "")
    assert titles(sink)[-1] == "alt: 1 order(s) submitted", titles(sink)
    # a second pass sends nothing and says nothing
    before = len(sink.posts)
    assert send_held(repo.path, store, now=SIGNAL.replace(minute=47)) == []
    assert len(sink.posts) == before
