"""Strict mode's change detection: compare a run's history with the previous run's."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from minitrade.data.cache import PriceCache
from minitrade.data.changes import (
    accept_history,
    check_unchanged,
    compare,
    detect_changes,
    history_digest,
    record_history,
    used_bars,
)
from minitrade.errors import DataChanged, DataError
from tests.data.conftest import NY_AFTER_CLOSE

START = date(2024, 1, 2)


def bars(days: int = 30, start: str = "2026-01-05", scale: float = 1.0, partial: bool = False) -> pd.DataFrame:
    index = pd.bdate_range(start, periods=days, name="date").as_unit("ns")
    close = np.linspace(100, 130, days) * scale
    frame = pd.DataFrame({"open": close - 1, "high": close + 1, "low": close - 2, "close": close,
                          "volume": 1000.0}, index=index)
    frame.attrs["partial"] = partial
    return frame


def test_unchanged_history_passes_and_a_first_run_has_nothing_to_compare(store):
    prices = {"SPY": bars(), "QQQ": bars(scale=3)}
    check_unchanged(store, "p", prices)
    record_history(store, "p", "run-1", prices)
    check_unchanged(store, "p", prices)
    assert detect_changes(store, "p", prices) == []


def test_a_split_through_the_real_client_and_cache_stops_the_next_strict_run(store, yahoo, fake_yahoo):
    cache = PriceCache(store, yahoo, today=lambda: fake_yahoo.book.now.date())
    first = cache.daily_many(["SPY", "AAPL"], START)
    record_history(store, "rotation", "run-1", first)
    fake_yahoo.book.now = NY_AFTER_CLOSE + timedelta(days=4)
    fake_yahoo.book.add_split("AAPL", date(2026, 11, 24), 2.0)
    second = cache.daily_many(["SPY", "AAPL"], START)
    with pytest.raises(DataChanged) as caught:
        check_unchanged(store, "rotation", second, source="yahoo")
    message = str(caught.value)
    assert caught.value.ticker == "AAPL" and isinstance(caught.value, DataError)
    assert "AAPL:" in message and "SPY:" not in message
    assert "from 2024-01-02 to 2026-11-20 changed, by up to -50.0000%" in message
    assert "minitrade data accept rotation" in message
    [change] = caught.value.changes
    assert change.changed[0] == date(2024, 1, 2) and change.changed[-1] == date(2026, 11, 20)
    assert change.worst_relative == pytest.approx(-0.5)


def test_changes_within_the_tolerance_pass_and_beyond_it_are_reported():
    previous = used_bars({"SPY": bars()})
    nudged = bars()
    nudged.loc[nudged.index[3], "close"] *= 1 + 5e-6
    assert compare(previous, {"SPY": nudged}) == []
    nudged.loc[nudged.index[3], "close"] *= 1 + 5e-5
    [change] = compare(previous, {"SPY": nudged})
    assert change.changed == (nudged.index[3].date(),) and change.worst_column == "close"
    assert compare(previous, {"SPY": nudged}, rtol=1e-3) == []


def test_a_bar_that_disappeared_is_a_change():
    previous = used_bars({"SPY": bars()})
    gap = bars().drop(bars().index[10])
    [change] = compare(previous, {"SPY": gap})
    assert change.vanished == (bars().index[10].date(),) and "disappeared" in change.describe()


def test_todays_partial_bar_is_neither_recorded_nor_compared(store):
    record_history(store, "p", "run-1", {"SPY": bars(partial=True)})
    with store.transaction() as con:
        recorded = con.execute("SELECT count(*), max(date) FROM price_history").fetchone()
    assert recorded[0] == 29
    moved = bars()  # yesterday's partial bar became final at another price, plus a new day
    moved.loc[moved.index[29], "close"] = 1.0
    moved.loc[moved.index[29] + pd.offsets.BDay(), :] = [100.0, 101.0, 99.0, 100.0, 10.0]
    check_unchanged(store, "p", {"SPY": moved})


def test_a_later_backtest_start_or_a_new_ticker_is_not_a_change():
    previous = used_bars({"SPY": bars(days=60, start="2025-12-01")})
    later = bars(days=60, start="2025-12-01").iloc[20:]
    assert compare(previous, {"SPY": later, "NEW": bars()}) == []


def test_accepting_forgets_the_recorded_history(store):
    record_history(store, "p", "run-1", {"SPY": bars()})
    with pytest.raises(DataChanged):
        check_unchanged(store, "p", {"SPY": bars(scale=2)})
    accept_history(store, "p")
    check_unchanged(store, "p", {"SPY": bars(scale=2)})


def test_the_digest_ignores_order_and_float_noise_but_not_prices(store):
    a = {"SPY": bars(), "QQQ": bars(scale=2)}
    noisy = bars()
    noisy["close"] = noisy["close"] * (1 + 1e-13)
    assert history_digest(a) == history_digest({"QQQ": bars(scale=2), "SPY": noisy})
    assert history_digest(a) != history_digest({"SPY": bars(scale=1.001), "QQQ": bars(scale=2)})
    assert history_digest(a) == record_history(store, "p", "run-1", a)



def recorded(store, plan: str = "p") -> pd.DataFrame:
    with store.transaction() as con:
        return con.execute("SELECT ticker, date, close, run_id FROM price_history WHERE plan = ? "
                           "ORDER BY ticker, date", [plan]).df()


def test_recording_appends_the_new_bars_and_keeps_the_recorded_ones(store):
    full = bars(days=40, start="2025-12-22")
    record_history(store, "p", "run-1", {"SPY": full.iloc[10:30], "QQQ": bars(scale=3)})
    # backtest_start moved earlier, a day more, and QQQ left the universe
    record_history(store, "p", "run-2", {"SPY": full.iloc[:31]})
    rows = recorded(store)
    assert rows["ticker"].unique().tolist() == ["SPY"] and len(rows) == 31
    kept = rows[(rows["date"] >= full.index[10]) & (rows["date"] <= full.index[29])]
    assert set(kept["run_id"]) == {"run-1"} and set(rows.drop(kept.index)["run_id"]) == {"run-2"}
    early = full.iloc[:31].copy()
    early.loc[early.index[2], "close"] *= 1.01  # the bars recorded from the earlier start are compared too
    with pytest.raises(DataChanged):
        check_unchanged(store, "p", {"SPY": early})


def test_a_date_that_appears_inside_the_recorded_span_is_recorded(store):
    gap = bars().drop(bars().index[10])
    record_history(store, "p", "run-1", {"SPY": gap})
    record_history(store, "p", "run-2", {"SPY": bars()})
    rows = recorded(store)
    assert len(rows) == 30 and rows.iloc[10]["run_id"] == "run-2"
    moved = bars()
    moved.loc[moved.index[10], "close"] *= 1.01
    with pytest.raises(DataChanged):
        check_unchanged(store, "p", {"SPY": moved})


def test_small_moves_that_add_up_beyond_the_tolerance_are_caught(store):
    # the recorded bars stay as the first run used them, so creeping adjustments cannot slip through
    record_history(store, "p", "run-1", {"SPY": bars()})
    check_unchanged(store, "p", {"SPY": bars(scale=1 + 6e-6)})
    record_history(store, "p", "run-2", {"SPY": bars(scale=1 + 6e-6)})
    with pytest.raises(DataChanged):
        check_unchanged(store, "p", {"SPY": bars(scale=1 + 1.2e-5)})


def reference_digest(prices) -> str:
    """history_digest as first written: every value rounded through text, nothing reused."""
    import hashlib

    frame = used_bars(prices).sort_values(["ticker", "date"], kind="stable")
    digest = hashlib.sha256()
    for ticker, group in frame.groupby("ticker", sort=True):
        digest.update(str(ticker).encode())
        digest.update(pd.DatetimeIndex(group["date"]).strftime("%Y%m%d").str.cat().encode())
        digest.update(np.array([float(f"{v:.8g}") for v in group[["open", "high", "low", "close"]]
                                .to_numpy().ravel()]).tobytes())
    return digest.hexdigest()


def test_the_digest_of_a_growing_or_edited_history_is_the_one_computed_afresh():
    full = bars(days=60)
    full.loc[full.index[7], "open"] = -0.0
    # (bars, edited row, column, new value): grown, edited early and late, shrunk, -0.0 becoming 0.0
    for n, row, column, value in ((30, None, "", 0.0), (31, None, "", 0.0), (45, 3, "low", 1.5),
                                  (45, 44, "high", 200.0), (20, None, "", 0.0), (60, 7, "open", 0.0)):
        frame = full.iloc[:n].copy()
        if row is not None:
            frame.loc[frame.index[row], column] = value
        prices = {"SPY": frame, "QQQ": bars(scale=3)}
        assert history_digest(prices) == reference_digest(prices), (n, row)
