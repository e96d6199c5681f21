"""Replay fills TRG orders as the guide says: placed during market hours they execute at once (daily
bars: at the signal day's close, the price the run saw), placed after the close at the next open."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.store import Store
from minitrade.store import orders as order_sql
from minitrade.trading_calendar import get_calendar

NY = ZoneInfo("America/New_York")
runner = CliRunner()


def aapl() -> pd.DataFrame:
    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        return pd.read_csv(path, index_col="date", parse_dates=True)


def replay_trg(repo, run_at: str):
    """Replay the `alt` plan as an incremental TRG plan running at `run_at`; its orders and fills."""
    repo.edit("plans/alt.yaml", "mode: strict", "mode: incremental")
    repo.edit("plans/alt.yaml", "order_type: TOC", "order_type: TRG")
    repo.edit("plans/alt.yaml", 'run_at: "15:45"', f'run_at: "{run_at}"')
    repo.commit("alt: TRG")
    result = runner.invoke(app, ["replay", "--from", "2013-01-02", "--to", "2013-01-09", "--repo", str(repo.path)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Store(repo.path / "state" / "replay" / "minitrade.duckdb").transaction() as con:
        placed = {o.client_id: o for o in order_sql.orders_of(con, "alt")}
        fills = order_sql.fills_of(con, "alt")
    assert fills
    return placed, fills


def test_a_trg_order_of_a_run_during_the_session_fills_at_once_at_the_signal_days_close(live_repo) -> None:
    placed, fills = replay_trg(live_repo, "10:00")
    close = aapl()["close"]
    assert len(fills) == len(placed) == 5  # one a session, the last one too (01-09, within the replay)
    for fill in fills:
        order = placed[fill.client_id]
        assert order.tick_at is not None and order.tick_at.astimezone(NY).time() == time(10, 0)
        assert fill.filled_at == order.tick_at, "executed when the run placed it, not at the next open"
        assert fill.price == close[pd.Timestamp(order.trading_day)]


def test_a_trg_order_of_a_run_after_the_close_fills_at_the_next_open(live_repo) -> None:
    placed, fills = replay_trg(live_repo, "16:30")
    opens = aapl()["open"]
    cal = get_calendar("XNYS")
    # the 01-09 order waits for the 01-10 open, after the replay's last session
    assert len(fills) == len(placed) - 1 == 4
    for fill in fills:
        order = placed[fill.client_id]
        nxt = cal.next_session_day(order.trading_day + timedelta(days=1))
        assert nxt is not None
        assert fill.filled_at == cal.session(nxt).open
        assert fill.price == pytest.approx(opens[pd.Timestamp(nxt)])
        assert order.tick_at is not None and fill.filled_at > order.tick_at
        assert isinstance(fill.filled_at, datetime)
