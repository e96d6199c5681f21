"""record_fill and record_broker_fills: refusals that protect the book, partial -> FILLED, provenance."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from minitrade.errors import FillRefused
from minitrade.records import Fill, OrderStatus
from minitrade.runner.fills import record_broker_fills, record_fill
from minitrade.store import Store
from minitrade.store import orders as order_sql
from tests.orders.conftest import make_order

AT = datetime(2026, 11, 25, 15, 59, tzinfo=ZoneInfo("America/New_York"))


def _book(store: Store, *orders):
    with store.transaction() as con:
        order_sql.insert_orders(con, list(orders))


def _status(store: Store, client_id: str) -> OrderStatus:
    with store.transaction() as con:
        order = order_sql.get_order(con, client_id)
    assert order is not None
    return order.status


def test_a_fill_without_quantity_fills_the_rest_and_carries_provenance(store: Store) -> None:
    order = make_order("AAPL", 10, commit_sha="abc123", plan_digest="dig9")
    _book(store, order)
    fill = record_fill(store, order.client_id, price=231.5, commission=1.25, at=AT)
    assert fill == Fill(f"{order.client_id}#1", order.client_id, 10.0, 231.5, 1.25, AT.astimezone(UTC), "manual")
    assert _status(store, order.client_id) is OrderStatus.FILLED
    with store.transaction() as con:
        row = con.execute("SELECT commit_sha, plan_digest FROM fills WHERE fill_id = ?", [fill.fill_id]).fetchone()
    assert row == ("abc123", "dig9")


def test_partial_fills_then_the_last_one_fills(store: Store) -> None:
    order = make_order("AAPL", 10, status=OrderStatus.HELD)
    _book(store, order)
    first = record_fill(store, order.client_id, price=100, quantity=4, at=AT)
    assert first.fill_id.endswith("#1") and _status(store, order.client_id) is OrderStatus.PARTIAL
    second = record_fill(store, order.client_id, price=101, quantity=3.5, at=AT)
    assert second.fill_id.endswith("#2") and _status(store, order.client_id) is OrderStatus.PARTIAL
    last = record_fill(store, order.client_id, price=102, at=AT)
    assert (last.fill_id[-2:], last.quantity) == ("#3", 2.5)
    assert _status(store, order.client_id) is OrderStatus.FILLED
    with pytest.raises(FillRefused, match="already FILLED"):
        record_fill(store, order.client_id, price=102, quantity=1)


def test_an_unknown_order_is_refused_with_did_you_mean(store: Store) -> None:
    order = make_order("AAPL", 10)
    _book(store, order, make_order("MSFT", 5, status=OrderStatus.CANCELLED))
    typo = order.client_id.replace("AAPL", "AAPLL")
    with pytest.raises(FillRefused, match=f"no order '{typo}'; did you mean {order.client_id}"):
        record_fill(store, typo, price=1)
    with pytest.raises(FillRefused, match="open orders: " + order.client_id):
        record_fill(store, "zzz", price=1)


def test_an_unknown_order_with_an_empty_book_says_so(store: Store) -> None:
    with pytest.raises(FillRefused, match="there are no open orders"):
        record_fill(store, "x.20261125.204500Z.AAPL.0", price=1)


@pytest.mark.parametrize("status", [OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED])
def test_an_order_that_can_no_longer_execute_is_refused(store: Store, status: OrderStatus) -> None:
    order = make_order("AAPL", 10, status=status)
    _book(store, order)
    with pytest.raises(FillRefused, match=f"order {order.client_id} is {status.value}; a fill for it is refused"):
        record_fill(store, order.client_id, price=100)
    with store.transaction() as con:
        assert order_sql.fills_of(con) == []


@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"price": 0.0}, "price must be a positive number", id="zero-price"),
    pytest.param({"price": -5.0}, "price must be a positive number", id="negative-price"),
    pytest.param({"price": math.nan}, "price must be a positive number", id="nan-price"),
    pytest.param({"price": 10.0, "quantity": 0.0}, "quantity must be a positive number", id="zero-qty"),
    pytest.param({"price": 10.0, "quantity": 11.0}, "11 is more than the 10 that remain", id="overfill"),
    pytest.param({"price": 10.0, "commission": -1.0}, "commission must be zero or positive", id="neg-commission"),
])
def test_bad_numbers_are_refused_and_nothing_is_recorded(store: Store, kwargs: dict[str, float],
                                                         message: str) -> None:
    order = make_order("AAPL", 10)
    _book(store, order)
    with pytest.raises(FillRefused, match=message) as refused:
        record_fill(store, order.client_id, **kwargs)  # type: ignore[arg-type]
    assert f"order {order.client_id} (BUY 10 AAPL, SUBMITTED)" in str(refused.value)
    assert _status(store, order.client_id) is OrderStatus.SUBMITTED
    with store.transaction() as con:
        assert order_sql.fills_of(con) == []


def test_overfill_after_a_partial_names_what_remains(store: Store) -> None:
    order = make_order("AAPL", 10)
    _book(store, order)
    record_fill(store, order.client_id, price=100, quantity=8, at=AT)
    with pytest.raises(FillRefused, match=r"3 is more than the 2 that remain \(8 already filled\)"):
        record_fill(store, order.client_id, price=100, quantity=3)


def test_broker_fills_are_stored_once_and_settle_their_orders(store: Store) -> None:
    buy, cancelled = make_order("AAPL", 10), make_order("MSFT", 4, status=OrderStatus.CANCELLED)
    _book(store, buy, cancelled)
    seen = [Fill("ex-1", buy.client_id, 6, 100.0, 0.5, AT, "ib:paper"),
            Fill("ex-9", "someone-elses-order", 1, 1.0, 0.0, AT, "ib:paper"),
            Fill("ex-2", cancelled.client_id, 1, 50.0, 0.0, AT, "ib:paper")]
    with store.transaction() as con:
        assert [f.fill_id for f in record_broker_fills(con, seen)] == ["ex-1", "ex-2"]
    assert _status(store, buy.client_id) is OrderStatus.PARTIAL
    assert _status(store, cancelled.client_id) is OrderStatus.CANCELLED
    again = [*seen, Fill("ex-3", buy.client_id, 4, 100.5, 0.5, AT, "ib:paper")]
    with store.transaction() as con:
        assert [f.fill_id for f in record_broker_fills(con, again)] == ["ex-3"]
        assert len(order_sql.fills_of(con)) == 3
    assert _status(store, buy.client_id) is OrderStatus.FILLED


def test_a_fill_before_the_order_was_decided_is_refused(store: Store) -> None:
    order = make_order("AAPL", 10)   # decided at 20:45 UTC (15:45 New York)
    _book(store, order)
    with pytest.raises(FillRefused, match="before the order was decided .2026-11-25 20:45 UTC"):
        record_fill(store, order.client_id, price=100, at=datetime(2026, 11, 25, 15, 30, tzinfo=ZoneInfo(
            "America/New_York")))
    with pytest.raises(FillRefused, match="has no timezone"):
        record_fill(store, order.client_id, price=100, at=datetime(2026, 11, 25, 21, 0))
    assert record_fill(store, order.client_id, price=100, at=datetime(2026, 11, 25, 20, 44, 30, tzinfo=UTC))
