"""`minitrade orders`, `trades` and `fill` end to end on a real trading repo and DuckDB file."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.loader import load_worktree
from minitrade.records import OrderStatus, Side
from minitrade.store import Store
from minitrade.store import orders as order_sql
from tests.orders.conftest import make_order

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _seed(repo_path) -> tuple[Store, list]:
    store = load_worktree(repo_path).store()
    book = [make_order("AAPL", 10, plan="sma-aapl", commit_sha="abc123"),
            make_order("MSFT", 5, plan="momentum-rotation", side=Side.SELL, status=OrderStatus.HELD),
            make_order("IBM", 3, plan="sma-aapl", status=OrderStatus.CANCELLED)]
    with store.transaction() as con:
        order_sql.insert_orders(con, book)
    return store, book


def test_fill_then_orders_and_trades_show_the_book(trading_repo) -> None:
    repo = str(trading_repo.path)
    store, (aapl, msft, ibm) = _seed(trading_repo.path)

    listed = cli("orders", "--json", "--repo", repo)
    assert listed.exit_code == 0, listed.output
    assert {(o["client_id"], o["status"], o["filled"]) for o in json.loads(listed.stdout)["orders"]} == {
        (aapl.client_id, "SUBMITTED", 0.0), (msft.client_id, "HELD", 0.0)}

    part = cli("fill", aapl.client_id, "--price", "230.5", "--qty", "4", "--commission", "1",
               "--at", "2026-11-25 15:59", "--repo", repo)
    assert part.exit_code == 0, part.output
    assert f"Recorded fill {aapl.client_id}#1: BUY 4 AAPL @ 230.5" in part.stdout
    assert "is now PARTIAL: 4 of 10 filled, 6 remaining" in part.stdout
    [row] = json.loads(cli("orders", "sma-aapl", "--json", "--repo", repo).stdout)["orders"]
    assert (row["status"], row["filled"], row["remaining"], row["commit_sha"]) == ("PARTIAL", 4.0, 6.0, "abc123")

    rest = cli("fill", aapl.client_id, "--price", "231", "--at", "2026-11-25 16:00", "--repo", repo)
    assert rest.exit_code == 0 and "is now FILLED: 10 of 10 filled, 0 remaining" in rest.stdout
    assert [o["client_id"] for o in json.loads(cli("orders", "--json", "--repo", repo).stdout)["orders"]] == [msft.client_id]
    every = json.loads(cli("orders", "--all", "--json", "--repo", repo).stdout)["orders"]
    assert {o["client_id"]: o["status"] for o in every} == {
        aapl.client_id: "FILLED", msft.client_id: "HELD", ibm.client_id: "CANCELLED"}

    trades = json.loads(cli("trades", "sma-aapl", "--json", "--repo", repo).stdout)["trades"]
    assert [(t["fill_id"][-2:], t["ticker"], t["side"], t["quantity"], t["price"], t["commission"])
            for t in trades] == [("#1", "AAPL", "BUY", 4.0, 230.5, 1.0), ("#2", "AAPL", "BUY", 6.0, 231.0, 0.0)]
    # --at is read in the plan's exchange time: 15:59 New York is 20:59 UTC in November
    assert trades[0]["filled_at"] == "2026-11-25T20:59:00+00:00"  # ISO 8601, as every --json time
    with store.transaction() as con:
        first = order_sql.fills_of(con, client_id=aapl.client_id)[0]
    assert first.filled_at == datetime(2026, 11, 25, 20, 59, tzinfo=UTC)


def test_fill_refusals_exit_1_with_the_reason(trading_repo) -> None:
    repo = str(trading_repo.path)
    _, (aapl, _, ibm) = _seed(trading_repo.path)
    typo = cli("fill", aapl.client_id[:-1] + "7", "--price", "10", "--repo", repo)
    assert typo.exit_code == 1 and f"did you mean {aapl.client_id}" in typo.output
    cancelled = cli("fill", ibm.client_id, "--price", "10", "--repo", repo)
    assert cancelled.exit_code == 1 and "is CANCELLED; a fill for it is refused" in cancelled.output
    over = cli("fill", aapl.client_id, "--price", "10", "--qty", "11", "--repo", repo)
    assert over.exit_code == 1 and "11 is more than the 10 that remain" in over.output
    bad_time = cli("fill", aapl.client_id, "--price", "10", "--at", "yesterday", "--repo", repo)
    assert bad_time.exit_code == 1 and "is not a time" in bad_time.output
    assert "No trades." in cli("trades", "--repo", repo).stdout


def test_orders_read_the_store_even_when_the_repo_files_are_broken(trading_repo) -> None:
    repo = str(trading_repo.path)
    _, (aapl, *_) = _seed(trading_repo.path)
    trading_repo.write("plans/broken.yaml", "name: [unclosed\n")
    table = cli("orders", "--repo", repo)
    assert table.exit_code == 0, table.output
    assert "Open orders" in table.stdout and "HELD" in table.stdout
    filled = cli("fill", aapl.client_id, "--price", "99", "--at", "2026-11-25T15:59:00-05:00", "--repo", repo)
    assert filled.exit_code == 0, filled.output


def test_csv_output_from_a_real_process(trading_repo) -> None:
    _, (aapl, msft, _) = _seed(trading_repo.path)
    done = subprocess.run([sys.executable, "-m", "minitrade", "orders", "--csv", "--repo", str(trading_repo.path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["client_id"] for r in rows] == [msft.client_id, aapl.client_id]
    assert rows[1]["quantity"] == "10.0" and rows[1]["status"] == "SUBMITTED"
    empty = cli("orders", "nobody", "--repo", str(trading_repo.path))
    assert "No open orders for plan nobody." in empty.stdout


def test_fill_notifies_the_fills_recorded_subscribers(trading_repo) -> None:
    from minitrade.testing.apprise_sink import AppriseSink, closed_port_url

    with AppriseSink() as sink:
        trading_repo.edit("minitrade.yaml", "notifiers: {}", "notifiers:\n"
                          f"  desk:\n    urls: ['{sink.url('desk')}']\n    events: [fills.recorded]\n"
                          f"  gone:\n    urls: ['{closed_port_url('gone')}']\n    events: [fills.recorded]\n")
        _, (aapl, *_) = _seed(trading_repo.path)
        done = cli("fill", aapl.client_id, "--price", "230", "--qty", "2", "--at", "2026-11-25 15:59",
                   "--repo", str(trading_repo.path))
        assert done.exit_code == 0, done.output
        [post] = sink.posts
    assert post.title == "sma-aapl: 1 fill(s)" and "BUY 2 AAPL @ 230" in post.message
    assert "notifier gone failed" in done.output


def test_json_and_csv_together_is_a_usage_error(trading_repo) -> None:
    result = runner.invoke(app, ["orders", "--json", "--csv", "--repo", str(trading_repo.path)])
    assert result.exit_code == 64 and "choose one of --json and --csv" in result.output  # usage error (README: Exit codes)


def test_a_hand_typed_fill_for_an_ib_order_is_refused(trading_repo) -> None:
    trading_repo.edit("minitrade.yaml", "  manual: {type: manual}\n", "  manual: {type: manual}\n"
                      "  paper: {type: ib, username: '${IB_USER}', password: '${IB_PASS}'}\n")
    store = load_worktree(trading_repo.path).store()
    order = make_order("AAPL", 10, broker="paper")
    with store.transaction() as con:
        order_sql.insert_orders(con, [order])
    result = cli("fill", order.client_id, "--price", "10", "--repo", str(trading_repo.path))
    assert result.exit_code == 1 and "a hand-typed fill would count twice" in result.output
    with store.transaction() as con:
        assert order_sql.fills_of(con) == []
