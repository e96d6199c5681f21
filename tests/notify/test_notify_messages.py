"""Message wording: short, phone-sized, the numbers and the next step."""

from __future__ import annotations

from datetime import UTC, date, datetime

from minitrade.models import OrderType
from minitrade.notify import messages
from minitrade.records import Fill, Order, OrderStatus, Side


def order(ticker: str, qty: float = 10, side: Side = Side.BUY) -> Order:
    return Order(client_id=f"c-{ticker}", plan="p", run_id="r", trading_day=date(2026, 11, 25),
                 ticker=ticker, side=side, quantity=qty, order_type=OrderType.TOO, broker="manual",
                 status=OrderStatus.SUBMITTED)


def test_run_finished_gives_numbers_orders_and_next_run():
    m = messages.run_finished("spy", run_id="r1", stats={"return_pct": 5.0, "max_drawdown_pct": -3.25, "sharpe": 1.234},
                              orders=[order("SPY")], equity=10500.0, commit="0123456789abcdef",
                              next_run=datetime(2026, 11, 26, 15, 45, tzinfo=UTC))
    assert m.event == "run.finished" and m.notify_type == "success"
    assert m.body.splitlines() == [
        "Plan spy finished (commit 0123456).",
        "Return +5.0%, max drawdown -3.2%, Sharpe 1.23",
        "Equity 10,500.00.",
        "1 order:",
        "- BUY 10 SPY TOO",
        "Next run: 2026-11-26 15:45 UTC.",
    ]


def test_long_order_lists_are_capped_for_a_phone_screen():
    m = messages.orders_generated("big", [order(f"T{i}") for i in range(30)], trading_enabled=False)
    lines = m.body.splitlines()
    assert lines[-2] == "... and 22 more"
    assert "minitrade fill" in lines[-1]
    assert len(m.body) < 600


def test_config_rejected_lists_file_and_line_of_each_problem():
    error = "2 problems in the trading repo:\n  plans/spy.yaml:4: cash: must be > 0\n  minitrade.yaml:9: brokrs: unknown"
    m = messages.config_rejected("feedbeef1234", error)
    assert m.title == "config REJECTED: feedbee"
    assert "- plans/spy.yaml:4: cash: must be > 0" in m.body
    assert "- minitrade.yaml:9: brokrs: unknown" in m.body
    assert "last applied state keeps running" in m.body


def test_fills_name_the_order_they_belong_to():
    fill = Fill(fill_id="f1", client_id="c-SPY", quantity=10, price=451.25, commission=1.0,
                filled_at=datetime(2026, 11, 25, 21, tzinfo=UTC), source="manual")
    m = messages.fills_recorded("spy", [fill], orders={"c-SPY": order("SPY")})
    assert "- BUY 10 SPY @ 451.2 (commission 1.00)" in m.body or "- BUY 10 SPY @ 451.25" in m.body
    assert "value 4,512.50" in m.body


def test_calendar_ending_counts_days_and_says_what_to_do():
    m = messages.calendar_ending("XSHG", date(2026, 12, 31), today=date(2026, 11, 25), plans=["csi300"])
    assert m.title == "calendar XSHG ends in 36 days"
    assert "upgrade exchange-calendars" in m.body


def test_body_is_truncated_to_a_bounded_size():
    m = messages.run_failed("spy", "x" * 10_000, run_id="r1")
    assert len(m.body) <= messages.MAX_BODY
