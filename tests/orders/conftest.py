"""Fixtures of the order book tests: plans built in code, a real DuckDB file, orders to record."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from minitrade.models import OrderType, Plan
from minitrade.records import Order, OrderStatus, Side
from minitrade.runner.orders import client_id
from minitrade.store import Store

DAY = date(2026, 11, 25)
TICK = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)   # 15:45 in New York


def make_plan(**overrides: Any) -> Plan:
    spec: dict[str, Any] = {
        "name": "sma-aapl", "strategy": "strategies/sma.py", "universe": ["AAPL", "MSFT"],
        "data_source": "samples", "backtest_start": date(2024, 1, 1), "run_at": ["15:45"],
        "order_type": "TOC", "cash": 10_000,
    }
    spec.update(overrides)
    return Plan.model_validate(spec)


def make_order(ticker: str = "AAPL", quantity: float = 10, *, plan: str = "sma-aapl", side: Side = Side.BUY,
               day: date = DAY, tick: datetime = TICK, leg: int = 0,
               status: OrderStatus = OrderStatus.SUBMITTED, **extra: Any) -> Order:
    fields: dict[str, Any] = {"run_id": "run-1", "order_type": OrderType.TOC, "broker": "manual",
                              "commit_sha": "c0ffee", "plan_digest": "d1gest"}
    fields.update(extra)
    return Order(client_id=client_id(plan, day, tick, ticker, leg), plan=plan, trading_day=day, ticker=ticker,
                 side=side, quantity=float(quantity), status=status, tick_at=tick, **fields)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "minitrade.duckdb")
