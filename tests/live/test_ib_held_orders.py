"""Orders due while IB has no session are held and announced; after a login they go out exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.reconcile_pass import reconcile_once, send_held
from minitrade.records import OrderStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.apprise_sink import AppriseSink
from minitrade.testing.ib_gateway import FakeGateway
from tests.conftest import present, present_env
from tests.live.conftest import trade_alt_through_ib

NY = ZoneInfo("America/New_York")
SIGNAL = datetime(2013, 1, 3, 15, 45, tzinfo=NY)
runner = CliRunner()


@pytest.fixture
def gateway(start_gateway) -> FakeGateway:
    return start_gateway("no_session", SIGNAL)


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as s:
        yield s


@pytest.fixture
def ib_repo(live_repo, gateway: FakeGateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass-Secret-42")
    live_repo.edit("minitrade.yaml", "notifiers: {}", f"""notifiers:
  phone:
    urls: ["{sink.url('hook')}"]""")
    trade_alt_through_ib(live_repo, gateway)
    result = runner.invoke(app, ["apply", "--yes", "--repo", str(live_repo.path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return live_repo


def orders(repo) -> list:
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        return order_sql.orders_of(con, "alt")


def test_orders_are_held_without_a_session_and_sent_once_after_login(ib_repo, gateway: FakeGateway,
                                                                      sink: AppriseSink) -> None:
    run = runner.invoke(app, ["run", "alt", "--at", SIGNAL.isoformat(), "--repo", str(ib_repo.path)],
                        env=present_env(SIGNAL), catch_exceptions=False)
    assert run.exit_code == 0, run.output
    (held,) = orders(ib_repo)
    assert held.status is OrderStatus.HELD and gateway.order_posts() == 0
    bodies = [p.message for p in sink.posts]
    assert any("HELD" in p.title and "minitrade ib login" in p.message for p in sink.posts), bodies
    assert all("fakepass-Secret-42" not in body for body in bodies)

    gateway.set_state("authenticated")  # the person logged in (`minitrade ib login`)
    store = Store(ib_repo.path / "state" / "minitrade.duckdb")
    sent = send_held(ib_repo.path, store, now=SIGNAL.replace(minute=46))
    assert [o.status for o in sent] == [OrderStatus.SUBMITTED]
    again = send_held(ib_repo.path, store, now=SIGNAL.replace(minute=47))
    assert again == []
    assert [o.coid for o in gateway.orders] == [held.client_id], "exactly one order at the broker"

    after_close = SIGNAL.replace(hour=16, minute=5)
    gateway.set_time(after_close)  # the fake executes the MOC order at the close
    with present(after_close):
        reconcile_once(ib_repo.path, store, now=lambda: after_close)
    (filled,) = orders(ib_repo)
    assert filled.status is OrderStatus.FILLED
    with store.transaction() as con:
        (fill,) = order_sql.fills_of(con, "alt")
    assert (fill.quantity, fill.price) == (held.quantity, 76.0)
    assert any("fill" in p.title.lower() for p in sink.posts)


def test_a_held_toc_order_expires_after_the_close_cutoff_and_is_never_sent(ib_repo, gateway: FakeGateway) -> None:
    runner.invoke(app, ["run", "alt", "--at", SIGNAL.isoformat(), "--repo", str(ib_repo.path)],
                  env=present_env(SIGNAL), catch_exceptions=False)
    gateway.set_state("authenticated")
    store = Store(ib_repo.path / "state" / "minitrade.duckdb")
    (expired,) = send_held(ib_repo.path, store, now=SIGNAL.replace(minute=55))
    assert expired.status is OrderStatus.EXPIRED and "no longer valid" in (expired.note or "")
    assert gateway.order_posts() == 0
