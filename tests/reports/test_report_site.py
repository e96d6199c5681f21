"""The report site as files: pages, CSV/JSON exports, escaping, buy-and-hold and plan selection."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.reports import PlanInput, SiteInput, buy_and_hold, curves, render_site
from minitrade.runner.publish import write_site
from tests.reports.synthetic import COMMIT, seed_plan, seed_reconciliation

pytestmark = pytest.mark.filterwarnings(  # exchange_calendars 4.13 on pandas 3.1, via next_run_times
    "ignore:Series.values returning an ndarray:pandas.errors.Pandas4Warning")
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_site_has_index_pages_and_exports_for_every_plan(tmp_path, store):
    seed_plan(store, "alpha", days=250, seed=1)
    seed_plan(store, "beta", days=40, seed=2, orders=3)
    seed_reconciliation(store)
    out = tmp_path / "reports"

    index = write_site(store, out, now=NOW)

    assert index == out / "index.html"
    for name in ("alpha", "beta"):
        folder = out / "plans" / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "equity.csv", "fills.csv", "index.html", "live.csv", "orders.csv", "plan.json", "runs.csv", "trades.csv"]
    assert sorted(p.name for p in (out / "assets").iterdir()) == ["chart.js", "live.js", "style.css"]
    assert (out / "version.txt").read_text().strip()
    summary = {r["plan"]: r for r in read_csv(out / "index.csv")}
    assert summary["alpha"]["pending_orders"] == "4" and summary["beta"]["pending_orders"] == "2"
    assert summary["alpha"]["last_outcome"] == "FINISHED" and summary["alpha"]["commit"] == COMMIT
    assert summary["alpha"]["next_run"] == "2026-11-25T15:45:00-05:00"
    equity = read_csv(out / "plans" / "alpha" / "equity.csv")
    assert len(equity) == 250 and equity[0]["drawdown_pct"] == "0.0"
    assert float(equity[0]["buy_hold"]) == pytest.approx(float(equity[0]["equity"]))
    exported = json.loads((out / "plans" / "alpha" / "plan.json").read_text())
    assert exported["spec"]["strategy"] == "strategies/momentum.py"
    assert [r["status"] for r in exported["runs"]] == ["FINISHED", "FAILED"]  # newest first
    assert json.loads((out / "index.json").read_text())["applied_commit"] == COMMIT
    html = (out / "index.html").read_text()
    assert 'href="plans/alpha/index.html"' in html and "applied" in html
    assert "http://" not in html and "https://" not in html


def test_fills_are_joined_to_their_orders_ticker_and_side(tmp_path, store):
    seed_plan(store, "alpha", days=30, orders=4)
    write_site(store, tmp_path, now=NOW)
    fills = read_csv(tmp_path / "plans" / "alpha" / "fills.csv")
    assert sorted((f["ticker"], f["side"], f["price"]) for f in fills) == [("QQQ", "BUY", "101.5"),
                                                                           ("SPY", "SELL", "101.5")]


def test_text_from_runs_is_escaped_not_executed(tmp_path):
    plan = PlanInput(name="x", runs=[{"run_id": "r", "kind": "manual", "status": "FAILED", "started_at": NOW,
                                      "error": "<script>alert(1)</script>", "stats": None}],
                     spec={"name": "x", "strategy": "<img src=x onerror=alert(1)>", "broker": "manual"})
    render_site(SiteInput(plans=[plan], generated_at=NOW), tmp_path)
    page = (tmp_path / "plans" / "x" / "index.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in page
    assert "No finished run with an equity curve yet." in page


def test_buy_and_hold_is_an_equal_weight_basket_from_the_first_day():
    dates = ["2026-01-02", "2026-01-05", "2026-01-06"]
    closes = [{"ticker": "A", "date": date(2026, 1, 2), "close": 10.0}, {"ticker": "B", "date": "2026-01-02", "close": 50.0},
              {"ticker": "A", "date": "2026-01-05", "close": 20.0}, {"ticker": "B", "date": "2026-01-05", "close": 50.0},
              {"ticker": "B", "date": "2026-01-06", "close": 25.0}]  # A has no bar: its last close carries
    assert buy_and_hold(dates, 1000.0, closes) == [1000.0, 1500.0, 1250.0]
    assert buy_and_hold(dates, 1000.0, []) == [None, None, None]


def test_drawdown_follows_the_running_peak():
    plan = PlanInput(name="p", equity=[{"date": f"2026-01-0{i + 1}", "equity": v}
                                       for i, v in enumerate([100.0, 120.0, 90.0, 130.0])])
    assert curves(plan).drawdown_pct == [0.0, 0.0, -25.0, 0.0]


def test_report_command_writes_the_site_and_can_limit_to_one_plan(tmp_path):
    (tmp_path / "minitrade.yaml").write_text("state_dir: state\n")
    from minitrade.store import Store

    store = Store(tmp_path / "state" / "minitrade.duckdb")
    seed_plan(store, "alpha", days=60, seed=1)
    seed_plan(store, "beta", days=60, seed=2)
    runner = CliRunner()

    only = runner.invoke(app, ["report", "beta", "--repo", str(tmp_path)])
    assert only.exit_code == 0, only.output
    reports = tmp_path / "state" / "reports"
    assert (reports / "plans" / "beta" / "index.html").exists()
    assert not (reports / "plans" / "alpha").exists()
    assert "alpha" in (reports / "index.html").read_text()
    assert "index.html" in only.output

    everything = runner.invoke(app, ["report", "--repo", str(tmp_path)])
    assert everything.exit_code == 0 and (reports / "plans" / "alpha" / "index.html").exists()

    unknown = runner.invoke(app, ["report", "gamma", "--repo", str(tmp_path)])
    assert unknown.exit_code == 1 and "no plan named 'gamma'" in unknown.output


def test_progress_is_reported_for_each_plan_read_and_written(tmp_path, store):
    for i in range(3):
        seed_plan(store, f"p{i}", days=40, seed=i)
    steps: list[tuple[int, int, str]] = []

    write_site(store, tmp_path, now=NOW, progress=lambda done, total, what: steps.append((done, total, what)))

    assert [s[0] for s in steps] == [1, 2, 3, 4, 5, 6] and {s[1] for s in steps} == {6}
    assert steps[0][2] == "read p0" and steps[-1][2] == "wrote p2"


def test_an_empty_store_gives_an_index_that_says_how_to_start(tmp_path, store):
    index = write_site(store, tmp_path / "reports", now=NOW)
    assert "No plans yet" in index.read_text()
    assert (tmp_path / "reports" / "index.csv").read_text().strip() == "plan"


def test_report_masks_secrets_that_slipped_into_recorded_text(tmp_path, monkeypatch):
    secret = "pw&<7h1s-'is'-\"secret\">"
    monkeypatch.setenv("MT_TEST_REPORT_PW", secret)
    (tmp_path / "minitrade.yaml").write_text(
        "state_dir: state\nbrokers:\n  ib:\n    type: ib\n    username: ${MT_TEST_REPORT_USER}\n"
        "    password: ${MT_TEST_REPORT_PW}\n")
    from minitrade.store import Store

    store = Store(tmp_path / "state" / "minitrade.duckdb")
    seed_plan(store, "alpha", days=40)
    with store.transaction() as con:
        con.execute("INSERT INTO runs (run_id, plan, kind, started_at, status, error) "
                    "VALUES ('leak', 'alpha', 'manual', ?, 'FAILED', ?)", [NOW, f"login with {secret} refused"])

    result = CliRunner().invoke(app, ["report", "--repo", str(tmp_path)])

    assert result.exit_code == 0, result.output
    written = [p for p in (tmp_path / "state" / "reports").rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        text = path.read_text()
        assert secret not in text and "7h1s-" not in text, path
    assert "login with *** refused" in (tmp_path / "state" / "reports" / "plans" / "alpha" / "runs.csv").read_text()
