"""Synthetic but realistic report data written into a real DuckDB file (tests and bench/bench_reports.py).

Rows are inserted with plain SQL through `Store.transaction()` exactly as schema V1 defines the
tables; the writers owned by other areas are not needed to exercise the report site.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from minitrade.store import Store

COMMIT = "5e1f0c2a9b7d4e3f8a6b1c0d2e4f6a8b0c1d3e5f"


def plan_spec(name: str, tickers: tuple[str, ...] = ("SPY", "QQQ"), *, start: date = date(2016, 1, 4)) -> dict:
    return {"name": name, "strategy": "strategies/momentum.py", "universe": {t: {} for t in tickers},
            "data_source": "samples", "calendar": "XNYS", "backtest_start": start.isoformat(),
            "trade_start": date(start.year + 7, 1, 3).isoformat(),
            "run_at": ["15:45:00"], "order_type": "TOC", "mode": "strict", "broker": "manual",
            "cash": 10000.0, "positions": {}, "params": {"lookback": 20}, "backtest": "enabled",
            "trading": "disabled"}


def seed_plan(store: Store, name: str, *, days: int = 2520, start: date = date(2016, 1, 4),
              tickers: tuple[str, ...] = ("SPY", "QQQ"), seed: int = 7, orders: int = 6) -> str:
    """One applied plan with a failed and a finished run, `days` of equity, prices, trades, orders, fills.

    Returns the finished run's id.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=days)
    closes = {t: 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.011, days))) for t in tickers}
    equity = 10000 * np.exp(np.cumsum(rng.normal(0.0004, 0.009, days)))
    run_id = f"{name}-run-2"
    peak = np.maximum.accumulate(equity)
    stats = {"start": dates[0].date().isoformat(), "end": dates[-1].date().isoformat(),
             "return_pct": 100 * (equity[-1] / 10000 - 1), "cagr_pct": 7.1,
             "max_drawdown_pct": float(100 * (equity / peak - 1).min()), "sharpe": 0.83, "sortino": 1.2,
             "volatility_pct": 14.3, "trades": 3, "win_rate_pct": 66.7, "exposure_pct": 93.0,
             "final_equity": float(equity[-1]), "buy_hold_return_pct": 55.0, "calmar": None}
    started = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    eq = pd.DataFrame({"run_id": run_id, "date": dates.date, "equity": equity, "cash": equity * 0.05,
                       "positions": json.dumps({t: 10 for t in tickers})})
    ph = pd.concat([pd.DataFrame({"plan": name, "ticker": t, "date": dates.date, "open": c, "high": c * 1.01,
                                  "low": c * 0.99, "close": c, "run_id": run_id}) for t, c in closes.items()])
    with store.transaction() as con:
        con.execute("INSERT INTO applied_resources (kind, name, digest, spec, commit_sha, applied_at) "
                    "VALUES ('plan', ?, 'd1g35t', ?, ?, ?)",
                    [name, json.dumps(plan_spec(name, tickers, start=start)), COMMIT, started])
        con.execute("INSERT INTO runs (run_id, plan, kind, started_at, finished_at, status, error, commit_sha, "
                    "plan_digest) VALUES (?, ?, 'scheduled', ?, ?, 'FAILED', ?, ?, 'd1g35t')",
                    [f"{name}-run-1", name, started - timedelta(days=1), started - timedelta(days=1),
                     "DataError: samples/SPY: file <missing> not found", COMMIT])
        con.execute("INSERT INTO runs (run_id, plan, kind, started_at, finished_at, status, commit_sha, "
                    "plan_digest, start_date, end_date, stats) VALUES (?, ?, 'scheduled', ?, ?, 'FINISHED', ?, "
                    "'d1g35t', ?, ?, ?)",
                    [run_id, name, started, started + timedelta(seconds=3), COMMIT, dates[0].date(),
                     dates[-1].date(), json.dumps(stats)])
        con.register("eq_frame", eq)
        con.execute("INSERT INTO equity (run_id, date, equity, cash, positions) "
                    "SELECT run_id, date, equity, cash, positions FROM eq_frame")
        con.unregister("eq_frame")
        con.register("ph_frame", ph)
        con.execute("INSERT INTO price_history (plan, ticker, date, open, high, low, close, run_id) "
                    "SELECT plan, ticker, date, open, high, low, close, run_id FROM ph_frame")
        con.unregister("ph_frame")
        for seq in range(3):
            con.execute("INSERT INTO backtest_trades (run_id, seq, ticker, size, entry_date, exit_date, "
                        "entry_price, exit_price, pnl, return_pct) VALUES (?, ?, ?, 10, ?, ?, 100, 110, ?, ?)",
                        [run_id, seq, tickers[seq % len(tickers)], dates[seq * 10].date(),
                         dates[seq * 10 + 5].date(), 100.0 if seq != 1 else -50.0, 10.0 if seq != 1 else -5.0])
            con.execute("INSERT INTO backtest_fills (run_id, seq, date, ticker, size, price, commission) "
                        "VALUES (?, ?, ?, ?, 10, 100, 0.1)",
                        [run_id, seq, dates[seq * 10].date(), tickers[seq % len(tickers)]])
        day = dates[-1].date()
        for i in range(orders):
            cid = f"{name}-{day:%Y%m%d}-1545-{tickers[i % len(tickers)]}-{i}"
            status = "FILLED" if i % 3 == 0 else ("HELD" if i % 3 == 1 else "SUBMITTED")
            con.execute("INSERT INTO orders (client_id, plan, run_id, trading_day, tick_at, ticker, side, "
                        "quantity, order_type, broker, status, commit_sha, plan_digest, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'TOC', 'manual', ?, ?, 'd1g35t', ?, ?)",
                        [cid, name, run_id, day, started, tickers[i % len(tickers)], "BUY" if i % 2 else "SELL",
                         5 + i, status, COMMIT, started, started])
            if status == "FILLED":
                con.execute("INSERT INTO fills (fill_id, client_id, quantity, price, commission, filled_at, "
                            "source, commit_sha, plan_digest, recorded_at) "
                            "VALUES (?, ?, ?, 101.5, 1.0, ?, 'manual', ?, 'd1g35t', ?)",
                            [f"fill-{cid}", cid, 5 + i, started + timedelta(minutes=20), COMMIT, started])
    return run_id


def seed_reconciliation(store: Store) -> None:
    with store.transaction() as con:
        con.execute("INSERT INTO reconciliations (id, commit_sha, dirty, message, attempted_at, outcome, source) "
                    "VALUES (nextval('reconciliation_ids'), ?, false, 'add plans', ?, 'applied', 'apply')", [COMMIT, datetime(2026, 11, 24, 12, tzinfo=UTC)])
