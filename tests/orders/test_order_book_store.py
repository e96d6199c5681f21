"""store/orders.py on a real DuckDB file: orders and fills round-trip, duplicates are refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from minitrade.errors import StoreError
from minitrade.records import Fill, OrderStatus, Side
from minitrade.store import Store
from minitrade.store import orders as order_sql
from tests.orders.conftest import DAY, TICK, make_order


def test_orders_round_trip_with_every_field(store: Store) -> None:
    order = make_order("AAPL", 10, status=OrderStatus.PENDING_SUBMIT, conid=265598, note="first")
    with store.transaction() as con:
        order_sql.insert_orders(con, [order])
    with store.transaction() as con:
        assert order_sql.get_order(con, order.client_id) == order
        assert order_sql.get_order(con, "nope") is None


def test_orders_of_filters_by_plan_status_and_day(store: Store) -> None:
    book = [make_order("AAPL", status=OrderStatus.SUBMITTED), make_order("MSFT", status=OrderStatus.FILLED),
            make_order("AAPL", plan="other", status=OrderStatus.HELD),
            make_order("AAPL", day=date(2026, 11, 26), tick=datetime(2026, 11, 26, 20, 45, tzinfo=UTC),
                       status=OrderStatus.CANCELLED)]
    with store.transaction() as con:
        order_sql.insert_orders(con, book)
        ids = lambda orders: [o.client_id for o in orders]  # noqa: E731
        assert ids(order_sql.orders_of(con)) == ids([book[2], book[0], book[1], book[3]])  # by plan, then tick
        assert ids(order_sql.orders_of(con, "sma-aapl", trading_day=DAY)) == ids(book[:2])
        assert ids(order_sql.orders_of(con, statuses=[OrderStatus.HELD, OrderStatus.CANCELLED])) == ids(book[2:])
        assert order_sql.orders_of(con, statuses=[]) == []
        assert ids(order_sql.open_orders(con)) == ids([book[2], book[0]])
        assert ids(order_sql.open_orders(con, "other")) == ids([book[2]])


def test_an_order_is_never_recorded_twice(store: Store) -> None:
    order = make_order()
    with store.transaction() as con:
        order_sql.insert_orders(con, [order])
    with pytest.raises(StoreError, match="already recorded"), store.transaction() as con:
        order_sql.insert_orders(con, [make_order("MSFT"), order])
    with pytest.raises(StoreError, match="repeat a client id"), store.transaction() as con:
        order_sql.insert_orders(con, [make_order("IBM"), make_order("IBM")])
    with store.transaction() as con:
        assert len(order_sql.orders_of(con)) == 1


def test_set_status_keeps_broker_id_and_note_unless_given(store: Store) -> None:
    order = make_order(status=OrderStatus.PENDING_SUBMIT)
    with store.transaction() as con:
        order_sql.insert_orders(con, [order])
        order_sql.set_status(con, order.client_id, OrderStatus.SUBMITTED, broker_order_id="42", note="sent")
        returned = order_sql.set_status(con, order.client_id, OrderStatus.CANCELLED)
        got = order_sql.get_order(con, order.client_id)
        assert got is not None and (got.status, got.broker_order_id, got.note) == (OrderStatus.CANCELLED, "42", "sent")
        assert returned == got  # the order as stored now, returned by the UPDATE itself
        with pytest.raises(StoreError, match="no order 'ghost'"):
            order_sql.set_status(con, "ghost", OrderStatus.FILLED)


# (status, broker_order_id, note, clear_note) changes, applied one after another to a fresh order
STATUS_CHANGES = [
    [(OrderStatus.SUBMITTED, "42", "sent", False), (OrderStatus.CANCELLED, None, None, False)],
    [(OrderStatus.HELD, None, "broker session: expired", False), (OrderStatus.SUBMITTED, "7", None, True)],
    [(OrderStatus.HELD, None, "not ready", False), (OrderStatus.SUBMITTED, "8", "confirmed", True)],
    [(OrderStatus.REJECTED, None, "refused", False)],
    [(OrderStatus.EXPIRED, None, None, True)],
]


@pytest.mark.parametrize("changes", STATUS_CHANGES)
def test_statuses_written_together_equal_set_status_one_by_one(
        store: Store, changes: list[tuple[OrderStatus, str | None, str | None, bool]]) -> None:
    """A local broker's submissions are written in one statement (`with_status` + `save_statuses`):
    the orders they leave must be exactly those `set_status` leaves."""
    one, together = make_order("AAPL", note="clipped"), make_order("MSFT", note="clipped")
    with store.transaction() as con:
        order_sql.insert_orders(con, [one, together])
        later = [together]
        for status, broker_id, note, clear in changes:
            order_sql.set_status(con, one.client_id, status, broker_order_id=broker_id, note=note, clear_note=clear)
            later.append(order_sql.with_status(later[-1], status, broker_order_id=broker_id, note=note,
                                               clear_note=clear))
        order_sql.save_statuses(con, later[1:])
        by_set, by_batch = order_sql.get_order(con, one.client_id), order_sql.get_order(con, together.client_id)
    assert by_set is not None and by_batch is not None
    assert later[-1] == by_batch  # what the caller was told is what is stored
    fields = lambda o: (o.status, o.broker_order_id, o.note)  # noqa: E731
    assert fields(by_batch) == fields(by_set)


def test_saving_the_status_of_an_unknown_order_fails(store: Store) -> None:
    with pytest.raises(StoreError, match="no order 'ghost'"), store.transaction() as con:
        order_sql.save_statuses(con, [replace(make_order(), client_id="ghost")])


def test_fills_are_idempotent_by_id_and_a_conflicting_one_is_refused(store: Store) -> None:
    buy, sell = make_order("AAPL", 10), make_order("MSFT", 5, side=Side.SELL, plan="other")
    at = datetime(2026, 11, 25, 20, 59, tzinfo=UTC)
    first = Fill("ex-1", buy.client_id, 4, 100.0, 1.0, at, "ib:paper")
    with store.transaction() as con:
        order_sql.insert_orders(con, [buy, sell])
        assert order_sql.insert_fill(con, first, commit_sha="c0ffee", plan_digest="d1gest") is True
        assert order_sql.insert_fill(con, first, commit_sha="c0ffee", plan_digest="d1gest") is False
        with pytest.raises(StoreError, match="already recorded as 4 @ 100"):
            order_sql.insert_fill(con, Fill("ex-1", buy.client_id, 5, 100.0, 1.0, at, "ib:paper"),
                                  commit_sha=None, plan_digest=None)
        order_sql.insert_fill(con, Fill("ex-2", sell.client_id, 5, 50.0, 0.0, at, "manual"),
                              commit_sha=None, plan_digest=None)
        assert order_sql.fills_of(con) == [first, Fill("ex-2", sell.client_id, 5, 50.0, 0.0, at, "manual")]
        assert order_sql.fills_of(con, "sma-aapl") == [first]
        assert order_sql.fills_of(con, client_id=sell.client_id)[0].fill_id == "ex-2"
        assert order_sql.filled_quantities(con) == {buy.client_id: 4.0, sell.client_id: 5.0}
        assert order_sql.filled_quantities(con, "other") == {sell.client_id: 5.0}
        row = con.execute("SELECT commit_sha, plan_digest FROM fills WHERE fill_id = 'ex-1'").fetchone()
        assert row == ("c0ffee", "d1gest")


def test_tick_times_come_back_as_the_same_utc_instant(store: Store) -> None:
    order = make_order()
    with store.transaction() as con:
        order_sql.insert_orders(con, [order])
        got = order_sql.get_order(con, order.client_id)
    assert got is not None and got.tick_at == TICK and got.tick_at.utcoffset() is not None
