"""`minitrade positions`: a plan's book from partial fills typed with `minitrade fill`, against a hand
computation; and an IB account's own positions beside its plans' (drift until the fills are collected).
Real git, DuckDB, CLI and the fake IB gateway over HTTPS."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.reconcile_pass import reconcile_once
from minitrade.records import Fill, OrderStatus, Side
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.testing.ib_gateway import FakeGateway
from tests.conftest import present, present_env
from tests.live.conftest import trade_alt_through_ib
from tests.orders.conftest import make_order

NY = ZoneInfo("America/New_York")
DAY = date(2013, 1, 3)
TICK = datetime(2013, 1, 3, 20, 45, tzinfo=UTC)   # 15:45 in New York
runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def store_of(repo) -> Store:
    return Store(repo.path / "state" / "minitrade.duckdb")


def test_positions_from_partial_fills_match_a_hand_computation(live_repo) -> None:
    path = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", path).exit_code == 0
    assert cli("data", "fetch", "--plan", "alt", "--repo", path).exit_code == 0
    store = store_of(live_repo)
    buy = make_order("AAPL", 15, plan="alt", day=DAY, tick=TICK, leg=0)
    sell = make_order("AAPL", 10, plan="alt", side=Side.SELL, day=DAY, tick=TICK, leg=1)
    more = make_order("AAPL", 4, plan="alt", day=DAY, tick=TICK, leg=2)
    rehearsed = make_order("AAPL", 100, plan="alt", day=DAY, tick=TICK, leg=3, status=OrderStatus.REHEARSAL)
    with store.transaction() as con:
        order_sql.insert_orders(con, [buy, sell, more, rehearsed])
        # a rehearsal's order never executes; were a fill ever recorded against one, it must not count
        order_sql.insert_fill(con, Fill(f"{rehearsed.client_id}#1", rehearsed.client_id, 100, 1.0, 0.0,
                                        TICK, "manual"), commit_sha=None, plan_digest=None)
    for order, qty, price, fee, at in [(buy, "10", "100", "1", "15:50"), (buy, "5", "110", "1", "15:52"),
                                       (sell, "8", "120", "1", "15:55"), (more, "4", "90", "0.5", "15:58")]:
        done = cli("fill", order.client_id, "--qty", qty, "--price", price, "--commission", fee,
                   "--at", f"2013-01-03 {at}", "--repo", path)
        assert done.exit_code == 0, done.output
    with store.transaction() as con:
        (mark_day, mark), = con.execute("SELECT date, close FROM prices WHERE ticker = 'AAPL' "
                                        "ORDER BY date DESC LIMIT 1").fetchall()

    # by hand, average cost: two buys, a partial sell that realises against the average, a buy after it
    cost = (10 * 100 + 5 * 110) / 15
    realised = 8 * (120 - cost)
    cost = (7 * cost + 4 * 90) / 11
    cash = 100_000 - 10 * 100 - 5 * 110 + 8 * 120 - 4 * 90 - (1 + 1 + 1 + 0.5)
    unrealised = 11 * (mark - cost)

    shown = cli("positions", "alt", "--json", "--repo", path)
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert (doc["format_version"], doc["kind"]) == (1, "positions")
    (book,) = doc["plans"]
    (aapl,) = book["positions"]
    assert (aapl["ticker"], aapl["quantity"], aapl["fills"]) == ("AAPL", 11.0, 4)
    assert aapl["avg_cost"] == pytest.approx(cost)
    assert aapl["realized_pnl"] == pytest.approx(realised)
    assert (aapl["mark"], aapl["mark_date"]) == (pytest.approx(mark), mark_day.isoformat())
    assert aapl["unrealized_pnl"] == pytest.approx(unrealised)
    assert aapl["fees"] == pytest.approx(3.5) and book["fees"] == pytest.approx(3.5)
    assert book["cash"] == pytest.approx(cash) and book["start_cash"] == 100_000
    assert book["equity"] == pytest.approx(cash + 11 * mark)
    assert doc["total"]["positions"] == [{"ticker": "AAPL", "quantity": 11.0}]
    assert doc["total"]["realized_pnl"] == pytest.approx(realised)

    text = cli("positions", "--repo", path)
    assert text.exit_code == 0, text.output
    assert f"Plan alt on manual: cash {cash:,.2f} (started 100,000.00)" in text.stdout
    assert f"realised {realised:+,.2f}, unrealised {unrealised:+,.2f}, fees 3.50" in text.stdout
    rows = list(csv.DictReader(io.StringIO(cli("positions", "--csv", "--repo", path).stdout)))
    assert [(r["plan"], r["ticker"], float(r["quantity"])) for r in rows] == [("alt", "AAPL", 11.0),
                                                                              ("alt", "(cash)", pytest.approx(cash))]
    unknown = cli("positions", "nope", "--repo", path)
    assert unknown.exit_code == 1 and "no applied plan 'nope'" in unknown.output


DAY3 = datetime(2013, 1, 3, 15, 45, tzinfo=NY)


@pytest.fixture
def gateway(start_gateway) -> FakeGateway:
    return start_gateway("authenticated", DAY3)


def test_broker_positions_beside_the_plans_show_drift_until_the_fills_are_collected(
        live_repo, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass")
    trade_alt_through_ib(live_repo, gateway)
    path = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", path).exit_code == 0
    ran = cli("run", "alt", "--at", DAY3.isoformat(), "--repo", path, env=present_env(DAY3))
    assert ran.exit_code == 0, ran.output
    gateway.set_time(DAY3.replace(hour=16, minute=5))   # the MOC order executes at the close (76)

    def broker_view() -> tuple[dict, dict]:
        shown = cli("positions", "--broker", "--json", "--repo", path)
        assert shown.exit_code == 0, shown.output
        doc = json.loads(shown.stdout)
        (account,) = doc["brokers"]
        return doc, account

    doc, account = broker_view()
    assert account["account"] == "ib" and account["agrees"] is False
    assert account["positions"] == [{"ticker": "AAPL", "broker": 10.0, "plans": 0.0, "drift": 10.0}]
    text = cli("positions", "--broker", "--repo", path).stdout
    assert "Broker ib DRIFT in 1 ticker(s)" in text and "AAPL: broker 10, plans 0  drift +10" in text

    after = DAY3.replace(hour=16, minute=6)
    with present(after):   # a daemon pass collects the executions
        reconcile_once(live_repo.path, store_of(live_repo), now=lambda: after)
    doc, account = broker_view()
    assert account["agrees"] is True
    assert account["positions"] == [{"ticker": "AAPL", "broker": 10.0, "plans": 10.0, "drift": 0.0}]
    (aapl,) = doc["plans"][0]["positions"]
    with store_of(live_repo).transaction() as con:
        (fill,) = order_sql.fills_of(con, "alt")
    assert (aapl["quantity"], aapl["avg_cost"]) == (10.0, 76.0)
    assert doc["plans"][0]["cash"] == pytest.approx(100_000 - 760 - fill.commission)


def test_broker_positions_without_a_session_say_so_and_never_log_in(live_repo, start_gateway,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = start_gateway("expired", DAY3)
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass")
    trade_alt_through_ib(live_repo, gateway)
    path = str(live_repo.path)
    assert cli("apply", "--yes", "--repo", path).exit_code == 0
    shown = cli("positions", "--broker", "--json", "--repo", path)
    assert shown.exit_code == 1
    (account,) = json.loads(shown.stdout)["brokers"]
    assert account["error"].startswith("not asked:") and "minitrade ib login ib" in account["error"]
