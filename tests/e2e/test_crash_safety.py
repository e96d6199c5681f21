"""Kill the daemon with SIGKILL at named points, restart it: exactly one order per signal at the broker,
no tick lost or doubled. The broker is the fake IB gateway over real HTTPS; the daemon a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from minitrade.records import OrderStatus, TickStatus
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.ib_gateway import FakeGateway
from tests.conftest import present_env
from tests.live.conftest import trade_alt_through_ib

NY = ZoneInfo("America/New_York")
TICK = datetime(2013, 1, 3, 15, 45, tzinfo=NY)


@pytest.fixture
def gateway(start_gateway) -> FakeGateway:
    return start_gateway("authenticated", TICK)


@pytest.fixture
def ib_repo(live_repo, gateway: FakeGateway):
    trade_alt_through_ib(live_repo, gateway)
    return live_repo


def daemon_once(repo, at: datetime, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IB_USERNAME": "fakeuser", "IB_PASSWORD": "fakepass"}
    env.pop("MINITRADE_FAILPOINT", None)
    env.update(present_env(at))  # the tick is the present: the live path, not a rehearsal
    if failpoint:
        env["MINITRADE_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--once", "--at", at.isoformat(),
                           "--repo", str(repo.path)], capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.parametrize("point", ["tick-started", "order-recorded", "submit-sent"])
def test_sigkill_at_each_point_then_restart_gives_exactly_one_order(ib_repo, gateway: FakeGateway,
                                                                    point: str) -> None:
    crashed = daemon_once(ib_repo, TICK.replace(second=20), failpoint=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    restarted = daemon_once(ib_repo, TICK.replace(second=50))
    assert restarted.returncode == 0, restarted.stderr

    with Store(ib_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        orders = order_sql.orders_of(con, "alt")
        ticks = order_sql.ticks_of(con, "alt")
    assert len(orders) == 1 and orders[0].status is OrderStatus.SUBMITTED
    assert [o.coid for o in gateway.orders] == [orders[0].client_id], "exactly one order at the broker"
    assert [(t.scheduled_at, t.status) for t in ticks] == [(TICK, TickStatus.FINISHED)], \
        "the interrupted tick was resumed within its grace period: neither lost nor doubled"

    again = daemon_once(ib_repo, TICK.replace(minute=46))
    assert again.returncode == 0
    assert len(gateway.orders) == 1
