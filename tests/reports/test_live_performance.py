"""A plan's live record from hand-made fills in a real DuckDB file, checked against a hand computation.

The page and its exports come from `write_site`, the path the daemon and `minitrade report` take.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime

import pytest

from minitrade.runner.publish import write_site
from minitrade.store import Store

pytestmark = pytest.mark.filterwarnings(  # exchange_calendars 4.13 on pandas 3.1, via next_run_times
    "ignore:Series.values returning an ndarray:pandas.errors.Pandas4Warning")

NOW = datetime(2026, 1, 12, 12, tzinfo=UTC)
DAYS = [date(2026, 1, 2), date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7), date(2026, 1, 8), date(2026, 1, 9)]
CLOSES: dict[str, list[float | None]] = {"AAA": [9.0, 10.0, 11.0, 12.0, None, 9.0],        # no bar on the 8th: the 7th's close carries
          "IBM": [100.0, 101.0, 102.0, 100.0, 99.0, 98.0]}
SIMULATED = [11000.0, 11100.0, 11150.0, 11120.0, 11180.0, 11220.0]


def spec() -> dict:
    return {"name": "hand", "strategy": "strategies/x.py", "universe": ["AAA", "IBM"], "data_source": "samples",
            "calendar": "XNYS", "backtest_start": "2025-01-02", "trade_start": "2026-01-05",
            "run_at": ["15:45"], "order_type": "TOC", "mode": "strict", "broker": "manual", "cash": 10000.0,
            "positions": {"IBM": 10}, "params": {}, "backtest": "enabled", "trading": "enabled"}


def order(con, client_id: str, side: str, quantity: float, status: str = "FILLED") -> None:
    at = datetime(2026, 1, 5, 20, 45, tzinfo=UTC)
    con.execute("INSERT INTO orders (client_id, plan, run_id, trading_day, tick_at, ticker, side, quantity, "
                "order_type, broker, status, created_at, updated_at) VALUES (?, 'hand', 'live-1', ?, ?, 'AAA', ?, ?, "
                "'TOC', 'manual', ?, ?, ?)", [client_id, at.date(), at, side, quantity, status, at, at])


def fill(con, fill_id: str, client_id: str, quantity: float, price: float, commission: float, at: datetime) -> None:
    con.execute("INSERT INTO fills (fill_id, client_id, quantity, price, commission, filled_at, source, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'manual', ?)", [fill_id, client_id, quantity, price, commission, at, at])


def run(con, run_id: str, kind: str, started: datetime, equity: list[float]) -> None:
    con.execute("INSERT INTO runs (run_id, plan, kind, tick_at, started_at, finished_at, status, stats) "
                "VALUES (?, 'hand', ?, ?, ?, ?, 'FINISHED', ?)",
                [run_id, kind, started, started, started, json.dumps({"return_pct": 100 * (equity[-1] / equity[0] - 1)})])
    for day, value in zip(DAYS, equity, strict=True):
        con.execute("INSERT INTO equity (run_id, date, equity, cash, positions) VALUES (?, ?, ?, ?, '{}')",
                    [run_id, day, value, value])


@pytest.fixture
def hand_store(tmp_path) -> Store:
    store = Store(tmp_path / "state" / "minitrade.duckdb")
    with store.transaction() as con:
        con.execute("INSERT INTO applied_resources VALUES ('plan', 'hand', 'd', ?, 'c0ffee', ?)",
                    [json.dumps(spec()), NOW])
        con.execute("INSERT INTO applied_resources VALUES ('settings', 'minitrade', 's', ?, 'c0ffee', ?)",
                    [json.dumps({"timezone": "America/New_York"}), NOW])
        for ticker, closes in CLOSES.items():
            for day, close in zip(DAYS, closes, strict=True):
                if close is not None:
                    con.execute("INSERT INTO prices (source, ticker, date, open, high, low, close, volume, adjustment, "
                                "fetched_at) VALUES ('samples', ?, ?, ?, ?, ?, ?, 1, 'none', ?)",
                                [ticker, day, close, close, close, close, NOW])
        # the live run the strict simulation comes from (it began trading on the 5th) ...
        run(con, "live-1", "scheduled", datetime(2026, 1, 5, 20, 45, tzinfo=UTC), SIMULATED)
        con.execute("UPDATE runs SET output = 'rotating into AAA', output_bytes = 17 WHERE run_id = 'live-1'")
        # ... and a later research backtest, which must change nothing on the live page
        run(con, "backtest-1", "backtest", datetime(2026, 1, 11, 9, tzinfo=UTC), [10000.0] * 5 + [30000.0])
        order(con, "hand-buy", "BUY", 100, status="FILLED")
        fill(con, "f1", "hand-buy", 60, 10.0, 1.0, datetime(2026, 1, 5, 21, 0, tzinfo=UTC))     # the 5th's close
        fill(con, "f2", "hand-buy", 40, 10.5, 0.5, datetime(2026, 1, 6, 14, 31, tzinfo=UTC))    # partial, the 6th
        order(con, "hand-sell", "SELL", 50, status="FILLED")
        # 00:30 UTC on the 8th is 19:30 on the 7th in New York: it belongs to the 7th
        fill(con, "f3", "hand-sell", 50, 12.0, 1.0, datetime(2026, 1, 8, 0, 30, tzinfo=UTC))
        order(con, "hand-rehearsal", "BUY", 1000, status="REHEARSAL")  # never counts, even with a fill row
        fill(con, "f4", "hand-rehearsal", 1000, 1.0, 0.0, datetime(2026, 1, 6, 15, 0, tzinfo=UTC))
    return store


def test_live_equity_follows_the_fills_and_each_days_close(tmp_path, hand_store):
    out = tmp_path / "reports"
    write_site(hand_store, out, now=NOW)

    with (out / "plans" / "hand" / "live.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    # by hand: the book before the first live day is 10000 cash + 10 IBM at the close before it (100)
    start = 10000 + 10 * 100.0
    cash_5th = 10000 - 60 * 10.0 - 1.0                  # 9399
    cash_6th = cash_5th - 40 * 10.5 - 0.5               # 8978.5
    cash_7th = cash_6th + 50 * 12.0 - 1.0               # 9577.5
    expected = [cash_5th + 60 * 10 + 10 * 101,          # 11009
                cash_6th + 100 * 11 + 10 * 102,         # 11098.5
                cash_7th + 50 * 12 + 10 * 100,          # 11177.5
                cash_7th + 50 * 12 + 10 * 99,           # 11167.5 (AAA's close carried)
                cash_7th + 50 * 9 + 10 * 98]            # 11007.5
    assert [r["date"] for r in rows] == [d.isoformat() for d in DAYS[1:]]
    assert [float(r["equity"]) for r in rows] == pytest.approx(expected)
    assert float(rows[-1]["drawdown_pct"]) == pytest.approx(100 * (expected[-1] / expected[2] - 1))
    # the simulation rebased to the live start: its value before the 5th (11000) is the live 11000
    assert [float(r["simulated"]) for r in rows] == pytest.approx([v * start / 11000 for v in SIMULATED[1:]])

    live = json.loads((out / "plans" / "hand" / "plan.json").read_text())["live"]
    assert live["start"] == "2026-01-05" and live["end"] == "2026-01-09"
    assert live["stats"]["return_pct"] == pytest.approx(100 * (expected[-1] / start - 1))
    assert live["stats"]["start"] == "2026-01-05" and live["stats"]["fills"] == 3
    assert live["tracking"]["simulated_return_pct"] == pytest.approx(2.0)
    assert live["tracking"]["difference_pct"] == pytest.approx(100 * (expected[-1] / start - 1) - 2.0)
    book = live["book"]
    assert book["cash"] == pytest.approx(cash_7th) and book["equity"] == pytest.approx(expected[-1])
    assert book["realized"] == pytest.approx(50 * (12.0 - 10.2))           # average cost (600 + 420) / 100
    # P&L as `minitrade positions` computes it: a preexisting position's cost is trade_start's close (101)
    assert book["unrealized"] == pytest.approx(50 * (9 - 10.2) + 10 * (98 - 101))
    assert book["fees"] == pytest.approx(2.5)

    index = json.loads((out / "index.json").read_text())
    assert index["totals"]["equity"] == pytest.approx(expected[-1])
    assert index["totals"]["return_pct"] == pytest.approx(live["stats"]["return_pct"])
    assert index["plans"][0]["return_pct"] == pytest.approx(live["stats"]["return_pct"])
    page = (out / "plans" / "hand" / "index.html").read_text()
    assert '<div class="v" id="live-return">+0.07%</div>' in page
    assert (out / "plans" / "hand" / "backtest.html").is_file()
    assert "+200.00%" in (out / "plans" / "hand" / "backtest.html").read_text()   # the backtest's own page
    headline = page[page.index('<section class="headline" id="live">'):page.index('<section id="simulation">')]
    simulation = page[page.index('<section id="simulation">'):page.index("<h2>Orders")]
    assert "+200.00%" not in headline and "+200.00%" not in simulation   # only the runs table lists it
    assert "live-1" in simulation and "backtest-1" not in simulation
    # what the run's strategy printed is still linked from its row of the runs table
    assert 'href="output/live-1.txt"' in page
    assert (out / "plans" / "hand" / "output" / "live-1.txt").read_text() == "rotating into AAA"


def test_times_are_shown_in_the_settings_timezone(tmp_path, hand_store):
    out = tmp_path / "reports"
    write_site(hand_store, out, now=NOW)
    index = (out / "index.html").read_text()
    # the live run started 20:45 UTC: 15:45 in New York, as the next run (15:45 EST) is shown
    assert "2026-01-05 15:45 EST" in index and "2026-01-12 15:45 EST" in index
    assert "20:45 UTC" not in index
