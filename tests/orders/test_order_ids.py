"""Client order ids: deterministic, readable, unique per (plan, day, tick, ticker, leg), <= 64 chars."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from minitrade.runner.orders import MAX_CLIENT_ID, client_id

NY = ZoneInfo("America/New_York")


def test_client_id_is_readable_and_deterministic() -> None:
    tick = datetime(2026, 11, 25, 15, 45, tzinfo=NY)
    first = client_id("sma-aapl", date(2026, 11, 25), tick, "AAPL")
    assert first == "sma-aapl.20261125.204500Z.AAPL.0"
    assert client_id("sma-aapl", date(2026, 11, 25), tick, "AAPL") == first


def test_same_instant_in_another_timezone_gives_the_same_id() -> None:
    local = datetime(2026, 7, 1, 9, 30, 1, tzinfo=NY)
    assert client_id("p", date(2026, 7, 1), local, "SPY") == client_id("p", date(2026, 7, 1), local.astimezone(UTC),
                                                                       "SPY")


def test_ids_are_unique_per_plan_day_tick_ticker_and_leg() -> None:
    base = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    keys = list(itertools.product(["a", "a-b", "a.b"], [date(2026, 11, 25), date(2026, 11, 26)],
                                  [base, base + timedelta(seconds=1), base + timedelta(minutes=30)],
                                  ["AAPL", "BRK.B", "BRK B", "BRK-B"], [0, 1]))
    ids = {client_id(*key) for key in keys}
    assert len(ids) == len(keys)


@pytest.mark.parametrize("plan, ticker", [
    pytest.param("p" * 64, "AAPL", id="longest-plan-name"),
    pytest.param("momentum-rotation-" + "x" * 46, "600519.SS", id="long-plan-long-ticker"),
    pytest.param("p", "T" * 80, id="very-long-ticker"),
])
def test_long_ids_fit_64_chars_and_stay_distinct(plan: str, ticker: str) -> None:
    tick = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)
    one = client_id(plan, date(2026, 11, 25), tick, ticker)
    other = client_id(plan[:-1] + "q", date(2026, 11, 25), tick, ticker[:-1] + "Q")
    assert len(one) <= MAX_CLIENT_ID and len(other) <= MAX_CLIENT_ID
    assert one != other
    assert one.endswith(".0") and "20261125.204500Z" in one


def test_characters_a_broker_rejects_are_replaced_but_ids_stay_unique() -> None:
    tick = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)
    spaced = client_id("p", date(2026, 11, 25), tick, "BRK B")
    assert " " not in spaced and spaced.startswith("p.20261125.204500Z.BRK-B-")
    assert spaced != client_id("p", date(2026, 11, 25), tick, "BRK-B")


def test_a_tick_without_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        client_id("p", date(2026, 11, 25), datetime(2026, 11, 25, 15, 45), "AAPL")
