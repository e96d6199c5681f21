"""decide_orders (strict once-per-signal, incremental always new), orders_to_cancel and actual_book."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from minitrade.models import OrderType
from minitrade.records import Fill, OrderIntent, OrderStatus, Side
from minitrade.runner.orders import actual_book, client_id, decide_orders, orders_to_cancel
from tests.orders.conftest import DAY, TICK, make_order, make_plan

LATER = TICK + timedelta(minutes=30)


def intent(ticker: str = "AAPL", quantity: float = 10, side: Side = Side.BUY) -> OrderIntent:
    return OrderIntent(ticker=ticker, side=side, quantity=quantity, order_type=OrderType.TOC)


def decide(plan, intents, *, tick=TICK, existing=(), day=DAY):
    return decide_orders(plan, intents, run_id="run-2", trading_day=day, tick_at=tick, existing=list(existing),
                         commit_sha="abc123", plan_digest="dig", broker="manual")


def test_first_tick_records_one_pending_order_per_intent_with_commit_and_digest() -> None:
    plan = make_plan(universe={"AAPL": {"conid": 265598}, "MSFT": {}})
    decision = decide(plan, [intent("AAPL", 10), intent("MSFT", 3, Side.SELL)])
    assert decision.kept == []
    aapl, msft = decision.new
    assert aapl.client_id == client_id("sma-aapl", DAY, TICK, "AAPL", 0)
    assert (aapl.status, aapl.quantity, aapl.side, aapl.conid) == (OrderStatus.PENDING_SUBMIT, 10.0, Side.BUY, 265598)
    assert (aapl.commit_sha, aapl.plan_digest, aapl.run_id, aapl.tick_at) == ("abc123", "dig", "run-2", TICK)
    assert (msft.side, msft.quantity, msft.conid) == (Side.SELL, 3.0, None)


def test_strict_same_signal_on_a_later_tick_is_not_recorded_again() -> None:
    plan = make_plan()
    first = make_order("AAPL", 10)
    decision = decide(plan, [intent("AAPL", 10)], tick=LATER, existing=[first])
    assert decision.new == []
    [(kept, note)] = decision.kept
    assert kept.ticker == "AAPL" and first.client_id in note and "not recorded again" in note


def test_strict_changed_size_is_refused_and_the_first_order_kept() -> None:
    plan = make_plan()
    first = make_order("AAPL", 10)
    decision = decide(plan, [intent("AAPL", 12), intent("MSFT", 5)], tick=LATER, existing=[first])
    assert [o.ticker for o in decision.new] == ["MSFT"]
    [(kept, note)] = decision.kept
    assert kept.quantity == 12
    assert "REFUSED BUY 12 AAPL" in note and f"order {first.client_id} for BUY 10 AAPL" in note
    assert "no second order for one signal" in note


@pytest.mark.parametrize("status", [OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED])
def test_strict_any_recorded_order_blocks_the_signal_whatever_its_status(status: OrderStatus) -> None:
    decision = decide(make_plan(), [intent("AAPL", 10, Side.SELL)], tick=LATER,
                      existing=[make_order("AAPL", 10, status=status)])
    assert decision.new == [] and "REFUSED SELL 10 AAPL" in decision.kept[0][1]
    assert status.value in decision.kept[0][1]


def test_strict_orders_of_another_day_or_plan_do_not_block() -> None:
    yesterday = make_order("AAPL", 10, day=date(2026, 11, 24), tick=TICK - timedelta(days=1))
    other_plan = make_order("AAPL", 10, plan="other")
    decision = decide(make_plan(), [intent("AAPL", 10)], tick=LATER, existing=[yesterday, other_plan])
    assert len(decision.new) == 1 and decision.kept == []


def test_incremental_orders_are_always_new_on_a_new_tick() -> None:
    plan = make_plan(mode="incremental", order_type="TRG")
    earlier = make_order("AAPL", 10, status=OrderStatus.CANCELLED)
    decision = decide(plan, [intent("AAPL", 7)], tick=LATER, existing=[earlier])
    [order] = decision.new
    assert order.client_id == client_id("sma-aapl", DAY, LATER, "AAPL", 0) != earlier.client_id
    assert decision.kept == []


def test_incremental_never_records_an_id_this_tick_already_recorded() -> None:
    plan = make_plan(mode="incremental", order_type="TRG")
    again = decide(plan, [intent("AAPL", 10)], existing=[make_order("AAPL", 10)])
    assert again.new == [] and "this tick already recorded" in again.kept[0][1]


def test_two_intents_for_one_ticker_become_two_legs() -> None:
    decision = decide(make_plan(), [intent("AAPL", 10, Side.SELL), intent("AAPL", 5)])
    assert [o.client_id.rsplit(".", 1)[1] for o in decision.new] == ["0", "1"]


def test_orders_to_cancel_are_the_plans_open_orders() -> None:
    book = [make_order("AAPL", status=s, leg=i) for i, s in enumerate(OrderStatus)]
    book.append(make_order("MSFT", plan="other", status=OrderStatus.SUBMITTED))
    cancel = orders_to_cancel(book, "sma-aapl")
    assert {o.status for o in cancel} == {OrderStatus.PENDING_SUBMIT, OrderStatus.HELD, OrderStatus.SUBMITTED,
                                          OrderStatus.PARTIAL}
    assert all(o.plan == "sma-aapl" for o in cancel)
    assert len(orders_to_cancel(book)) == 5


def _fill(order_id: str, n: int, quantity: float, price: float, commission: float = 0.0) -> Fill:
    return Fill(f"{order_id}#{n}", order_id, quantity, price, commission, datetime(2026, 11, 25, 21, tzinfo=UTC),
                "manual")


def test_actual_book_counts_only_filled_quantities_and_commissions() -> None:
    plan = make_plan(cash=10_000, positions={"MSFT": 20})
    buy = make_order("AAPL", 10, status=OrderStatus.PARTIAL)
    sell = make_order("MSFT", 20, side=Side.SELL, status=OrderStatus.FILLED)
    unfilled = make_order("AAPL", 99, leg=1, status=OrderStatus.SUBMITTED)
    foreign = make_order("AAPL", 50, plan="other", status=OrderStatus.FILLED)
    fills = [_fill(buy.client_id, 1, 4, 100.0, 1.0), _fill(buy.client_id, 2, 2, 101.0, 0.5),
             _fill(sell.client_id, 1, 20, 50.0, 2.0), _fill(foreign.client_id, 1, 50, 1.0)]
    cash, positions = actual_book(plan, [buy, sell, unfilled, foreign], fills)
    assert cash == pytest.approx(10_000 - 400 - 1 - 202 - 0.5 + 1000 - 2)
    assert positions == {"AAPL": 6.0}


def test_actual_book_without_fills_is_the_plans_initial_book() -> None:
    plan = make_plan(cash=5_000, positions={"AAPL": 3})
    assert actual_book(plan, [make_order("AAPL", 10)], []) == (5_000.0, {"AAPL": 3.0})


@pytest.mark.parametrize("seed", range(5))
def test_strict_many_ticks_with_changing_sizes_never_make_a_second_order(seed: int, tmp_path) -> None:
    import random

    from minitrade.store import Store
    from minitrade.store import orders as order_sql

    rng = random.Random(seed)
    plan = make_plan(universe=["AAPL", "MSFT", "IBM"])
    store = Store(tmp_path / "book.duckdb")
    first_wish: dict[tuple[date, str], tuple[Side, float]] = {}
    for day_offset in range(3):
        day = DAY + timedelta(days=day_offset)
        for n in range(13):   # 09:30:01-16:00/30min
            tick = datetime(day.year, day.month, day.day, 14, 30, 1, tzinfo=UTC) + timedelta(minutes=30 * n)
            wishes = [intent(t, rng.choice([5, 10, 15]), rng.choice(list(Side)))
                      for t in rng.sample(plan.tickers, rng.randint(0, 3))]
            for w in wishes:
                first_wish.setdefault((day, w.ticker), (w.side, w.quantity))
            with store.transaction() as con:
                decision = decide(plan, wishes, tick=tick, day=day,
                                  existing=order_sql.orders_of(con, plan.name, trading_day=day))
                order_sql.insert_orders(con, decision.new)
            assert len(decision.new) + len(decision.kept) == len(wishes)
    with store.transaction() as con:
        book = order_sql.orders_of(con, plan.name)
    assert sorted((o.trading_day, o.ticker) for o in book) == sorted(first_wish)
    assert {(o.trading_day, o.ticker): (o.side, o.quantity) for o in book} == first_wish
